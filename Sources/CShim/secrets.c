// Secrets in memory: wiping, the kernel's random bytes, keeping keys out of core dumps.
#define _GNU_SOURCE
#include "cshim.h"
#include <errno.h>
#include <sys/random.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/mman.h>

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

int squtun_no_core_dumps(void) {
    // The hard limit too: nothing this process (or a compromised worker)
    // does later can raise it again.
    struct rlimit none = { 0, 0 };
    if (setrlimit(RLIMIT_CORE, &none) != 0) return -1;
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int squtun_madvise_dontdump(void *addr, size_t len) { return madvise(addr, len, MADV_DONTDUMP); }
