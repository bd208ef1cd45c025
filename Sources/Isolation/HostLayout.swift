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
    /// Names under the host's /etc bound read-only into the sandbox's /etc.
    let etcBinds: [String]

    /// Host /etc entries language runtimes read: `alternatives` (the java, c++ … symlinks),
    /// JVM configuration, PHP and Free Pascal configuration, CA certificates, and the dynamic
    /// linker's extra configuration.
    static let etcBindPrefixes = ["alternatives", "java-", "php", "fpc", "ssl", "ld.so.conf", "gcc", "ca-certificates", "mono", "R"]

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

        // Mount points for the host entries bound over the generated directory.
        var binds: [String] = []
        for name in hostEtcEntries() where etcBindPrefixes.contains(where: { name == $0 || name.hasPrefix($0) }) {
            let hostPath = "/etc/" + name
            let point = etc + "/" + name
            if System.isDirectory(hostPath) {
                try System.makeDirectory(point)
            } else if System.fileExists(hostPath) {
                if !System.fileExists(point) { try System.createFile(point, contents: []) }
            } else {
                continue  // dangling symlink
            }
            binds.append(name)
        }
        return HostLayout(systemEntries: entries, generatedEtc: etc, etcBinds: binds.sorted())
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
