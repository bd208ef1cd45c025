import CIsolation
import Glibc

/// Thin wrappers over the host-side system calls the supervisor makes. Each captures errno at
/// once (before any Swift code can clobber it) and throws a ``SandboxError`` naming the call.
enum System {
    @inline(never)
    static func check(_ result: Int32, _ what: @autoclosure () -> String, code: SandboxError.Code = .system) throws(SandboxError) -> Int32 {
        if result < 0 {
            let error = Glibc.errno
            throw SandboxError(code, what(), errno: error)
        }
        return result
    }

    /// open(2) with O_CLOEXEC.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(SandboxError) -> Int32 {
        try check(Glibc.open(path, flags | O_CLOEXEC, mode), "open \(path)")
    }

    /// Writes the whole string to a file that exists (cgroup interface files).
    static func writeFile(_ path: String, _ value: String) throws(SandboxError) {
        let fd = try check(Glibc.open(path, O_WRONLY | O_CLOEXEC), "open \(path)", code: .filesystem)
        defer { close(fd) }
        try write(fd: fd, value, what: path)
    }

    /// Writes `value` at offset 0 of a kept-open interface file (cgroup files ignore the offset;
    /// pwrite keeps the descriptor reusable).
    static func write(fd: Int32, _ value: String, what: @autoclosure () -> String) throws(SandboxError) {
        let bytes = Array(value.utf8)
        let written = bytes.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, 0) }
        if written != bytes.count {
            let error = Glibc.errno
            throw SandboxError(.filesystem, "write '\(value)' to \(what())", errno: written < 0 ? error : EIO)
        }
    }

    /// Reads a small file whole (cgroup and proc files), at most `limit` bytes.
    static func readFile(_ path: String, limit: Int = 1 << 16) throws(SandboxError) -> String {
        let fd = try check(Glibc.open(path, O_RDONLY | O_CLOEXEC), "open \(path)", code: .filesystem)
        defer { close(fd) }
        return try readAll(fd: fd, limit: limit, what: path)
    }

    /// Reads `fd` to its end, at most `limit` bytes; with `fromStart`, from offset 0 with
    /// pread, so a kept-open cgroup or proc file yields its current contents each time.
    static func readAll(fd: Int32, limit: Int, what: @autoclosure () -> String, fromStart: Bool = false) throws(SandboxError) -> String {
        // Interface files are a few bytes to a few KiB: a page-sized chunk, not a 64 KiB one
        // zeroed on every read.
        var buffer = [UInt8](repeating: 0, count: min(limit, 4096))
        var result: [UInt8] = []
        while result.count < limit {
            let n = buffer.withUnsafeMutableBytes { chunk in
                let wanted = min(chunk.count, limit - result.count)
                return fromStart ? Glibc.pread(fd, chunk.baseAddress, wanted, off_t(result.count))
                                 : Glibc.read(fd, chunk.baseAddress, wanted)
            }
            if n < 0 {
                let error = Glibc.errno
                if error == EINTR { continue }
                throw SandboxError(.filesystem, "read \(what())", errno: error)
            }
            if n == 0 { break }
            result.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: result, as: UTF8.self)
    }

    static func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func isSymlink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// mkdir that tolerates an existing directory.
    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(SandboxError) {
        if mkdir(path, mode) != 0 {
            let error = Glibc.errno
            if error == EEXIST && isDirectory(path) { return }
            throw SandboxError(.filesystem, "mkdir \(path)", errno: error)
        }
    }

    /// mkdir -p.
    static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SandboxError) {
        var current = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            current += "/" + component
            try makeDirectory(current, mode: mode)
        }
    }

    /// Writes a whole file (host side, files we create ourselves in directories we own).
    static func createFile(_ path: String, contents: [UInt8], mode: mode_t = 0o644) throws(SandboxError) {
        let fd = try check(Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode), "create \(path)", code: .filesystem)
        defer { close(fd) }
        try writeAll(fd: fd, contents, what: path)
    }

    static func writeAll(fd: Int32, _ contents: [UInt8], what: String) throws(SandboxError) {
        var offset = 0
        while offset < contents.count {
            let n = contents.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                let error = Glibc.errno
                if error == EINTR { continue }
                throw SandboxError(.filesystem, "write \(what)", errno: error)
            }
            offset += n
        }
    }

    /// Monotonic time in nanoseconds.
    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// mountinfo escapes space, tab, newline and backslash as octal.
    static func unescapeMountPath(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "\\"), i + 3 < utf8.count + 0,
               let value = UInt8(String(decoding: utf8[(i + 1)...min(i + 3, utf8.count - 1)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                i += 4
            } else {
                bytes.append(utf8[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
