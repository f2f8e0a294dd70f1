// Descriptors a new process must not inherit.
#define _GNU_SOURCE
#include "cshim.h"
#include <signal.h>
#include <spawn.h>

void squtun_close_from(int lowfd) { closefrom(lowfd); }

int squtun_spawn_closefrom(void *actions, int lowfd) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, lowfd);
}
