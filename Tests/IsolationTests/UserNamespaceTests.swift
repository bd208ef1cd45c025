import Glibc
import Testing

@testable import Isolation

/// The optional user-namespace mode: root inside is the slot's unprivileged uid outside, on top
/// of everything the default mode does.
@Suite("user-namespace mode", .enabled(if: isRoot, "needs root"), .timeLimit(.minutes(2)))
struct UserNamespaceTests {
    @Test func rootInsideIsTheSlotUidOutsideWithNoCapabilities() throws {
        let fixture = try SandboxFixture(slots: 1, userNamespace: true)
        let result = fixture.python("""
            import os
            status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)
            print(os.getuid(), open("/proc/self/uid_map").read().split(), open("/proc/self/gid_map").read().split())
            print(status["CapEff"].strip(), status["CapBnd"].strip(), status["NoNewPrivs"].strip(), status["Seccomp"].strip())
            print(os.getgroups())
            """)
        let outside = fixture.sandbox.configuration.firstUID
        #expect(result.stdoutText == """
            0 ['0', '\(outside)', '1'] ['0', '\(outside)', '1']
            0000000000000000 0000000000000000 1 2
            []

            """, "\(result)")
    }

    @Test func theHostSeesTheJobAsTheSlotUid() throws {
        let fixture = try SandboxFixture(slots: 1, userNamespace: true)
        fixture.sandbox.withSlot { slot in
            let result = slot.run(RunSpec(executable: "/bin/sh", arguments: ["-c", "echo data > /box/made"], box: .fresh))
            #expect(result.status == .ok, "\(result)")
            var info = stat()
            #expect(stat(slot.box.path + "/made", &info) == 0)
            #expect(info.st_uid == fixture.sandbox.configuration.firstUID, "files the job makes belong to the slot uid on the host")
        }
    }

    @Test func containmentHoldsAsInTheDefaultMode() throws {
        let fixture = try SandboxFixture(slots: 1, userNamespace: true)
        let result = fixture.python("""
            import ctypes, errno, os, socket
            libc = ctypes.CDLL(None, use_errno=True)
            def check(name, r):
                print(name, r, errno.errorcode.get(ctypes.get_errno(), 0) if r < 0 else "")
            check("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
            check("unshare-user", libc.unshare(0x10000000))
            check("sethostname", libc.sethostname(b"x", 1))
            print(os.path.exists("/etc/shadow"), [n for _, n in socket.if_nameindex()])
            try:
                open("/usr/bin/evil", "w")
            except OSError as e:
                print("usr", errno.errorcode[e.errno])
            """)
        #expect(result.stdoutText == """
            mount -1 EPERM
            unshare-user -1 EPERM
            sethostname -1 EPERM
            False ['lo']
            usr EROFS

            """, "\(result)")
    }

    @Test func limitsStillApply() throws {
        let fixture = try SandboxFixture(slots: 1, userNamespace: true)
        let memory = fixture.python("b = bytearray(1 << 30); b[::4096] = b'x' * (len(b) // 4096)",
                                    limits: ResourceLimits(memoryBytes: 32 << 20))
        #expect(memory.status == .memoryLimit, "\(memory)")
        let forks = fixture.python("""
            import os, time
            n = 0
            try:
                for _ in range(50):
                    if os.fork() == 0:
                        time.sleep(5); os._exit(0)
                    n += 1
            except OSError:
                print(n)
            """, limits: ResourceLimits(processes: 10))
        // python + 9 children = 10 (the sandbox's init is not counted).
        #expect(forks.stdoutText == "9\n", "\(forks)")
        #expect(hostProcesses(withUIDs: fixture.uids).isEmpty)
    }

    @Test func compileOnceAndCopyOnWriteWork() throws {
        let fixture = try SandboxFixture(slots: 1, userNamespace: true)
        fixture.sandbox.withSlot { slot in
            let compile = slot.run(RunSpec(executable: "/usr/bin/gcc", arguments: ["-o", "main", "main.c"],
                                           files: [BoxFile(path: "main.c", text: "#include <stdio.h>\nint main(){puts(\"userns\");return 0;}")],
                                           limits: ResourceLimits(cpuTimeMilliseconds: 10_000, wallTimeMilliseconds: 20_000)))
            #expect(compile.status == .ok, "\(compile.stderrText)")
            let run = slot.run(RunSpec(executable: "/box/main", box: .copyOnWrite))
            #expect(run.stdoutText == "userns\n", "\(run)")
        }
    }
}
