// Writes jobs and completions to a JobStore as fast as it can and prints one line per write that
// returned success, so a test can SIGKILL it at an arbitrary moment and check that every
// acknowledged write survived.
//
//   JobStoreCrashWriter <database path>
//
// Output lines: "inserted <id>" after an insert returned, "completed <id> <byte>" after a completion
// returned (every test output byte of that job equals <byte>).
import Foundation
import JobStore

/// Writes unbuffered, so a line reaches the pipe as soon as the write it reports was acknowledged.
func report(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

let arguments = CommandLine.arguments
guard arguments.count == 2 else {
    FileHandle.standardError.write(Data("usage: JobStoreCrashWriter <database path>\n".utf8))
    exit(2)
}

do {
    let store = try SQLiteJobStore(path: arguments[1])
    var sequence = 0
    while true {
        sequence += 1
        let request = Data("request \(sequence) ".utf8) + Data(repeating: UInt8(sequence % 251), count: 512)
        if sequence % 10 == 0 {
            // Every tenth step is a batch, so kills also land inside multi-row transactions.
            let batch = (0..<5).map { NewJob(language: "c", request: request + Data([UInt8($0)])) }
            for submission in try store.insert(batch: batch) { report("inserted \(submission.id)") }
        } else {
            report("inserted \(try store.insert(NewJob(language: "python", request: request)).id)")
        }
        if sequence % 2 == 0, let job = try store.claimNext(worker: "crash-writer", leaseMilliseconds: 60_000) {
            let byte = UInt8(sequence % 256)
            let tests = (0..<3).map { _ in
                TestResult(verdict: "accepted", stdout: Data(repeating: byte, count: 2_000),
                           stderr: Data(repeating: byte, count: 100), exitCode: 0)
            }
            try store.complete(
                id: job.id, worker: "crash-writer", result: JobResult(verdict: "accepted", tests: tests),
                webhook: WebhookRequest(url: "http://127.0.0.1:9/hook", payload: Data([byte])))
            report("completed \(job.id) \(byte)")
        }
    }
} catch {
    FileHandle.standardError.write(Data("JobStoreCrashWriter: \(error)\n".utf8))
    exit(1)
}
