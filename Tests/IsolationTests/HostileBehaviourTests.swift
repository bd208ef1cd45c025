import Glibc
import Testing

@testable import Isolation

/// One test per hostile behaviour of shared/reference/sandboxes.md §7: each proves containment
/// and that the host is untouched. Every probe is harmless: it tries to read, connect or signal
/// and reports what happened; the test then checks the host side too.
@Suite("hostile programs are contained", .enabled(if: isRoot, "needs root"), .timeLimit(.minutes(2)))
struct HostileBehaviourTests {
    @Test func forkBombStopsAtThePidsLimitAndLeavesNothingBehind() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("""
            import os, time
            n = 0
            try:
                for _ in range(300):
                    if os.fork() == 0:
                        time.sleep(30); os._exit(0)
                    n += 1
            except OSError as e:
                print("forks", n, e.errno)
            """, limits: ResourceLimits(processes: 20))
        #expect(result.status == .ok, "\(result)")
        // python + 19 children = 20 (the sandbox's init is not counted).
        #expect(result.stdoutText == "forks 19 11\n", "\(result.stdoutText)")
        #expect(hostProcesses(withUIDs: fixture.uids).isEmpty, "the sleeping children die with the run")
    }

    @Test func memoryBombIsReportedAsMemoryLimitFromTheOOMCounter() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("""
            b = bytearray(1 << 30)
            for i in range(0, len(b), 4096): b[i] = 1
            """, limits: ResourceLimits(memoryBytes: 64 << 20))
        #expect(result.status == .memoryLimit, "\(result)")
        #expect(result.signal == SIGKILL)
        #expect(result.memoryBytes >= 60 << 20 && result.memoryBytes <= 66 << 20, "peak \(result.memoryBytes)")
        #expect(result.message?.contains("memory limit") == true)
    }

    /// The OOM killer kills every process sharing its victim's memory, and on cgroup v1 the
    /// slot's spawner thread (part of this process) sits in the job's memory group. A server
    /// much larger than the job's limit must still never be the victim: only job processes are.
    @Test func aMemoryLimitKillNeverReachesTheServer() throws {
        let fixture = try SandboxFixture()
        // Make this process far larger than the job's limit (touch 256 MiB).
        let ballast = UnsafeMutableRawPointer.allocate(byteCount: 256 << 20, alignment: 4096)
        defer { ballast.deallocate() }
        for offset in stride(from: 0, to: 256 << 20, by: 4096) { ballast.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self) }
        let result = fixture.python("""
            import os
            for _ in range(6):
                if os.fork() == 0:
                    b = bytearray(8 << 20)
                    for i in range(0, len(b), 4096): b[i] = 1
                    import time; time.sleep(5); os._exit(0)
            b = bytearray(64 << 20)
            for i in range(0, len(b), 4096): b[i] = 1
            """, limits: ResourceLimits(memoryBytes: 32 << 20))
        #expect(result.status == .memoryLimit, "\(result)")
        #expect(kill(getpid(), 0) == 0, "still alive to tell")
    }

    @Test func aProgramKilledBySIGKILLWithoutOOMIsNotCalledMemoryLimit() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
        #expect(result.status == .signaled, "\(result)")
        #expect(result.signal == SIGKILL)
    }

    @Test func cpuLoopEndsAtTheCPULimitCountingEveryProcess() throws {
        let fixture = try SandboxFixture()
        // Two busy processes: the limit covers their sum, not each one.
        let result = fixture.python("""
            import os
            os.fork()
            while True: pass
            """, limits: ResourceLimits(cpuTimeMilliseconds: 1000, wallTimeMilliseconds: 10_000))
        #expect(result.status == .timeLimit, "\(result)")
        #expect(result.timeLimitKind == .cpu)
        #expect(result.cpuTimeMicroseconds >= 1_000_000 && result.cpuTimeMicroseconds < 1_400_000, "cpu \(result.cpuTimeMicroseconds)")
    }

    @Test func sleepingForeverEndsAtTheWallLimit() throws {
        let fixture = try SandboxFixture()
        let result = fixture.sandbox.run(RunSpec(executable: "/bin/sleep", arguments: ["1000"],
                                                 limits: ResourceLimits(wallTimeMilliseconds: 500)))
        #expect(result.status == .timeLimit)
        #expect(result.timeLimitKind == .wall)
        #expect(result.wallTimeMicroseconds >= 500_000 && result.wallTimeMicroseconds < 900_000, "wall \(result.wallTimeMicroseconds)")
    }

    @Test func fillingTheBoxAndTmpStopsAtTheirSize() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("""
            import os, errno
            for d in ("/box", "/tmp"):
                total = 0
                try:
                    for i in range(100000):
                        with open(f"{d}/f{i}", "wb") as f:
                            f.write(b"x" * (1 << 20)); total += 1 << 20
                except OSError as e:
                    print(d, total >> 20, errno.errorcode[e.errno])
            """, limits: ResourceLimits(memoryBytes: 512 << 20, fileSizeBytes: 4 << 20, diskBytes: 8 << 20))
        #expect(result.status == .ok, "\(result)")
        let lines = result.stdoutText.split(separator: "\n")
        #expect(lines.count == 2, "\(result.stdoutText)")
        for line in lines {
            let fields = line.split(separator: " ")
            #expect(fields.count == 3 && Int(fields[1])! <= 8 && fields[2] == "ENOSPC", "\(line)")
        }
    }

    @Test func aSingleFileStopsAtTheFileSizeLimit() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("""
            import errno
            try:
                with open("/box/big", "wb") as f:
                    f.write(b"x" * (3 << 20))
            except OSError as e:
                print(errno.errorcode[e.errno])
            """, limits: ResourceLimits(fileSizeBytes: 1 << 20))
        #expect(result.stdoutText == "EFBIG\n", "\(result)")
    }

    /// The supervisor's memory during this run is checked by scripts/tests.d/20-cli-run.sh, where
    /// `sandbox-server run` is alone in its process: here, parallel tests share the RSS.
    @Test func aGigabyteToStdoutIsCappedAtTheOutputLimit() throws {
        let fixture = try SandboxFixture()
        let result = fixture.sandbox.run(RunSpec(executable: "/usr/bin/head", arguments: ["-c", "1G", "/dev/zero"],
                                                 limits: ResourceLimits(wallTimeMilliseconds: 60_000, outputBytes: 1 << 20)))
        #expect(result.status == .ok, "\(result)")
        #expect(result.stdout.count == 1 << 20)
        #expect(result.stdoutTruncated)
    }

    @Test func outputOverflowCanEndTheRun() throws {
        let fixture = try SandboxFixture()
        let result = fixture.sandbox.run(RunSpec(executable: "/usr/bin/yes",
                                                 limits: ResourceLimits(outputBytes: 4096, killOnOutputLimit: true)))
        #expect(result.status == .outputLimit, "\(result)")
        #expect(result.stdout.count == 4096)
    }

    @Test func aHostLoopbackListenerIsUnreachable() throws {
        let fixture = try SandboxFixture()
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(listener, 8)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        let port = UInt16(bigEndian: address.sin_port)

        let result = fixture.python("""
            import socket, errno
            for host in ("127.0.0.1", "10.0.2.2", "8.8.8.8"):
                s = socket.socket(); s.settimeout(2)
                try:
                    s.connect((host, \(port))); print(host, "CONNECTED")
                except OSError as e:
                    print(host, errno.errorcode.get(e.errno, e.errno))
            """)
        #expect(result.stdoutText == "127.0.0.1 ECONNREFUSED\n10.0.2.2 ENETUNREACH\n8.8.8.8 ENETUNREACH\n", "\(result)")
        // Nothing reached our listener.
        var pending = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pending, 1, 0) == 0)
    }

    @Test func hostFilesAreInvisible() throws {
        let fixture = try SandboxFixture()
        let canary = "/tmp/sandbox-canary-\(getpid())"
        try System.createFile(canary, contents: Array("secret".utf8))
        defer { unlink(canary) }
        let result = fixture.python("""
            import os
            for p in ["\(canary)", "/etc/shadow", "/root", "/home", "/proc/1/root\(canary)", "/run", "/var", "/sys"]:
                print(p, os.path.exists(p))
            print(sorted(os.listdir("/etc")))
            """)
        let lines = result.stdoutText.split(separator: "\n")
        #expect(lines.count == 9)
        #expect(lines.prefix(8).allSatisfy { $0.hasSuffix(" False") }, "\(result.stdoutText)")
        #expect(lines.last.map { !$0.contains("shadow") && $0.contains("passwd") } == true, "\(result.stdoutText)")
    }

    @Test func theSupervisorCannotBeSignalledOrTraced() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("""
            import os, ctypes, errno
            libc = ctypes.CDLL(None, use_errno=True)
            try:
                os.kill(\(getpid()), 0); print("host pid visible")
            except OSError as e:
                print("kill host pid", errno.errorcode[e.errno])
            print("ppid", os.getppid())
            r = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to our init
            print("ptrace", r, errno.errorcode[ctypes.get_errno()])
            r = libc.ptrace(0, 0, 0, 0)  # PTRACE_TRACEME
            print("traceme", r, errno.errorcode[ctypes.get_errno()])
            """)
        #expect(result.stdoutText == "kill host pid ESRCH\nppid 1\nptrace -1 EPERM\ntraceme -1 EPERM\n", "\(result)")
    }

    @Test func setuidBinariesGiveNoPrivilegeAndNothingIsPrivileged() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("""
            import subprocess
            status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)
            for k in ("Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
                print(k, status[k].split()[0])
            mounts = {l.split()[4]: l.split()[5] for l in open("/proc/self/mountinfo")}
            print("usr", "nosuid" in mounts["/usr"] and "ro" in mounts["/usr"].split(","))
            p = subprocess.run(["/usr/bin/su", "-c", "id -u", "root"], capture_output=True, stdin=subprocess.DEVNULL)
            print("su", p.returncode != 0 and b"0" not in p.stdout)
            """)
        let uid = fixture.sandbox.configuration.firstUID
        let lines = result.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.count == 11, "\(result)")
        #expect(lines.first.map { $0 == "Uid \(uid)" || $0 == "Uid \(uid + 1)" } == true)
        #expect(Array(lines.dropFirst(2)) == ["CapInh 0000000000000000", "CapPrm 0000000000000000", "CapEff 0000000000000000",
                                              "CapBnd 0000000000000000", "CapAmb 0000000000000000", "NoNewPrivs 1",
                                              "Seccomp 2", "usr True", "su True"])
    }

    @Test func procShowsOnlyTheRun() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("""
            import os
            pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
            try:
                open("/proc/1/environ").read(); init = "readable"
            except OSError as e:
                init = e.errno
            print(pids, os.getpid(), init)
            """)
        // The program is PID 2; our init (PID 1) is undumpable, so hidepid=2 hides it entirely.
        #expect(result.stdoutText == "[2] 2 2\n", "\(result)")
    }

    @Test func mountingUnsharingAndNewUserNamespacesAreRefused() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("""
            import ctypes, errno, os
            libc = ctypes.CDLL(None, use_errno=True)
            def check(name, r):
                print(name, r, errno.errorcode.get(ctypes.get_errno(), 0) if r < 0 else "")
            check("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
            check("unshare-user", libc.unshare(0x10000000))
            check("unshare-ns", libc.unshare(0x00020000))
            check("clone-newuser", libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0))
            check("setns", libc.setns(0, 0))
            check("chroot", libc.chroot(b"/tmp"))
            """)
        #expect(result.stdoutText == """
            mount -1 EPERM
            unshare-user -1 EPERM
            unshare-ns -1 EPERM
            clone-newuser -1 EPERM
            setns -1 EPERM
            chroot -1 EPERM

            """, "\(result)")
    }

    @Test func aDaemonisedGrandchildDoesNotOutliveTheRun() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("""
            import os, time
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(60); os._exit(0)
                os._exit(0)
            time.sleep(0.2)
            print("parent exits")
            """)
        #expect(result.status == .ok)
        #expect(result.stdoutText == "parent exits\n")
        #expect(hostProcesses(withUIDs: fixture.uids).isEmpty, "the daemon was killed with the namespace")
    }

    @Test func hostnameAndClockCannotBeChanged() throws {
        let fixture = try SandboxFixture()
        var hostname = [CChar](repeating: 0, count: 256)
        gethostname(&hostname, 255)
        let result = fixture.python("""
            import ctypes, errno, socket
            libc = ctypes.CDLL(None, use_errno=True)
            print(socket.gethostname())
            print(libc.sethostname(b"evil", 4), errno.errorcode[ctypes.get_errno()])
            class timespec(ctypes.Structure): _fields_ = [("s", ctypes.c_long), ("ns", ctypes.c_long)]
            print(libc.clock_settime(0, ctypes.byref(timespec(0, 0))), errno.errorcode[ctypes.get_errno()])
            print(libc.syscall(159, 0), errno.errorcode[ctypes.get_errno()])  # adjtimex
            """)
        #expect(result.stdoutText == "sandbox\n-1 EPERM\n-1 EPERM\n-1 EPERM\n", "\(result)")
        var after = [CChar](repeating: 0, count: 256)
        gethostname(&after, 255)
        #expect(hostname == after)
    }

    @Test func keyringsBPFIoUringAndPerfAreUnavailable() throws {
        let fixture = try SandboxFixture()
        let result = fixture.python("""
            import ctypes, errno
            libc = ctypes.CDLL(None, use_errno=True)
            for name, nr in (("keyctl", 250), ("add_key", 248), ("bpf", 321), ("io_uring_setup", 425),
                             ("perf_event_open", 298), ("userfaultfd", 323), ("clone3", 435)):
                r = libc.syscall(nr, 0, 0, 0, 0, 0)
                print(name, r, errno.errorcode[ctypes.get_errno()])
            """)
        #expect(result.stdoutText == """
            keyctl -1 ENOSYS
            add_key -1 ENOSYS
            bpf -1 EPERM
            io_uring_setup -1 ENOSYS
            perf_event_open -1 EPERM
            userfaultfd -1 EPERM
            clone3 -1 ENOSYS

            """, "\(result)")
    }

    @Test func noDescriptorsOrEnvironmentLeakIn() throws {
        let fixture = try SandboxFixture()
        // A descriptor the server has open without CLOEXEC must not reach the job.
        let leaked = open("/etc/hostname", O_RDONLY)
        defer { close(leaked) }
        setenv("SANDBOX_TEST_SECRET", "leak", 1)
        defer { unsetenv("SANDBOX_TEST_SECRET") }
        let result = fixture.sandbox.run(RunSpec(
            executable: "/usr/bin/python3",
            arguments: ["-c", "import os; print(sorted(int(f) for f in os.listdir('/proc/self/fd'))); print(sorted(os.environ))"],
            environment: ["PATH": "/usr/bin", "ONLY": "this"]))
        // 0-2 plus the descriptor listdir itself opened.
        #expect(result.stdoutText == "[0, 1, 2, 3]\n['LC_CTYPE', 'ONLY', 'PATH']\n", "\(result)")
    }

    @Test func aFreshBoxIsEmptyAndWritableWhateverThePreviousRunLeft() throws {
        let fixture = try SandboxFixture(slots: 1)
        let canary = "/tmp/sandbox-canary-clear-\(getpid())"
        try System.createFile(canary, contents: Array("keep me".utf8))
        defer { unlink(canary) }
        fixture.sandbox.withSlot { slot in
            let polluter = slot.run(RunSpec(executable: "/usr/bin/python3", arguments: ["-c", """
                import os
                d = "/box"
                for i in range(50):
                    d = os.path.join(d, "deep"); os.mkdir(d)
                os.symlink("\(canary)", "/box/canary-link")
                os.symlink("/tmp", "/box/deep/tmp-link")
                os.mkfifo("/box/fifo")
                os.chmod("/box/deep", 0)
                os.chmod("/box", 0o500)
                print("polluted")
                """]))
            #expect(polluter.stdoutText == "polluted\n", "\(polluter)")
            let next = slot.run(RunSpec(executable: "/bin/sh", arguments: ["-c", "ls -A /box; touch /box/new && echo writable"]))
            #expect(next.stdoutText == "writable\n", "\(next)")
        }
        #expect(try System.readFile(canary) == "keep me", "clearing the box never followed the planted link")
    }

    @Test func linksAndFIFOsLeftInTheBoxAreNeverFollowedByTheHost() throws {
        let fixture = try SandboxFixture(slots: 1)
        let canary = "/tmp/sandbox-canary-link-\(getpid())"
        try System.createFile(canary, contents: Array("host secret".utf8))
        defer { unlink(canary) }
        try fixture.sandbox.withSlot { slot in
            let result = slot.run(RunSpec(executable: "/usr/bin/python3", arguments: ["-c", """
                import os
                os.symlink("\(canary)", "/box/link")
                os.symlink("/etc", "/box/dirlink")
                os.mkfifo("/box/fifo")
                os.link("/box/fifo", "/box/hard") if False else None
                print("planted")
                """], box: .fresh))
            #expect(result.stdoutText == "planted\n", "\(result)")
            // Reading through the planted names never reaches the host file and never blocks.
            let throughLink = try slot.box.read("link")
            let throughDirectoryLink = try slot.box.read("dirlink/hostname")
            let fifo = try slot.box.read("fifo")
            #expect(throughLink == nil)
            #expect(throughDirectoryLink == nil)
            #expect(fifo == nil)
            // Writing over them fails instead of writing through them.
            #expect(throws: SandboxError.self) { try slot.box.write([BoxFile(path: "link", text: "overwrite")]) }
            #expect(throws: SandboxError.self) { try slot.box.write([BoxFile(path: "dirlink/x", text: "x")]) }
            #expect(throws: SandboxError.self) { try slot.box.write([BoxFile(path: "../escape", text: "x")]) }
        }
        #expect(try System.readFile(canary) == "host secret")
        #expect(!System.fileExists("/etc/x"))
    }
}
