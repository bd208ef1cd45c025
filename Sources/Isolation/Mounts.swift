import CIsolation
import Glibc

/// The mount tree of one sandbox, as an ordered list of steps the child executes before
/// pivot_root. Built in Swift (where strings are easy), run in C (where it is safe).
///
/// Inside the sandbox:
/// - `/usr` and the host's `/bin`, `/sbin`, `/lib*`: read-only, `nosuid`, `nodev` binds, or the
///   same symlinks as the host's merged-/usr layout.
/// - `/etc`: a small generated directory (read-only) with copies of the few host entries language
///   runtimes need (see ``HostLayout``).
/// - `/dev`: a prepared read-only directory with null, zero, random, urandom and the fd links,
///   and a small writable `/dev/shm`.
/// - `/proc`: a new procfs (`hidepid=2`), `/tmp`: a size-limited tmpfs, `/box`: the box.
/// - `/`: the tmpfs itself, remounted read-only after pivot_root.
struct MountPlan {
    struct Step {
        var kind: cis_fs_op_kind
        var path: String
        var source: String? = nil
        var fstype: String? = nil
        var data: String? = nil
        var flags: UInt = 0
        var mode: UInt32 = 0o755
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    private(set) var steps: [Step] = []
    /// Host path where the child mounts its root tmpfs.
    let root: String

    init(root: String) { self.root = root }

    static let readOnlyBind = UInt(CIS_MS_RDONLY | CIS_MS_NOSUID | CIS_MS_NODEV)

    private func host(_ sandboxPath: String) -> String { root + sandboxPath }

    mutating func directory(_ sandboxPath: String, mode: UInt32 = 0o755) {
        steps.append(Step(kind: CIS_FS_MKDIR, path: host(sandboxPath), mode: mode))
    }

    /// Creates every missing ancestor and the mount point itself for a bind of `hostPath`.
    mutating func mountPoint(_ sandboxPath: String, forHostPath hostPath: String) {
        var current = ""
        let components = sandboxPath.split(separator: "/")
        for component in components.dropLast() {
            current += "/" + component
            directory(current)
        }
        if System.isDirectory(hostPath) {
            directory(sandboxPath)
        } else {
            steps.append(Step(kind: CIS_FS_MKFILE, path: host(sandboxPath), mode: 0o644))
        }
    }

    mutating func bind(_ hostPath: String, at sandboxPath: String, flags: UInt = MountPlan.readOnlyBind) {
        steps.append(Step(kind: CIS_FS_BIND, path: host(sandboxPath), source: hostPath, flags: flags))
    }

    mutating func symlink(_ sandboxPath: String, to target: String) {
        steps.append(Step(kind: CIS_FS_SYMLINK, path: host(sandboxPath), source: target))
    }

    mutating func mount(_ fstype: String, at sandboxPath: String, source: String? = nil, flags: UInt, data: String?) {
        steps.append(Step(kind: CIS_FS_MOUNT, path: host(sandboxPath), source: source ?? fstype, fstype: fstype, data: data, flags: flags))
    }

    mutating func remount(_ sandboxPath: String, flags: UInt, data: String? = nil) {
        steps.append(Step(kind: CIS_FS_REMOUNT, path: host(sandboxPath), data: data, flags: flags))
    }

    mutating func chown(_ sandboxPath: String, uid: UInt32, gid: UInt32) {
        steps.append(Step(kind: CIS_FS_CHOWN, path: host(sandboxPath), uid: uid, gid: gid))
    }

    mutating func detach(_ sandboxPath: String) {
        steps.append(Step(kind: CIS_FS_UMOUNT_DETACH, path: host(sandboxPath)))
    }

    /// The standard tree for one run.
    static func standard(
        root: String, layout: HostLayout, box: BoxSource, limits: ResourceLimits,
        uid: UInt32, gid: UInt32, extraBinds: [BindMount], userNamespace: Bool = false
    ) -> MountPlan {
        var plan = MountPlan(root: root)
        let nosuidNodev = UInt(CIS_MS_NOSUID | CIS_MS_NODEV)

        // System directories, as the host lays them out.
        for entry in layout.systemEntries {
            switch entry {
            case .directory(let path):
                plan.directory(path)
                plan.bind(path, at: path)
            case .symlink(let path, let target):
                plan.symlink(path, to: target)
            }
        }

        // /etc: generated at start-up (with copies of the host entries runtimes need).
        plan.directory("/etc")
        plan.bind(layout.generatedEtc, at: "/etc")

        // /dev: only harmless devices; read-only, but not nodev (the nodes must work).
        plan.directory("/dev")
        if userNamespace {
            // Device nodes on a filesystem mounted from a user namespace do not open; binds of
            // the host's own nodes (devtmpfs, mounted in the initial namespace) do.
            plan.mount("tmpfs", at: "/dev", source: "sandbox-dev", flags: UInt(CIS_MS_NOSUID | CIS_MS_NOEXEC),
                       data: "size=64k,nr_inodes=64,mode=0755")
            for device in HostLayout.devices {
                plan.steps.append(Step(kind: CIS_FS_MKFILE, path: plan.host("/dev/" + device), mode: 0o666))
                plan.bind("/dev/" + device, at: "/dev/" + device, flags: UInt(CIS_MS_NOSUID | CIS_MS_NOEXEC))
            }
            for (name, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
                plan.symlink("/dev/" + name, to: target)
            }
            plan.directory("/dev/shm")
            plan.remount("/dev", flags: UInt(CIS_MS_RDONLY | CIS_MS_NOSUID | CIS_MS_NOEXEC))
        } else {
            plan.bind(layout.generatedDev, at: "/dev", flags: UInt(CIS_MS_RDONLY | CIS_MS_NOSUID | CIS_MS_NOEXEC))
        }
        plan.mount("tmpfs", at: "/dev/shm", source: "sandbox-shm", flags: nosuidNodev | UInt(CIS_MS_NOEXEC),
                   data: "size=\(limits.diskBytes),nr_inodes=\(inodeLimit(limits.diskBytes)),mode=1777")

        plan.directory("/proc")
        plan.mount("proc", at: "/proc", source: "proc", flags: nosuidNodev | UInt(CIS_MS_NOEXEC), data: "hidepid=2")

        plan.directory("/tmp")
        plan.mount("tmpfs", at: "/tmp", source: "sandbox-tmp", flags: nosuidNodev,
                   data: "size=\(limits.diskBytes),nr_inodes=\(inodeLimit(limits.diskBytes)),mode=1777")

        plan.directory("/box")
        switch box {
        case .bind(let hostPath):
            plan.bind(hostPath, at: "/box", flags: nosuidNodev)
        case .overlay(let lower):
            // A private scratch tmpfs holds the upper layer; once the overlay is mounted the
            // scratch mount itself is detached (the overlay keeps its own reference).
            plan.directory("/.cow")
            plan.mount("tmpfs", at: "/.cow", source: "sandbox-cow", flags: nosuidNodev,
                       data: "size=\(limits.diskBytes),nr_inodes=\(inodeLimit(limits.diskBytes)),mode=0755")
            plan.directory("/.cow/upper")
            plan.chown("/.cow/upper", uid: uid, gid: gid)
            plan.directory("/.cow/work")
            plan.mount("overlay", at: "/box", source: "sandbox-box", flags: nosuidNodev,
                       data: "lowerdir=\(lower),upperdir=\(plan.host("/.cow/upper")),workdir=\(plan.host("/.cow/work"))")
            plan.detach("/.cow")
        }

        for bind in extraBinds {
            plan.mountPoint(bind.sandboxPath, forHostPath: bind.hostPath)
            plan.bind(bind.hostPath, at: bind.sandboxPath)
        }
        return plan
    }

    /// One inode per 4 KiB of space, at least 1,024: enough for real programs, bounded for
    /// a job that creates empty files in a loop.
    static func inodeLimit(_ bytes: Int) -> Int { max(1024, bytes / 4096) }
}

/// Where the box comes from for a run.
enum BoxSource {
    /// A host directory bound read-write.
    case bind(String)
    /// A host directory as the read-only lower layer of a private overlay.
    case overlay(lower: String)
}

/// Owns C copies of a mount plan, argv and envp for the duration of one spawn. The child reads
/// them in its copy-on-write snapshot, so they must not be freed before cis_spawn returns.
final class SpawnArena {
    private var strings: [UnsafeMutablePointer<CChar>] = []
    private(set) var operations: UnsafeMutablePointer<cis_fs_op>
    let operationCount: Int
    private(set) var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private(set) var envp: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private var argvCount: Int
    private var envCount: Int

    init(plan: MountPlan, argv arguments: [String], environment: [String]) {
        operationCount = plan.steps.count
        operations = .allocate(capacity: max(1, plan.steps.count))
        argvCount = arguments.count + 1
        envCount = environment.count + 1
        argv = .allocate(capacity: argvCount)
        envp = .allocate(capacity: envCount)
        for (index, step) in plan.steps.enumerated() {
            (operations + index).initialize(to: cis_fs_op(
                kind: step.kind, path: UnsafePointer(copy(step.path)), source: step.source.map { UnsafePointer(copy($0)) },
                fstype: step.fstype.map { UnsafePointer(copy($0)) }, data: step.data.map { UnsafePointer(copy($0)) },
                flags: step.flags, mode: step.mode, uid: step.uid, gid: step.gid))
        }
        for (index, argument) in arguments.enumerated() { argv[index] = copy(argument) }
        argv[arguments.count] = nil
        for (index, variable) in environment.enumerated() { envp[index] = copy(variable) }
        envp[environment.count] = nil
    }

    /// A C copy of `string` that lives as long as the arena.
    func copy(_ string: String) -> UnsafeMutablePointer<CChar> {
        let pointer = strdup(string)!
        strings.append(pointer)
        return pointer
    }

    deinit {
        operations.deinitialize(count: operationCount)
        operations.deallocate()
        argv.deallocate()
        envp.deallocate()
        for pointer in strings { free(pointer) }
    }
}
