import CSQLite
import Foundation
import JobStore
import Testing

/// Runs a system tool and fails the test if it does not exit 0.
func runTool(_ path: String, _ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw RawSQLiteError(message: "\(path) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
    }
}

let isRoot = geteuid() == 0

@Suite struct OpenFailureTests {
    /// Creates a store with a few jobs at `path` and closes it.
    private func populate(_ path: String, jobs: Int = 3, size: Int = 100) throws {
        let store = try SQLiteJobStore(path: path)
        _ = try store.insert(batch: (0..<jobs).map { _ in NewJob(language: "c", request: Data(repeating: 0x41, count: size)) })
    }

    @Test func unwritableDatabaseFileIsAStartupErrorNamingTheFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("jobs.sqlite")
        try populate(path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(chmod(path, 0o444) == 0)
        // Root ignores permission bits; an immutable file is unwritable even for root.
        if isRoot { try runTool("/usr/bin/chattr", ["+i", path]) }
        defer { if isRoot { try? runTool("/usr/bin/chattr", ["-i", path]) } }
        let error = #expect(throws: JobStoreError.self) { try SQLiteJobStore(path: path) }
        #expect(error?.code == .unwritable)
        #expect(error?.path == path)
        #expect(error?.description.contains(path) == true)
        #expect(error?.message.contains("cannot be opened for writing") == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test(.enabled(if: isRoot, "needs chattr (root) to make a directory unwritable for root"))
    func databaseInAnUnwritableDirectoryIsAStartupError() throws {
        let directory = try TemporaryDirectory()
        let existing = directory.file("jobs.sqlite")
        try populate(existing)
        try runTool("/usr/bin/chattr", ["+i", directory.path])
        defer { try? runTool("/usr/bin/chattr", ["-i", directory.path]) }
        // A new file cannot be created…
        let missing = #expect(throws: JobStoreError.self) { try SQLiteJobStore(path: directory.file("new.sqlite")) }
        #expect(missing?.code == .cannotOpen)
        #expect(missing?.path == directory.file("new.sqlite"))
        // …and an existing WAL database cannot get its -wal file.
        let existingError = #expect(throws: JobStoreError.self) { try SQLiteJobStore(path: existing) }
        #expect(existingError?.path == existing)
        #expect(existingError.map { [.cannotOpen, .unwritable, .io].contains($0.code) } == true)
    }

    @Test func missingDirectoryIsAStartupError() throws {
        let error = #expect(throws: JobStoreError.self) {
            try SQLiteJobStore(path: "/nonexistent-\(UUID().uuidString)/jobs.sqlite")
        }
        #expect(error?.code == .cannotOpen)
        #expect(error?.path?.hasSuffix("/jobs.sqlite") == true)
    }

    @Test func garbageFileIsReportedCorruptAndNeverOverwritten() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("jobs.sqlite")
        let garbage = Data((0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        try garbage.write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: JobStoreError.self) { try SQLiteJobStore(path: path) }
        #expect(error?.code == .corrupt)
        #expect(error?.path == path)
        #expect(error?.message.contains("not an SQLite database") == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == garbage)
    }

    @Test func damagedPagesAreReportedCorruptAndNeverOverwritten() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("jobs.sqlite")
        try populate(path, jobs: 400, size: 1_000)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let pageSize = 4_096
        let pageCount = bytes.count / pageSize
        #expect(pageCount > 50)
        // Scribble over a page in the middle of the jobs table.
        let damaged = pageCount / 2
        bytes.replaceSubrange(damaged * pageSize..<(damaged + 1) * pageSize, with: Data(repeating: 0xA5, count: pageSize))
        try bytes.write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: JobStoreError.self) { try SQLiteJobStore(path: path) }
        #expect(error?.code == .corrupt)
        #expect(error?.path == path)
        #expect(error?.message.contains("quick_check") == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == bytes)
    }
}

@Suite struct StorageFullTests {
    @Test func fullDatabaseFailsWritesCleanlyAndRecovers() throws {
        let fixture = try Fixture { $0.maxPageCount = 160 }  // 640 KiB
        let running = try fixture.store.insert(job("will be completed")).id
        _ = try fixture.store.claimNext(worker: "w", leaseMilliseconds: 60_000)
        let chunk = Data(repeating: 0x42, count: 16_000)
        // Jobs to purge once the database is full. They are cancelled while there is room:
        // cancelling rewrites a job's row, whose overflow pages SQLite writes anew before
        // freeing the old ones, so a full database cannot cancel a job with a large request.
        var cancelled: [JobID] = []
        for _ in 0..<15 { cancelled.append(try fixture.store.insert(NewJob(language: "c", request: chunk)).id) }
        for id in cancelled { _ = try fixture.store.cancel(id: id, webhook: nil) }
        var accepted: [JobID] = []
        var fullError: JobStoreError?
        while fullError == nil && accepted.count < 1_000 {
            do {
                accepted.append(try fixture.store.insert(NewJob(language: "c", request: chunk)).id)
            } catch {
                fullError = error
            }
        }
        #expect(fullError?.code == .storageFull)
        #expect(fullError?.isTemporarilyUnavailable == true)
        #expect(accepted.count > 5)
        #expect(try fixture.store.countsByState().queued == accepted.count)

        // A batch that does not fit leaves no trace.
        let batch = (0..<3).map { _ in NewJob(language: "c", request: chunk) }
        let batchError = #expect(throws: JobStoreError.self) { try fixture.store.insert(batch: batch) }
        #expect(batchError?.code == .storageFull)
        #expect(try fixture.store.countsByState().queued == accepted.count)

        // A result that does not fit leaves the job running, without a partial result.
        let bigResult = JobResult(verdict: "accepted", tests: (0..<4).map { _ in
            TestResult(verdict: "accepted", stdout: Data(repeating: 0x6F, count: 40_000))
        })
        let completeError = #expect(throws: JobStoreError.self) {
            try fixture.store.complete(id: running, worker: "w", result: bigResult,
                                       webhook: WebhookRequest(url: "http://h/", payload: Data("x".utf8)))
        }
        #expect(completeError?.code == .storageFull)
        let stillRunning = try #require(try fixture.store.job(id: running))
        #expect(stillRunning.state == .running)
        #expect(stillRunning.result == nil)
        #expect(try fixture.store.claimDueWebhooks(limit: 10, inFlightMilliseconds: 1_000) == [])
        try fixture.store.checkIntegrity()

        // Freeing space (purging the cancelled jobs) makes the same completion succeed.
        fixture.clock.advance(by: 1)
        #expect(try fixture.store.purgeFinished(before: fixture.clock.now) == 15)
        try fixture.store.complete(id: running, worker: "w", result: bigResult, webhook: nil)
        #expect(try fixture.store.job(id: running)?.result == bigResult)
        try fixture.store.checkIntegrity()
    }

    @Test(.enabled(if: isRoot, "mounting a tmpfs needs root"))
    func fullFileSystemFailsWritesCleanly() throws {
        let mountPoint = try TemporaryDirectory()
        try runTool("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=640k", "tmpfs", mountPoint.path])
        defer { try? runTool("/usr/bin/umount", [mountPoint.path]) }
        let path = mountPoint.file("jobs.sqlite")
        var accepted: [JobID] = []
        do {
            let store = try SQLiteJobStore(path: path)
            let chunk = Data(repeating: 0x43, count: 24_000)
            var fullError: JobStoreError?
            while fullError == nil && accepted.count < 1_000 {
                do {
                    accepted.append(try store.insert(NewJob(language: "c", request: chunk)).id)
                } catch {
                    fullError = error
                }
            }
            #expect(fullError?.code == .storageFull, "got \(String(describing: fullError))")
            #expect(fullError?.isTemporarilyUnavailable == true)
            #expect(accepted.count > 3)
            #expect(try store.countsByState().queued == accepted.count)
            let again = #expect(throws: JobStoreError.self) {
                try store.insert(batch: (0..<4).map { _ in NewJob(language: "c", request: chunk) })
            }
            #expect(again?.isTemporarilyUnavailable == true)
            #expect(try store.countsByState().queued == accepted.count)
            try store.checkIntegrity()
        }
        // Everything acknowledged is there after a reopen from the same (still full) file system.
        var configuration = SQLiteJobStore.Configuration(path: path)
        configuration.readerCount = 1
        let reopened = try SQLiteJobStore(configuration: configuration)
        for id in accepted { #expect(try reopened.job(id: id) != nil) }
        try reopened.checkIntegrity()
    }
}

@Suite struct CrashConsistencyTests {
    /// The helper executable built next to the test bundle.
    private var crashWriter: URL {
        get throws {
            let bundleDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            let helper = bundleDirectory.appendingPathComponent("JobStoreCrashWriter")
            guard FileManager.default.isExecutableFile(atPath: helper.path) else {
                throw RawSQLiteError(message: "JobStoreCrashWriter not built at \(helper.path)")
            }
            return helper
        }
    }

    @Test func everyAcknowledgedWriteSurvivesSIGKILL() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("jobs.sqlite")
        var inserted: [JobID] = []
        var completed: [JobID: UInt8] = [:]
        // Several kills at different points, each run reopening what the previous one left; the
        // multi-threaded runs kill the writer while several callers share group commits.
        for (target, threads) in [(40, 1), (250, 4), (700, 1), (900, 4)] {
            let process = Process()
            process.executableURL = try crashWriter
            process.arguments = [path, String(threads)]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            var buffer = Data()
            var lines = 0
            while lines < target {
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { break }  // the writer died on its own: reported below
                buffer += chunk
                lines = buffer.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            }
            #expect(process.isRunning, "the writer exited early with \(process.terminationStatus)")
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            buffer += output.fileHandleForReading.readDataToEndOfFile()
            // Only complete lines were acknowledged.
            let text = String(decoding: buffer, as: UTF8.self)
            let complete = text.hasSuffix("\n") ? text : String(text[..<(text.lastIndex(of: "\n") ?? text.startIndex)])
            for line in complete.split(separator: "\n") {
                let parts = line.split(separator: " ")
                if parts.first == "inserted" { inserted.append(JobID(String(parts[1]))) }
                if parts.first == "completed", let byte = UInt8(parts[2]) { completed[JobID(String(parts[1]))] = byte }
            }
            #expect(inserted.count >= target / 2)

            let store = try SQLiteJobStore(path: path)  // runs quick_check on open
            try store.checkIntegrity()
            for id in inserted {
                #expect(try store.job(id: id) != nil, "acknowledged insert \(id) is missing")
            }
            for (id, byte) in completed {
                let record = try #require(try store.job(id: id), "acknowledged completion \(id) is missing")
                #expect(record.state == .finished)
                #expect(record.result?.tests.count == 3)
                #expect(record.result?.tests.allSatisfy { $0.stdout == Data(repeating: byte, count: 2_000) } == true)
            }
        }
        #expect(completed.count > 50)
    }
}
