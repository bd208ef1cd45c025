import Glibc
import Testing

@testable import Isolation

/// The cgroup v2 backend against an emulated cgroupfs (this host mounts v1 controllers; the
/// real-kernel v2 proof runs in the QEMU harness, scripts/qemu/).
@Suite("cgroup v2 backend (emulated cgroupfs)")
struct CgroupV2BackendTests {
    let root = "/fake/cgroup"

    func backend(_ fs: FakeCgroupFilesystem, delegated: Bool = false, ownGroup: String = "/") -> CgroupV2Backend {
        CgroupV2Backend(filesystem: fs, mountPoint: root, ownGroup: ownGroup, parent: "sandbox-server",
                        delegated: delegated, processID: 4242)
    }

    @Test func setUpEnablesControllersDownToTheParent() throws {
        let fs = FakeCgroupFilesystem(root: root)
        let cgroups = backend(fs)
        try cgroups.setUp(slots: 2)
        #expect(cgroups.parentPath == "\(root)/sandbox-server")
        let rootControl = try fs.read("\(root)/cgroup.subtree_control").split(separator: " ")
        #expect(Set(rootControl) == ["cpu", "memory", "pids"])
        let parentControl = try fs.read("\(root)/sandbox-server/cgroup.subtree_control").split(separator: " ")
        #expect(Set(parentControl) == ["cpu", "memory", "pids"])
    }

    @Test func acquireCreatesAGroupWithTheLimitsAndADirectoryForCloneIntoCgroup() throws {
        let fs = FakeCgroupFilesystem(root: root)
        let cgroups = backend(fs)
        try cgroups.setUp(slots: 2)
        let limits = ResourceLimits(memoryBytes: 64 << 20, processes: 12, cpuQuota: 0.5)
        let lease = try cgroups.acquire(slot: 1, limits: limits)
        let group = "\(root)/sandbox-server/slot-1"
        #expect(try fs.read(group + "/memory.max") == String(64 << 20))
        #expect(try fs.read(group + "/memory.swap.max") == "0")
        #expect(try fs.read(group + "/memory.oom.group") == "1")
        #expect(try fs.read(group + "/pids.max") == "13", "12 for the program, 1 for the sandbox's init")
        #expect(try fs.read(group + "/cpu.max") == "50000 100000")
        #expect(cgroups.spawnerJoinDescriptors(slot: 1).isEmpty, "v2 joins at clone time, never by writing cgroup.procs")
        #expect(!fs.writes.contains { $0.hasPrefix(group + "/cgroup.procs") })
        try cgroups.release(lease)
        #expect(!fs.exists(group), "a per-run group is removed after the run")
    }

    @Test func usageComesFromCpuStatMemoryPeakAndMemoryEvents() throws {
        let fs = FakeCgroupFilesystem(root: root)
        let cgroups = backend(fs)
        try cgroups.setUp(slots: 1)
        let lease = try cgroups.acquire(slot: 0, limits: ResourceLimits())
        let group = "\(root)/sandbox-server/slot-0"
        fs.setFile(group + "/cpu.stat", "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n")
        fs.setFile(group + "/memory.peak", "7340032\n")
        fs.setFile(group + "/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 1\n")
        #expect(cgroups.cpuMicroseconds(lease) == 123_456)
        #expect(cgroups.usage(lease) == CgroupUsage(cpuMicroseconds: 123_456, peakMemoryBytes: 7_340_032, oomKills: 1))
        try cgroups.release(lease)
    }

    @Test func peakFallsBackToMemoryCurrentOnKernelsWithoutMemoryPeak() throws {
        let fs = FakeCgroupFilesystem(root: root, memoryPeak: false)
        let cgroups = backend(fs)
        try cgroups.setUp(slots: 1)
        let lease = try cgroups.acquire(slot: 0, limits: ResourceLimits())
        fs.setFile("\(root)/sandbox-server/slot-0/memory.current", "4096")
        #expect(cgroups.usage(lease).peakMemoryBytes == 4096)
        try cgroups.release(lease)
    }

    @Test func killAllUsesCgroupKillAndReleaseWaitsForTheGroupToEmpty() throws {
        let fs = FakeCgroupFilesystem(root: root)
        let cgroups = backend(fs)
        try cgroups.setUp(slots: 1)
        let lease = try cgroups.acquire(slot: 0, limits: ResourceLimits())
        let group = "\(root)/sandbox-server/slot-0"
        fs.addProcess(1001, to: group)
        fs.addProcess(1002, to: group)
        cgroups.killAll(lease)
        #expect(fs.writes.contains("\(group)/cgroup.kill=1"))
        #expect(try fs.read(group + "/cgroup.procs").isEmpty)
        try cgroups.release(lease)
        #expect(!fs.exists(group))
    }

    @Test func aMissingMemoryControllerIsAClearStartUpError() throws {
        let fs = FakeCgroupFilesystem(root: root, rootControllers: ["cpu", "pids"])
        let cgroups = backend(fs)
        let error = #expect(throws: SandboxError.self) { try cgroups.setUp(slots: 1) }
        #expect(error?.code == .cgroupUnavailable)
        #expect(error?.message.contains("'memory' is not available") == true)
    }

    @Test func aRefusedLimitWriteRemovesTheHalfMadeGroup() throws {
        let fs = FakeCgroupFilesystem(root: root, failingFiles: ["pids.max"])
        let cgroups = backend(fs)
        try cgroups.setUp(slots: 1)
        #expect(throws: SandboxError.self) { try cgroups.acquire(slot: 0, limits: ResourceLimits()) }
        #expect(!fs.exists("\(root)/sandbox-server/slot-0"))
    }

    /// systemd's Delegate=yes hands the service its own group with processes in it. v2 forbids
    /// enabling controllers for children of a group that has processes, so the backend must move
    /// itself into a leaf first, and must not create anything outside its own group.
    @Test func delegatedSubtreeRespectsTheNoInternalProcessesRule() throws {
        let fs = FakeCgroupFilesystem(root: root)
        let service = "\(root)/system.slice/sandbox-server.service"
        try fs.write("\(root)/cgroup.subtree_control", "+memory +pids +cpu")
        try fs.makeGroup("\(root)/system.slice")
        try fs.write("\(root)/system.slice/cgroup.subtree_control", "+memory +pids +cpu")
        try fs.makeGroup(service)
        fs.addProcess(4242, to: service)
        // Without moving out first, the kernel refuses to enable controllers here.
        #expect(throws: SandboxError.self) { try fs.write(service + "/cgroup.subtree_control", "+memory") }

        let cgroups = backend(fs, delegated: true, ownGroup: "/system.slice/sandbox-server.service")
        try cgroups.setUp(slots: 2)
        #expect(cgroups.parentPath == service + "/sandbox-server")
        #expect(fs.group(service + "/supervisor")?.processes == [4242])
        #expect(fs.group(service)?.processes.isEmpty == true)
        let lease = try cgroups.acquire(slot: 0, limits: ResourceLimits(memoryBytes: 32 << 20))
        #expect(try fs.read(service + "/sandbox-server/slot-0/memory.max") == String(32 << 20))
        try cgroups.release(lease)
        #expect(fs.groups().allSatisfy { $0 == root || $0 == "\(root)/system.slice" || $0.hasPrefix(service) },
                "nothing is created outside the delegated group")
        cgroups.tearDown()
        #expect(!fs.exists(service + "/sandbox-server"))
    }

    @Test func staleGroupsOfACrashedInstanceAreKilledAndRemoved() throws {
        let fs = FakeCgroupFilesystem(root: root)
        try fs.write("\(root)/cgroup.subtree_control", "+memory +pids")
        try fs.makeGroup("\(root)/sandbox-server")
        try fs.write("\(root)/sandbox-server/cgroup.subtree_control", "+memory +pids")
        try fs.makeGroup("\(root)/sandbox-server/slot-3")
        fs.addProcess(777, to: "\(root)/sandbox-server/slot-3")
        let cgroups = backend(fs)
        try cgroups.setUp(slots: 1)
        #expect(!fs.exists("\(root)/sandbox-server/slot-3"))
    }

    @Test func tearDownRemovesEveryGroupItCreated() throws {
        let fs = FakeCgroupFilesystem(root: root)
        let before = fs.groups()
        let cgroups = backend(fs)
        try cgroups.setUp(slots: 2)
        _ = try cgroups.acquire(slot: 0, limits: ResourceLimits())
        _ = try cgroups.acquire(slot: 1, limits: ResourceLimits())
        cgroups.tearDown()
        #expect(fs.groups() == before)
    }

    @Test func ownGroupIsParsedFromProcSelfCgroup() {
        #expect(CgroupV2Backend.ownGroup(procSelfCgroup: "0::/system.slice/x.service\n") == "/system.slice/x.service")
        #expect(CgroupV2Backend.ownGroup(procSelfCgroup: "12:memory:/a\n0::/\n") == "/")
        #expect(CgroupV2Backend.ownGroup(procSelfCgroup: "4:memory:/a\n") == nil)
    }

    @Test func cgroup2MountIsFoundInMountinfo() {
        let mountinfo = """
            25 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
            26 30 0:23 / /proc rw,relatime - proc proc rw
            """
        #expect(CgroupDetection.cgroup2MountPoint(mountinfo: mountinfo, preferred: "/sys/fs/cgroup") == "/sys/fs/cgroup")
    }
}

@Suite("cgroup v1 hierarchy discovery")
struct CgroupV1DiscoveryTests {
    @Test func separateAndCoMountedControllersAreFound() {
        let mountinfo = """
            33 25 0:28 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory
            34 25 0:29 / /sys/fs/cgroup/pids rw,relatime shared:15 - cgroup cgroup rw,pids
            35 25 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct
            36 25 0:31 / /sys/fs/cgroup/unified rw,relatime shared:17 - cgroup2 cgroup2 rw
            """
        let hierarchies = CgroupV1Backend.hierarchies(mountinfo: mountinfo)
        #expect(hierarchies["memory"] == "/sys/fs/cgroup/memory")
        #expect(hierarchies["pids"] == "/sys/fs/cgroup/pids")
        #expect(hierarchies["cpu"] == "/sys/fs/cgroup/cpu,cpuacct")
        #expect(hierarchies["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct")
    }

    @Test func aMissingControllerIsNamedInTheError() {
        let error = #expect(throws: SandboxError.self) {
            _ = try CgroupV1Backend(filesystem: KernelCgroupFilesystem(), hierarchies: ["memory": "/m", "cpuacct": "/c"], parent: "x")
        }
        #expect(error?.message.contains("'pids'") == true)
    }
}
