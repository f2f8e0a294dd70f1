// UDP batch I/O: sendmmsg/recvmmsg, GRO and GSO.
#define _GNU_SOURCE
#include "cshim.h"
#include <netinet/udp.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int squtun_send_batch(int fd, const void *base, size_t slot, unsigned n, const unsigned *lens,
                      const void *to, unsigned tolen) {
    if (n > SQUTUN_BATCH_MAX) n = SQUTUN_BATCH_MAX;
    struct mmsghdr msgs[SQUTUN_BATCH_MAX];
    struct iovec iov[SQUTUN_BATCH_MAX];
    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = (char *)base + i * slot;
        iov[i].iov_len = lens[i];
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = (void *)to;
        msgs[i].msg_hdr.msg_namelen = tolen;
    }
    unsigned done = 0;
    while (done < n) {
        int sent = sendmmsg(fd, msgs + done, n - done, MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR) continue;
            return done > 0 ? (int)done : -1;  // errno kept: why the rest did not go
        }
        if (sent == 0) {
            errno = EAGAIN;
            break;
        }
        done += (unsigned)sent;
    }
    return (int)done;
}

int squtun_set_udp_gro(int fd, int on) {
    return setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on);
}

int squtun_recv_batch(int fd, void *base, size_t slot, unsigned n, unsigned *lens,
                      void *addrs_raw, unsigned *addrlens, unsigned *gso) {
    struct sockaddr_storage *addrs = addrs_raw;
    if (n > SQUTUN_BATCH_MAX) n = SQUTUN_BATCH_MAX;
    struct mmsghdr msgs[SQUTUN_BATCH_MAX];
    struct iovec iov[SQUTUN_BATCH_MAX];
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl[SQUTUN_BATCH_MAX];
    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = (char *)base + i * slot;
        iov[i].iov_len = slot;
        memset(&msgs[i], 0, sizeof msgs[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &addrs[i];
        msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
        msgs[i].msg_hdr.msg_control = ctl[i].buf;
        msgs[i].msg_hdr.msg_controllen = sizeof ctl[i].buf;
    }
    int got;
    do {
        got = recvmmsg(fd, msgs, n, MSG_DONTWAIT, NULL);
    } while (got < 0 && errno == EINTR);
    for (int i = 0; i < got; i++) {
        lens[i] = msgs[i].msg_len;
        addrlens[i] = msgs[i].msg_hdr.msg_namelen;
        gso[i] = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
            if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
                int size;
                memcpy(&size, CMSG_DATA(c), sizeof size);
                if (size > 0) gso[i] = (unsigned)size;
            }
        }
    }
    return got;
}

int squtun_send_gso(int fd, const void *base, size_t slot, unsigned first, unsigned n,
                    const unsigned *lens, const void *to, unsigned tolen, unsigned segsize) {
    if (n > SQUTUN_BATCH_MAX) { errno = EINVAL; return -1; }
    struct iovec iov[SQUTUN_BATCH_MAX];
    for (unsigned i = 0; i < n; i++) {
        iov[i].iov_base = (char *)base + (first + i) * slot;
        iov[i].iov_len = lens[first + i];
    }
    union { char buf[CMSG_SPACE(sizeof(uint16_t))]; struct cmsghdr align; } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = (void *)to;
    msg.msg_namelen = tolen;
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = (uint16_t)segsize;
    memcpy(CMSG_DATA(c), &seg, sizeof seg);
    ssize_t r;
    do {
        r = sendmsg(fd, &msg, MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -1 : 0;
}
