import Glibc
import Synchronization

/// cgroup v2: a fresh group per run, `<parent>/slot-N`, entered at clone time with
/// clone3(CLONE_INTO_CGROUP) so no process is ever migrated (migration is what makes joining
/// slow), and removed after the run. Accounting comes from `cpu.stat`, `memory.peak` and
/// `memory.events`; `cgroup.kill` ends every process at once.
///
/// The parent lives directly under the v2 root, or — in a delegated subtree such as systemd's
/// `Delegate=yes` — under the service's own group. v2 forbids processes in a group whose
/// controllers are enabled for its children ("no internal processes"), so in the delegated case
/// the service first moves itself into a leaf child, `supervisor`.
final class CgroupV2Backend: CgroupBackend {
    let version = 2
    private let filesystem: any CgroupFilesystem
    /// The group whose subtree_control must offer our controllers to the parent.
    private let base: String
    /// Our parent group.
    let parentPath: String
    private let delegated: Bool
    private let processID: Int32
    private let controllers: Mutex<Set<String>> = Mutex([])
    private let directoryDescriptors: Mutex<[Int: Int32]> = Mutex([:])

    var location: String { parentPath }

    /// Controllers the sandbox needs (`cpu` only for quotas; `cpu.stat` exists without it).
    static let requiredControllers = ["memory", "pids"]
    static let optionalControllers = ["cpu"]

    /// - Parameters:
    ///   - mountPoint: where cgroup2 is mounted.
    ///   - ownGroup: this process's group relative to the mount (from /proc/self/cgroup, `0::/x`).
    ///   - delegated: whether to work inside `ownGroup` (see the type's documentation).
    init(filesystem: any CgroupFilesystem, mountPoint: String, ownGroup: String, parent: String,
         delegated: Bool, processID: Int32 = getpid()) {
        self.filesystem = filesystem
        self.delegated = delegated
        self.processID = processID
        let own = ownGroup == "/" ? mountPoint : mountPoint + ownGroup
        base = delegated ? own : mountPoint
        parentPath = base + "/" + parent
    }

    /// This process's v2 group from a /proc/self/cgroup text (`0::/path`).
    static func ownGroup(procSelfCgroup: String) -> String? {
        for line in procSelfCgroup.split(separator: "\n") where line.hasPrefix("0::") {
            return String(line.dropFirst(3))
        }
        return nil
    }

    private func slotPath(_ slot: Int) -> String { "\(parentPath)/slot-\(slot)" }

    private func enable(_ names: [String], in group: String) throws(SandboxError) {
        let available = Set(((try? filesystem.read(group + "/cgroup.controllers")) ?? "").split(separator: " ").map {
            String(trimWhitespace($0))
        })
        for required in Self.requiredControllers where !available.contains(required) {
            throw SandboxError(.cgroupUnavailable,
                               "cgroup v2 controller '\(required)' is not available in \(group) (cgroup.controllers: \(available.sorted().joined(separator: " "))); " +
                               (delegated ? "delegate it to the service (systemd: Delegate=yes)" : "enable it in the parent's cgroup.subtree_control"))
        }
        let wanted = names.filter { available.contains($0) }
        let current = Set(((try? filesystem.read(group + "/cgroup.subtree_control")) ?? "").split(separator: " ").map {
            String(trimWhitespace($0))
        })
        let missing = wanted.filter { !current.contains($0) }
        if !missing.isEmpty {
            try filesystem.write(group + "/cgroup.subtree_control", missing.map { "+" + $0 }.joined(separator: " "))
        }
    }

    func setUp(slots: Int) throws(SandboxError) {
        let names = Self.requiredControllers + Self.optionalControllers
        if delegated {
            // Leave the delegated group itself empty so its subtree_control may be set.
            let supervisor = base + "/supervisor"
            try filesystem.makeGroup(supervisor)
            try filesystem.write(supervisor + "/cgroup.procs", String(processID))
        }
        try enable(names, in: base)
        try filesystem.makeGroup(parentPath)
        try enable(names, in: parentPath)
        let enabled = Set(((try? filesystem.read(parentPath + "/cgroup.subtree_control")) ?? "").split(separator: " ").map {
            String(trimWhitespace($0))
        })
        controllers.withLock { $0 = enabled }
        // Groups left by a previous instance that crashed: end their processes and remove them.
        for slot in 0..<max(slots, 64) where filesystem.exists(slotPath(slot)) {
            removeGroup(slotPath(slot))
        }
    }

    func spawnerJoinDescriptors(slot: Int) -> [Int32] { [] }

    func attach(spawner: SlotSpawner, slot: Int) {}

    func acquire(slot: Int, limits: ResourceLimits) throws(SandboxError) -> CgroupLease {
        let path = slotPath(slot)
        if filesystem.exists(path) { removeGroup(path) }
        try filesystem.makeGroup(path)
        do throws(SandboxError) {
            if let memory = limits.memoryBytes {
                try filesystem.write(path + "/memory.max", String(memory))
            }
            if filesystem.exists(path + "/memory.swap.max") { try filesystem.write(path + "/memory.swap.max", "0") }
            // One OOM kill ends the whole run rather than leaving a crippled process tree.
            if filesystem.exists(path + "/memory.oom.group") { try filesystem.write(path + "/memory.oom.group", "1") }
            try filesystem.write(path + "/pids.max", String(limits.pidsMaximum))
            if let quota = limits.cpuQuota {
                guard controllers.withLock({ $0.contains("cpu") }) else {
                    throw SandboxError(.cgroupUnavailable, "a CPU quota needs the cpu controller in \(parentPath)")
                }
                try filesystem.write(path + "/cpu.max", "\(max(1000, Int(quota * 100_000))) 100000")
            }
            let descriptor = try filesystem.openDescriptor(path, flags: O_RDONLY | O_DIRECTORY)
            directoryDescriptors.withLock { $0[slot] = descriptor }
            return CgroupLease(slot: slot, directoryDescriptor: descriptor,
                               baselineOOMKills: 0, baselineMemoryBytes: 0)
        } catch {
            removeGroup(path)
            throw error
        }
    }

    func cpuMicroseconds(_ lease: CgroupLease) -> Int {
        cgroupKeyedValue((try? filesystem.read(slotPath(lease.slot) + "/cpu.stat")) ?? "", key: "usage_usec") ?? 0
    }

    func killAll(_ lease: CgroupLease) {
        kill(group: slotPath(lease.slot))
    }

    private func kill(group path: String) {
        if filesystem.exists(path + "/cgroup.kill"), (try? filesystem.write(path + "/cgroup.kill", "1")) != nil { return }
        guard let text = try? filesystem.read(path + "/cgroup.procs") else { return }
        for line in text.split(separator: "\n") {
            if let pid = Int32(line), pid > 0 { Glibc.kill(pid, SIGKILL) }
        }
    }

    func usage(_ lease: CgroupLease) -> CgroupUsage {
        let path = slotPath(lease.slot)
        var peak = cgroupInteger((try? filesystem.read(path + "/memory.peak")) ?? "")
        if peak == nil { peak = cgroupInteger((try? filesystem.read(path + "/memory.current")) ?? "") }
        let events = (try? filesystem.read(path + "/memory.events")) ?? ""
        return CgroupUsage(cpuMicroseconds: cpuMicroseconds(lease), peakMemoryBytes: peak ?? 0,
                           oomKills: cgroupKeyedValue(events, key: "oom_kill") ?? 0)
    }

    private func isPopulated(_ path: String) -> Bool {
        guard let events = try? filesystem.read(path + "/cgroup.events") else { return false }
        return cgroupKeyedValue(events, key: "populated") == 1
    }

    /// Kills what is left, waits for the group to empty, and removes it.
    private func removeGroup(_ path: String) {
        if isPopulated(path) {
            kill(group: path)
            _ = waitUntil(timeoutNanoseconds: 2_000_000_000) { !isPopulated(path) }
        }
        _ = waitUntil(timeoutNanoseconds: 1_000_000_000) { (try? filesystem.removeGroup(path)) != nil }
    }

    func release(_ lease: CgroupLease) throws(SandboxError) {
        if let descriptor = directoryDescriptors.withLock({ $0.removeValue(forKey: lease.slot) }), descriptor >= 0 {
            close(descriptor)
        }
        let path = slotPath(lease.slot)
        if !waitUntil(timeoutNanoseconds: 2_000_000_000, { !isPopulated(path) }) {
            kill(group: path)
            throw SandboxError(.cgroupUnavailable, "processes remain in \(path) after the run")
        }
        var lastError: SandboxError?
        let removed = waitUntil(timeoutNanoseconds: 1_000_000_000) {
            do throws(SandboxError) { try filesystem.removeGroup(path); return true } catch { lastError = error; return false }
        }
        if !removed, let lastError { throw lastError }
    }

    func tearDown() {
        let descriptors = directoryDescriptors.withLock { all in
            defer { all.removeAll() }
            return all
        }
        for (slot, descriptor) in descriptors {
            if descriptor >= 0 { close(descriptor) }
            removeGroup(slotPath(slot))
        }
        for slot in 0..<64 where filesystem.exists(slotPath(slot)) { removeGroup(slotPath(slot)) }
        try? filesystem.removeGroup(parentPath)
    }
}
