import CIsolation
import Glibc

/// Start-up checks: fail with one clear error naming what is missing and how to fix it.
enum Preflight {
    static func check(userNamespace: Bool = false) throws(SandboxError) {
        guard geteuid() == 0 else {
            throw SandboxError(.notRoot, "the sandbox must run as root (it creates namespaces, mounts and cgroups, then drops every privilege for the job); run sandbox-server as root or via the systemd unit in deploy/")
        }
        for namespace in ["pid", "mnt", "net", "ipc", "uts", "cgroup"] where !System.fileExists("/proc/self/ns/" + namespace) {
            throw SandboxError(.namespacesUnavailable, "the kernel lacks \(namespace) namespaces (/proc/self/ns/\(namespace) is missing); use a kernel built with CONFIG_\(namespace.uppercased())_NS")
        }
        if userNamespace {
            guard System.fileExists("/proc/self/ns/user") else {
                throw SandboxError(.namespacesUnavailable, "user-namespace mode needs CONFIG_USER_NS (/proc/self/ns/user is missing)")
            }
            if let text = try? System.readFile("/proc/sys/user/max_user_namespaces"), cgroupInteger(text) == 0 {
                throw SandboxError(.namespacesUnavailable, "user-namespace mode is on but user.max_user_namespaces is 0; raise it (sysctl user.max_user_namespaces=10000) or turn the mode off")
            }
        }
        if cis_seccomp_available() != 0 {
            throw SandboxError(.seccompUnavailable, "seccomp is not available in this kernel (CONFIG_SECCOMP_FILTER)", errno: errno)
        }
    }

    /// Detaches mounts a previous instance left under the work root (after a crash).
    static func detachStaleMounts(under root: String) {
        guard let info = try? System.readFile("/proc/self/mountinfo", limit: 1 << 22) else { return }
        var targets: [String] = []
        for line in info.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let point = System.unescapeMountPath(fields[4])
            if point.hasPrefix(root + "/") { targets.append(point) }
        }
        // Deepest first.
        for target in targets.sorted(by: { $0.count > $1.count }) { _ = cis_umount_detach(target) }
    }

    /// Removes a tree the sandbox generated (its /etc and /dev), never following a link: each
    /// directory is opened relative to its parent with O_NOFOLLOW and entries are unlinked there.
    static func removeTree(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { unlink(path); return }
        removeContents(of: fd)
        close(fd)
        rmdir(path)
    }

    static func removeContents(of directoryFD: Int32) {
        let listing = dup(directoryFD)
        guard listing >= 0, let directory = fdopendir(listing) else { return }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names {
            if unlinkat(directoryFD, name, 0) == 0 { continue }
            let child = openat(directoryFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if child >= 0 {
                removeContents(of: child)
                close(child)
            }
            unlinkat(directoryFD, name, AT_REMOVEDIR)
        }
    }
}

/// Picks the cgroup backend for the host.
enum CgroupDetection {
    static func backend(for options: CgroupOptions, cpuQuotas: Bool) throws(SandboxError) -> any CgroupBackend {
        let filesystem = KernelCgroupFilesystem()
        let mountinfo = (try? System.readFile("/proc/self/mountinfo", limit: 1 << 22)) ?? ""
        let v1 = CgroupV1Backend.hierarchies(mountinfo: mountinfo)
        var mode = options.mode
        if mode == .auto { mode = v1["memory"] != nil ? .v1 : .v2 }
        switch mode {
        case .v1, .auto:
            return try CgroupV1Backend(filesystem: filesystem, hierarchies: v1, parent: options.parent, cpuQuotas: cpuQuotas)
        case .v2, .v2Delegated:
            guard let mountPoint = cgroup2MountPoint(mountinfo: mountinfo, preferred: options.mountPoint) else {
                throw SandboxError(.cgroupUnavailable, "no cgroup2 filesystem is mounted; mount one (mount -t cgroup2 none /sys/fs/cgroup) or use cgroup v1")
            }
            let own = CgroupV2Backend.ownGroup(procSelfCgroup: (try? System.readFile("/proc/self/cgroup")) ?? "") ?? "/"
            return CgroupV2Backend(filesystem: filesystem, mountPoint: mountPoint, ownGroup: own,
                                   parent: options.parent, delegated: mode == .v2Delegated)
        }
    }

    static func cgroup2MountPoint(mountinfo: String, preferred: String) -> String? {
        var found: [String] = []
        for line in mountinfo.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2, halves[1].hasPrefix("cgroup2 ") else { continue }
            let head = halves[0].split(separator: " ")
            if head.count >= 5 { found.append(System.unescapeMountPath(head[4])) }
        }
        return found.contains(preferred) ? preferred : found.first
    }
}
