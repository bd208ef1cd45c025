import CIsolation
import Glibc
import Synchronization

/// The box of one slot: a size-limited tmpfs at `<workRoot>/slots/<n>/box`, owned by the slot's
/// uid, mounted once and emptied when a run wants a fresh box (remounted only to change its
/// size). Emptying is bounded: the tmpfs caps the number of inodes a job can leave behind.
///
/// The host never follows a path inside a box: files are created and read with openat2 and
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, so a symlink or FIFO a job leaves behind cannot turn
/// a host read or write into one elsewhere, and a stale box is discarded without walking it.
public final class SlotBox: Sendable {
    /// Host path of the box mount.
    public let path: String
    let uid: UInt32
    let gid: UInt32
    /// Size of the mounted tmpfs, 0 when not mounted.
    private let mountedSize = Atomic<Int>(0)

    /// Whether the box tmpfs is mounted (this instance mounted it and has not destroyed it).
    var isMounted: Bool { mountedSize.load(ordering: .acquiring) > 0 }

    init(path: String, uid: UInt32, gid: UInt32) {
        self.path = path
        self.uid = uid
        self.gid = gid
    }

    /// Makes the box an empty tmpfs of `sizeBytes`: emptied in place when mounted (never
    /// following a link a job left), resized with a remount, mounted the first time.
    func reset(sizeBytes: Int) throws(SandboxError) {
        let data = "size=\(sizeBytes),nr_inodes=\(MountPlan.inodeLimit(sizeBytes)),mode=0755,uid=\(uid),gid=\(gid)"
        let current = mountedSize.load(ordering: .acquiring)
        if current > 0 {
            let root = try openRoot()
            Preflight.removeContents(of: root)
            // A job may have changed the mode of the box's root; restore it.
            fchmod(root, 0o755)
            close(root)
            if current == sizeBytes { return }
            if cis_mount(nil, path, nil, UInt(CIS_MS_NOSUID | CIS_MS_NODEV) | UInt(MS_REMOUNT), data) == 0 {
                mountedSize.store(sizeBytes, ordering: .releasing)
                return
            }
            _ = cis_umount_detach(path)
            mountedSize.store(0, ordering: .releasing)
        }
        try System.makeDirectories(path, mode: 0o700)
        if cis_mount("sandbox-box", path, "tmpfs", UInt(CIS_MS_NOSUID | CIS_MS_NODEV), data) != 0 {
            throw SandboxError(.filesystem, "mount the box tmpfs on \(path)", errno: errno)
        }
        mountedSize.store(sizeBytes, ordering: .releasing)
    }

    /// Unmounts the box.
    func destroy() {
        while cis_umount_detach(path) == 0 {}
        mountedSize.store(0, ordering: .releasing)
        rmdir(path)
    }

    /// Checks a relative path: no empty, `.` or `..` components, no leading `/`, no NUL.
    static func validate(relativePath: String) throws(SandboxError) {
        let components = relativePath.split(separator: "/", omittingEmptySubsequences: false)
        guard !relativePath.isEmpty, !relativePath.hasPrefix("/"), !relativePath.utf8.contains(0),
              relativePath.utf8.count <= 4096,
              components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && $0.utf8.count <= 255 })
        else {
            throw SandboxError(.invalidSpec, "invalid box path '\(relativePath)': use a relative path without '.', '..' or empty components")
        }
    }

    private func openRoot() throws(SandboxError) -> Int32 {
        try System.check(Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW), "open box \(path)", code: .filesystem)
    }

    /// Writes files into the box, creating subdirectories, owned by the slot's uid. Existing
    /// names are not overwritten (`O_EXCL`), and no link is followed.
    public func write(_ files: [BoxFile]) throws(SandboxError) {
        guard !files.isEmpty else { return }
        let root = try openRoot()
        defer { close(root) }
        for file in files {
            try Self.validate(relativePath: file.path)
            let components = file.path.split(separator: "/")
            var prefix = ""
            for directory in components.dropLast() {
                prefix += (prefix.isEmpty ? "" : "/") + directory
                if mkdirat(root, prefix, 0o755) == 0 {
                    let fd = cis_open_beneath(root, prefix, O_RDONLY | O_DIRECTORY, 0)
                    if fd >= 0 { fchown(fd, uid, gid); close(fd) }
                } else if errno != EEXIST {
                    throw SandboxError(.filesystem, "create directory \(prefix) in the box", errno: errno)
                }
            }
            let mode: UInt32 = file.executable ? 0o755 : 0o644
            let fd = cis_open_beneath(root, file.path, O_WRONLY | O_CREAT | O_EXCL, mode)
            if fd < 0 { throw SandboxError(.filesystem, "create \(file.path) in the box", errno: errno) }
            defer { close(fd) }
            try System.writeAll(fd: fd, file.contents, what: file.path)
            fchown(fd, uid, gid)
            fchmod(fd, mode)
        }
    }

    /// Reads a regular file from the box (at most `limit` bytes), never following a link.
    /// Returns nil when the file does not exist or is not a regular file.
    public func read(_ relativePath: String, limit: Int = 64 << 20) throws(SandboxError) -> [UInt8]? {
        try Self.validate(relativePath: relativePath)
        let root = try openRoot()
        defer { close(root) }
        let fd = cis_open_beneath(root, relativePath, O_RDONLY | O_NONBLOCK, 0)
        if fd < 0 {
            if errno == ENOENT || errno == ELOOP || errno == EXDEV || errno == ENOTDIR { return nil }
            throw SandboxError(.filesystem, "open \(relativePath) in the box", errno: errno)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while result.count < limit {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, min($0.count, limit - result.count)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result.append(contentsOf: buffer[0..<n])
        }
        return result
    }
}
