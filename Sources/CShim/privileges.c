// User and group ids, capabilities, no_new_privs, the thread name.
#define _GNU_SOURCE
#include "cshim.h"
#include <errno.h>
#include <sys/prctl.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <linux/capability.h>

int squtun_setresuid(uid_t r, uid_t e, uid_t s) { return setresuid(r, e, s); }
int squtun_setresgid(gid_t r, gid_t e, gid_t s) { return setresgid(r, e, s); }
int squtun_getresuid(uid_t *r, uid_t *e, uid_t *s) { return getresuid(r, e, s); }
int squtun_getresgid(gid_t *r, gid_t *e, gid_t *s) { return getresgid(r, e, s); }
int squtun_set_no_new_privs(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }
int squtun_get_no_new_privs(void) { return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); }
int squtun_set_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

int squtun_capget(uint64_t *effective, uint64_t *permitted, uint64_t *inheritable) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) != 0) return -1;
    *effective = (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
    *permitted = (uint64_t)data[0].permitted | ((uint64_t)data[1].permitted << 32);
    *inheritable = (uint64_t)data[0].inheritable | ((uint64_t)data[1].inheritable << 32);
    return 0;
}

int squtun_ambient_caps_any(void) {
    for (int cap = 0; cap < 64; cap++) {
        int r = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
        if (r == 1) return 1;
        if (r < 0) {
            if (errno == EINVAL) break; // past the kernel's last capability
            return -1;
        }
    }
    return 0;
}
