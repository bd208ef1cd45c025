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
        // Explicit, not in a deinit: an object's lifetime may end at its last use, which would
        // delete the databases while the rounds still run on them.
        defer { scratch.remove() }
        print("bench store: SQLite \(SQLiteJobStore.sqliteVersion), \(rounds) rounds, scratch \(scratch.path)"
            + " (\(scratch.fileSystemNote)), \(ProcessInfo.processInfo.activeProcessorCount) cores")
        // The stores live inside this call, so they are closed before the directory is removed.
        try measureAndReport(in: scratch)
    }

    private func measureAndReport(in scratch: ScratchDirectory) throws {
        let scenarios = try makeScenarios(in: scratch)
        // Rounds are interleaved (round r of every scenario, then round r+1) so that a change in the
        // load of this shared machine hits all scenarios alike and the ratios stay meaningful.
        var samples = scenarios.map { $0.rows.map { _ in Samples() } }
        for round in 1...rounds {
            for (index, scenario) in scenarios.enumerated() {
                let rates = try scenario.round()
                for (row, rate) in rates.enumerated() { samples[index][row].append(rate) }
            }
            FileHandle.standardError.write(Data("round \(round)/\(rounds) done\n".utf8))
        }

        let baseline = samples[0][0]
        var table = TextTable(header: [
            "scenario", "unit", "median", "p90", "best", "rounds", "× fdatasync (median of per-round ratios)",
        ])
        var medians: [String: Double] = [:]
        for (index, scenario) in scenarios.enumerated() {
            for (row, description) in scenario.rows.enumerated() {
                let measured = samples[index][row]
                // Each round's rate against the fsync rate of the same round: the disk of this
                // shared machine swings by an order of magnitude between minutes.
                let ratios = Samples(zip(measured.values, baseline.values).map { $0 / max($1, 1) })
                let ratio = description.comparesToBaseline && index > 0 ? String(format: "%.2f×", ratios.median) : ""
                table.add([description.name, description.unit, format(measured.median), format(measured.p90),
                           format(measured.quantile(1)), "\(measured.count)", ratio])
                medians[description.name] = measured.median
            }
        }
        print(table.render())
        func median(_ name: String) -> Double { medians[name] ?? 0 }
        print("targets: acknowledged submissions (FULL) ≥ 5,000/s: single caller \(verdict(median(Row.singleFull), 5_000)), "
            + "8 callers \(verdict(median(Row.groupedInserts), 5_000)); get-by-id ≥ 30,000/s: "
            + "\(verdict(median(Row.gets), 30_000)); claim+complete ≥ 5,000/s: single runner "
            + "\(verdict(median(Row.cycles), 5_000)), 4 runners \(verdict(median(Row.groupedCycles), 5_000)), "
            + "4 runners with completeAndClaimNext \(verdict(median(Row.handoverCycles), 5_000))")
    }

    /// Row names, shared by the table and the target summary.
    private enum Row {
        static let baseline = "baseline: write 4 KiB + fdatasync"
        static let singleFull = "insert, 1 row/txn, synchronous=FULL"
        static let singleNormal = "insert, 1 row/txn, synchronous=NORMAL"
        static let batch = "insert, batch of 100/txn, FULL"
        static let cycles = "claim + complete (2 tests), FULL"
        static let groupedInserts = "insert, 1 row/call, 8 threads, FULL"
        static let groupedCycles = "claim + complete, 4 runner threads, FULL"
        static let handoverCycles = "completeAndClaimNext, 4 runner threads, FULL"
        static let gets = "get-by-id, 2 reader threads, writer busy"
        static let concurrentWrites = "  meanwhile: writer inserts, FULL"
    }

    /// One measured activity: `round()` runs one round and returns one rate per row.
    private struct Scenario {
        struct RowDescription {
            var name: String
            var unit: String
            var comparesToBaseline: Bool
        }
        var rows: [RowDescription]
        var round: () throws -> [Double]

        init(_ name: String, _ unit: String, comparesToBaseline: Bool = true, round: @escaping () throws -> Double) {
            rows = [RowDescription(name: name, unit: unit, comparesToBaseline: comparesToBaseline)]
            self.round = { [try round()] }
        }

        init(rows: [RowDescription], round: @escaping () throws -> [Double]) {
            self.rows = rows
            self.round = round
        }
    }

    private func makeScenarios(in scratch: ScratchDirectory) throws -> [Scenario] {
        [
            try fsyncScenario(in: scratch),
            try singleInsertScenario(in: scratch, synchronous: .full, name: Row.singleFull),
            try singleInsertScenario(in: scratch, synchronous: .normal, name: Row.singleNormal),
            try batchInsertScenario(in: scratch),
            try claimCompleteScenario(in: scratch),
            try concurrentInsertScenario(in: scratch, threads: 8),
            try concurrentClaimCompleteScenario(in: scratch, threads: 4, handover: false),
            try concurrentClaimCompleteScenario(in: scratch, threads: 4, handover: true),
            try concurrentReadScenario(in: scratch),
        ]
    }

    private func verdict(_ value: Double, _ target: Double) -> String {
        value >= target ? "met (\(Int(value)))" : "NOT met (\(Int(value)))"
    }

    private func format(_ rate: Double) -> String { String(Int(rate.rounded())) }

    // MARK: Scenarios

    /// A realistic encoded request: a small program, stdin and a few options (≈800 bytes).
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

    /// Operations per second of `body`, which performs `count` operations.
    private static func rate(_ count: Int, _ body: () throws -> Void) rethrows -> Double {
        let start = monotonicNanoseconds()
        try body()
        return Double(count) / (Double(monotonicNanoseconds() - start) / 1e9)
    }

    private func fsyncScenario(in scratch: ScratchDirectory) throws -> Scenario {
        let path = scratch.file("fsync.bin")
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw ValidationError("cannot create \(path): errno \(errno)") }
        let block = [UInt8](repeating: 0x55, count: 4_096)
        let count = operations
        // The descriptor stays open for the whole run; the process exits right after.
        return Scenario(Row.baseline, "syncs/s", comparesToBaseline: false) {
            try Self.rate(count) {
                for index in 0..<count {
                    // Overwrite in place, like a WAL that is reused after checkpoints.
                    guard pwrite(descriptor, block, block.count, off_t((index % 64) * 4_096)) == block.count,
                          fdatasync(descriptor) == 0
                    else { throw ValidationError("write/fdatasync failed in \(path): errno \(errno)") }
                }
            }
        }
    }

    private func singleInsertScenario(in scratch: ScratchDirectory, synchronous: Synchronous, name: String) throws -> Scenario {
        let store = try openStore(scratch, "single-\(synchronous).sqlite", synchronous: synchronous)
        let count = operations
        return Scenario(name, "rows/s") {
            try Self.rate(count) {
                for _ in 0..<count { _ = try store.insert(NewJob(language: "python", request: Self.request)) }
            }
        }
    }

    private func batchInsertScenario(in scratch: ScratchDirectory) throws -> Scenario {
        let store = try openStore(scratch, "batch.sqlite")
        let batches = max(operations / 20, 10)
        return Scenario(Row.batch, "rows/s") {
            try Self.rate(batches * 100) {
                for _ in 0..<batches { _ = try store.insert(batch: Self.batch(of: 100)) }
            }
        }
    }

    /// `count` new jobs, each with its own id (a repeated `NewJob` would repeat its id).
    private static func batch(of count: Int) -> [NewJob] {
        (0..<count).map { _ in NewJob(language: "python", request: request) }
    }

    /// Fills the queue with `count` jobs (not timed).
    private static func fill(_ store: SQLiteJobStore, _ count: Int) throws {
        for _ in 0..<(count / 100) {
            _ = try store.insert(batch: batch(of: 100))
        }
    }

    private func claimCompleteScenario(in scratch: ScratchDirectory) throws -> Scenario {
        let store = try openStore(scratch, "claim.sqlite")
        let count = operations
        return Scenario(Row.cycles, "cycles/s") {
            try Self.fill(store, count)
            return try Self.rate(count) {
                while let job = try store.claimNext(worker: "bench", leaseMilliseconds: 60_000) {
                    try store.complete(id: job.id, worker: "bench", result: Self.result, webhook: nil)
                }
            }
        }
    }

    /// `threads` callers insert one job per call at once, as HTTP threads do; their writes share
    /// commits (group commit), so each fsync acknowledges several submissions.
    private func concurrentInsertScenario(in scratch: ScratchDirectory, threads: Int) throws -> Scenario {
        let store = try openStore(scratch, "grouped-inserts.sqlite")
        let perThread = operations / threads
        return Scenario(Row.groupedInserts, "rows/s") {
            let failure = Mutex<String?>(nil)
            let rate = Self.rate(perThread * threads) {
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
            }
            if let message = failure.withLock({ $0 }) { throw ValidationError("concurrent inserts failed: \(message)") }
            return rate
        }
    }

    /// `threads` runners claim and complete until the queue is empty; with `handover` each runner
    /// completes its job and claims the next in one call (`completeAndClaimNext`).
    private func concurrentClaimCompleteScenario(in scratch: ScratchDirectory, threads: Int, handover: Bool) throws -> Scenario {
        let store = try openStore(scratch, handover ? "handover.sqlite" : "grouped-claims.sqlite")
        let count = operations
        return Scenario(handover ? Row.handoverCycles : Row.groupedCycles, "cycles/s") {
            try Self.fill(store, count)
            let failure = Mutex<String?>(nil)
            let rate = Self.rate(count) {
                let workers = (0..<threads).map { index in
                    Self.spawn {
                        let worker = "bench-\(index)"
                        do {
                            var job = try store.claimNext(worker: worker, leaseMilliseconds: 60_000)
                            while let current = job {
                                if handover {
                                    job = try store.completeAndClaimNext(
                                        id: current.id, worker: worker, result: Self.result, webhook: nil,
                                        leaseMilliseconds: 60_000).next
                                } else {
                                    try store.complete(id: current.id, worker: worker, result: Self.result, webhook: nil)
                                    job = try store.claimNext(worker: worker, leaseMilliseconds: 60_000)
                                }
                            }
                        } catch {
                            failure.withLock { $0 = "\(error)" }
                        }
                    }
                }
                for worker in workers { worker.wait() }
            }
            if let message = failure.withLock({ $0 }) { throw ValidationError("concurrent cycles failed: \(message)") }
            return rate
        }
    }

    /// Two threads read random jobs by id while a third inserts with FULL durability.
    private func concurrentReadScenario(in scratch: ScratchDirectory) throws -> Scenario {
        let store = try openStore(scratch, "concurrent.sqlite")
        var ids: [JobID] = []
        for _ in 0..<50 {
            ids += try store.insert(batch: Self.batch(of: 100)).map(\.id)
        }
        // Half of them finished, so reads include the per-test results.
        for _ in 0..<(ids.count / 2) {
            guard let job = try store.claimNext(worker: "bench", leaseMilliseconds: 60_000) else { break }
            try store.complete(id: job.id, worker: "bench", result: Self.result, webhook: nil)
        }
        let knownIDs = ids
        let seconds = seconds
        return Scenario(rows: [
            .init(name: Row.gets, unit: "gets/s", comparesToBaseline: false),
            .init(name: Row.concurrentWrites, unit: "rows/s", comparesToBaseline: true),
        ]) {
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
            return [Double(endReads - startReads) / elapsed, Double(endWrites - startWrites) / elapsed]
        }
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

/// A fresh directory for the benchmark databases; `remove()` deletes it.
private struct ScratchDirectory {
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

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
