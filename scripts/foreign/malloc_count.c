/*
 * An allocation counter the program under test does not see: preloaded with LD_PRELOAD, it
 * counts every call of malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc
 * and pvalloc in the whole process (all threads), then hands each call on to the C library.
 * On SIGUSR2 it appends one line, "<monotonic ns> <allocations>", to the file named by
 * MALLOC_COUNT_OUT (write(2) only, so safe in a signal handler). Two signals a known number of
 * messages apart give allocations per message in steady state, whatever the program's own
 * counter says. Used by scripts/foreign/alloc-check.sh; built there with
 *   gcc -O2 -shared -fPIC -o malloc_count.so malloc_count.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_ulong calls;

/* The C library's own functions, found once; they are the real allocator. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

void *malloc(size_t n) { atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return __libc_malloc(n); }
void *calloc(size_t k, size_t n) { atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return __libc_calloc(k, n); }
void *realloc(void *p, size_t n) { atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return __libc_memalign(a, n); }
void *valloc(size_t n) { atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return __libc_valloc(n); }
void *pvalloc(size_t n) { atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed); return __libc_pvalloc(n); }
int posix_memalign(void **out, size_t a, size_t n) {
    atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    void *p = __libc_memalign(a, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

/* Writes the decimal digits of v into buf, returns their count. */
static int digits(char *buf, unsigned long v) {
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    return n;
}

static void on_usr2(int sig) {
    (void)sig;
    unsigned long n = atomic_load_explicit(&calls, memory_order_relaxed);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const char *path = getenv("MALLOC_COUNT_OUT");
    if (!path) return;
    char line[64];
    int len = digits(line, (unsigned long)ts.tv_sec * 1000000000UL + (unsigned long)ts.tv_nsec);
    line[len++] = ' ';
    len += digits(line + len, n);
    line[len++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, line, (size_t)len);
        (void)w;
        close(fd);
    }
}

__attribute__((constructor)) static void install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
