#ifndef SQUTUN_CSHIM_H
#define SQUTUN_CSHIM_H
// Thin wrappers for Linux calls that Swift's Glibc module does not expose
// (they sit behind _GNU_SOURCE or in headers Glibc does not import). One C
// file per concern: secrets.c, privileges.c, process.c, descriptors.c,
// signals.c, udp_batch.c, checksum.c, epoll.c.
#include <stddef.h>
#include <sys/types.h>

/// getrandom(2) filling the whole buffer; returns 0 or -1 with errno set.
int squtun_getrandom(void *buf, size_t len);

/// Zeroes memory in a way the compiler may not elide (explicit_bzero).
void squtun_wipe(void *buf, size_t len);

/// setresuid/setresgid(2).
int squtun_setresuid(uid_t r, uid_t e, uid_t s);
int squtun_setresgid(gid_t r, gid_t e, gid_t s);
int squtun_getresuid(uid_t *r, uid_t *e, uid_t *s);
int squtun_getresgid(gid_t *r, gid_t *e, gid_t *s);

/// prctl(PR_SET_NO_NEW_PRIVS, 1) and its read-back.
int squtun_set_no_new_privs(void);
int squtun_get_no_new_privs(void);

/// prctl(PR_SET_NAME, name): the thread's name (comm) as ps, top and pgrep
/// show it; at most 15 bytes are kept.
int squtun_set_name(const char *name);

/// No core dump of this process, ever: RLIMIT_CORE 0 (soft and hard) and
/// prctl(PR_SET_DUMPABLE, 0). 0 or -1 with errno set.
int squtun_no_core_dumps(void);

/// madvise(addr, len, MADV_DONTDUMP): the pages stay out of core dumps.
int squtun_madvise_dontdump(void *addr, size_t len);

/// closefrom(3): closes every descriptor >= lowfd (close_range(2), or
/// /proc/self/fd on kernels before 5.9).
void squtun_close_from(int lowfd);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+): the child closes
/// every descriptor >= lowfd. `actions` is a posix_spawn_file_actions_t *
/// (untyped: <spawn.h> here would make this module claim its types).
int squtun_spawn_closefrom(void *actions, int lowfd);

/// posix_spawn of `path` with `actions` (a posix_spawn_file_actions_t *)
/// into a clean signal state: an empty signal mask and every signal's
/// disposition back to the default (the caller may ignore SIGPIPE or block
/// signals; a child must not inherit that). With `own_group`, the child
/// leads a new process group, so that it and everything it starts can be
/// killed together. Returns 0 or an errno value (exec failures included).
int squtun_spawn_clean(pid_t *pid, const char *path, char *const argv[], char *const envp[],
                       const void *actions, int own_group);

// ---- Descriptors, Unix sockets, capabilities, signals -------------------
#include <stdint.h>

/// accept4(2) (a _GNU_SOURCE symbol).
int squtun_accept4(int fd, int flags);

/// pipe2(2) (a _GNU_SOURCE symbol).
int squtun_pipe2(int fds[2], int flags);

/// SO_PEERCRED of a connected Unix socket (struct ucred is _GNU_SOURCE):
/// stores the peer's uid and pid; returns 0 or -1 with errno set.
int squtun_peer_credentials(int fd, uid_t *uid, pid_t *pid);

/// capget(2) with _LINUX_CAPABILITY_VERSION_3 for this process: the 64-bit
/// effective, permitted and inheritable sets. 0 or -1 with errno set.
int squtun_capget(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable);

/// 1 if any ambient capability is raised, 0 if none, -1 with errno set.
int squtun_ambient_caps_any(void);

/// Most file descriptors one channel message may carry. The receive
/// control buffer has room for exactly this many; more set MSG_CTRUNC and
/// the kernel discards the surplus.
#define SQUTUN_MAX_FDS 8

/// sendmsg(2) of one datagram with `nfds` (0...SQUTUN_MAX_FDS) descriptors
/// as SCM_RIGHTS, with MSG_NOSIGNAL (EPIPE instead of SIGPIPE), and with
/// MSG_DONTWAIT if `dontwait` (EAGAIN instead of blocking when the socket
/// buffer is full). Returns the byte count or -1 with errno set (EINTR is
/// the caller's to retry).
ssize_t squtun_send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds, int dontwait);

/// recvmsg(2) of one datagram with MSG_CMSG_CLOEXEC. Received descriptors
/// (from every SCM_RIGHTS block) go to fds[0..<maxfds]; any beyond maxfds
/// are closed at once. *nfds gets the TOTAL number that arrived, so the
/// caller can tell "too many". *msg_flags gets msg_flags (MSG_TRUNC,
/// MSG_CTRUNC). Returns the byte count or -1 with errno set.
ssize_t squtun_recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds, int *msg_flags);

/// Installs one async-signal-safe handler (SA_RESTART, all signals blocked
/// while it runs) for each of `signals` (each 1...63). The handler only
/// records the signal and, if wake_fd >= 0, writes one byte to it (make it
/// a non-blocking pipe that the poll loop watches, so a signal arriving
/// just before poll() still wakes it), then empties the signal mask (a
/// blocked mask is inherited across exec). 0 or -1 with errno set.
int squtun_signals_install(const int *signals, int count, int wake_fd);

/// Returns the signals recorded since the last call, as a bitmask
/// (bit n = signal n), and clears them. Safe to call from normal code.
uint64_t squtun_take_signals(void);

// ---- Batched UDP I/O (recvmmsg/sendmmsg are _GNU_SOURCE; struct mmsghdr
// is built on the C stack per call, so nothing is allocated). Addresses
// are untyped here: including <sys/socket.h> would make this module claim
// the socket types Swift's Glibc module already provides. ----------------

/// Most datagrams one batch call moves.
#define SQUTUN_BATCH_MAX 64

/// sendmmsg(2), MSG_DONTWAIT, of `n` (<= SQUTUN_BATCH_MAX) datagrams to one
/// address: datagram i is lens[i] bytes at base + i*slot. Returns how many
/// were sent, or -1 with errno set. When fewer than `n` went out, errno says
/// why the next one did not (EAGAIN/ENOBUFS: the socket buffer filled up),
/// so a caller can count what was sent and still know the error.
int squtun_send_batch(int fd, const void *base, size_t slot, unsigned n, const unsigned *lens,
                      const void *to, unsigned tolen);

/// recvmmsg(2), MSG_DONTWAIT, of up to `n` (<= SQUTUN_BATCH_MAX) datagrams:
/// datagram i lands at base + i*slot (at most `slot` bytes; longer ones are
/// cut), its length in lens[i], its sender in addrs[i] (an array of
/// struct sockaddr_storage) and addrlens[i]. On a socket with UDP_GRO on,
/// gso[i] is the segment size when datagram i is several coalesced
/// datagrams of that size (the last may be shorter), else 0.
/// Returns how many arrived, or -1 with errno set (EAGAIN: none waiting).
int squtun_recv_batch(int fd, void *base, size_t slot, unsigned n, unsigned *lens,
                      void *addrs, unsigned *addrlens, unsigned *gso);

/// One sendmsg(2), MSG_DONTWAIT, with UDP_SEGMENT = segsize: datagrams
/// first..first+n-1 (every one segsize bytes but the last, which may be
/// shorter) leave as one GSO super-datagram that the kernel splits.
/// Returns 0 when sent, or -1 with errno set.
int squtun_send_gso(int fd, const void *base, size_t slot, unsigned first, unsigned n,
                    const unsigned *lens, const void *to, unsigned tolen, unsigned segsize);

/// setsockopt(SOL_UDP, UDP_GRO, on): 0 or -1 with errno set.
int squtun_set_udp_gro(int fd, int on);

// ---- The Internet checksum (RFC 1071) for tun offloads. -----------------

/// Adds `len` bytes at `data` to a ones'-complement accumulator, summed as
/// native-order 16-bit words (RFC 1071 §2(B): the folded result is then in
/// native order too, ready to be stored as is). `data` must start at an
/// even offset of the checksummed region; an odd last byte is padded with
/// zero. Fold the result with squtun_csum_fold.
uint64_t squtun_csum_add(uint64_t acc, const void *data, size_t len);

/// Folds an accumulator to 16 bits (not complemented).
uint16_t squtun_csum_fold(uint64_t acc);

/// Takes a shared open-file-description lock on the whole of `fd`'s file;
/// returns 1 if another open file description already held one, 0 if not,
/// -1 with errno set on failure.
int squtun_share_lock(int fd);

/// pidfd_open(2) (no glibc wrapper before 2.36): an fd that polls readable
/// once the child `pid` has ended. -1 with errno set (ENOSYS before 5.3).
int squtun_pidfd_open(pid_t pid);

// ---- epoll(7): integers in and out, no struct epoll_event (its layout
// differs between architectures). ----------------------------------------

/// Most events one squtun_epoll_wait returns.
#define SQUTUN_EPOLL_MAX 64

/// epoll_create1(EPOLL_CLOEXEC).
int squtun_epoll_create(void);

/// epoll_ctl(2): op 1 add, 2 delete, 3 modify; `token` comes back with
/// every event of `fd`. 0 or -1 with errno set.
int squtun_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token);

/// epoll_wait(2) of up to `max` (1...SQUTUN_EPOLL_MAX) events: event i's
/// token in tokens[i], its mask in events[i]. Returns how many, 0 on
/// timeout, or -1 with errno set (EINTR is the caller's to retry).
int squtun_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms);

#endif
