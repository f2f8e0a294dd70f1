// The signal handler: a flag per signal and a byte to the wake pipe.
#define _GNU_SOURCE
#include "cshim.h"
#include <errno.h>
#include <string.h>
#include <signal.h>

// One flag per signal; sig_atomic_t is what a handler may write.
static volatile sig_atomic_t squtun_pending[64];
static volatile int squtun_wake_fd = -1;

static void squtun_signal_handler(int sig) {
    int saved = errno; // the interrupted code may be about to read errno
    if (sig > 0 && sig < 64) squtun_pending[sig] = 1;
    int fd = squtun_wake_fd;
    if (fd >= 0) {
        char byte = (char)sig;
        ssize_t ignored = write(fd, &byte, 1); // full pipe: a wake-up is already queued
        (void)ignored;
    }
    errno = saved;
}

int squtun_signals_install(const int *signals, int count, int wake_fd) {
    squtun_wake_fd = wake_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = squtun_signal_handler;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    for (int i = 0; i < count; i++) {
        if (signals[i] <= 0 || signals[i] >= 64) { errno = EINVAL; return -1; }
        if (sigaction(signals[i], &sa, NULL) != 0) return -1;
    }
    // The signal mask survives exec: a parent that blocked signals (some
    // supervisors and runners do) would otherwise turn SIGTERM into a
    // later SIGKILL, and a helper killed that way cannot restore the tun.
    // A daemon starts from an empty mask.
    sigset_t none;
    sigemptyset(&none);
    return sigprocmask(SIG_SETMASK, &none, NULL);
}

uint64_t squtun_take_signals(void) {
    uint64_t mask = 0;
    for (int sig = 1; sig < 64; sig++) {
        if (__atomic_exchange_n(&squtun_pending[sig], 0, __ATOMIC_SEQ_CST)) mask |= (uint64_t)1 << sig;
    }
    return mask;
}
