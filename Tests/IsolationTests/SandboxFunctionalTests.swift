import Glibc
import Testing

@testable import Isolation

@Suite("programs run normally inside", .enabled(if: isRoot, "needs root"), .timeLimit(.minutes(2)))
struct SandboxFunctionalTests {
    @Test func identityAndFilesystemLayout() throws {
        let fixture = try SandboxFixture(slots: 1)
        let result = fixture.python("""
            import os, socket
            print(os.getuid(), os.getgid(), os.getpid(), socket.gethostname(), os.getcwd())
            for p in ("/usr", "/etc", "/"):
                try:
                    open(p + "/x", "w"); print(p, "writable")
                except OSError as e:
                    print(p, e.errno)
            for p in ("/box", "/tmp", "/dev/shm"):
                open(p + "/x", "w").write("ok"); print(p, "writable")
            print(sorted(os.listdir("/dev")))
            """)
        let uid = fixture.sandbox.configuration.firstUID
        #expect(result.status == .ok, "\(result)")
        #expect(result.stdoutText == """
            \(uid) \(uid) 2 sandbox /box
            /usr 30
            /etc 30
            / 30
            /box writable
            /tmp writable
            /dev/shm writable
            ['fd', 'null', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'urandom', 'zero']

            """, "\(result.stdoutText)")
    }

    @Test func stdinBytesAndExitStatus() throws {
        let fixture = try SandboxFixture(slots: 1)
        let input = Array(repeating: Array("line of input\n".utf8), count: 20_000).flatMap { $0 }  // > a pipe buffer
        let result = fixture.python("""
            import sys
            data = sys.stdin.buffer.read()
            print(len(data)); sys.stderr.write("err\\n"); sys.exit(3)
            """, stdin: .bytes(input))
        #expect(result.status == .runtimeError)
        #expect(result.exitCode == 3)
        #expect(result.stdoutText == "\(input.count)\n")
        #expect(result.stderrText == "err\n")
    }

    @Test func stdinFromAHostFile() throws {
        let fixture = try SandboxFixture(slots: 1)
        let path = "/tmp/sandbox-stdin-\(getpid())"
        try System.createFile(path, contents: Array("from a file".utf8))
        defer { unlink(path) }
        let result = fixture.sandbox.run(RunSpec(executable: "/bin/cat", stdin: .file(path)))
        #expect(result.stdoutText == "from a file")
    }

    @Test func aMissingProgramIsAnInternalErrorThatSaysSo() throws {
        let fixture = try SandboxFixture(slots: 1)
        let result = fixture.sandbox.run(RunSpec(executable: "/usr/bin/definitely-not-here"))
        #expect(result.status == .internalError)
        #expect(result.message == "execve /usr/bin/definitely-not-here: No such file or directory")
    }

    @Test func invalidSpecsAreRejectedWithAReason() throws {
        let fixture = try SandboxFixture(slots: 1)
        #expect(fixture.sandbox.run(RunSpec(executable: "python3")).message?.contains("absolute path") == true)
        #expect(fixture.sandbox.run(RunSpec(executable: "/bin/true", files: [BoxFile(path: "../x", text: "")])).message?
            .contains("invalid box path") == true)
        #expect(fixture.sandbox.run(RunSpec(executable: "/bin/true", limits: ResourceLimits(wallTimeMilliseconds: 0))).status == .internalError)
    }

    @Test func cCompileOnceThenRunOverACopyOnWriteBox() throws {
        let fixture = try SandboxFixture(slots: 1)
        try fixture.sandbox.withSlot { slot in
            let compile = slot.run(RunSpec(
                executable: "/usr/bin/gcc", arguments: ["-O2", "-o", "main", "main.c"],
                files: [BoxFile(path: "main.c", text: """
                    #include <stdio.h>
                    int main(void) {
                        FILE *f = fopen("scratch", "a"); fputs("x", f); fclose(f);
                        f = fopen("scratch", "r"); int n = 0; while (fgetc(f) != EOF) n++;
                        int a, b; if (scanf("%d %d", &a, &b) != 2) return 2;
                        printf("%d %d\\n", a + b, n); return 0;
                    }
                    """)],
                box: .fresh, limits: ResourceLimits(cpuTimeMilliseconds: 10_000, wallTimeMilliseconds: 20_000, processes: 32)))
            #expect(compile.status == .ok, "\(compile.stderrText)")
            // Each test sees the compiled box but not the previous test's changes.
            for (input, expected) in [("1 2", "3 1\n"), ("40 2", "42 1\n")] {
                let run = slot.run(RunSpec(executable: "/box/main", box: .copyOnWrite, stdin: .bytes(Array(input.utf8))))
                #expect(run.status == .ok, "\(run)")
                #expect(run.stdoutText == expected)
            }
            let scratch = try slot.box.read("scratch")
            let binary = try slot.box.read("main")
            #expect(scratch == nil, "test writes never reach the compiled box")
            #expect(binary?.prefix(4) == [0x7f, 0x45, 0x4c, 0x46])
        }
    }

    @Test func interpretedSourcesArePreparedOnceAndSharedCopyOnWrite() throws {
        let fixture = try SandboxFixture(slots: 1)
        try fixture.sandbox.withSlot { slot in
            try slot.prepareBox(files: [BoxFile(path: "main.py", text: "import sys\nopen('out', 'w').write('x')\nprint(int(sys.stdin.read()) * 2)")],
                                sizeBytes: 8 << 20)
            for (input, expected) in [("21", "42\n"), ("5", "10\n")] {
                let run = slot.run(RunSpec(executable: "/usr/bin/python3", arguments: ["main.py"], box: .copyOnWrite,
                                           stdin: .bytes(Array(input.utf8))))
                #expect(run.stdoutText == expected, "\(run)")
            }
            let leftover = try slot.box.read("out")
            #expect(leftover == nil)
        }
    }

    @Test func cppJavaNodeAndBashWork() throws {
        let fixture = try SandboxFixture(slots: 1)
        let roomy = ResourceLimits(cpuTimeMilliseconds: 20_000, wallTimeMilliseconds: 40_000, memoryBytes: 1 << 30, processes: 128)
        fixture.sandbox.withSlot { slot in
            let cpp = slot.run(RunSpec(executable: "/usr/bin/g++", arguments: ["-O2", "-o", "a", "a.cpp"],
                                       files: [BoxFile(path: "a.cpp", text: "#include <iostream>\nint main(){std::cout<<\"c++ ok\"<<std::endl;}")],
                                       limits: roomy))
            #expect(cpp.status == .ok, "\(cpp.stderrText)")
            #expect(slot.run(RunSpec(executable: "/box/a", box: .copyOnWrite)).stdoutText == "c++ ok\n")

            let javac = slot.run(RunSpec(executable: "/usr/bin/javac", arguments: ["Main.java"],
                                         files: [BoxFile(path: "Main.java", text: "public class Main { public static void main(String[] a) { System.out.println(\"java ok\"); } }")],
                                         limits: roomy))
            #expect(javac.status == .ok, "\(javac.stderrText)")
            let java = slot.run(RunSpec(executable: "/usr/bin/java", arguments: ["-cp", "/box", "Main"], box: .copyOnWrite, limits: roomy))
            #expect(java.stdoutText == "java ok\n", "\(java)")
        }
        let node = fixture.sandbox.run(RunSpec(executable: "/usr/bin/node", arguments: ["-e", "console.log('node ' + (6*7))"]))
        #expect(node.stdoutText == "node 42\n", "\(node)")
        let bash = fixture.sandbox.run(RunSpec(executable: "/bin/bash", arguments: ["-c", "echo $((6*7)) | cat; ls /box"],
                                               files: [BoxFile(path: "in.txt", text: "x")]))
        #expect(bash.stdoutText == "42\nin.txt\n", "\(bash)")
    }

    @Test func accountingReportsCPUWallAndMemory() throws {
        let fixture = try SandboxFixture(slots: 1)
        let result = fixture.python("""
            b = bytearray(48 << 20)
            for i in range(0, len(b), 4096): b[i] = 1
            x = 0
            for i in range(3_000_000): x += i
            """, limits: ResourceLimits(memoryBytes: 256 << 20))
        #expect(result.status == .ok)
        #expect(result.memoryBytes >= 48 << 20 && result.memoryBytes < 96 << 20, "peak \(result.memoryBytes)")
        #expect(result.cpuTimeMicroseconds > 50_000)
        #expect(result.wallTimeMicroseconds >= result.cpuTimeMicroseconds / 2)
    }

    @Test func anAddressSpaceLimitMakesAllocationFailInsteadOfOOM() throws {
        let fixture = try SandboxFixture(slots: 1)
        let result = fixture.python("""
            try:
                b = bytearray(512 << 20); print("allocated")
            except MemoryError:
                print("MemoryError")
            """, limits: ResourceLimits(memoryBytes: 1 << 30, addressSpaceBytes: 256 << 20))
        #expect(result.stdoutText == "MemoryError\n", "\(result)")
    }

    @Test func networkCanBeAllowedPerRun() throws {
        let fixture = try SandboxFixture(slots: 1)
        let result = fixture.python("import os; print(sorted(os.listdir('/sys/class/net')) if os.path.exists('/sys/class/net') else 'no sys'); import socket; print(len(socket.if_nameindex()) > 1)", network: true)
        #expect(result.stdoutText.hasSuffix("True\n"), "\(result)")
        let isolated = fixture.python("import socket; print([n for _, n in socket.if_nameindex()])")
        #expect(isolated.stdoutText == "['lo']\n", "\(isolated)")
    }

    @Test func concurrentRunsUseDistinctSlotsAndUids() throws {
        let fixture = try SandboxFixture(slots: 2)
        let results = UnsafeMutablePointer<RunResult?>.allocate(capacity: 4)
        results.initialize(repeating: nil, count: 4)
        defer { results.deallocate() }
        let address = UInt(bitPattern: results)
        let sandbox = fixture.sandbox
        DispatchApply.concurrentPerform(iterations: 4) { index in
            let result = sandbox.run(RunSpec(executable: "/usr/bin/python3", arguments: ["-c", "import os, time; time.sleep(0.3); print(os.getuid())"]))
            UnsafeMutablePointer<RunResult?>(bitPattern: address)![index] = result
        }
        let uids = (0..<4).compactMap { results[$0].flatMap { UInt32($0.stdoutText.dropLast()) } }
        #expect(uids.count == 4)
        #expect(Set(uids).isSubset(of: Set(fixture.uids)))
    }
}

import Dispatch

enum DispatchApply {
    static func concurrentPerform(iterations: Int, _ body: @Sendable (Int) -> Void) {
        DispatchQueue.concurrentPerform(iterations: iterations, execute: body)
    }
}
