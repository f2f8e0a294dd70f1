#ifndef SQUTUN_CSHIM_H
#define SQUTUN_CSHIM_H
// Thin wrappers for Linux calls that Swift's Glibc module does not expose
// (they sit behind _GNU_SOURCE or in headers Glibc does not import).
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

/// prctl(PR_SET_PDEATHSIG, sig).
int squtun_set_pdeathsig(int sig);

#endif
