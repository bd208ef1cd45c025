import ArgumentParser
import Foundation
import JobStore
import Synchronization

/// `sandbox-server bench store`: throughput of the SQLite job store on this machine's disk.
///
/// Every scenario runs several rounds and reports the median and p90 of per-round rates. The
/// baseline is the raw `fdatasync` rate of the same directory: with `synchronous=FULL` each
/// acknowledged commit costs at least one, so it bounds what FULL can reach.
struct BenchStore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Benchmark the job store: single and batch inserts, claim+complete, get-by-id under load.")

    @Option(help: "Rounds per scenario (the table shows medians over rounds).")
    var rounds = 5

    @Option(help: "Operations per round for the single-row scenarios.")
    var operations = 2_000

    @Option(help: "Seconds per round for the concurrent get-by-id scenario.")
    var seconds = 1.0

    @Option(help: "Parent directory for the scratch databases (must be on a real disk for FULL to mean anything).")
    var directory = "/tmp"

    func validate() throws {
        guard rounds >= 1, operations >= 100, seconds > 0 else {
            throw ValidationError("need --rounds ≥ 1, --operations ≥ 100, --seconds > 0")
        }
    }

    func run() throws {
        let scratch = try ScratchDirectory(parent: directory)
        print("bench store: SQLite \(SQLiteJobStore.sqliteVersion), \(rounds) rounds, scratch \(scratch.path)"
            + " (\(scratch.fileSystemNote)), \(ProcessInfo.processInfo.activeProcessorCount) cores")

        var table = TextTable(header: ["scenario", "unit", "median", "p90", "rounds", "vs fdatasync/s"])
        let baseline = try measureFsyncRate(in: scratch)
        table.add(row("baseline: write 4 KiB + fdatasync", "syncs/s", baseline, baseline: nil))

        let fullInserts = try measureSingleInserts(in: scratch, synchronous: .full)
        table.add(row("insert, 1 row/txn, synchronous=FULL", "rows/s", fullInserts, baseline: baseline))
        let normalInserts = try measureSingleInserts(in: scratch, synchronous: .normal)
        table.add(row("insert, 1 row/txn, synchronous=NORMAL", "rows/s", normalInserts, baseline: baseline))
        let batches = try measureBatchInserts(in: scratch)
        table.add(row("insert, batch of 100/txn, FULL", "rows/s", batches, baseline: baseline))
        let cycles = try measureClaimComplete(in: scratch)
        table.add(row("claim + complete (2 tests), FULL", "cycles/s", cycles, baseline: baseline))
        let groupedInserts = try measureConcurrentInserts(in: scratch, threads: 8)
        table.add(row("insert, 1 row/call, 8 threads, FULL", "rows/s", groupedInserts, baseline: baseline))
        let groupedCycles = try measureConcurrentClaimComplete(in: scratch, threads: 4)
        table.add(row("claim + complete, 4 runner threads, FULL", "cycles/s", groupedCycles, baseline: baseline))
        let (gets, concurrentInserts) = try measureConcurrentReads(in: scratch)
        table.add(row("get-by-id, 2 reader threads, writer busy", "gets/s", gets, baseline: nil))
        table.add(row("  meanwhile: writer inserts, FULL", "rows/s", concurrentInserts, baseline: baseline))
        print(table.render())

        print("targets: acknowledged submissions (FULL) ≥ 5,000/s: single caller \(verdict(fullInserts.median, 5_000)), "
            + "8 callers \(verdict(groupedInserts.median, 5_000)); get-by-id ≥ 30,000/s: \(verdict(gets.median, 30_000)); "
            + "claim+complete ≥ 5,000/s: single runner \(verdict(cycles.median, 5_000)), "
            + "4 runners \(verdict(groupedCycles.median, 5_000))")
    }

    private func verdict(_ value: Double, _ target: Double) -> String {
        value >= target ? "met (\(Int(value)))" : "NOT met (\(Int(value)))"
    }

    private func row(_ name: String, _ unit: String, _ samples: Samples, baseline: Samples?) -> [String] {
        let ratio = baseline.map { String(format: "%.2f×", samples.median / max($0.median, 1)) } ?? ""
        return [name, unit, format(samples.median), format(samples.p90), "\(samples.count)", ratio]
    }

    private func format(_ rate: Double) -> String { String(Int(rate.rounded())) }

    // MARK: Scenarios

    /// A realistic encoded request: a small program, stdin and a few options (≈600 bytes).
    private static let request = Data(
        (#"{"language":"python","files":[{"name":"main.py","content":"import sys\nfor line in sys.stdin:\n    print(sum(map(int, line.split())))\n"}],"stdin":"1 2 3\n4 5 6\n","limits":{"cpu_ms":2000,"wall_ms":5000,"memory_bytes":268435456,"output_bytes":65536},"tests":[{"stdin":"1 2\n","expected":"3\n"},{"stdin":"5 5\n","expected":"10\n"}],"metadata":{"course":"cs101","assignment":"a1"}}"#
            + String(repeating: " ", count: 200)).utf8)

    private static let result = JobResult(
        verdict: "accepted", score: 1,
        tests: (0..<2).map { index in
            TestResult(verdict: "accepted", stdout: Data("\(index * 7)\n".utf8) + Data(repeating: 0x2E, count: 400),
                       stderr: Data(), exitCode: 0, cpuMilliseconds: 12, wallMilliseconds: 20, memoryBytes: 9_000_000)
        })

    private func openStore(_ scratch: ScratchDirectory, _ name: String, synchronous: Synchronous = .full) throws -> SQLiteJobStore {
        var configuration = SQLiteJobStore.Configuration(path: scratch.file(name))
        configuration.synchronous = synchronous
        return try SQLiteJobStore(configuration: configuration)
    }

    /// Rate of one operation repeated `count` times, per round.
    private func rounds(_ count: Int, _ operation: () throws -> Void) rethrows -> Samples {
        var samples = Samples()
        for _ in 0..<rounds {
            let start = monotonicNanoseconds()
            try operation()
            samples.append(Double(count) / (Double(monotonicNanoseconds() - start) / 1e9))
        }
        return samples
    }

    private func measureFsyncRate(in scratch: ScratchDirectory) throws -> Samples {
        let path = scratch.file("fsync.bin")
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw ValidationError("cannot create \(path): errno \(errno)") }
        defer { close(descriptor) }
        let block = [UInt8](repeating: 0x55, count: 4_096)
        return try rounds(operations) {
            for index in 0..<operations {
                // Overwrite in place, like a WAL that is reset after checkpoints.
                guard pwrite(descriptor, block, block.count, off_t((index % 64) * 4_096)) == block.count,
                      fdatasync(descriptor) == 0
                else { throw ValidationError("write/fdatasync failed in \(path): errno \(errno)") }
            }
        }
    }

    private func measureSingleInserts(in scratch: ScratchDirectory, synchronous: Synchronous) throws -> Samples {
        let store = try openStore(scratch, "single-\(synchronous).sqlite", synchronous: synchronous)
        return try rounds(operations) {
            for _ in 0..<operations { _ = try store.insert(NewJob(language: "python", request: Self.request)) }
        }
    }

    private func measureBatchInserts(in scratch: ScratchDirectory) throws -> Samples {
        let store = try openStore(scratch, "batch.sqlite")
        let batch = Array(repeating: NewJob(language: "python", request: Self.request), count: 100)
        let batches = max(operations / 20, 10)
        return try rounds(batches * 100) {
            for _ in 0..<batches { _ = try store.insert(batch: batch) }
        }
    }

    private func measureClaimComplete(in scratch: ScratchDirectory) throws -> Samples {
        let store = try openStore(scratch, "claim.sqlite")
        var samples = Samples()
        for _ in 0..<rounds {
            // Fill the queue outside the timed part.
            for _ in 0..<(operations / 100) {
                _ = try store.insert(batch: Array(repeating: NewJob(language: "python", request: Self.request), count: 100))
            }
            let start = monotonicNanoseconds()
            var cycles = 0
            while let job = try store.claimNext(worker: "bench", leaseMilliseconds: 60_000) {
                try store.complete(id: job.id, worker: "bench", result: Self.result, webhook: nil)
                cycles += 1
            }
            samples.append(Double(cycles) / (Double(monotonicNanoseconds() - start) / 1e9))
        }
        return samples
    }

    /// `threads` callers insert one job per call at once, as HTTP threads do; their writes share
    /// commits (group commit), so each fsync acknowledges several submissions.
    private func measureConcurrentInserts(in scratch: ScratchDirectory, threads: Int) throws -> Samples {
        let store = try openStore(scratch, "grouped-inserts.sqlite")
        let perThread = operations / threads
        return try rounds(perThread * threads) {
            let failure = Mutex<String?>(nil)
            let workers = (0..<threads).map { _ in
                Self.spawn {
                    do {
                        for _ in 0..<perThread { _ = try store.insert(NewJob(language: "python", request: Self.request)) }
                    } catch {
                        failure.withLock { $0 = "\(error)" }
                    }
                }
            }
            for worker in workers { worker.wait() }
            if let message = failure.withLock({ $0 }) { throw ValidationError("concurrent inserts failed: \(message)") }
        }
    }

    /// `threads` runners claim and complete until the queue is empty.
    private func measureConcurrentClaimComplete(in scratch: ScratchDirectory, threads: Int) throws -> Samples {
        let store = try openStore(scratch, "grouped-claims.sqlite")
        var samples = Samples()
        for _ in 0..<rounds {
            for _ in 0..<(operations / 100) {
                _ = try store.insert(batch: Array(repeating: NewJob(language: "python", request: Self.request), count: 100))
            }
            let cycles = Atomic<Int>(0)
            let failure = Mutex<String?>(nil)
            let start = monotonicNanoseconds()
            let workers = (0..<threads).map { index in
                Self.spawn {
                    do {
                        while let job = try store.claimNext(worker: "bench-\(index)", leaseMilliseconds: 60_000) {
                            try store.complete(id: job.id, worker: "bench-\(index)", result: Self.result, webhook: nil)
                            cycles.add(1, ordering: .relaxed)
                        }
                    } catch {
                        failure.withLock { $0 = "\(error)" }
                    }
                }
            }
            for worker in workers { worker.wait() }
            if let message = failure.withLock({ $0 }) { throw ValidationError("concurrent cycles failed: \(message)") }
            samples.append(Double(cycles.load(ordering: .relaxed)) / (Double(monotonicNanoseconds() - start) / 1e9))
        }
        return samples
    }

    /// Two threads read random jobs by id while a third inserts with FULL durability.
    private func measureConcurrentReads(in scratch: ScratchDirectory) throws -> (gets: Samples, inserts: Samples) {
        let store = try openStore(scratch, "concurrent.sqlite")
        var ids: [JobID] = []
        for _ in 0..<50 {
            ids += try store.insert(batch: Array(repeating: NewJob(language: "python", request: Self.request), count: 100)).map(\.id)
        }
        // Half of them finished, so reads include the per-test results.
        for _ in 0..<(ids.count / 2) {
            guard let job = try store.claimNext(worker: "bench", leaseMilliseconds: 60_000) else { break }
            try store.complete(id: job.id, worker: "bench", result: Self.result, webhook: nil)
        }
        let knownIDs = ids
        var gets = Samples()
        var inserts = Samples()
        for _ in 0..<rounds {
            let counters = ConcurrentCounters()
            let threads = [
                Self.spawn { counters.runReader(store: store, ids: knownIDs, seed: 1) },
                Self.spawn { counters.runReader(store: store, ids: knownIDs, seed: 2) },
                Self.spawn { counters.runWriter(store: store, request: Self.request) },
            ]
            Thread.sleep(forTimeInterval: 0.1)  // let all three threads get going
            let (startReads, startWrites) = counters.snapshot()
            let start = monotonicNanoseconds()
            Thread.sleep(forTimeInterval: seconds)
            let (endReads, endWrites) = counters.snapshot()
            let elapsed = Double(monotonicNanoseconds() - start) / 1e9
            counters.stop()
            for thread in threads { thread.wait() }
            if let failure = counters.failure { throw ValidationError("concurrent scenario failed: \(failure)") }
            gets.append(Double(endReads - startReads) / elapsed)
            inserts.append(Double(endWrites - startWrites) / elapsed)
        }
        return (gets, inserts)
    }

    private static func spawn(_ body: @escaping @Sendable () -> Void) -> FinishedSignal {
        let finished = FinishedSignal()
        let thread = Thread {
            body()
            finished.signal()
        }
        thread.start()
        return finished
    }
}

/// Lets the main thread wait for a benchmark thread.
private final class FinishedSignal: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func signal() { semaphore.signal() }
    func wait() { semaphore.wait() }
}

/// Operation counts shared by the reader and writer threads.
private final class ConcurrentCounters: Sendable {
    private let reads = Atomic<Int>(0)
    private let writes = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let firstFailure = Mutex<String?>(nil)

    var failure: String? { firstFailure.withLock { $0 } }

    func snapshot() -> (Int, Int) { (reads.load(ordering: .relaxed), writes.load(ordering: .relaxed)) }
    func stop() { stopped.store(true, ordering: .relaxed) }

    private func record(_ error: any Error) {
        firstFailure.withLock { if $0 == nil { $0 = "\(error)" } }
        stop()
    }

    func runReader(store: SQLiteJobStore, ids: [JobID], seed: UInt64) {
        var generator = SplitMix(state: seed)
        do {
            while !stopped.load(ordering: .relaxed) {
                let id = ids[Int(generator.next() % UInt64(ids.count))]
                guard try store.job(id: id) != nil else { throw ValidationError("job \(id) vanished") }
                reads.add(1, ordering: .relaxed)
            }
        } catch {
            record(error)
        }
    }

    func runWriter(store: SQLiteJobStore, request: Data) {
        do {
            while !stopped.load(ordering: .relaxed) {
                _ = try store.insert(NewJob(language: "python", request: request))
                writes.add(1, ordering: .relaxed)
            }
        } catch {
            record(error)
        }
    }
}

/// A tiny deterministic generator so reader threads do not contend on a shared one.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A fresh directory for the benchmark databases, removed afterwards.
private final class ScratchDirectory {
    let path: String

    init(parent: String) throws {
        var template = Array((parent + "/sandbox-bench-store-XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else {
            throw ValidationError("cannot create a scratch directory under \(parent): errno \(errno)")
        }
        path = String(cString: created)
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// The file system holding the directory (from /proc/self/mountinfo), with a warning for
    /// tmpfs, where fsync is free and FULL figures mean nothing.
    var fileSystemNote: String {
        guard let mountInfo = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else {
            return "file system unknown"
        }
        // Fields: id parent major:minor root mount-point options … - type source super-options
        var best: (mountPoint: String, type: String, source: String)?
        for line in mountInfo.split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            let fields = halves[0].split(separator: " ")
            guard halves.count == 2, fields.count >= 5 else { continue }
            let mountPoint = String(fields[4])
            let tail = halves[1].split(separator: " ")
            guard tail.count >= 2, path == mountPoint || path.hasPrefix(mountPoint == "/" ? "/" : mountPoint + "/")
            else { continue }
            if mountPoint.count >= (best?.mountPoint.count ?? -1) {
                best = (mountPoint, String(tail[0]), String(tail[1]))
            }
        }
        guard let best else { return "file system unknown" }
        let note = "\(best.type) on \(best.source), mounted at \(best.mountPoint)"
        return best.type == "tmpfs" ? note + " — WARNING: tmpfs, fsync is free" : note
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
