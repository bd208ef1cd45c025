import Glibc

/// The few file operations the cgroup backends make. The real implementation talks to cgroupfs;
/// tests substitute an emulated tree (cgroup v2 cannot be mounted on a v1 host).
protocol CgroupFilesystem: Sendable {
    /// mkdir; the kernel populates the interface files.
    func makeGroup(_ path: String) throws(SandboxError)
    /// rmdir; fails with EBUSY while the group has processes or children.
    func removeGroup(_ path: String) throws(SandboxError)
    /// Writes one value to an interface file.
    func write(_ path: String, _ value: String) throws(SandboxError)
    /// Reads an interface file.
    func read(_ path: String) throws(SandboxError) -> String
    /// Whether a file or group exists.
    func exists(_ path: String) -> Bool
    /// Opens a file or directory for the spawn path (a cgroup.procs fd, a directory fd for
    /// CLONE_INTO_CGROUP). Returns -1 where the tree cannot provide one (emulation).
    func openDescriptor(_ path: String, flags: Int32) throws(SandboxError) -> Int32
}

/// cgroupfs as the kernel provides it.
struct KernelCgroupFilesystem: CgroupFilesystem {
    func makeGroup(_ path: String) throws(SandboxError) {
        if mkdir(path, 0o755) != 0 {
            let error = errno
            if error == EEXIST { return }
            throw SandboxError(.cgroupUnavailable, "create cgroup \(path)", errno: error)
        }
    }

    func removeGroup(_ path: String) throws(SandboxError) {
        if rmdir(path) != 0 {
            let error = errno
            if error == ENOENT { return }
            throw SandboxError(.cgroupUnavailable, "remove cgroup \(path)", errno: error)
        }
    }

    func write(_ path: String, _ value: String) throws(SandboxError) {
        try System.writeFile(path, value)
    }

    func read(_ path: String) throws(SandboxError) -> String {
        try System.readFile(path)
    }

    func exists(_ path: String) -> Bool { System.fileExists(path) }

    func openDescriptor(_ path: String, flags: Int32) throws(SandboxError) -> Int32 {
        try System.check(Glibc.open(path, flags | O_CLOEXEC), "open \(path)", code: .cgroupUnavailable)
    }
}

/// Parses `key value` lines (memory.events, cpu.stat, memory.oom_control, cgroup.events).
func cgroupKeyedValue(_ text: String, key: String) -> Int? {
    // Over the UTF-8 bytes, without splitting into substrings: this runs twice per sandbox run
    // on memory.oom_control, and the splitting cost more than reading the file.
    let bytes = text.utf8
    let keyBytes = key.utf8
    var lineStart = bytes.startIndex
    while lineStart < bytes.endIndex {
        let lineEnd = bytes[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
        let line = bytes[lineStart..<lineEnd]
        if line.starts(with: keyBytes) {
            let afterKey = line.index(line.startIndex, offsetBy: keyBytes.count)
            if afterKey < line.endIndex, line[afterKey] == UInt8(ascii: " ") {
                return Int(trimWhitespace(Substring(line[line.index(after: afterKey)...])))
            }
        }
        lineStart = lineEnd < bytes.endIndex ? bytes.index(after: lineEnd) : bytes.endIndex
    }
    return nil
}

/// Trims ASCII whitespace (Isolation avoids Foundation).
func trimWhitespace(_ text: Substring) -> Substring {
    var view = text
    while let first = view.first, first == " " || first == "\t" || first == "\n" || first == "\r" { view = view.dropFirst() }
    while let last = view.last, last == " " || last == "\t" || last == "\n" || last == "\r" { view = view.dropLast() }
    return view
}

/// A parsed integer from an interface file ("max" and empty read as nil).
func cgroupInteger(_ text: String) -> Int? {
    Int(trimWhitespace(text[...]))
}
