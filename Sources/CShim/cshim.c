#define _GNU_SOURCE
#include "cshim.h"
#include <errno.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/prctl.h>
#include <string.h>

void squtun_wipe(void *buf, size_t len) { explicit_bzero(buf, len); }

int squtun_getrandom(void *buf, size_t len) {
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int squtun_setresuid(uid_t r, uid_t e, uid_t s) { return setresuid(r, e, s); }
int squtun_setresgid(gid_t r, gid_t e, gid_t s) { return setresgid(r, e, s); }
int squtun_getresuid(uid_t *r, uid_t *e, uid_t *s) { return getresuid(r, e, s); }
int squtun_getresgid(gid_t *r, gid_t *e, gid_t *s) { return getresgid(r, e, s); }
int squtun_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }
int squtun_get_no_new_privs(void) { return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); }
int squtun_set_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }
