// Pipes, Unix sockets (credentials, descriptor passing), file locks.
#define _GNU_SOURCE
#include "cshim.h"
#include <errno.h>
#include <string.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/socket.h>

int squtun_accept4(int fd, int flags) { return accept4(fd, NULL, NULL, flags); }

int squtun_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }

int squtun_peer_credentials(int fd, uid_t *uid, pid_t *pid) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    if (len != sizeof cred) { errno = EPROTO; return -1; }
    *uid = cred.uid;
    *pid = cred.pid;
    return 0;
}

ssize_t squtun_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds, int dontwait) {
    if (nfds < 0 || nfds > SQUTUN_MAX_FDS) { errno = EINVAL; return -1; }
    union { char buf[CMSG_SPACE(sizeof(int) * SQUTUN_MAX_FDS)]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = { (void *)buf, len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds > 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL | (dontwait ? MSG_DONTWAIT : 0));
}

ssize_t squtun_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int *msg_flags) {
    union { char buf[CMSG_SPACE(sizeof(int) * SQUTUN_MAX_FDS)]; struct cmsghdr align; } control;
    struct iovec iov = { buf, len };
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    *nfds = 0;
    *msg_flags = 0;
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return -1;
    *msg_flags = msg.msg_flags;
    int total = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (total < maxfds) fds[total] = fd;
            else close(fd);
            total++;
        }
    }
    *nfds = total;
    return n;
}

int squtun_share_lock(int fd) {
    // An open-file-description lock: tied to this descriptor (not the
    // process), so closing another descriptor of the same file (reading
    // the key) does not drop it, and it lives as long as the descriptor.
    struct flock probe = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    if (fcntl(fd, F_OFD_GETLK, &probe) != 0) return -1;
    int held = probe.l_type != F_UNLCK;
    struct flock shared = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    if (fcntl(fd, F_OFD_SETLK, &shared) != 0) return -1;
    return held;
}
