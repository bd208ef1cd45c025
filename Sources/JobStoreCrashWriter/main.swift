// Writes jobs and completions to a JobStore from several threads at once (so writes share group
// commits) and prints one line per write that returned success, so a test can SIGKILL it at an
// arbitrary moment and check that every acknowledged write survived.
//
//   JobStoreCrashWriter <database path> [threads]
//
// Output lines: "inserted <id>" after an insert returned, "completed <id> <byte>" after a completion
// returned (every test output byte of that job equals <byte>).
import Foundation
import JobStore

/// Writes one line with a single write(2): lines from different threads never interleave (a pipe
/// write below PIPE_BUF is atomic) and reach the pipe as soon as the write they report returned.
func report(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("JobStoreCrashWriter: \(message)\n".utf8))
    exit(1)
}

/// One thread's endless stream of single inserts, batches and completions.
func writeForever(to store: SQLiteJobStore, thread: Int) throws {
    let worker = "crash-writer-\(thread)"
    var sequence = 0
    while true {
        sequence += 1
        let request = Data("request \(thread)/\(sequence) ".utf8) + Data(repeating: UInt8(sequence % 251), count: 512)
        if sequence % 10 == 0 {
            // Every tenth step is a batch, so kills also land inside multi-row writes.
            let batch = (0..<5).map { NewJob(language: "c", request: request + Data([UInt8($0)])) }
            for submission in try store.insert(batch: batch) { report("inserted \(submission.id)") }
        } else {
            report("inserted \(try store.insert(NewJob(language: "python", request: request)).id)")
        }
        if sequence % 2 == 0, let job = try store.claimNext(worker: worker, leaseMilliseconds: 600_000) {
            let byte = UInt8((sequence + thread) % 256)
            let tests = (0..<3).map { _ in
                TestResult(verdict: "accepted", stdout: Data(repeating: byte, count: 2_000),
                           stderr: Data(repeating: byte, count: 100), exitCode: 0)
            }
            try store.complete(
                id: job.id, worker: worker, result: JobResult(verdict: "accepted", tests: tests),
                webhook: WebhookRequest(url: "http://127.0.0.1:9/hook", payload: Data([byte])))
            report("completed \(job.id) \(byte)")
        }
    }
}

func main() -> Never {
    let arguments = CommandLine.arguments
    guard arguments.count == 2 || arguments.count == 3 else {
        fail("usage: JobStoreCrashWriter <database path> [threads]")
    }
    let threads = arguments.count == 3 ? Int(arguments[2]) ?? 1 : 1
    let store: SQLiteJobStore
    do {
        store = try SQLiteJobStore(path: arguments[1])
    } catch {
        fail("\(error)")
    }
    // Real threads, not concurrentPerform: that caps concurrency at the core count.
    for thread in 0..<max(threads, 1) {
        Thread {
            do {
                try writeForever(to: store, thread: thread)
            } catch {
                fail("\(error)")
            }
        }.start()
    }
    while true { sleep(3_600) }
}

main()
