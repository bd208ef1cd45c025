// The sandbox's fork → exec path. See CIsolation.h for why this is C.
//
// Process layout of one run:
//   supervisor (Swift, host namespaces)
//     └─ PID 1 of the new PID namespace: "init" below. Builds the mount tree, drops privileges,
//        loads seccomp, then forks the program and reaps everything until the program ends.
//          └─ the program (execve'd), and whatever it forks.
// When init exits the kernel kills every process left in the namespace, so nothing outlives a run.

#ifndef _GNU_SOURCE
#error "CIsolation must be built with _GNU_SOURCE"
#endif

#include "CIsolation.h"
#include "CSandboxInit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

const uint64_t CIS_CLONE_NEWNS = CLONE_NEWNS;
const uint64_t CIS_CLONE_NEWPID = CLONE_NEWPID;
const uint64_t CIS_CLONE_NEWNET = CLONE_NEWNET;
const uint64_t CIS_CLONE_NEWIPC = CLONE_NEWIPC;
const uint64_t CIS_CLONE_NEWUTS = CLONE_NEWUTS;
const uint64_t CIS_CLONE_NEWUSER = CLONE_NEWUSER;
const uint64_t CIS_CLONE_NEWCGROUP = CLONE_NEWCGROUP;
const unsigned long CIS_MS_RDONLY = MS_RDONLY;
const unsigned long CIS_MS_NOSUID = MS_NOSUID;
const unsigned long CIS_MS_NODEV = MS_NODEV;
const unsigned long CIS_MS_NOEXEC = MS_NOEXEC;
const unsigned long CIS_MS_BIND = MS_BIND;
const unsigned long CIS_MS_REC = MS_REC;

/// clone3's argument (struct clone_args of linux/sched.h, which older headers lack).
struct cis_clone_args {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};

// MARK: - Child side (async-signal-safe only)

/// Sends the failed step to the parent and exits. write() and _exit() are async-signal-safe.
__attribute__((noreturn)) static void cis_child_fail(int error_fd, cis_step step, int error_number, int index) {
    cis_child_error report = {.step = step, .error_number = error_number, .index = index};
    ssize_t ignored = write(error_fd, &report, sizeof report);
    (void)ignored;
    _exit(127);
}

/// Raw syscalls instead of glibc's setresuid/setresgid/setgroups: the glibc versions broadcast
/// to every thread of the process (the "setxid" protocol) using the parent's thread list, which
/// in a cloned child names threads that do not exist, and take internal locks.
static int cis_raw_setresuid(uid_t uid) { return (int)syscall(SYS_setresuid, uid, uid, uid); }
static int cis_raw_setresgid(gid_t gid) { return (int)syscall(SYS_setresgid, gid, gid, gid); }
static int cis_raw_setgroups_none(void) { return (int)syscall(SYS_setgroups, 0, NULL); }

static int cis_dup_onto(int from, int to) {
    if (from == to) {
        // dup2 would be a no-op and leave CLOEXEC set; clear it instead.
        int flags = fcntl(from, F_GETFD);
        return flags < 0 ? -1 : fcntl(from, F_SETFD, flags & ~FD_CLOEXEC);
    }
    return dup2(from, to) < 0 ? -1 : 0;
}

static int cis_run_fs_op(const cis_fs_op *op) {
    switch (op->kind) {
    case CIS_FS_MKDIR:
        if (mkdir(op->path, op->mode) != 0 && errno != EEXIST) return -1;
        return 0;
    case CIS_FS_MKFILE: {
        int fd = open(op->path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, op->mode);
        if (fd < 0) return -1;
        close(fd);
        return 0;
    }
    case CIS_FS_SYMLINK:
        return symlink(op->source, op->path);
    case CIS_FS_MOUNT:
        return mount(op->source, op->path, op->fstype, op->flags, op->data);
    case CIS_FS_BIND:
        if (mount(op->source, op->path, NULL, MS_BIND | MS_REC, NULL) != 0) return -1;
        if (op->flags == 0) return 0;
        return mount(NULL, op->path, NULL, MS_REMOUNT | MS_BIND | op->flags, NULL);
    case CIS_FS_CHOWN:
        return fchownat(AT_FDCWD, op->path, op->uid, op->gid, AT_SYMLINK_NOFOLLOW);
    case CIS_FS_UMOUNT_DETACH:
        return umount2(op->path, MNT_DETACH);
    case CIS_FS_REMOUNT:
        return mount(NULL, op->path, NULL, MS_REMOUNT | op->flags, op->data);
    }
    errno = EINVAL;
    return -1;
}

/// socket() and ioctl() are plain syscalls: safe here.
static int cis_loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    memcpy(request.ifr_name, "lo", 3);
    int rc = ioctl(fd, SIOCGIFFLAGS, &request);
    if (rc == 0) {
        request.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &request);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/// Where the child keeps init's image until its execveat: just above init's fixed descriptors.
#define CIS_CHILD_IMAGE_FD (CIS_INIT_STATUS_FD + 1)

_Static_assert(CIS_INIT_STEP_FORK_PROGRAM == CIS_STEP_FORK_PROGRAM, "init's step numbers match cis_step");
_Static_assert(CIS_INIT_STEP_SETSID == CIS_STEP_SETSID, "init's step numbers match cis_step");
_Static_assert(CIS_INIT_STEP_EXEC == CIS_STEP_EXEC, "init's step numbers match cis_step");
_Static_assert(CIS_INIT_STEP_ARGUMENTS == CIS_STEP_INIT_ARGUMENTS, "init's step numbers match cis_step");
_Static_assert(sizeof(cis_program_status) == 32, "init writes a 32-byte status record");

/// What the child needs besides the plan.
struct cis_child_context {
    const cis_spawn_plan *plan;
    int error_fd;
    int status_fd;
    int sync_fd;  ///< user-namespace mode: read end of the "maps written" pipe, else -1
    char *const *init_argv;
};

/// Builds the sandbox, then execs init (CSandboxInit) as its PID 1. Runs either in a vfork-style
/// child sharing the server's memory (CLONE_VM|CLONE_VFORK) or in a fork-like copy (user-namespace
/// mode); everything here is written for both: no writes to memory but this stack and errno.
__attribute__((noreturn)) static void cis_child_main(const struct cis_child_context *context) {
    const cis_spawn_plan *plan = context->plan;
    int error_fd = context->error_fd;
    int status_fd = context->status_fd;
    int sync_fd = context->sync_fd;
    // 1. Signals: the Swift runtime's crash handlers and the server's SIG_IGNs must not reach
    //    the program. sigaction and sigprocmask are async-signal-safe, and the child has its own
    //    handler table (no CLONE_SIGHAND).
    struct sigaction default_action;
    memset(&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    for (int signal = 1; signal < NSIG; signal++) {
        if (signal == SIGKILL || signal == SIGSTOP) continue;
        sigaction(signal, &default_action, NULL);  // EINVAL for glibc-reserved signals is fine
    }
    sigset_t empty;
    sigemptyset(&empty);
    if (sigprocmask(SIG_SETMASK, &empty, NULL) != 0) cis_child_fail(error_fd, CIS_STEP_SIGNALS, errno, -1);

    // 2. If the spawning thread dies, so does the sandbox (set again after the uid change, which
    //    clears it).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) cis_child_fail(error_fd, CIS_STEP_PDEATHSIG, errno, -1);

    // User-namespace mode: wait until the parent has written our uid/gid maps, then become the
    // namespace's root (an unmapped euid could create no file: EOVERFLOW).
    int in_user_namespace = sync_fd >= 0;
    if (in_user_namespace) {
        char go = 0;
        ssize_t n;
        do {
            n = read(sync_fd, &go, 1);
        } while (n < 0 && errno == EINTR);
        close(sync_fd);
        if (n != 1 || go != 'G') cis_child_fail(error_fd, CIS_STEP_USER_NAMESPACE, n < 0 ? errno : EPIPE, 0);
        if (cis_raw_setresgid(0) != 0) cis_child_fail(error_fd, CIS_STEP_USER_NAMESPACE, errno, 1);
        if (cis_raw_setresuid(0) != 0) cis_child_fail(error_fd, CIS_STEP_USER_NAMESPACE, errno, 2);
    }

    // 3. A cgroup namespace rooted at the job's own group: the child was born in it (the
    //    spawner thread's v1 groups, or CLONE_INTO_CGROUP on v2).
    if (unshare(CLONE_NEWCGROUP) != 0) cis_child_fail(error_fd, CIS_STEP_CGROUP_NS, errno, -1);

    // 5. Nothing we mount may propagate back to the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) cis_child_fail(error_fd, CIS_STEP_MOUNT_PRIVATE, errno, -1);
    if (mount("sandbox-root", plan->root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") != 0)
        cis_child_fail(error_fd, CIS_STEP_ROOT_TMPFS, errno, -1);
    for (size_t i = 0; i < plan->fs_op_count; i++) {
        if (cis_run_fs_op(&plan->fs_ops[i]) != 0) cis_child_fail(error_fd, CIS_STEP_FS_OP, errno, (int)i);
    }

    // 6. pivot_root onto the new tree and detach the old root entirely.
    if (chdir(plan->root) != 0) cis_child_fail(error_fd, CIS_STEP_PIVOT_ROOT, errno, 0);
    if (syscall(SYS_pivot_root, ".", ".") != 0) cis_child_fail(error_fd, CIS_STEP_PIVOT_ROOT, errno, 1);
    if (umount2(".", MNT_DETACH) != 0) cis_child_fail(error_fd, CIS_STEP_PIVOT_ROOT, errno, 2);
    if (chdir("/") != 0) cis_child_fail(error_fd, CIS_STEP_PIVOT_ROOT, errno, 3);
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
        cis_child_fail(error_fd, CIS_STEP_REMOUNT_ROOT, errno, -1);

    if (plan->hostname != NULL && sethostname(plan->hostname, strlen(plan->hostname)) != 0)
        cis_child_fail(error_fd, CIS_STEP_HOSTNAME, errno, -1);
    if (chdir(plan->work_dir) != 0) cis_child_fail(error_fd, CIS_STEP_CHDIR, errno, -1);

    // 7. stdio; the error and status pipes move to init's fixed descriptors; everything else is
    //    closed but init's image (CLOEXEC: gone at init's execve).
    if (cis_dup_onto(plan->stdin_fd, 0) != 0) cis_child_fail(error_fd, CIS_STEP_STDIO, errno, 0);
    if (cis_dup_onto(plan->stdout_fd, 1) != 0) cis_child_fail(error_fd, CIS_STEP_STDIO, errno, 1);
    if (cis_dup_onto(plan->stderr_fd, 2) != 0) cis_child_fail(error_fd, CIS_STEP_STDIO, errno, 2);
    // Copies above every fixed descriptor (init's two and the image's), so placing them cannot
    // clobber one still needed; then one close_range drops everything above.
    int moved_error = fcntl(error_fd, F_DUPFD_CLOEXEC, CIS_CHILD_IMAGE_FD + 1);
    if (moved_error < 0) cis_child_fail(error_fd, CIS_STEP_CLOSE_FDS, errno, 0);
    error_fd = moved_error;
    int moved_status = fcntl(status_fd, F_DUPFD_CLOEXEC, CIS_CHILD_IMAGE_FD + 1);
    if (moved_status < 0) cis_child_fail(error_fd, CIS_STEP_CLOSE_FDS, errno, 1);
    int moved_image = fcntl(plan->init_fd, F_DUPFD_CLOEXEC, CIS_CHILD_IMAGE_FD + 1);
    if (moved_image < 0) cis_child_fail(error_fd, CIS_STEP_CLOSE_FDS, errno, 2);
    // dup2 clears close-on-exec: init inherits its two pipes. The image stays CLOEXEC (gone at
    // init's execve).
    if (dup2(moved_error, CIS_INIT_ERROR_FD) < 0) cis_child_fail(error_fd, CIS_STEP_CLOSE_FDS, errno, 4);
    error_fd = CIS_INIT_ERROR_FD;
    if (dup2(moved_status, CIS_INIT_STATUS_FD) < 0) cis_child_fail(error_fd, CIS_STEP_CLOSE_FDS, errno, 5);
    if (dup3(moved_image, CIS_CHILD_IMAGE_FD, O_CLOEXEC) < 0) cis_child_fail(error_fd, CIS_STEP_CLOSE_FDS, errno, 6);
    if (syscall(SYS_close_range, CIS_CHILD_IMAGE_FD + 1, ~0U, 0U) != 0) cis_child_fail(error_fd, CIS_STEP_CLOSE_FDS, errno, 3);
    const int image = CIS_CHILD_IMAGE_FD;

    // 8. rlimits (prlimit64 is a plain syscall; they are per process, not per address space).
    for (size_t i = 0; i < plan->rlimit_count; i++) {
        struct rlimit64 limit = {.rlim_cur = plan->rlimits[i].soft, .rlim_max = plan->rlimits[i].hard};
        if (syscall(SYS_prlimit64, 0, plan->rlimits[i].resource, &limit, NULL) != 0)
            cis_child_fail(error_fd, CIS_STEP_RLIMIT, errno, (int)i);
    }

    // 9. Drop everything: the bounding set (needs CAP_SETPCAP, so before the uid change), groups,
    //    gid, uid (which clears the permitted and effective sets), then no_new_privs.
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
            cis_child_fail(error_fd, CIS_STEP_CAPABILITIES, errno, cap);
    }
    // In a user namespace setgroups is denied (and the spawner thread already has none).
    if (!in_user_namespace && cis_raw_setgroups_none() != 0) cis_child_fail(error_fd, CIS_STEP_SETGROUPS, errno, -1);
    if (cis_raw_setresgid(plan->gid) != 0) cis_child_fail(error_fd, CIS_STEP_SETGID, errno, -1);
    if (cis_raw_setresuid(plan->uid) != 0) cis_child_fail(error_fd, CIS_STEP_SETUID, errno, -1);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) cis_child_fail(error_fd, CIS_STEP_PDEATHSIG, errno, -1);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) cis_child_fail(error_fd, CIS_STEP_NO_NEW_PRIVS, errno, -1);

    // 10. seccomp: one syscall with the program compiled in the parent. init runs under it too.
    if (plan->seccomp_filter != NULL) {
        struct sock_fprog program = {.len = plan->seccomp_length, .filter = (struct sock_filter *)plan->seccomp_filter};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0)
            cis_child_fail(error_fd, CIS_STEP_SECCOMP, errno, -1);
    }

    // 11. Become init: a small program with an address space of its own (in vfork mode this also
    //     hands the server's memory back to the server and wakes the spawning thread). init
    //     starts the program and reaps (CSandboxInit/init.c).
    syscall(SYS_execveat, image, "", context->init_argv, plan->envp, AT_EMPTY_PATH);
    cis_child_fail(error_fd, CIS_STEP_INIT_EXEC, errno, -1);
}

#if defined(__x86_64__) || defined(__aarch64__)
#define CIS_HAVE_VFORK_CLONE3 1
/// clone3 for a child that shares our memory (CLONE_VM): the child starts on `args->stack`, where
/// it calls `function(argument)`, and exits if that ever returns. raw syscall() cannot do this
/// (the child would return into a frame on a stack that is not its own). Returns the pid or
/// -errno in the parent.
static long cis_clone3_run(struct cis_clone_args *args, void (*function)(const void *), const void *argument) {
#if defined(__x86_64__)
    register long rax __asm__("rax") = SYS_clone3;
    register void *rdi __asm__("rdi") = args;
    register long rsi __asm__("rsi") = (long)sizeof *args;
    register void *r12 __asm__("r12") = (void *)function;
    register const void *r13 __asm__("r13") = argument;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xor %%ebp, %%ebp\n\t"
                     "mov %%r13, %%rdi\n\t"
                     "call *%%r12\n\t"
                     "mov $127, %%edi\n\t"
                     "mov %[exit_group], %%eax\n\t"
                     "syscall\n\t"
                     "ud2\n"
                     "1:"
                     : "+r"(rax)
                     : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13), [exit_group] "i"(SYS_exit_group)
                     : "rcx", "r11", "memory");
    return rax;
#else
    register long x8 __asm__("x8") = SYS_clone3;
    register void *x0 __asm__("x0") = args;
    register long x1 __asm__("x1") = (long)sizeof *args;
    register void *x9 __asm__("x9") = (void *)function;
    register const void *x10 __asm__("x10") = argument;
    __asm__ volatile("svc #0\n\t"
                     "cbnz x0, 1f\n\t"
                     "mov x29, xzr\n\t"
                     "mov x30, xzr\n\t"
                     "mov x0, x10\n\t"
                     "blr x9\n\t"
                     "mov x0, #127\n\t"
                     "mov x8, %[exit_group]\n\t"
                     "svc #0\n\t"
                     "brk #0\n"
                     "1:"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x9), "r"(x10), [exit_group] "i"(SYS_exit_group)
                     : "memory");
    return (long)x0;
#endif
}

static void cis_vfork_child_entry(const void *context) { cis_child_main(context); }

/// The child's uid change marks the shared address space undumpable (the kernel does so on every
/// uid change), which is what we want while a child that is already the slot uid still maps the
/// server's memory. Once no such child is left, the server's own dumpability (core dumps of the
/// server) comes back. Counting the children in flight under a lock means no restore can land
/// while another slot's child is in that window.
static pthread_mutex_t cis_vfork_lock = PTHREAD_MUTEX_INITIALIZER;
static int cis_vfork_in_flight = 0;

static int cis_server_dumpable = -1;  ///< PR_GET_DUMPABLE before the first spawn

static void cis_vfork_window_enter(void) {
    pthread_mutex_lock(&cis_vfork_lock);
    if (cis_vfork_in_flight++ == 0 && cis_server_dumpable < 0) cis_server_dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    pthread_mutex_unlock(&cis_vfork_lock);
}

static void cis_vfork_window_leave(void) {
    pthread_mutex_lock(&cis_vfork_lock);
    // The child's uid change has cleared the flag on every successful spawn: setting it again
    // (idempotent) costs one call, asking first would cost two.
    if (--cis_vfork_in_flight == 0 && cis_server_dumpable == 1) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    pthread_mutex_unlock(&cis_vfork_lock);
}
#else
#define CIS_HAVE_VFORK_CLONE3 0
#endif

int cis_process_dumpable(void) { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }

// MARK: - Parent side



/// Writes /proc/PID/{setgroups,uid_map,gid_map} for a child in a new user namespace.
static int cis_write_id_map_file(pid_t pid, const char *name, const char *text) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    size_t length = strlen(text);
    ssize_t written = write(fd, text, length);
    int error = written == (ssize_t)length ? 0 : (written < 0 ? errno : EIO);
    close(fd);
    return error;
}

static int cis_write_id_maps(pid_t pid, const char *uid_map, const char *gid_map) {
    if (uid_map == NULL || gid_map == NULL) return EINVAL;
    int error = cis_write_id_map_file(pid, "setgroups", "deny");
    if (error == 0) error = cis_write_id_map_file(pid, "uid_map", uid_map);
    if (error == 0) error = cis_write_id_map_file(pid, "gid_map", gid_map);
    return error;
}

int cis_spawn(const cis_spawn_plan *plan, cis_spawn_result *result) {
    memset(result, 0, sizeof *result);
    result->pid = -1;
    result->pidfd = -1;
    result->status_fd = -1;
    result->error.index = -1;
    if (plan->root == NULL || plan->work_dir == NULL || plan->path == NULL || plan->argv == NULL || plan->envp == NULL ||
        plan->init_fd < 0) {
        result->error = (cis_child_error){CIS_STEP_CLONE, EINVAL, -1};
        return -1;
    }

    // init's argv: a name, the program's path, then the program's argv (see CSandboxInit.h).
    size_t argument_count = 0;
    while (plan->argv[argument_count] != NULL) argument_count++;
    char **init_argv = malloc((argument_count + 3) * sizeof *init_argv);
    if (init_argv == NULL) {
        result->error = (cis_child_error){CIS_STEP_CLONE, ENOMEM, 3};
        return -1;
    }
    init_argv[0] = (char *)"sandbox-init";
    init_argv[1] = (char *)plan->path;
    for (size_t i = 0; i <= argument_count; i++) init_argv[i + 2] = plan->argv[i];

    // The error and status pipes, and in user-namespace mode a pipe on which the child waits for
    // its uid/gid maps. A failure names the pipe by its index (0, 1, 2) in the error record.
    int error_pipe[2] = {-1, -1};
    int status_pipe[2] = {-1, -1};
    int sync_pipe[2] = {-1, -1};
    int user_namespace = (plan->namespaces & CLONE_NEWUSER) != 0;
    int *const pipes[] = {error_pipe, status_pipe, sync_pipe};
    for (int index = 0; index < (user_namespace ? 3 : 2); index++) {
        if (pipe2(pipes[index], O_CLOEXEC) != 0) {
            int saved = errno;
            for (int made = 0; made < index; made++) {
                close(pipes[made][0]);
                close(pipes[made][1]);
            }
            free(init_argv);
            result->error = (cis_child_error){CIS_STEP_CLONE, saved, index};
            return -1;
        }
    }

    // Block every signal around clone so no handler of the parent (Swift's crash handlers, the
    // server's) can run in the child before it resets them.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);

    int pidfd = -1;
    struct cis_clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = plan->namespaces | CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    if (plan->cgroup_dir_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)plan->cgroup_dir_fd;
    }
    struct cis_child_context context = {
        .plan = plan, .error_fd = error_pipe[1], .status_fd = status_pipe[1], .sync_fd = sync_pipe[0], .init_argv = init_argv};
    pid_t pid;
    int clone_errno = 0;
#if CIS_HAVE_VFORK_CLONE3
    // The child borrows our memory until it execs init (CLONE_VM|CLONE_VFORK, as posix_spawn
    // does): no copy of the server's page tables, no copy-on-write faults on either side, no
    // teardown of a copy when the run ends. Safe against the OOM killer: it never picks a vfork
    // child (in_vfork() in oom_badness), and after the execve init has an address space of its
    // own. Not in user-namespace mode: the child waits there for maps that this thread, asleep
    // until the execve, would have to write.
    char stack[64 * 1024] __attribute__((aligned(16)));
    if (!user_namespace) {
        args.flags |= CLONE_VM | CLONE_VFORK;
        args.stack = (uint64_t)(uintptr_t)stack;
        args.stack_size = sizeof stack;
        cis_vfork_window_enter();
        long rc = cis_clone3_run(&args, cis_vfork_child_entry, &context);
        cis_vfork_window_leave();
        pid = rc < 0 ? -1 : (pid_t)rc;
        if (rc < 0) clone_errno = (int)-rc;
    } else
#endif
    {
        // Without CLONE_VM and without a stack, clone3 behaves like fork: the child continues
        // here on a copy-on-write copy of this thread's stack, and its copy of the server's
        // memory is dropped when it execs init.
        pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
        // Every kernel this runs on has clone3 (close_range, which the child needs, is newer),
        // but a seccomp policy above the server can still answer ENOSYS for it, as systemd's
        // RestrictNamespaces= does: BPF cannot read clone3's flags. clone(2) does the same job
        // when no cgroup fd is needed (v1); CLONE_INTO_CGROUP is clone3's alone.
        if (pid < 0 && errno == ENOSYS && plan->cgroup_dir_fd < 0) {
            pidfd = -1;
            pid = (pid_t)syscall(SYS_clone, (unsigned long)(plan->namespaces | SIGCHLD), 0UL, NULL, NULL, 0UL);
        }
        if (pid == 0) {
            close(error_pipe[0]);
            close(status_pipe[0]);
            if (sync_pipe[1] >= 0) close(sync_pipe[1]);
            cis_child_main(&context);
        }
        if (pid < 0) clone_errno = errno;
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    close(error_pipe[1]);
    close(status_pipe[1]);
    free(init_argv);

    if (pid < 0) {
        close(error_pipe[0]);
        close(status_pipe[0]);
        if (user_namespace) {
            close(sync_pipe[0]);
            close(sync_pipe[1]);
        }
        result->error = (cis_child_error){CIS_STEP_CLONE, clone_errno, -1};
        return -1;
    }
    if (pidfd < 0) pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (user_namespace) {
        close(sync_pipe[0]);
        int map_error = cis_write_id_maps(pid, plan->uid_map, plan->gid_map);
        // 'G' lets the child go on; closing without it makes the child report the failure.
        if (map_error == 0 && write(sync_pipe[1], "G", 1) != 1) map_error = errno;
        close(sync_pipe[1]);
        (void)map_error;  // a failure surfaces as the child's CIS_STEP_USER_NAMESPACE report
    }

    // EOF on the error pipe means the program has been exec'd; a record means a step failed
    // (in the child, in init, or the program's execve).
    cis_child_error report;
    size_t received = 0;
    while (received < sizeof report) {
        ssize_t n = read(error_pipe[0], (char *)&report + received, sizeof report - received);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        received += (size_t)n;
    }
    close(error_pipe[0]);

    result->pid = pid;
    result->pidfd = pidfd;
    result->status_fd = status_pipe[0];
    if (received == sizeof report) {
        result->error = report;
        // init may still be waiting for a program that failed to exec: end the namespace.
        kill(pid, SIGKILL);
        int status;
        while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {}
        if (pidfd >= 0) close(pidfd);
        close(status_pipe[0]);
        result->pid = -1;
        result->pidfd = -1;
        result->status_fd = -1;
        return -1;
    }
    return 0;
}

int cis_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int cis_seccomp_available(void) { return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 ? -1 : 0; }

int cis_deny_clone3_on_this_thread(void) {
    // No architecture check: this only has to stop the native clone3 of one thread.
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {.len = sizeof filter / sizeof *filter, .filter = filter};
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0 ? 0 : -1;
}

int cis_pidfd_send_signal(int pidfd, int signal) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
}

int cis_wait(pid_t pid, int *status, int64_t *user_usec, int64_t *system_usec, int64_t *max_rss_kib) {
    struct rusage usage;
    pid_t reaped;
    do {
        reaped = wait4(pid, status, __WALL, &usage);
    } while (reaped < 0 && errno == EINTR);
    if (reaped < 0) return -1;
    *user_usec = (int64_t)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec;
    *system_usec = (int64_t)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec;
    *max_rss_kib = usage.ru_maxrss;
    return 0;
}

int cis_open_beneath(int dirfd, const char *path, int flags, uint32_t mode) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int cis_mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data) {
    return mount(source, target, fstype, flags, data);
}

int cis_umount_detach(const char *target) { return umount2(target, MNT_DETACH); }

// MARK: - Spawner thread

struct cis_spawner {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pid_t tid;
    int started_error;
    int started;
    // One request at a time (a slot runs one job at a time).
    enum { CIS_IDLE, CIS_SPAWN, CIS_JOIN, CIS_EXIT } request;
    int done;
    const cis_spawn_plan *plan;
    cis_spawn_result *result;
    const int *tasks_fds;
    size_t tasks_count;
    int return_value;
    int netns_fd;
};

static int cis_join_tasks(const int *fds, size_t count) {
    for (size_t i = 0; i < count; i++) {
        if (pwrite(fds[i], "0", 1, 0) != 1) return errno;
    }
    return 0;
}

static void *cis_spawner_main(void *context) {
    cis_spawner *spawner = context;
    int error = 0;
    // No supplementary groups for anything this thread clones (a raw syscall changes only this
    // thread). Sandboxes drop them again, except in a user namespace where setgroups is denied.
    if (syscall(SYS_setgroups, 0, NULL) != 0) error = errno;
    if (error == 0 && spawner->netns_fd >= 0 && setns(spawner->netns_fd, CLONE_NEWNET) != 0) error = errno;
    if (error == 0) error = cis_join_tasks(spawner->tasks_fds, spawner->tasks_count);
    pthread_mutex_lock(&spawner->lock);
    spawner->tid = (pid_t)syscall(SYS_gettid);
    spawner->started_error = error;
    spawner->started = 1;
    pthread_cond_broadcast(&spawner->changed);
    if (error != 0) {
        pthread_mutex_unlock(&spawner->lock);
        return NULL;
    }
    for (;;) {
        while (spawner->request == CIS_IDLE) pthread_cond_wait(&spawner->changed, &spawner->lock);
        int request = spawner->request;
        pthread_mutex_unlock(&spawner->lock);
        int value = 0;
        if (request == CIS_SPAWN) {
            // A run with another network namespace (the host's): switch this thread for the
            // clone and back, so the child needs no privilege over that namespace (it may be in
            // a user namespace by then).
            cis_spawn_plan plan = *spawner->plan;
            int switched = 0;
            if (plan.netns_fd >= 0) {
                if (setns(plan.netns_fd, CLONE_NEWNET) != 0) {
                    memset(spawner->result, 0, sizeof *spawner->result);
                    spawner->result->pid = spawner->result->pidfd = spawner->result->status_fd = -1;
                    spawner->result->error = (cis_child_error){CIS_STEP_LOOPBACK, errno, 0};
                    value = -1;
                    goto reply;
                }
                switched = 1;
                plan.netns_fd = -1;
            }
            value = cis_spawn(&plan, spawner->result);
            if (switched && spawner->netns_fd >= 0) setns(spawner->netns_fd, CLONE_NEWNET);
        }
        else if (request == CIS_JOIN) value = cis_join_tasks(spawner->tasks_fds, spawner->tasks_count);
    reply:
        pthread_mutex_lock(&spawner->lock);
        spawner->return_value = value;
        spawner->request = CIS_IDLE;
        spawner->done = 1;
        pthread_cond_broadcast(&spawner->changed);
        if (request == CIS_EXIT) break;
    }
    pthread_mutex_unlock(&spawner->lock);
    return NULL;
}

int cis_spawner_create(const int *tasks_fds, size_t count, int netns_fd, cis_spawner **out) {
    *out = NULL;
    cis_spawner *spawner = calloc(1, sizeof *spawner);
    if (spawner == NULL) return ENOMEM;
    pthread_mutex_init(&spawner->lock, NULL);
    pthread_cond_init(&spawner->changed, NULL);
    spawner->tasks_fds = tasks_fds;
    spawner->tasks_count = count;
    spawner->netns_fd = netns_fd;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setstacksize(&attributes, 256 * 1024);
    int rc = pthread_create(&spawner->thread, &attributes, cis_spawner_main, spawner);
    pthread_attr_destroy(&attributes);
    if (rc != 0) {
        free(spawner);
        return rc;
    }
    pthread_mutex_lock(&spawner->lock);
    while (!spawner->started) pthread_cond_wait(&spawner->changed, &spawner->lock);
    int error = spawner->started_error;
    spawner->tasks_fds = NULL;
    spawner->tasks_count = 0;
    pthread_mutex_unlock(&spawner->lock);
    if (error != 0) {
        pthread_join(spawner->thread, NULL);
        free(spawner);
        return error;
    }
    *out = spawner;
    return 0;
}

static int cis_spawner_request(cis_spawner *spawner, int request) {
    pthread_mutex_lock(&spawner->lock);
    spawner->done = 0;
    spawner->request = request;
    pthread_cond_broadcast(&spawner->changed);
    while (!spawner->done) pthread_cond_wait(&spawner->changed, &spawner->lock);
    int value = spawner->return_value;
    pthread_mutex_unlock(&spawner->lock);
    return value;
}

int cis_spawner_spawn(cis_spawner *spawner, const cis_spawn_plan *plan, cis_spawn_result *result) {
    spawner->plan = plan;
    spawner->result = result;
    return cis_spawner_request(spawner, CIS_SPAWN);
}

int cis_spawner_join(cis_spawner *spawner, const int *tasks_fds, size_t count) {
    spawner->tasks_fds = tasks_fds;
    spawner->tasks_count = count;
    int value = cis_spawner_request(spawner, CIS_JOIN);
    spawner->tasks_fds = NULL;
    spawner->tasks_count = 0;
    return value;
}

pid_t cis_spawner_tid(const cis_spawner *spawner) { return spawner->tid; }

void cis_spawner_destroy(cis_spawner *spawner) {
    cis_spawner_request(spawner, CIS_EXIT);
    pthread_join(spawner->thread, NULL);
    pthread_mutex_destroy(&spawner->lock);
    pthread_cond_destroy(&spawner->changed);
    free(spawner);
}

// MARK: - Network namespaces

static void *cis_netns_main(void *context) {
    int *fd = context;
    // unshare(CLONE_NEWNET) applies to the calling thread only: the rest of the process keeps
    // the host's network.
    if (unshare(CLONE_NEWNET) != 0 || cis_loopback_up() != 0) {
        *fd = -errno;
        return NULL;
    }
    int opened = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    *fd = opened >= 0 ? opened : -errno;
    return NULL;
}

int cis_create_netns(void) {
    int fd = -EINVAL;
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, cis_netns_main, &fd);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    pthread_join(thread, NULL);
    if (fd < 0) {
        errno = -fd;
        return -1;
    }
    return fd;
}
