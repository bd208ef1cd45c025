import Glibc

/// What of the host the sandbox shows, worked out once at start-up: the system directories as
/// the host lays them out (merged /usr or not), and a minimal generated /etc.
struct HostLayout: Sendable {
    enum SystemEntry: Sendable, Hashable {
        case directory(String)
        case symlink(String, target: String)
    }

    /// `/usr`, `/bin`, `/sbin`, `/lib*`: binds or symlinks.
    let systemEntries: [SystemEntry]
    /// Host path of the generated /etc.
    let generatedEtc: String
    /// Host path of the prepared /dev (device nodes, fd links, a mount point for /dev/shm).
    let generatedDev: String

    /// Host /etc entries language runtimes read, copied into the generated /etc at start-up:
    /// `alternatives` (the java, c++ … symlinks), JVM, PHP and Free Pascal configuration, CA
    /// certificates, the dynamic linker's extra configuration. Copying once (rather than binding
    /// each per run) keeps a run's mount count low; a restart picks up host changes.
    static let etcCopyPrefixes = ["alternatives", "java-", "php", "fpc", "ssl", "ld.so.conf", "gcc", "ca-certificates", "mono", "R"]

    /// The devices a job may use.
    static let devices = ["null", "zero", "random", "urandom"]

    /// Detects the layout and writes the generated /etc under `workRoot/etc`.
    /// - Parameter sandboxUsers: uid/gid pairs of the slots, listed in passwd and group.
    static func prepare(workRoot: String, sandboxUsers: [(uid: UInt32, gid: UInt32)]) throws(SandboxError) -> HostLayout {
        var entries: [SystemEntry] = [.directory("/usr")]
        for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let path = "/" + name
            if System.isSymlink(path), let target = System.readLink(path) {
                entries.append(.symlink(path, target: target))
            } else if System.isDirectory(path) {
                entries.append(.directory(path))
            }
        }

        let etc = workRoot + "/etc"
        Preflight.removeTree(etc)
        Preflight.removeTree(workRoot + "/dev")
        try System.makeDirectories(etc, mode: 0o755)
        var passwd = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        var group = "root:x:0:\nnogroup:x:65534:\n"
        for user in sandboxUsers {
            passwd += "sandbox:x:\(user.uid):\(user.gid):sandbox:/box:/bin/sh\n"
            group += "sandbox:x:\(user.gid):\n"
        }
        let files: [(String, String)] = [
            ("passwd", passwd),
            ("group", group),
            ("hosts", "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
            ("hostname", "sandbox\n"),
            ("nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"),
        ]
        for (name, text) in files {
            try System.createFile(etc + "/" + name, contents: Array(text.utf8))
        }
        for name in ["ld.so.cache", "resolv.conf", "localtime"] {
            let hostPath = "/etc/" + name
            if let bytes = try? readWholeFile(hostPath) {
                try System.createFile(etc + "/" + name, contents: bytes)
            }
        }
        let mtab = etc + "/mtab"
        if !System.isSymlink(mtab) { Glibc.symlink("../proc/self/mounts", mtab) }

        for name in hostEtcEntries() where etcCopyPrefixes.contains(where: { name == $0 || name.hasPrefix($0) }) {
            try copyTree(from: "/etc/" + name, to: etc + "/" + name)
        }
        let dev = try prepareDev(workRoot + "/dev")
        return HostLayout(systemEntries: entries, generatedEtc: etc, generatedDev: dev)
    }

    /// Copies a host tree: directories, symlinks as symlinks, regular files up to 4 MiB;
    /// anything else (devices, sockets, huge files) is skipped.
    static func copyTree(from source: String, to destination: String) throws(SandboxError) {
        var info = stat()
        guard lstat(source, &info) == 0 else { return }
        switch info.st_mode & S_IFMT {
        case S_IFLNK:
            if let target = System.readLink(source), !System.isSymlink(destination) { Glibc.symlink(target, destination) }
        case S_IFDIR:
            try System.makeDirectory(destination, mode: info.st_mode & 0o7777)
            guard let directory = opendir(source) else { return }
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(directory)
            for name in names { try copyTree(from: source + "/" + name, to: destination + "/" + name) }
        case S_IFREG where info.st_size <= 4 << 20:
            if let bytes = try? readWholeFile(source) {
                try System.createFile(destination, contents: bytes, mode: info.st_mode & 0o777)
            }
        default:
            break
        }
    }

    /// /dev as one directory bound read-only into each sandbox: device nodes made with the
    /// host's numbers (unusable at the host path: /run is nodev), the fd links, and a mount
    /// point for a per-run /dev/shm.
    static func prepareDev(_ path: String) throws(SandboxError) -> String {
        try System.makeDirectories(path, mode: 0o755)
        for device in devices {
            var info = stat()
            guard stat("/dev/" + device, &info) == 0, (info.st_mode & S_IFMT) == S_IFCHR else {
                throw SandboxError(.filesystem, "/dev/\(device) is not a character device on this host")
            }
            let node = path + "/" + device
            unlink(node)
            if mknod(node, S_IFCHR | 0o666, info.st_rdev) != 0 {
                throw SandboxError(.filesystem, "mknod \(node)", errno: errno)
            }
            chmod(node, 0o666)
        }
        for (name, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                               ("stderr", "/proc/self/fd/2")] where !System.isSymlink(path + "/" + name) {
            Glibc.symlink(target, path + "/" + name)
        }
        try System.makeDirectory(path + "/shm", mode: 0o755)
        return path
    }

    private static func hostEtcEntries() -> [String] {
        guard let directory = opendir("/etc") else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    private static func readWholeFile(_ path: String) throws(SandboxError) -> [UInt8] {
        let fd = try System.open(path, O_RDONLY)
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            result.append(contentsOf: buffer[0..<n])
        }
        return result
    }
}
