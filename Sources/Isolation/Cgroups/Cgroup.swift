import Glibc

/// The cgroup of one run, as the spawn path and the supervisor need it.
struct CgroupLease: Sendable {
    /// The slot the run uses.
    var slot: Int
    /// cgroup v2: directory fd for clone3(CLONE_INTO_CGROUP), or -1.
    var directoryDescriptor: Int32
    /// Counters read before the run, subtracted after (v1 groups are pooled).
    var baselineOOMKills: Int
    var baselineMemoryBytes: Int
}

extension ResourceLimits {
    /// `pids.max` of a run's group: the program's processes and the sandbox's init, which is a
    /// task of the group but does not count against ``processes``.
    var pidsMaximum: Int { processes + 1 }
}

/// Resource usage of a finished run, from the cgroup.
struct CgroupUsage: Sendable, Equatable {
    var cpuMicroseconds: Int
    var peakMemoryBytes: Int
    var oomKills: Int
}

/// One cgroup implementation (v1 or v2): creates per-slot groups under our own parent, applies
/// limits, accounts, kills and cleans up. Never touches a group outside the parent.
protocol CgroupBackend: Sendable {
    /// 1 or 2.
    var version: Int { get }
    /// A description for logs and errors, e.g. the parent path(s).
    var location: String { get }
    /// Creates the parent (and per-slot state) for `slots` concurrent runs.
    func setUp(slots: Int) throws(SandboxError)
    /// Descriptors of the v1 `tasks` files the slot's spawner thread writes to join the slot's
    /// groups (empty on v2, where children enter their group at clone time).
    func spawnerJoinDescriptors(slot: Int) -> [Int32]
    /// Tells the backend which thread spawns for a slot (v1: it lives in the slot's groups, must
    /// never be killed, and must be moved when groups are replaced).
    func attach(spawner: SlotSpawner, slot: Int)
    /// Prepares the slot's group for a run with these limits.
    func acquire(slot: Int, limits: ResourceLimits) throws(SandboxError) -> CgroupLease
    /// CPU time used so far by the run (for enforcing the CPU limit while it runs).
    func cpuMicroseconds(_ lease: CgroupLease) -> Int
    /// Kills every process in the run's group.
    func killAll(_ lease: CgroupLease)
    /// Reads the run's usage once every process has ended.
    func usage(_ lease: CgroupLease) -> CgroupUsage
    /// Waits until the group is empty and releases it (closing descriptors, removing per-run
    /// groups). Throws when processes remain after `timeoutNanoseconds`.
    func release(_ lease: CgroupLease) throws(SandboxError)
    /// Removes every group this backend created.
    func tearDown()
}

/// Which cgroup version to use and where.
public struct CgroupOptions: Sendable, Hashable {
    /// How the service sits in the cgroup tree.
    public enum Mode: String, Sendable, Hashable {
        /// Detect: v1 when the memory controller is mounted as v1, else v2.
        case auto
        /// cgroup v1 hierarchies under /sys/fs/cgroup/<controller>.
        case v1
        /// cgroup v2, parent directly under the v2 root.
        case v2
        /// cgroup v2 in a delegated subtree (systemd `Delegate=yes`): the process moves itself
        /// into a leaf `supervisor` group of its own cgroup and creates job groups beside it.
        case v2Delegated = "v2-delegated"
    }

    /// The mode.
    public var mode: Mode
    /// Name of our parent group (relative to the hierarchy root, or to our own group when
    /// delegated). Default `sandbox-server`.
    public var parent: String
    /// Mount point of cgroupfs (default `/sys/fs/cgroup`).
    public var mountPoint: String

    /// Creates options.
    public init(mode: Mode = .auto, parent: String = "sandbox-server", mountPoint: String = "/sys/fs/cgroup") {
        self.mode = mode
        self.parent = parent
        self.mountPoint = mountPoint
    }
}

/// Spin-waits (with short sleeps) until `condition` holds or the timeout passes.
func waitUntil(timeoutNanoseconds: UInt64, _ condition: () -> Bool) -> Bool {
    let deadline = System.monotonicNanoseconds() + timeoutNanoseconds
    var pause: UInt32 = 50
    while true {
        if condition() { return true }
        if System.monotonicNanoseconds() >= deadline { return false }
        _ = usleep(pause)
        pause = min(pause * 2, 5_000)
    }
}
