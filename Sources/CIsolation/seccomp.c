// The seccomp deny-list, compiled to BPF once in the parent with libseccomp (which allocates, so
// it can never run in the child). The child loads the finished program with one syscall.
//
// Default action: allow. The list closes what a job has no business doing and what would let it
// reach the kernel's riskier surfaces or other jobs: tracing, mounting, namespaces, keyrings,
// BPF, perf, module loading, clock and host settings. Other architectures' syscall ABIs (i386,
// x32) kill the process: a filter written for x86_64 numbers means nothing to them.

#ifndef _GNU_SOURCE
#error "CIsolation must be built with _GNU_SOURCE"
#endif

#include "CIsolation.h"

#include <errno.h>
#include <linux/filter.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/// Denied with EPERM: the operation exists but is not permitted here.
static const char *const cis_denied_eperm[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "bpf", "perf_event_open", "userfaultfd", "fanotify_init",
    "kexec_load", "kexec_file_load", "reboot", "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "vhangup",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    "iopl", "ioperm", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "personality", "uselib", "ustat", "sysfs", "_sysctl",
    "nfsservctl", "vm86", "vm86old", "process_madvise",
};

/// Denied with ENOSYS: libraries probe these and fall back cleanly when they "do not exist".
static const char *const cis_denied_enosys[] = {
    "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    // clone3's flags live in memory that BPF cannot read; glibc falls back to clone(2).
    "clone3",
};

static int cis_add_rules(scmp_filter_ctx ctx, const char *const *names, size_t count, uint32_t action) {
    for (size_t i = 0; i < count; i++) {
        int number = seccomp_syscall_resolve_name(names[i]);
        if (number == __NR_SCMP_ERROR) continue;  // not a syscall on this architecture
        int rc = seccomp_rule_add(ctx, action, number, 0);
        if (rc < 0 && rc != -EEXIST) return rc;
    }
    return 0;
}

int cis_build_seccomp_filter(void **program, uint16_t *length) {
    *program = NULL;
    *length = 0;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == NULL) return -ENOMEM;
    int rc = 0;
    // The child sets no_new_privs itself, before loading.
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0) goto out;
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0) goto out;
    // A binary search over syscall numbers instead of a linear list of ~70 comparisons. Besides
    // the per-syscall cost, this matters once per run: attaching a filter makes the kernel
    // emulate it for every syscall number (the seccomp action cache, built with interrupts off)
    // and that emulation was a third of the spawn path's CPU with the linear list. libseccomp
    // before 2.5 lacks the attribute; the linear filter is just slower there.
    (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if ((rc = cis_add_rules(ctx, cis_denied_eperm, sizeof cis_denied_eperm / sizeof *cis_denied_eperm,
                            SCMP_ACT_ERRNO(EPERM))) < 0)
        goto out;
    if ((rc = cis_add_rules(ctx, cis_denied_enosys, sizeof cis_denied_enosys / sizeof *cis_denied_enosys,
                            SCMP_ACT_ERRNO(ENOSYS))) < 0)
        goto out;

    // clone(2) with any namespace flag: one masked-equality rule per flag on argument 0 (flags
    // is the first argument of clone on x86_64).
    const uint64_t namespace_flags[] = {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
                                        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};
    for (size_t i = 0; i < sizeof namespace_flags / sizeof *namespace_flags; i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, namespace_flags[i], namespace_flags[i]));
        if (rc < 0) goto out;
    }

    // libseccomp 2.5 exports only to a file descriptor: use an anonymous memory file.
    int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if ((rc = seccomp_export_bpf(ctx, fd)) < 0) {
        close(fd);
        goto out;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        close(fd);
        rc = -EINVAL;
        goto out;
    }
    void *buffer = malloc((size_t)size);
    if (buffer == NULL) {
        close(fd);
        rc = -ENOMEM;
        goto out;
    }
    if (pread(fd, buffer, (size_t)size, 0) != size) {
        rc = -EIO;
        free(buffer);
        close(fd);
        goto out;
    }
    close(fd);
    *program = buffer;
    *length = (uint16_t)(size / (off_t)sizeof(struct sock_filter));
    rc = 0;
out:
    seccomp_release(ctx);
    return rc;
}
