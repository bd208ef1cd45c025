import Glibc
import Synchronization

@testable import Isolation

/// An emulated cgroup v2 tree, so the v2 backend can be tested on this cgroup v1 host. It
/// enforces the kernel rules the backend depends on:
/// - a new group gets the interface files of the controllers its parent enables;
/// - `cgroup.subtree_control` accepts only controllers listed in `cgroup.controllers`;
/// - no internal processes: a non-root group with processes cannot enable controllers for its
///   children, and a group whose subtree_control is set cannot take processes;
/// - rmdir fails with EBUSY while a group has processes or children;
/// - `cgroup.kill` empties the group.
final class FakeCgroupFilesystem: CgroupFilesystem {
    struct Group {
        var files: [String: String]
        var processes: Set<Int32> = []
    }

    let root: String
    private let state: Mutex<[String: Group]>
    private let log = Mutex<[String]>([])
    /// Writes that fail, by file name (to test error paths).
    let failingFiles: Set<String>

    init(root: String = "/fake/cgroup", rootControllers: [String] = ["cpuset", "cpu", "io", "memory", "pids", "hugetlb"],
         memoryPeak: Bool = true, failingFiles: Set<String> = []) {
        self.root = root
        self.failingFiles = failingFiles
        var files = ["cgroup.controllers": rootControllers.joined(separator: " "), "cgroup.subtree_control": "",
                     "cgroup.procs": "", "cpu.stat": "usage_usec 0\n"]
        if memoryPeak { files["memory.peak.supported"] = "1" }
        state = Mutex([root: Group(files: files)])
    }

    /// Every write made, as "path=value".
    var writes: [String] { log.withLock { $0 } }

    func group(_ path: String) -> Group? { state.withLock { $0[path] } }

    func groups() -> [String] { state.withLock { Array($0.keys).sorted() } }

    /// Simulates the kernel placing a process in a group (for no-internal-process checks).
    func addProcess(_ pid: Int32, to path: String) {
        state.withLock { _ = $0[path]?.processes.insert(pid) }
    }

    /// Sets an interface file as the kernel would (counters after a run).
    func setFile(_ path: String, _ value: String) {
        let (group, name) = split(path)
        state.withLock { $0[group]?.files[name] = value }
    }

    private func split(_ path: String) -> (String, String) {
        let index = path.lastIndex(of: "/")!
        return (String(path[..<index]), String(path[path.index(after: index)...]))
    }

    private func words(_ text: String?) -> Set<String> {
        Set((text ?? "").split(separator: " ").map(String.init))
    }

    func makeGroup(_ path: String) throws(SandboxError) {
        let (parent, _) = split(path)
        try state.withLock { (groups: inout [String: Group]) throws(SandboxError) in
            if groups[path] != nil { return }
            guard let parentGroup = groups[parent] else {
                throw SandboxError(.cgroupUnavailable, "create cgroup \(path)", errno: ENOENT)
            }
            let enabled = words(parentGroup.files["cgroup.subtree_control"])
            var files = ["cgroup.controllers": enabled.sorted().joined(separator: " "), "cgroup.subtree_control": "",
                         "cgroup.procs": "", "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.kill": "",
                         "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"]
            if enabled.contains("memory") {
                files["memory.max"] = "max"
                files["memory.swap.max"] = "max"
                files["memory.oom.group"] = "0"
                files["memory.current"] = "0"
                files["memory.events"] = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"
                if groups[root]?.files["memory.peak.supported"] != nil { files["memory.peak"] = "0" }
            }
            if enabled.contains("pids") { files["pids.max"] = "max" }
            if enabled.contains("cpu") { files["cpu.max"] = "max 100000" }
            groups[path] = Group(files: files)
        }
        log.withLock { $0.append("mkdir \(path)") }
    }

    func removeGroup(_ path: String) throws(SandboxError) {
        try state.withLock { (groups: inout [String: Group]) throws(SandboxError) in
            guard let group = groups[path] else { return }
            let hasChildren = groups.keys.contains { $0.hasPrefix(path + "/") }
            if !group.processes.isEmpty || hasChildren {
                throw SandboxError(.cgroupUnavailable, "remove cgroup \(path)", errno: EBUSY)
            }
            groups[path] = nil
        }
        log.withLock { $0.append("rmdir \(path)") }
    }

    func write(_ path: String, _ value: String) throws(SandboxError) {
        let (groupPath, name) = split(path)
        if failingFiles.contains(name) { throw SandboxError(.filesystem, "write '\(value)' to \(path)", errno: EINVAL) }
        try state.withLock { (groups: inout [String: Group]) throws(SandboxError) in
            guard var group = groups[groupPath], group.files[name] != nil else {
                throw SandboxError(.filesystem, "open \(path)", errno: ENOENT)
            }
            switch name {
            case "cgroup.subtree_control":
                var enabled = words(group.files[name])
                let available = words(group.files["cgroup.controllers"])
                for token in value.split(separator: " ") {
                    let controller = String(token.dropFirst())
                    guard available.contains(controller) else {
                        throw SandboxError(.filesystem, "write '\(value)' to \(path)", errno: ENOENT)
                    }
                    if token.hasPrefix("+") {
                        // No internal processes (the root group is exempt).
                        if groupPath != root && !group.processes.isEmpty {
                            throw SandboxError(.filesystem, "write '\(value)' to \(path)", errno: EBUSY)
                        }
                        enabled.insert(controller)
                    } else {
                        enabled.remove(controller)
                    }
                }
                group.files[name] = enabled.sorted().joined(separator: " ")
            case "cgroup.procs":
                guard let pid = Int32(value) else { throw SandboxError(.filesystem, "write \(path)", errno: EINVAL) }
                if groupPath != root && !words(group.files["cgroup.subtree_control"]).isEmpty {
                    throw SandboxError(.filesystem, "write '\(value)' to \(path)", errno: EBUSY)
                }
                for key in groups.keys { groups[key]?.processes.remove(pid) }
                group = groups[groupPath]!
                group.processes.insert(pid)
            case "cgroup.kill":
                group.processes.removeAll()
            default:
                group.files[name] = value
            }
            groups[groupPath] = group
        }
        log.withLock { $0.append("\(path)=\(value)") }
    }

    func read(_ path: String) throws(SandboxError) -> String {
        let (groupPath, name) = split(path)
        return try state.withLock { (groups: inout [String: Group]) throws(SandboxError) -> String in
            guard let group = groups[groupPath] else { throw SandboxError(.filesystem, "open \(path)", errno: ENOENT) }
            switch name {
            case "cgroup.procs": return group.processes.sorted().map(String.init).joined(separator: "\n")
            case "cgroup.events": return "populated \(group.processes.isEmpty ? 0 : 1)\nfrozen 0\n"
            default:
                guard let value = group.files[name] else { throw SandboxError(.filesystem, "open \(path)", errno: ENOENT) }
                return value
            }
        }
    }

    func exists(_ path: String) -> Bool {
        if state.withLock({ $0[path] != nil }) { return true }
        let (groupPath, name) = split(path)
        return state.withLock { $0[groupPath]?.files[name] != nil }
    }

    func openDescriptor(_ path: String, flags: Int32) throws(SandboxError) -> Int32 {
        guard exists(path) else { throw SandboxError(.filesystem, "open \(path)", errno: ENOENT) }
        return -1
    }
}
