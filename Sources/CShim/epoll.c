// epoll(7) for the server's loop. <sys/epoll.h> stays out of cshim.h:
// struct epoll_event is packed on x86_64 and not on arm64, so Swift gets
// plain integers (a token and an event mask per entry) instead of the struct.
#define _GNU_SOURCE
#include "cshim.h"
#include <errno.h>
#include <sys/epoll.h>

int squtun_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int squtun_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event = { .events = events, .data = { .u64 = token } };
    return epoll_ctl(epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &event);
}

int squtun_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms) {
    if (max < 1 || max > SQUTUN_EPOLL_MAX) { errno = EINVAL; return -1; }
    // On the C stack: a wait allocates nothing.
    struct epoll_event ready[SQUTUN_EPOLL_MAX];
    int n = epoll_wait(epfd, ready, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return n;
}
