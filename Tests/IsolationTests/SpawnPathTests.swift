import CIsolation
import Dispatch
import Glibc
import Synchronization
import Testing

@testable import Isolation

/// The spawn path (docs/isolation.md, "Life of a run" 4–6): the sandbox's PID 1 is the small
/// freestanding init with an address space of its own, never a copy of the server's.
@Suite("spawn path", .enabled(if: isRoot, "needs root"), .timeLimit(.minutes(2)))
struct SpawnPathTests {
    /// Fields of /proc/PID/status by name.
    private func status(of pid: Int32) -> [String: String] {
        guard let text = try? System.readFile("/proc/\(pid)/status") else { return [:] }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...].drop(while: \.isWhitespace))
        }
        return fields
    }

    /// Size in KiB of a status field like "VmSize:  1234 kB".
    private func kibibytes(_ field: String?) -> Int? {
        field.flatMap { Int($0.split(separator: " ").first ?? "") }
    }

    @Test func initIsASmallProgramOfItsOwnNotACopyOfTheServer() throws {
        let fixture = try SandboxFixture(slots: 1)
        let finished = DispatchSemaphore(value: 0)
        let outcome = Mutex<RunResult?>(nil)
        let sandbox = fixture.sandbox
        DispatchQueue.global().async {
            let result = sandbox.run(RunSpec(executable: "/usr/bin/python3", arguments: ["-c", "import time; time.sleep(2)"]))
            outcome.withLock { $0 = result }
            finished.signal()
        }
        // Find the run's PID 1 among the slot uid's processes: its last NSpid is 1.
        var initStatus: [String: String]?
        var initExecutable = ""
        var initProcOwner: uid_t?
        for _ in 0..<150 where initStatus == nil {
            for pid in hostProcesses(withUIDs: fixture.uids) {
                let fields = status(of: pid)
                if fields["NSpid"]?.split(separator: "\t").last == "1" {
                    initStatus = fields
                    var buffer = [CChar](repeating: 0, count: 256)
                    let length = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
                    var info = stat()
                    if stat("/proc/\(pid)/mem", &info) == 0 { initProcOwner = info.st_uid }
                    if length > 0 { initExecutable = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
                }
            }
            if initStatus == nil { usleep(20_000) }
        }
        finished.wait()
        #expect(outcome.withLock { $0?.status } == .ok, "\(String(describing: outcome.withLock { $0 }))")
        let found = try #require(initStatus, "the run's init was never seen")
        let initSize = try #require(kibibytes(found["VmSize"]), "VmSize of init: \(found)")
        let serverSize = try #require(kibibytes(status(of: getpid())["VmSize"]))
        // A copy of the server would be as large as the server (hundreds of MiB of mappings);
        // the freestanding init is its code page, a stack and the vDSO.
        #expect(initSize < 2048, "init maps \(initSize) KiB; the server \(serverSize) KiB")
        #expect(initExecutable.hasPrefix("/memfd:sandbox-init"), "init runs \(initExecutable)")
        // It runs as the slot uid but is undumpable (it makes itself so before the program
        // exists), so its /proc/PID/mem belongs to root and the program cannot open it.
        #expect(found["Uid"]?.split(separator: "\t").first.map(String.init) == String(fixture.sandbox.configuration.firstUID))
        #expect(initProcOwner == 0)
    }
    /// A vfork child that changes uid marks the memory it shares with the server undumpable;
    /// the server must get its dumpability back (or /proc/self, core dumps and ptrace-based
    /// tools stop working for it) once no child is in that window.
    @Test func theServerIsDumpableAgainAfterARun() throws {
        let fixture = try SandboxFixture(slots: 1)
        let before = cis_process_dumpable()
        #expect(before == 1)
        let result = fixture.sandbox.run(RunSpec(executable: "/bin/true"))
        #expect(result.status == .ok)
        #expect(cis_process_dumpable() == before)
    }

    /// clone3 exists on every kernel the sandbox runs on, yet a seccomp policy above the server
    /// can answer ENOSYS for it (systemd's RestrictNamespaces= does).
    /// The fork-like spawn of user-namespace mode then uses clone(2), which can do the job on v1;
    /// on v2 only clone3 can enter the job's group (CLONE_INTO_CGROUP), so the run fails.
    @Test func userNamespaceModeFallsBackToCloneWhenClone3IsDenied() throws {
        var denied: Int32 = -1
        var deniedError: Int32 = 0
        var spawnerFiltered = false
        var version = 0
        var result: RunResult?
        var failure: (any Error)?
        // The filter stays with a thread and every thread it creates: a thread of its own makes
        // the fixture (its spawner) and is gone afterwards, as is the spawner once it is closed.
        onThreadOfItsOwn {
            denied = cis_deny_clone3_on_this_thread()
            guard denied == 0 else {
                deniedError = errno
                return
            }
            do {
                let fixture = try SandboxFixture(slots: 1, userNamespace: true)
                version = fixture.sandbox.cgroupVersion
                spawnerFiltered = status(of: fixture.sandbox.spawners[0].threadID)["Seccomp"] == "2"
                result = fixture.sandbox.run(RunSpec(executable: "/bin/sh", arguments: ["-c", "echo fallback"]))
            } catch {
                failure = error
            }
        }
        try #require(denied == 0, "install the test filter: \(String(cString: strerror(deniedError)))")
        #expect(failure == nil, "\(String(describing: failure))")
        #expect(spawnerFiltered, "the spawner thread inherits the filter")
        if version == 1 {
            #expect(result?.status == .ok && result?.stdoutText == "fallback\n", "\(String(describing: result))")
        } else {
            #expect(result?.status == .internalError, "\(String(describing: result))")
        }
    }

    /// Runs `body` on a new thread and waits for it.
    private func onThreadOfItsOwn(_ body: @escaping () -> Void) {
        final class Work {
            let body: () -> Void
            init(_ body: @escaping () -> Void) { self.body = body }
        }
        var thread = pthread_t()
        let work = Unmanaged.passRetained(Work(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Work>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, work)
        precondition(rc == 0, "pthread_create: \(rc)")
        pthread_join(thread, nil)
    }

    /// The init image is sealed read-only: nothing, not even this process, can rewrite the
    /// program every sandbox starts as PID 1.
    @Test func theInitImageIsSealedAndReadOnly() throws {
        let image = cis_init_image_fd()
        try #require(image >= 0)
        defer { close(image) }
        // <fcntl.h>'s F_GET_SEALS and F_SEAL_* are macros Swift does not import.
        let getSeals: Int32 = 1024 + 10
        let (sealSeal, sealShrink, sealGrow, sealWrite): (Int32, Int32, Int32, Int32) = (1, 2, 4, 8)
        let seals = fcntl(image, getSeals)
        #expect(seals >= 0)
        #expect(seals & sealWrite != 0)
        #expect(seals & sealSeal != 0)
        #expect(seals & sealGrow != 0 && seals & sealShrink != 0)
        #expect(fcntl(image, F_GETFL) & O_ACCMODE == O_RDONLY)
        // Even a writable descriptor of the same file cannot change it.
        let writable = open("/proc/self/fd/\(image)", O_RDWR | O_CLOEXEC)
        if writable >= 0 {
            defer { close(writable) }
            #expect(Glibc.pwrite(writable, "x", 1, 0) < 0 && errno == EPERM)
        }
    }
}
