/* LD_PRELOAD allocation counter for Tests/e2e/t_alloc.sh: counts every
   malloc/calloc/realloc/memalign call and, on SIGUSR2, writes
   "allocations: N" to stderr (write(2) only, allowed by squtun's seccomp
   filter), or to the file ALLOCCOUNT_LOG names, opened at start (a
   server's worker, whose stderr is /dev/null: t_server_isolation.sh).
   Built by the test with cc; not part of squtun. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile long count;
static int out = 2;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

#define COUNT() __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED)
void *malloc(size_t n) { COUNT(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { COUNT(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { COUNT(); return __libc_realloc(p, n); }
void *aligned_alloc(size_t a, size_t n) { COUNT(); return __libc_memalign(a, n); }
void *memalign(size_t a, size_t n) { COUNT(); return __libc_memalign(a, n); }
int posix_memalign(void **r, size_t a, size_t n) {
    COUNT();
    *r = __libc_memalign(a, n);
    return *r ? 0 : 12;
}

static void report(int sig) {
    (void)sig;
    char buf[64], digits[24];
    long n = __atomic_load_n(&count, __ATOMIC_RELAXED);
    int i = 0, len = 0;
    do { digits[i++] = (char)('0' + n % 10); n /= 10; } while (n > 0);
    memcpy(buf, "allocations: ", 13); len = 13;
    while (i > 0) buf[len++] = digits[--i];
    buf[len++] = '\n';
    (void)!write(out, buf, (size_t)len);
}

__attribute__((constructor)) static void install(void) {
    const char *log = getenv("ALLOCCOUNT_LOG");
    if (log != NULL) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) out = fd;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = report;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
