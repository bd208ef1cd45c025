// CIsolation: everything between clone() and execve(), plus the seccomp filter builder.
//
// The sandbox child runs in a copy of a multithreaded Swift process. Only the calling thread
// exists there, so any lock another thread held (malloc, the Swift runtime, stdio) stays locked
// forever: the child may only make async-signal-safe calls. That is why this path is C, why
// every string and table it reads is prepared by the parent before clone(), and why it uses raw
// syscalls where glibc wrappers would take locks (setresuid's setxid broadcast, for one).
#ifndef CISOLATION_H
#define CISOLATION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if !__has_feature(nullability)
#define _Nullable
#define _Nonnull
#endif

#ifdef __cplusplus
extern "C" {
#endif

/// One step of the filesystem plan, executed in order by the sandbox's PID 1 before pivot_root.
/// Paths are absolute host paths of the new root's mount point (prepared by the parent), so the
/// child never formats strings.
typedef enum cis_fs_op_kind {
    CIS_FS_MKDIR = 1,         ///< mkdir(path, mode); EEXIST tolerated.
    CIS_FS_MKFILE = 2,        ///< create an empty regular file (a bind target for a file).
    CIS_FS_SYMLINK = 3,       ///< symlink(source, path).
    CIS_FS_MOUNT = 4,         ///< mount(source, path, fstype, flags, data).
    CIS_FS_BIND = 5,          ///< bind source on path (MS_REC), then remount with flags if nonzero.
    CIS_FS_CHOWN = 6,         ///< lchown-equivalent (fchownat AT_SYMLINK_NOFOLLOW) to uid/gid.
    CIS_FS_UMOUNT_DETACH = 7, ///< umount2(path, MNT_DETACH).
    CIS_FS_REMOUNT = 8,       ///< mount(NULL, path, NULL, MS_REMOUNT|flags, data).
} cis_fs_op_kind;

/// A filesystem step. Unused pointers are NULL.
typedef struct cis_fs_op {
    cis_fs_op_kind kind;
    const char *_Nullable path;
    const char *_Nullable source;
    const char *_Nullable fstype;
    const char *_Nullable data;
    unsigned long flags;
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
} cis_fs_op;

/// A resource limit applied with prlimit64 in the child.
typedef struct cis_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
} cis_rlimit;

/// Everything the child needs, prepared by the parent. cgroup v1 membership and the network
/// namespace come from the spawning thread (see cis_spawner), cgroup v2 from `cgroup_dir_fd`. root, work_dir, path, argv and envp
/// are required (nullable only so Swift can zero-initialise the struct). Pointers stay valid in the child because
/// it runs in a copy-on-write snapshot of the parent's memory.
typedef struct cis_spawn_plan {
    /// CLONE_NEW* flags for the clone itself (the cgroup namespace is unshared after joining).
    uint64_t namespaces;
    /// Host directory on which the child mounts its private tmpfs root (empty, shared by all).
    const char *_Nullable root;
    const cis_fs_op *_Nullable fs_ops;
    size_t fs_op_count;
    /// Working directory inside the sandbox (after pivot_root).
    const char *_Nullable work_dir;
    const char *_Nullable hostname;
    /// Program path inside the sandbox, argv and envp (NULL-terminated arrays).
    const char *_Nullable path;
    char *const _Nullable *_Nullable argv;
    char *const _Nullable *_Nullable envp;
    /// Descriptors for the program's stdin/stdout/stderr (parent's numbers).
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    /// cgroup v2: directory fd for clone3(CLONE_INTO_CGROUP); -1 when not used.
    int cgroup_dir_fd;
    /// Identity of the program. uid/gid are host ids unless a user namespace maps them.
    uint32_t uid;
    uint32_t gid;
    const cis_rlimit *_Nullable rlimits;
    size_t rlimit_count;
    /// Precompiled seccomp BPF (struct sock_filter array) and its instruction count; NULL for none.
    const void *_Nullable seccomp_filter;
    uint16_t seccomp_length;
    /// A network namespace for the sandbox instead of the spawning thread's, or -1. Only a
    /// spawner honours it (cis_spawner_spawn): it switches its own thread for the clone, so the
    /// child needs no privilege over that namespace.
    int netns_fd;
    /// User-namespace mode (namespaces include CLONE_NEWUSER): the parent writes these maps for
    /// the child (e.g. "0 60000 1\n": root inside is the slot uid outside) and sets setgroups to
    /// "deny" before the child continues; `uid`/`gid` are then ids inside the namespace.
    const char *_Nullable uid_map;
    const char *_Nullable gid_map;
    /// The sandbox's init program (cis_init_image_fd), executed as PID 1 once the sandbox is set up.
    int init_fd;
} cis_spawn_plan;

/// Steps the child can fail at, reported over the error pipe.
typedef enum cis_step {
    CIS_STEP_NONE = 0,
    CIS_STEP_SIGNALS = 1,
    CIS_STEP_PDEATHSIG = 2,
    // 3 was joining the cgroup from the child; runs are now cloned into it (or joined by the parent).
    CIS_STEP_CGROUP_NS = 4,
    CIS_STEP_MOUNT_PRIVATE = 5,
    CIS_STEP_ROOT_TMPFS = 6,
    CIS_STEP_FS_OP = 7,
    CIS_STEP_PIVOT_ROOT = 8,
    CIS_STEP_REMOUNT_ROOT = 9,
    CIS_STEP_HOSTNAME = 10,
    CIS_STEP_LOOPBACK = 11,
    CIS_STEP_CHDIR = 12,
    CIS_STEP_RLIMIT = 13,
    CIS_STEP_STDIO = 14,
    CIS_STEP_CLOSE_FDS = 15,
    CIS_STEP_CAPABILITIES = 16,
    CIS_STEP_SETGROUPS = 17,
    CIS_STEP_SETGID = 18,
    CIS_STEP_SETUID = 19,
    CIS_STEP_NO_NEW_PRIVS = 20,
    CIS_STEP_SECCOMP = 21,
    CIS_STEP_FORK_PROGRAM = 22,
    CIS_STEP_SETSID = 23,
    CIS_STEP_EXEC = 24,
    CIS_STEP_CLONE = 25,
    CIS_STEP_USER_NAMESPACE = 26,
    CIS_STEP_INIT_EXEC = 27,
    CIS_STEP_INIT_ARGUMENTS = 28,
} cis_step;

/// What the child sends over the error pipe when a step fails.
typedef struct cis_child_error {
    int32_t step;
    int32_t error_number;
    int32_t index;  ///< fs op / rlimit index for steps that have one, else -1.
} cis_child_error;

/// What the sandbox's PID 1 sends on the status pipe when the program has ended.
typedef struct cis_program_status {
    int32_t wait_status;      ///< as from wait4 for the program process
    int32_t reserved;
    int64_t user_usec;        ///< rusage of the program and its reaped descendants
    int64_t system_usec;
    int64_t max_rss_kib;
} cis_program_status;

/// The result of cis_spawn in the parent.
typedef struct cis_spawn_result {
    pid_t pid;             ///< host pid of the sandbox's PID 1, or -1
    int pidfd;             ///< pidfd of that process, or -1
    int status_fd;         ///< read end of the status pipe (CLOEXEC), or -1
    cis_child_error error; ///< step NONE on success
} cis_spawn_result;

/// Creates the executable image of the sandbox's init (see CSandboxInit.h) in a sealed memfd and
/// returns a read-only O_CLOEXEC descriptor of it, or -1 with errno (ENOSYS: no init for this
/// architecture).
int cis_init_image_fd(void);

/// Clones the sandbox and waits until the program has been exec'd (or a step failed).
/// Returns 0 when the program runs; -1 with `result->error` set otherwise (the child, if any, has
/// been reaped). Thread-safe: several threads may spawn at once.
int cis_spawn(const cis_spawn_plan *_Nonnull plan, cis_spawn_result *_Nonnull result);

/// A dedicated thread that performs spawns. It lives permanently in a slot's cgroup v1 groups
/// (v1 membership is per thread, through `tasks`) and network namespace, so every child it clones
/// is born there: no process is migrated between cgroups per run (a migration waits for an RCU
/// grace period), and no network namespace is created or destroyed per run.
typedef struct cis_spawner cis_spawner;

/// Starts a spawner thread; it writes "0" to each of `tasks_fds` (joining those v1 groups) and
/// enters `netns_fd` (if ≥ 0) before serving requests. Returns 0, or an errno value.
int cis_spawner_create(const int *_Nullable tasks_fds, size_t count, int netns_fd, cis_spawner *_Nullable *_Nonnull out);

/// PR_GET_DUMPABLE of this process (prctl is variadic, so Swift cannot call it): a vfork spawn
/// must leave it as it found it.
int cis_process_dumpable(void);

/// Runs cis_spawn on the spawner thread and waits for it. Returns what cis_spawn returned.
int cis_spawner_spawn(cis_spawner *_Nonnull spawner, const cis_spawn_plan *_Nonnull plan, cis_spawn_result *_Nonnull result);

/// Moves the spawner thread into other v1 groups (write "0" to each `tasks` fd). Returns 0 or errno.
int cis_spawner_join(cis_spawner *_Nonnull spawner, const int *_Nullable tasks_fds, size_t count);

/// The kernel thread id of the spawner thread.
pid_t cis_spawner_tid(const cis_spawner *_Nonnull spawner);

/// Stops and joins the thread, and frees the spawner.
void cis_spawner_destroy(cis_spawner *_Nonnull spawner);

/// Creates a network namespace whose only interface, loopback, is up. Returns an fd that keeps it
/// alive (O_CLOEXEC), or -1 with errno.
int cis_create_netns(void);

/// Builds the seccomp deny-list for the native architecture into BPF.
/// On success returns 0 and sets `*program` (malloc'd array of struct sock_filter) and `*length`;
/// the caller frees it with free(). On failure returns a negative errno.
int cis_build_seccomp_filter(void *_Nullable *_Nonnull program, uint16_t *_Nonnull length);

/// 0 when seccomp filters can be installed (PR_GET_SECCOMP works), else -1 with errno.
int cis_seccomp_available(void);

/// For tests: makes clone3 fail with ENOSYS on the calling thread and every thread it creates
/// from now on, as a seccomp policy above the server can, so the spawn path's clone(2) fallback
/// runs. A filter cannot be removed: call it on a thread of its own. Returns 0 or -1 with errno.
int cis_deny_clone3_on_this_thread(void);

/// pipe2(fds, O_CLOEXEC); returns 0 or -1 with errno. (Glibc's module map hides pipe2.)
int cis_pipe_cloexec(int fds[_Nonnull 2]);

/// pidfd_send_signal wrapper; returns 0 or -1 with errno.
int cis_pidfd_send_signal(int pidfd, int signal);

/// Reaps the child `pid`, returning its wait status and resource usage (microseconds, KiB).
/// Returns 0, or -1 with errno.
int cis_wait(pid_t pid, int *_Nonnull status, int64_t *_Nonnull user_usec, int64_t *_Nonnull system_usec,
             int64_t *_Nonnull max_rss_kib);

/// openat2(dirfd, path, O_RDONLY|O_NOFOLLOW|O_CLOEXEC, RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
/// RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV) plus extra open flags: open a path below a directory
/// without ever following a link. Returns an fd or -1 with errno.
int cis_open_beneath(int dirfd, const char *_Nonnull path, int flags, uint32_t mode);

/// Host-side mount helpers for the per-slot box (called by the supervisor, not in a child).
int cis_mount(const char *_Nullable source, const char *_Nonnull target, const char *_Nullable fstype,
              unsigned long flags, const char *_Nullable data);
int cis_umount_detach(const char *_Nonnull target);

/// Constants Swift cannot import from macros.
extern const uint64_t CIS_CLONE_NEWNS;
extern const uint64_t CIS_CLONE_NEWPID;
extern const uint64_t CIS_CLONE_NEWNET;
extern const uint64_t CIS_CLONE_NEWIPC;
extern const uint64_t CIS_CLONE_NEWUTS;
extern const uint64_t CIS_CLONE_NEWUSER;
extern const uint64_t CIS_CLONE_NEWCGROUP;
extern const unsigned long CIS_MS_RDONLY;
extern const unsigned long CIS_MS_NOSUID;
extern const unsigned long CIS_MS_NODEV;
extern const unsigned long CIS_MS_NOEXEC;
extern const unsigned long CIS_MS_BIND;
extern const unsigned long CIS_MS_REC;

#ifdef __cplusplus
}
#endif
#endif
