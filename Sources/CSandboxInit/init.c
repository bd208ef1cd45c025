// The sandbox's PID 1 (see CSandboxInit.h). By the time it runs, the sandbox is complete: mounts,
// identity, rlimits, no_new_privs and seccomp were set up before the execve that started it. It
// starts the program, forwards the supervisor's termination signals to it, reaps every process
// of the namespace, and reports the program's wait status and rusage. When it exits, the kernel
// kills whatever is left in the PID namespace.
//
// Rules for this file, because its section is copied out and run on its own:
// - everything init runs is in section "cis_init": helpers are always_inline, the program's
//   entry is the only other function and carries the section attribute;
// - no libc calls (raw syscalls), no global or static data, no string literals, no switch (jump
//   tables live in .rodata), no struct copies or zeroing loops the compiler could turn into
//   memcpy/memset calls (the target is built with -ffreestanding -fno-builtin too).

#include "CSandboxInit.h"

#include <stdint.h>

#if defined(__x86_64__) || defined(__aarch64__)

#include <asm/unistd.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/wait.h>

#define CIS_INIT __attribute__((section("cis_init"), used))
#define CIS_INLINE static inline __attribute__((always_inline))

// Signal numbers and flags (the same on x86_64 and aarch64); glibc's headers would drag in
// declarations this file must not call.
#define INIT_SIGHUP 1
#define INIT_SIGINT 2
#define INIT_SIGQUIT 3
#define INIT_SIGUSR1 10
#define INIT_SIGUSR2 12
#define INIT_SIGTERM 15
#define INIT_SIGCHLD 17
#define INIT_SIG_BLOCK 0
#define INIT_F_SETFD 2
#define INIT_FD_CLOEXEC 1
#define INIT_O_CLOEXEC 02000000
#define INIT_EINTR 4
#define INIT_EINVAL 22

CIS_INLINE long init_syscall6(long number, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
    register long rax __asm__("rax") = number;
    register long rdi __asm__("rdi") = a;
    register long rsi __asm__("rsi") = b;
    register long rdx __asm__("rdx") = c;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "+r"(rax)
                     : "r"(rdi), "r"(rsi), "r"(rdx), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return rax;
#else
    register long x8 __asm__("x8") = number;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
#endif
}

#define SYSCALL(n, a, b, c, d, e, f) init_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/// Runs `function(argument)` in a new process made by clone(flags) on `stack_top`; the child
/// never returns here (it exits with the function's result). Returns the pid or -errno.
CIS_INLINE long init_clone_run(unsigned long flags, void *stack_top, int (*function)(void *), void *argument) {
#if defined(__x86_64__)
    register long rax __asm__("rax") = __NR_clone;
    register unsigned long rdi __asm__("rdi") = flags;
    register void *rsi __asm__("rsi") = stack_top;
    register long rdx __asm__("rdx") = 0;
    register long r10 __asm__("r10") = 0;
    register long r8 __asm__("r8") = 0;
    register void *r12 __asm__("r12") = (void *)function;
    register void *r13 __asm__("r13") = argument;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xor %%ebp, %%ebp\n\t"
                     "mov %%r13, %%rdi\n\t"
                     "call *%%r12\n\t"
                     "mov %%eax, %%edi\n\t"
                     "mov %[exit_group], %%eax\n\t"
                     "syscall\n\t"
                     "ud2\n"
                     "1:"
                     : "+r"(rax)
                     : "r"(rdi), "r"(rsi), "r"(rdx), "r"(r10), "r"(r8), "r"(r12), "r"(r13), [exit_group] "i"(__NR_exit_group)
                     : "rcx", "r11", "memory");
    return rax;
#else
    register long x8 __asm__("x8") = __NR_clone;
    register unsigned long x0 __asm__("x0") = flags;
    register void *x1 __asm__("x1") = stack_top;
    register long x2 __asm__("x2") = 0;
    register long x3 __asm__("x3") = 0;
    register long x4 __asm__("x4") = 0;
    register void *x9 __asm__("x9") = (void *)function;
    register void *x10 __asm__("x10") = argument;
    __asm__ volatile("svc #0\n\t"
                     "cbnz x0, 1f\n\t"
                     "mov x29, xzr\n\t"
                     "mov x30, xzr\n\t"
                     "mov x0, x10\n\t"
                     "blr x9\n\t"
                     "mov x8, %[exit_group]\n\t"
                     "svc #0\n\t"
                     "brk #0\n"
                     "1:"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x9), "r"(x10), [exit_group] "i"(__NR_exit_group)
                     : "memory");
    return (long)x0;
#endif
}

/// Reports a failed step on the error pipe and exits.
__attribute__((noreturn)) CIS_INLINE void init_fail(int step, long error_number) {
    volatile int32_t record[3];
    record[0] = step;
    record[1] = (int32_t)error_number;
    record[2] = -1;
    SYSCALL(__NR_write, CIS_INIT_ERROR_FD, record, sizeof record, 0, 0, 0);
    for (;;) SYSCALL(__NR_exit_group, 127, 0, 0, 0, 0, 0);
}

struct init_program {
    const char *path;
    char **argv;
    char **envp;
};

/// The program's process between clone and execve (it borrows init's memory: CLONE_VM|CLONE_VFORK).
static CIS_INIT __attribute__((noinline)) int init_program_main(void *context) {
    const struct init_program *program = context;
    // Not the program's business; the error pipe stays until the execve closes it.
    SYSCALL(__NR_close, CIS_INIT_STATUS_FD, 0, 0, 0, 0, 0);
    // A new session: no controlling terminal to push input into (TIOCSTI).
    long rc = SYSCALL(__NR_setsid, 0, 0, 0, 0, 0, 0);
    if (rc < 0) init_fail(CIS_INIT_STEP_SETSID, -rc);
    rc = SYSCALL(__NR_execve, program->path, program->argv, program->envp, 0, 0, 0);
    init_fail(CIS_INIT_STEP_EXEC, -rc);
}

/// The signals init watches: children ending, and those the supervisor forwards to the program.
#define INIT_BIT(signal) (1UL << ((signal) - 1))
#define INIT_WATCHED                                                                                            \
    (INIT_BIT(INIT_SIGCHLD) | INIT_BIT(INIT_SIGTERM) | INIT_BIT(INIT_SIGINT) | INIT_BIT(INIT_SIGHUP) |          \
     INIT_BIT(INIT_SIGQUIT) | INIT_BIT(INIT_SIGUSR1) | INIT_BIT(INIT_SIGUSR2))

/// The kernel's struct rusage on 64-bit Linux: two timevals, then 14 longs (ru_maxrss first).
struct init_rusage {
    long user_seconds, user_microseconds, system_seconds, system_microseconds;
    long max_rss_kib;
    long rest[13];
};

/// Fills the cis_program_status record from the program's wait status and rusage. Through
/// pointers: a struct copy could become a memcpy call.
CIS_INLINE void init_record(volatile int64_t *report, int status, const struct init_rusage *usage) {
    report[0] = (int64_t)(uint32_t)status;
    report[1] = usage->user_seconds * 1000000 + usage->user_microseconds;
    report[2] = usage->system_seconds * 1000000 + usage->system_microseconds;
    report[3] = usage->max_rss_kib;
}

__attribute__((visibility("hidden"), noreturn)) CIS_INIT void cis_init_main(long *initial_stack) {
    // Undumpable before anything else exists in the namespace: the program (same uid) must not
    // open /proc/1/mem or ptrace init (seccomp denies ptrace too).
    SYSCALL(__NR_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0, 0);
    long argc = initial_stack[0];
    char **argv = (char **)(initial_stack + 1);
    char **envp = argv + argc + 1;
    if (argc < 3) init_fail(CIS_INIT_STEP_ARGUMENTS, INIT_EINVAL);
    // Both pipes close for good when the program execs (error) or stay init's alone (status).
    SYSCALL(__NR_fcntl, CIS_INIT_ERROR_FD, INIT_F_SETFD, INIT_FD_CLOEXEC, 0, 0, 0);
    SYSCALL(__NR_fcntl, CIS_INIT_STATUS_FD, INIT_F_SETFD, INIT_FD_CLOEXEC, 0, 0, 0);

    struct init_program program;
    program.path = argv[1];
    program.argv = argv + 2;
    program.envp = envp;
    // CLONE_VM|CLONE_VFORK as posix_spawn does: init sleeps until the program's execve, which
    // then runs on this borrowed stack.
    char stack[16384] __attribute__((aligned(16)));
    long pid = init_clone_run(CLONE_VM | CLONE_VFORK | INIT_SIGCHLD, stack + sizeof stack, init_program_main, &program);
    if (pid < 0) init_fail(CIS_INIT_STEP_FORK_PROGRAM, -pid);
    // The error pipe's last writer was the program; its execve closed it (or it reported).
    SYSCALL(__NR_close, CIS_INIT_ERROR_FD, 0, 0, 0, 0, 0);

    // Blocking the watched signals only now keeps the program's mask clean. PID 1 of a namespace
    // gets signals from inside it only if it handles them, and a blocked one is not handled, so
    // the job cannot poke init; the supervisor's signals (from outside) arrive on the signalfd.
    unsigned long watched = INIT_WATCHED;
    SYSCALL(__NR_rt_sigprocmask, INIT_SIG_BLOCK, &watched, 0, sizeof watched, 0, 0);
    long signals = SYSCALL(__NR_signalfd4, -1, &watched, sizeof watched, INIT_O_CLOEXEC, 0, 0);

    volatile int64_t report[4];  // cis_program_status: {wait_status, reserved}, user, system, max_rss
    report[0] = 0;
    report[1] = 0;
    report[2] = 0;
    report[3] = 0;
    for (;;) {
        // Reap everything that has ended (orphans too); a SIGCHLD raised before the block above
        // was discarded, so always look before sleeping.
        int done = 0;
        for (;;) {
            int status = 0;
            struct init_rusage usage;
            long reaped = SYSCALL(__NR_wait4, -1, &status, WNOHANG | __WALL, &usage, 0, 0);
            if (reaped <= 0) break;
            if (reaped == pid) {
                init_record(report, status, &usage);
                done = 1;
                break;
            }
        }
        if (done) break;
        if (signals < 0) {
            // No signalfd: a blocking wait for the program alone.
            int status = 0;
            struct init_rusage usage;
            if (SYSCALL(__NR_wait4, pid, &status, __WALL, &usage, 0, 0) == pid) {
                init_record(report, status, &usage);
                break;
            }
            continue;
        }
        uint32_t info[32];  // struct signalfd_siginfo (128 bytes); ssi_signo first
        long n = SYSCALL(__NR_read, signals, info, sizeof info, 0, 0, 0);
        if (n == (long)sizeof info && info[0] != INIT_SIGCHLD) SYSCALL(__NR_kill, pid, info[0], 0, 0, 0, 0);
    }
    SYSCALL(__NR_write, CIS_INIT_STATUS_FD, report, sizeof report, 0, 0, 0);
    // Exiting as PID 1 makes the kernel SIGKILL every process left in the namespace.
    for (;;) SYSCALL(__NR_exit_group, 0, 0, 0, 0, 0, 0);
}

// The ELF entry point: the kernel leaves argc, argv, envp on the stack; hand them to C with the
// stack aligned as the ABI wants at a call.
#if defined(__x86_64__)
__asm__(".pushsection cis_init,\"ax\",@progbits\n"
        ".globl cis_init_entry\n"
        ".hidden cis_init_entry\n"
        "cis_init_entry:\n"
        "    xor %ebp, %ebp\n"
        "    mov %rsp, %rdi\n"
        "    and $-16, %rsp\n"
        "    call cis_init_main\n"
        "    ud2\n"
        ".popsection\n");
#else
__asm__(".pushsection cis_init,\"ax\",@progbits\n"
        ".globl cis_init_entry\n"
        ".hidden cis_init_entry\n"
        "cis_init_entry:\n"
        "    mov x29, xzr\n"
        "    mov x30, xzr\n"
        "    mov x0, sp\n"
        "    and sp, x0, #-16\n"
        "    bl cis_init_main\n"
        "    brk #0\n"
        ".popsection\n");
#endif

extern const unsigned char __start_cis_init[] __attribute__((visibility("hidden")));
extern const unsigned char __stop_cis_init[] __attribute__((visibility("hidden")));
extern const unsigned char cis_init_entry[] __attribute__((visibility("hidden")));

int cis_init_code(const unsigned char **code, size_t *length, size_t *entry) {
    *code = __start_cis_init;
    *length = (size_t)(__stop_cis_init - __start_cis_init);
    *entry = (size_t)(cis_init_entry - __start_cis_init);
    return 0;
}

#else

int cis_init_code(const unsigned char **code, size_t *length, size_t *entry) {
    *code = 0;
    *length = 0;
    *entry = 0;
    return -1;
}

#endif
