import CIsolation
import Glibc
import Testing

@testable import Isolation

@Suite("nothing is left behind", .enabled(if: isRoot, "needs root"), .timeLimit(.minutes(5)))
struct CleanupTests {
    /// 1,000 runs, a quarter of them hostile (fork bombs, daemons, memory bombs, timeouts, box
    /// pollution), then close: no cgroup, mount, directory or process of ours may remain.
    @Test func aThousandRunsHostileOnesIncludedLeaveNothing() throws {
        var fixture: SandboxFixture? = try SandboxFixture(slots: 2)
        let sandbox = fixture!.sandbox
        let uids = fixture!.uids
        let name = fixture!.name
        let hierarchies = CgroupV1Backend.hierarchies(mountinfo: try System.readFile("/proc/self/mountinfo", limit: 1 << 22))
        let hostile: [RunSpec] = [
            RunSpec(executable: "/bin/sh", arguments: ["-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done; wait"],
                    limits: ResourceLimits(wallTimeMilliseconds: 100, processes: 8)),
            RunSpec(executable: "/bin/sh", arguments: ["-c", "(setsid sleep 60 &) ; mkfifo /box/f; ln -s /etc/passwd /box/l; true"]),
            RunSpec(executable: "/usr/bin/python3", arguments: ["-c", "b = bytearray(1 << 28); b[::4096] = b'x' * (len(b) // 4096)"],
                    limits: ResourceLimits(memoryBytes: 16 << 20)),
            RunSpec(executable: "/bin/sh", arguments: ["-c", "while :; do :; done"],
                    limits: ResourceLimits(cpuTimeMilliseconds: 50, wallTimeMilliseconds: 1000)),
        ]
        var statuses: [RunStatus: Int] = [:]
        for index in 0..<1000 {
            let spec = index % 4 == 0 ? hostile[(index / 4) % hostile.count] : RunSpec(executable: "/bin/true")
            let result = sandbox.run(spec)
            statuses[result.status, default: 0] += 1
            #expect(result.status != .internalError, "run \(index): \(result.message ?? "")")
        }
        #expect(statuses[.ok, default: 0] >= 750)
        #expect(statuses[.memoryLimit, default: 0] > 0)
        #expect(statuses[.timeLimit, default: 0] > 0)
        #expect(hostProcesses(withUIDs: uids).isEmpty, "no process of a run survives it")

        fixture = nil  // closes the sandbox
        #expect(hostProcesses(withUIDs: uids).isEmpty)
        #expect(hostMounts(under: "/run/\(name)").isEmpty, "no mount remains")
        #expect(!System.fileExists("/run/\(name)"), "the work root is removed")
        for controller in ["memory", "pids", "cpuacct"] {
            let parent = (hierarchies[controller] ?? "/sys/fs/cgroup/\(controller)") + "/" + name
            #expect(!System.fileExists(parent), "cgroup \(parent) is removed")
        }
    }

    /// A start-up that fails after its cgroups were made (a slot directory cannot be created)
    /// takes them down again, and a later start-up in the same place works.
    @Test func aStartUpThatFailsPartWayLeavesNoCgroups() throws {
        let name = "sandbox-server-test-failed-start-\(getpid())"
        let work = "/run/\(name)"
        let configuration = SandboxConfiguration(slots: 2, workRoot: work, firstUID: 64_100, cgroup: CgroupOptions(parent: name))
        try System.makeDirectories(work + "/slots", mode: 0o700)
        // Where slot 1's directory goes, a file: mkdir fails after the cgroups exist.
        let blocker = open(work + "/slots/1", O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        #expect(blocker >= 0)
        close(blocker)
        let error = #expect(throws: SandboxError.self) { _ = try Sandbox(configuration: configuration) }
        #expect(error?.message.contains("slots/1") == true, "\(String(describing: error))")
        let hierarchies = CgroupV1Backend.hierarchies(mountinfo: try System.readFile("/proc/self/mountinfo", limit: 1 << 22))
        var groups = ["/sys/fs/cgroup/\(name)"]
        for controller in ["memory", "pids", "cpuacct"] { groups.append((hierarchies[controller] ?? "/sys/fs/cgroup/\(controller)") + "/" + name) }
        for group in groups { #expect(!System.fileExists(group), "cgroup \(group) is removed") }
        unlink(work + "/slots/1")
        let sandbox = try Sandbox(configuration: configuration)
        #expect(sandbox.run(RunSpec(executable: "/bin/true")).status == .ok)
        sandbox.close()
        #expect(!System.fileExists(work))
    }

    @Test func aSecondInstanceCleansUpAfterACrashedOne() throws {
        let name = "sandbox-server-test-crash-\(getpid())"
        let configuration = SandboxConfiguration(slots: 1, workRoot: "/run/\(name)", firstUID: 64_000, cgroup: CgroupOptions(parent: name))
        // Simulate a crash: leave the box mounted and the groups in place by not closing.
        let crashed = try Sandbox(configuration: configuration)
        _ = crashed.run(RunSpec(executable: "/bin/true"))
        #expect(!hostMounts(under: "/run/\(name)").isEmpty)
        let next = try Sandbox(configuration: configuration)
        #expect(next.run(RunSpec(executable: "/bin/true")).status == .ok)
        next.close()
        crashed.close()
        #expect(hostMounts(under: "/run/\(name)").isEmpty)
        #expect(!System.fileExists("/run/\(name)"))
    }
}

@Suite("start-up checks")
struct PreflightTests {
    @Test(.enabled(if: !isRoot, "only meaningful when not root")) func notRootIsAClearError() {
        let error = #expect(throws: SandboxError.self) { _ = try Sandbox() }
        #expect(error?.code == .notRoot)
    }

    @Test func boxPathsAreValidated() {
        for bad in ["", "/abs", "../up", "a/../b", "a//b", "./a", "a/.", "a\0b"] {
            #expect(throws: SandboxError.self, "\(bad)") { try SlotBox.validate(relativePath: bad) }
        }
        for good in ["main.c", "src/lib/util.py", ".hidden", "a..b"] {
            #expect(throws: Never.self) { try SlotBox.validate(relativePath: good) }
        }
    }

    @Test func theMountPlanIsReadOnlyNosuidNodevWhereItMatters() {
        let layout = HostLayout(systemEntries: [.directory("/usr"), .symlink("/bin", target: "usr/bin")],
                                generatedEtc: "/w/etc", generatedDev: "/w/dev")
        let plan = MountPlan.standard(root: "/w/root", layout: layout, box: .bind("/w/box"), limits: ResourceLimits(),
                                      uid: 60_000, gid: 60_000, extraBinds: [])
        let binds = plan.steps.filter { $0.kind == CIS_FS_BIND }
        let usr = binds.first { $0.path == "/w/root/usr" }
        #expect(usr?.flags == MountPlan.readOnlyBind)
        #expect(binds.first { $0.path == "/w/root/etc" }?.flags == MountPlan.readOnlyBind)
        let boxFlags = binds.first { $0.path == "/w/root/box" }?.flags ?? 0
        #expect(boxFlags & UInt(CIS_MS_RDONLY) == 0)
        #expect(boxFlags & UInt(CIS_MS_NOSUID) != 0)
        #expect(plan.steps.contains { $0.kind == CIS_FS_SYMLINK && $0.path == "/w/root/bin" && $0.source == "usr/bin" })
        #expect(plan.steps.contains { $0.kind == CIS_FS_MOUNT && $0.fstype == "proc" && $0.data == "hidepid=2" })
        let dev = binds.first { $0.path == "/w/root/dev" }
        #expect(dev?.source == "/w/dev")
        #expect(dev.map { $0.flags & UInt(CIS_MS_RDONLY) != 0 && $0.flags & UInt(CIS_MS_NODEV) == 0 } == true)
        #expect(plan.steps.filter { $0.kind == CIS_FS_MOUNT || $0.kind == CIS_FS_BIND }.count <= 10, "few mounts per run")
    }
}
