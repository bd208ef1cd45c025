import Dispatch
import Glibc
import Testing

@testable import Isolation

@Suite(.enabled(if: isRoot, "needs root"))
struct CancellationTests {
    @Test func cancellingKillsARunningProgramAtOnce() throws {
        let fixture = try SandboxFixture(slots: 1)
        let token = RunCancellation()
        let started = DispatchTime.now().uptimeNanoseconds
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(300)) { token.cancel() }
        let result = fixture.sandbox.run(
            RunSpec(executable: "/usr/bin/sleep", arguments: ["30"],
                    limits: ResourceLimits(cpuTimeMilliseconds: 20_000, wallTimeMilliseconds: 20_000)),
            cancellation: token)
        let elapsedMilliseconds = (DispatchTime.now().uptimeNanoseconds - started) / 1_000_000
        #expect(result.status == .cancelled)
        #expect(elapsedMilliseconds < 5_000, "the run should end soon after cancel(), took \(elapsedMilliseconds) ms")
        #expect(hostProcesses(withUIDs: fixture.uids).isEmpty)
    }

    @Test func aCancelledTokenStopsLaterRunsBeforeTheyStart() throws {
        let fixture = try SandboxFixture(slots: 1)
        let token = RunCancellation()
        token.cancel()
        token.cancel()  // idempotent
        let result = fixture.sandbox.run(RunSpec(executable: "/usr/bin/true"), cancellation: token)
        #expect(result.status == .cancelled)
        #expect(result.exitCode == nil)
    }

    @Test func anUncancelledTokenChangesNothing() throws {
        let fixture = try SandboxFixture(slots: 1)
        let result = fixture.sandbox.run(RunSpec(executable: "/usr/bin/echo", arguments: ["hi"]), cancellation: RunCancellation())
        #expect(result.status == .ok)
        #expect(result.stdoutText == "hi\n")
    }
}
