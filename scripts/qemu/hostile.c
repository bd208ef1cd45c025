/* Test programs for the cgroup v2 suite (scripts/qemu/cgroup-v2-suite.py), one binary, the first
 * argument picks the behaviour. Compiled inside the QEMU guest with gcc; runs inside the sandbox.
 *
 *   membomb [MAX_MIB]       allocate and touch 1 MiB chunks until killed; if not killed after
 *                           MAX_MIB (default 512, well below the guest's memory, so a missing
 *                           limit fails fast instead of waking the global OOM killer), print
 *                           "membomb: not stopped after MAX_MIB MiB" and exit 97
 *   alloc MIB               allocate and touch MIB MiB, print "allocated MIB", exit 0
 *   alloc-child MIB         a child allocates+touches MIB MiB and exits; the parent then sleeps
 *                           0.5 s with a small footprint and exits 0 (cgroup peak > process peak)
 *   selfkill                raise SIGKILL (a SIGKILL that is not an OOM kill)
 *   forkbomb MAX            fork up to MAX children that pause; print "forked N errno NAME"
 *                           when fork fails (or "forked N no-error"), kill the children, exit 0
 *   spin SECONDS            burn SECONDS of CPU time, exit 0
 *   spin-child SECONDS      SIGCHLD ignored (child auto-reaped, its CPU time never reaches the
 *                           parent's rusage); a child burns SECONDS of CPU; the parent sleeps
 *                           until the child is gone; exit 0
 *   loop                    burn CPU forever
 *   daemon MARKER DELAY TAG double fork + setsid; the grandchild ignores SIGTERM/SIGHUP/SIGINT,
 *                           sleeps DELAY s, writes MARKER, then sleeps 300 s; the parent exits 0
 *   daemon-then-sleep MARKER DELAY TAG   as daemon, then the parent sleeps forever
 * TAG is only there so the process can be found in /proc by its command line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void spin(double seconds) {
    volatile unsigned long x = 0;
    double start = cpu_seconds();
    while (cpu_seconds() - start < seconds)
        for (int i = 0; i < 100000; i++) x += i;
}

static void sleep_seconds(double s) {
    struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void touch_alloc(size_t mib) {
    for (size_t i = 0; i < mib; i++) {
        char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); exit(99); }
        memset(p, (int)(i & 0xff) | 1, 1 << 20);
    }
}

static void daemonise(const char *marker, double delay) {
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(98); }
    if (pid == 0) {
        setsid();
        pid_t g = fork();
        if (g < 0) _exit(98);
        if (g > 0) _exit(0);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGINT, SIG_IGN);
        close(0); close(1); close(2);
        sleep_seconds(delay);
        int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { (void)!write(fd, "survived\n", 9); close(fd); }
        sleep_seconds(300);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: hostile MODE ...\n"); return 2; }
    const char *mode = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(mode, "membomb")) {
        int max = argc > 2 ? atoi(argv[2]) : 512;
        for (int i = 0; i < max; i++) touch_alloc(1);
        printf("membomb: not stopped after %d MiB\n", max);
        return 97;
    } else if (!strcmp(mode, "alloc") && argc > 2) {
        touch_alloc((size_t)atoi(argv[2]));
        printf("allocated %s\n", argv[2]);
        return 0;
    } else if (!strcmp(mode, "alloc-child") && argc > 2) {
        pid_t pid = fork();
        if (pid == 0) { touch_alloc((size_t)atoi(argv[2])); _exit(0); }
        int st;
        waitpid(pid, &st, 0);
        sleep_seconds(0.5);
        printf("child allocated %s status %d\n", argv[2], st);
        return 0;
    } else if (!strcmp(mode, "selfkill")) {
        raise(SIGKILL);
        return 1;
    } else if (!strcmp(mode, "forkbomb") && argc > 2) {
        int max = atoi(argv[2]), n = 0, err = 0;
        pid_t kids[4096];
        for (; n < max && n < 4096; n++) {
            pid_t p = fork();
            if (p == 0) { pause(); _exit(0); }
            if (p < 0) { err = errno; break; }
            kids[n] = p;
        }
        if (err) printf("forked %d errno %s\n", n, err == EAGAIN ? "EAGAIN" : strerror(err));
        else printf("forked %d no-error\n", n);
        for (int i = 0; i < n; i++) kill(kids[i], SIGKILL);
        for (int i = 0; i < n; i++) waitpid(kids[i], NULL, 0);
        return 0;
    } else if (!strcmp(mode, "spin") && argc > 2) {
        spin(atof(argv[2]));
        return 0;
    } else if (!strcmp(mode, "spin-child") && argc > 2) {
        signal(SIGCHLD, SIG_IGN);
        pid_t pid = fork();
        if (pid == 0) { spin(atof(argv[2])); _exit(0); }
        while (kill(pid, 0) == 0) sleep_seconds(0.05);
        printf("child done\n");
        return 0;
    } else if (!strcmp(mode, "loop")) {
        for (;;) spin(1000);
    } else if ((!strcmp(mode, "daemon") || !strcmp(mode, "daemon-then-sleep")) && argc > 4) {
        daemonise(argv[2], atof(argv[3]));
        printf("daemonised\n");
        if (!strcmp(mode, "daemon-then-sleep")) for (;;) pause();
        return 0;
    }
    fprintf(stderr, "hostile: bad arguments\n");
    return 2;
}
