import Glibc
import Synchronization

/// cgroup v1: one pooled group per slot in each of the memory, pids and cpuacct hierarchies (and
/// cpu for quotas), under `<hierarchy>/<parent>/slot-N`.
///
/// Groups are reused across runs because creating and removing four directories per run costs
/// about 0.4 ms here; between runs the counters are reset (CPU) or read as a baseline (memory
/// peak, OOM kills). Page cache left charged to a slot by earlier runs is reclaimable and is
/// subtracted from the reported peak; a slot whose leftover charge grows past
/// ``recycleThresholdBytes`` gets a fresh group.
final class CgroupV1Backend: CgroupBackend {
    let version = 1
    private let filesystem: any CgroupFilesystem
    /// Parent group per controller, e.g. `/sys/fs/cgroup/memory/sandbox-server`.
    private let memoryParent: String
    private let pidsParent: String
    private let cpuacctParent: String
    private let cpuParent: String?
    private let slotState: Mutex<[Int: SlotState]> = Mutex([:])
    static let recycleThresholdBytes = 16 << 20

    private struct SlotState: Sendable {
        var joinDescriptors: [Int32] = []
        var memoryLimit: Int?? = .none
        var processLimit: Int? = nil
        var cpuQuota: Double?? = .none
        var hasMemsw = false
    }

    var location: String { memoryParent }

    /// - Parameters:
    ///   - hierarchies: controller name → mount point of its v1 hierarchy.
    ///   - parent: our parent group name.
    ///   - cpuQuotas: also join the cpu hierarchy so ``ResourceLimits/cpuQuota`` applies. Off by
    ///     default: every extra hierarchy is one more cgroup.procs write per run.
    init(filesystem: any CgroupFilesystem, hierarchies: [String: String], parent: String, cpuQuotas: Bool = false) throws(SandboxError) {
        func root(_ controller: String) throws(SandboxError) -> String {
            guard let mount = hierarchies[controller] else {
                throw SandboxError(.cgroupUnavailable, "cgroup v1 controller '\(controller)' is not mounted; mount it (e.g. on /sys/fs/cgroup/\(controller)) or boot with cgroup v2")
            }
            return mount + "/" + parent
        }
        self.filesystem = filesystem
        memoryParent = try root("memory")
        pidsParent = try root("pids")
        cpuacctParent = try root("cpuacct")
        cpuParent = cpuQuotas ? hierarchies["cpu"].map { $0 + "/" + parent } : nil
    }

    /// Controller → mount point for every v1 hierarchy in a mountinfo text.
    static func hierarchies(mountinfo: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in mountinfo.split(separator: "\n") {
            let halves = line.split(separator: " - ", maxSplits: 1)
            guard halves.count == 2 else { continue }
            let tail = halves[1].split(separator: " ")
            guard tail.count >= 3, tail[0] == "cgroup" else { continue }
            let head = halves[0].split(separator: " ")
            guard head.count >= 5 else { continue }
            let mountPoint = System.unescapeMountPath(head[4])
            for option in tail[2].split(separator: ",") where ["memory", "pids", "cpuacct", "cpu"].contains(String(option)) {
                result[String(option)] = result[String(option)] ?? mountPoint
            }
        }
        return result
    }

    private var allParents: [String] {
        var parents = [memoryParent, pidsParent, cpuacctParent]
        if let cpuParent, !parents.contains(cpuParent) { parents.append(cpuParent) }
        return parents
    }

    private func slotPath(_ parent: String, _ slot: Int) -> String { "\(parent)/slot-\(slot)" }

    func setUp(slots: Int) throws(SandboxError) {
        for parent in allParents { try filesystem.makeGroup(parent) }
        for slot in 0..<slots {
            try createSlot(slot)
        }
    }

    /// Creates (or empties and reuses) a slot's groups and opens their cgroup.procs files.
    private func createSlot(_ slot: Int) throws(SandboxError) {
        var descriptors: [Int32] = []
        for parent in allParents {
            let path = slotPath(parent, slot)
            if filesystem.exists(path) { killProcesses(in: path) }
            try filesystem.makeGroup(path)
            // Join through cgroup.procs in the hierarchies that account processes; the cpu
            // hierarchy only when quotas are configured there (it is joined the same way).
            descriptors.append(try filesystem.openDescriptor(path + "/cgroup.procs", flags: O_WRONLY))
        }
        let hasMemsw = filesystem.exists(slotPath(memoryParent, slot) + "/memory.memsw.limit_in_bytes")
        let state = SlotState(joinDescriptors: descriptors, hasMemsw: hasMemsw)
        let previous = slotState.withLock { states in
            let old = states[slot]
            states[slot] = state
            return old
        }
        previous?.joinDescriptors.forEach { if $0 >= 0 { close($0) } }
    }

    func acquire(slot: Int, limits: ResourceLimits) throws(SandboxError) -> CgroupLease {
        guard var state = slotState.withLock({ $0[slot] }) else {
            throw SandboxError(.cgroupUnavailable, "cgroup slot \(slot) was not set up")
        }
        let memory = slotPath(memoryParent, slot)
        var baseline = cgroupInteger((try? filesystem.read(memory + "/memory.usage_in_bytes")) ?? "") ?? 0
        if baseline > Self.recycleThresholdBytes {
            try recycle(slot)
            state = slotState.withLock { $0[slot]! }
            baseline = cgroupInteger((try? filesystem.read(memory + "/memory.usage_in_bytes")) ?? "") ?? 0
        }
        if state.memoryLimit != .some(limits.memoryBytes) {
            let value = limits.memoryBytes.map(String.init) ?? "-1"
            // memsw must stay ≥ the memory limit at every step: lift it, set the limit, then
            // set memsw equal to it (no swap).
            if state.hasMemsw { try filesystem.write(memory + "/memory.memsw.limit_in_bytes", "-1") }
            try filesystem.write(memory + "/memory.limit_in_bytes", value)
            if state.hasMemsw { try filesystem.write(memory + "/memory.memsw.limit_in_bytes", value) }
            state.memoryLimit = .some(limits.memoryBytes)
        }
        if state.processLimit != limits.processes {
            try filesystem.write(slotPath(pidsParent, slot) + "/pids.max", String(limits.processes))
            state.processLimit = limits.processes
        }
        if let cpuParent, state.cpuQuota != .some(limits.cpuQuota) {
            let path = slotPath(cpuParent, slot)
            if let quota = limits.cpuQuota {
                try filesystem.write(path + "/cpu.cfs_period_us", "100000")
                try filesystem.write(path + "/cpu.cfs_quota_us", String(max(1000, Int(quota * 100_000))))
            } else {
                try filesystem.write(path + "/cpu.cfs_quota_us", "-1")
            }
            state.cpuQuota = .some(limits.cpuQuota)
        }
        try filesystem.write(memory + "/memory.max_usage_in_bytes", "0")
        try filesystem.write(slotPath(cpuacctParent, slot) + "/cpuacct.usage", "0")
        let oomKills = cgroupKeyedValue((try? filesystem.read(memory + "/memory.oom_control")) ?? "", key: "oom_kill") ?? 0
        let committed = state
        slotState.withLock { $0[slot] = committed }
        return CgroupLease(slot: slot, joinDescriptors: state.joinDescriptors, directoryDescriptor: -1,
                           baselineOOMKills: oomKills, baselineMemoryBytes: baseline)
    }

    /// Replaces a slot's memory group (and the others, to keep one procs fd set) with fresh ones.
    private func recycle(_ slot: Int) throws(SandboxError) {
        for parent in allParents {
            let path = slotPath(parent, slot)
            _ = waitUntil(timeoutNanoseconds: 1_000_000_000) { (try? filesystem.removeGroup(path)) != nil }
        }
        try createSlot(slot)
    }

    func cpuMicroseconds(_ lease: CgroupLease) -> Int {
        (cgroupInteger((try? filesystem.read(slotPath(cpuacctParent, lease.slot) + "/cpuacct.usage")) ?? "") ?? 0) / 1000
    }

    func killAll(_ lease: CgroupLease) {
        killProcesses(in: slotPath(pidsParent, lease.slot))
    }

    private func killProcesses(in path: String) {
        guard let text = try? filesystem.read(path + "/cgroup.procs") else { return }
        for line in text.split(separator: "\n") {
            if let pid = Int32(line), pid > 0 { kill(pid, SIGKILL) }
        }
    }

    func usage(_ lease: CgroupLease) -> CgroupUsage {
        let memory = slotPath(memoryParent, lease.slot)
        let peak = cgroupInteger((try? filesystem.read(memory + "/memory.max_usage_in_bytes")) ?? "") ?? 0
        let ooms = cgroupKeyedValue((try? filesystem.read(memory + "/memory.oom_control")) ?? "", key: "oom_kill") ?? 0
        return CgroupUsage(cpuMicroseconds: cpuMicroseconds(lease),
                           peakMemoryBytes: max(0, peak - lease.baselineMemoryBytes),
                           oomKills: max(0, ooms - lease.baselineOOMKills))
    }

    func release(_ lease: CgroupLease) throws(SandboxError) {
        let procs = slotPath(pidsParent, lease.slot) + "/cgroup.procs"
        let empty = waitUntil(timeoutNanoseconds: 2_000_000_000) {
            ((try? filesystem.read(procs)) ?? "").isEmpty
        }
        if !empty {
            killAll(lease)
            throw SandboxError(.cgroupUnavailable, "processes remain in \(procs) after the run")
        }
    }

    func tearDown() {
        let states = slotState.withLock { states in
            let all = states
            states.removeAll()
            return all
        }
        for (slot, state) in states {
            state.joinDescriptors.forEach { if $0 >= 0 { close($0) } }
            for parent in allParents {
                let path = slotPath(parent, slot)
                killProcesses(in: path)
                _ = waitUntil(timeoutNanoseconds: 1_000_000_000) { (try? filesystem.removeGroup(path)) != nil }
            }
        }
        for parent in allParents { try? filesystem.removeGroup(parent) }
    }
}
