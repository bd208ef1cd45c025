/* LD_PRELOAD shim for demonstrating that the cgroup v2 suite catches a broken product: when
 * SANDBOX_TEST_BREAK=write:NAME[,NAME...] is set, every open()/openat() for writing of a file whose
 * base name is one of the NAMEs (e.g. cgroup.kill, memory.max, pids.max) opens /dev/null instead,
 * so the program's write "succeeds" and does nothing -- as if the write had been left out of the
 * code. The suite (scripts/qemu/cgroup-v2-suite.py) builds it and preloads it into sandbox-server
 * only. Reads and all other files are untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static int broken(const char *path, int flags) {
    if (!path || !(flags & (O_WRONLY | O_RDWR))) return 0;
    const char *spec = getenv("SANDBOX_TEST_BREAK");
    if (!spec || strncmp(spec, "write:", 6) != 0) return 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t blen = strlen(base);
    for (const char *p = spec + 6; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == blen && strncmp(p, base, len) == 0) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

#define MODE_ARG(flags, mode)                                  \
    mode_t mode = 0;                                           \
    if ((flags) & (O_CREAT | __O_TMPFILE)) {                   \
        va_list ap;                                            \
        va_start(ap, flags);                                   \
        mode = (mode_t)va_arg(ap, int);                        \
        va_end(ap);                                            \
    }

#define REDIRECT(path, flags)                                  \
    if (broken(path, flags)) {                                 \
        path = "/dev/null";                                    \
        flags &= ~(O_CREAT | O_EXCL | O_DIRECTORY | __O_TMPFILE); \
    }

int open(const char *path, int flags, ...) {
    static int (*real)(const char *, int, ...);
    if (!real) real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    MODE_ARG(flags, mode)
    REDIRECT(path, flags)
    return real(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    static int (*real)(const char *, int, ...);
    if (!real) real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open64");
    MODE_ARG(flags, mode)
    REDIRECT(path, flags)
    return real(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    static int (*real)(int, const char *, int, ...);
    if (!real) real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
    MODE_ARG(flags, mode)
    if (broken(path, flags)) return open("/dev/null", flags & ~(O_CREAT | O_EXCL | O_DIRECTORY | __O_TMPFILE));
    return real(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    static int (*real)(int, const char *, int, ...);
    if (!real) real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat64");
    MODE_ARG(flags, mode)
    if (broken(path, flags)) return open("/dev/null", flags & ~(O_CREAT | O_EXCL | O_DIRECTORY | __O_TMPFILE));
    return real(dirfd, path, flags, mode);
}
