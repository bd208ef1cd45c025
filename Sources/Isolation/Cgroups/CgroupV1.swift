import Glibc
import Synchronization

/// cgroup v1: one pooled group per slot in each of the memory, pids and cpuacct hierarchies (and
/// cpu for quotas), under `<hierarchy>/<parent>/slot-N`.
///
/// The slot's spawner thread lives in these groups (v1 membership is per thread, through
/// `tasks`), so every sandbox it clones is born in them and no process is ever migrated on the
/// critical path: a migration takes the global cgroup_threadgroup_rwsem, which waits for an RCU
/// grace period (a 15–25 ms tail measured on this kind of host). The spawner's own memory is
/// charged to the process's memory owner, not to the slot; it counts as one task in `pids.max`.
///
/// Groups are reused across runs because creating and removing directories costs about 0.4 ms
/// per run here; between runs the counters are reset (CPU) or read as a baseline (memory peak,
/// OOM kills). Page cache left charged to a slot by earlier runs is reclaimable and is subtracted
/// from the reported peak; a slot whose leftover charge grows past ``recycleThresholdBytes`` gets
/// fresh groups (its spawner is moved out and back, a rare migration).
final class CgroupV1Backend: CgroupBackend {
    let version = 1
    private let filesystem: any CgroupFilesystem
    /// Parent group per controller, e.g. `/sys/fs/cgroup/memory/sandbox-server`.
    private let memoryParent: String
    private let pidsParent: String
    private let cpuacctParent: String
    private let cpuParent: String?
    private let slotState: Mutex<[Int: SlotState]> = Mutex([:])
    private let parentTasks: Mutex<[Int32]> = Mutex([])
    static let recycleThresholdBytes = 16 << 20

    private struct SlotState: @unchecked Sendable {
        // @unchecked: `spawner` is a Sendable class; the rest are values. (Optional<SlotSpawner>
        // inside a struct stored in a Mutex is fine; the annotation only silences inference.)
        var tasksDescriptors: [Int32] = []
        var spawner: SlotSpawner?
        var memoryLimit: Int?? = .none
        var processLimit: Int? = nil
        var cpuQuota: Double?? = .none
        var hasMemsw = false
        var files = SlotFiles()

        /// Every descriptor the slot holds, closed when its groups are replaced or torn down.
        func closeDescriptors() {
            let kept = [files.memoryUsage, files.memoryPeak, files.oomControl, files.cpuUsage]
            for fd in tasksDescriptors + kept where fd >= 0 { close(fd) }
        }
    }

    /// The interface files every run reads or resets, kept open per slot: a path lookup plus an
    /// open and a close cost more than the access itself, eight times a run. -1 where the
    /// filesystem cannot give a descriptor (an emulated tree): the path is used instead.
    private struct SlotFiles {
        var memoryUsage: Int32 = -1
        var memoryPeak: Int32 = -1
        var oomControl: Int32 = -1
        var cpuUsage: Int32 = -1
    }

    var location: String { memoryParent }

    /// - Parameters:
    ///   - hierarchies: controller name → mount point of its v1 hierarchy.
    ///   - parent: our parent group name.
    ///   - cpuQuotas: also join the cpu hierarchy so ``ResourceLimits/cpuQuota`` applies. Off by
    ///     default: every extra hierarchy is one more group to maintain per slot.
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

    /// Distinct group directories per hierarchy (cpu and cpuacct may be co-mounted).
    private var allParents: [String] {
        var parents = [memoryParent, pidsParent]
        if !parents.contains(cpuacctParent) { parents.append(cpuacctParent) }
        if let cpuParent, !parents.contains(cpuParent) { parents.append(cpuParent) }
        return parents
    }

    private func slotPath(_ parent: String, _ slot: Int) -> String { "\(parent)/slot-\(slot)" }

    /// An interface file's text through its kept descriptor, or by path without one ("" when
    /// unreadable: callers treat a missing value as zero). The path is only built when needed:
    /// these calls are on every run's path.
    private func read(_ fd: Int32, _ path: @autoclosure () -> String) -> String {
        if fd >= 0, let text = try? System.readAll(fd: fd, limit: 1 << 16, what: path(), fromStart: true) { return text }
        return (try? filesystem.read(path())) ?? ""
    }

    /// Writes a value through the kept descriptor, or by path without one.
    private func write(_ fd: Int32, _ path: @autoclosure () -> String, _ value: String) throws(SandboxError) {
        if fd >= 0 { try System.write(fd: fd, value, what: path()) } else { try filesystem.write(path(), value) }
    }

    func setUp(slots: Int) throws(SandboxError) {
        let descriptors = try openTasks(of: allParents)
        parentTasks.withLock { $0 = descriptors }
        for slot in 0..<slots {
            try createSlot(slot)
        }
    }

    /// Creates (or empties and reuses) a slot's groups and opens their `tasks` files.
    private func createSlot(_ slot: Int) throws(SandboxError) {
        let groups = allParents.map { slotPath($0, slot) }
        for path in groups where filesystem.exists(path) { killProcesses(in: path, sparing: nil) }
        let descriptors = try openTasks(of: groups)
        let memory = slotPath(memoryParent, slot)
        let hasMemsw = filesystem.exists(memory + "/memory.memsw.limit_in_bytes")
        var files = SlotFiles()
        files.memoryUsage = (try? filesystem.openDescriptor(memory + "/memory.usage_in_bytes", flags: O_RDONLY)) ?? -1
        files.memoryPeak = (try? filesystem.openDescriptor(memory + "/memory.max_usage_in_bytes", flags: O_RDWR)) ?? -1
        files.oomControl = (try? filesystem.openDescriptor(memory + "/memory.oom_control", flags: O_RDONLY)) ?? -1
        files.cpuUsage = (try? filesystem.openDescriptor(slotPath(cpuacctParent, slot) + "/cpuacct.usage", flags: O_RDWR)) ?? -1
        let previous = slotState.withLock { states in
            let old = states[slot]
            states[slot] = SlotState(tasksDescriptors: descriptors, spawner: old?.spawner, hasMemsw: hasMemsw, files: files)
            return old
        }
        previous?.closeDescriptors()
    }

    /// Makes each group (if missing) and opens its `tasks` file, one per hierarchy. When one
    /// fails, the files already opened are closed: slots are re-created for as long as the
    /// server runs, and a failure each time must not leak a descriptor each time.
    private func openTasks(of groups: [String]) throws(SandboxError) -> [Int32] {
        var descriptors: [Int32] = []
        do {
            for group in groups {
                try filesystem.makeGroup(group)
                descriptors.append(try filesystem.openDescriptor(group + "/tasks", flags: O_WRONLY))
            }
        } catch {
            for fd in descriptors where fd >= 0 { close(fd) }
            throw error
        }
        return descriptors
    }

    func spawnerJoinDescriptors(slot: Int) -> [Int32] {
        slotState.withLock { $0[slot]?.tasksDescriptors ?? [] }
    }

    func attach(spawner: SlotSpawner, slot: Int) {
        slotState.withLock { $0[slot]?.spawner = spawner }
    }

    func acquire(slot: Int, limits: ResourceLimits) throws(SandboxError) -> CgroupLease {
        guard var state = slotState.withLock({ $0[slot] }) else {
            throw SandboxError(.cgroupUnavailable, "cgroup slot \(slot) was not set up")
        }
        let memory = slotPath(memoryParent, slot)
        /// What the slot's memory group is charged before the run (page cache of earlier runs).
        func chargedBytes() -> Int { cgroupInteger(read(state.files.memoryUsage, memory + "/memory.usage_in_bytes")) ?? 0 }
        var baseline = chargedBytes()
        if baseline > Self.recycleThresholdBytes {
            try recycle(slot, spawner: state.spawner)
            state = slotState.withLock { $0[slot]! }
            baseline = chargedBytes()
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
        // The spawner thread is one of the group's tasks too (v1 only: it joins the group).
        let processLimit = limits.pidsMaximum + (state.spawner == nil ? 0 : 1)
        if state.processLimit != processLimit {
            try filesystem.write(slotPath(pidsParent, slot) + "/pids.max", String(processLimit))
            state.processLimit = processLimit
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
        try write(state.files.memoryPeak, memory + "/memory.max_usage_in_bytes", "0")
        try write(state.files.cpuUsage, slotPath(cpuacctParent, slot) + "/cpuacct.usage", "0")
        let oomKills = cgroupKeyedValue(read(state.files.oomControl, memory + "/memory.oom_control"), key: "oom_kill") ?? 0
        let committed = state
        slotState.withLock { $0[slot] = committed }
        return CgroupLease(slot: slot, directoryDescriptor: -1, baselineOOMKills: oomKills, baselineMemoryBytes: baseline)
    }

    /// Replaces a slot's groups with fresh ones, moving its spawner out and back in.
    private func recycle(_ slot: Int, spawner: SlotSpawner?) throws(SandboxError) {
        if let spawner { try spawner.join(tasksDescriptors: parentTasks.withLock { $0 }) }
        for parent in allParents {
            let path = slotPath(parent, slot)
            _ = waitUntil(timeoutNanoseconds: 1_000_000_000) { (try? filesystem.removeGroup(path)) != nil }
        }
        try createSlot(slot)
        if let spawner { try spawner.join(tasksDescriptors: spawnerJoinDescriptors(slot: slot)) }
    }

    func cpuMicroseconds(_ lease: CgroupLease) -> Int {
        cpuMicroseconds(slot: lease.slot, fd: slotState.withLock { $0[lease.slot]?.files.cpuUsage ?? -1 })
    }

    private func cpuMicroseconds(slot: Int, fd: Int32) -> Int {
        (cgroupInteger(read(fd, slotPath(cpuacctParent, slot) + "/cpuacct.usage")) ?? 0) / 1000
    }

    private func spawnerThread(_ slot: Int) -> pid_t? {
        slotState.withLock { $0[slot]?.spawner?.threadID }
    }

    func killAll(_ lease: CgroupLease) {
        killProcesses(in: slotPath(pidsParent, lease.slot), sparing: spawnerThread(lease.slot))
    }

    /// Task ids in a group other than our own threads.
    private func foreignTasks(in path: String, sparing spared: pid_t?) -> [pid_t] {
        guard let text = try? filesystem.read(path + "/tasks") else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let tid = pid_t(line), tid > 0, tid != spared else { return nil }
            // Never signal a thread of this process (kill() of a thread id reaches its process).
            return System.fileExists("/proc/self/task/\(tid)") ? nil : tid
        }
    }

    private func killProcesses(in path: String, sparing spared: pid_t?) {
        for tid in foreignTasks(in: path, sparing: spared) { kill(tid, SIGKILL) }
    }

    func usage(_ lease: CgroupLease) -> CgroupUsage {
        let memory = slotPath(memoryParent, lease.slot)
        let files = slotState.withLock { $0[lease.slot]?.files ?? SlotFiles() }
        let peak = cgroupInteger(read(files.memoryPeak, memory + "/memory.max_usage_in_bytes")) ?? 0
        let ooms = cgroupKeyedValue(read(files.oomControl, memory + "/memory.oom_control"), key: "oom_kill") ?? 0
        return CgroupUsage(cpuMicroseconds: cpuMicroseconds(slot: lease.slot, fd: files.cpuUsage),
                           peakMemoryBytes: max(0, peak - lease.baselineMemoryBytes),
                           oomKills: max(0, ooms - lease.baselineOOMKills))
    }

    func release(_ lease: CgroupLease) throws(SandboxError) {
        let group = slotPath(pidsParent, lease.slot)
        let spared = spawnerThread(lease.slot)
        let empty = waitUntil(timeoutNanoseconds: 2_000_000_000) { foreignTasks(in: group, sparing: spared).isEmpty }
        if !empty {
            killAll(lease)
            throw SandboxError(.cgroupUnavailable, "processes remain in \(group) after the run")
        }
    }

    func tearDown() {
        let states = slotState.withLock { states in
            let all = states
            states.removeAll()
            return all
        }
        for (slot, state) in states {
            state.closeDescriptors()
            for parent in allParents {
                let path = slotPath(parent, slot)
                killProcesses(in: path, sparing: nil)
                _ = waitUntil(timeoutNanoseconds: 2_000_000_000) { (try? filesystem.removeGroup(path)) != nil }
            }
        }
        parentTasks.withLock { descriptors in
            descriptors.forEach { close($0) }
            descriptors.removeAll()
        }
        for parent in allParents { try? filesystem.removeGroup(parent) }
    }
}
