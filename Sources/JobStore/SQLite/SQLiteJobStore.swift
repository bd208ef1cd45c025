import CSQLite
import Foundation
import Synchronization

/// The embedded `JobStore`: one SQLite file in WAL mode, one writer connection through which every
/// write is serialised, and a few reader connections that read committed snapshots without waiting.
public final class SQLiteJobStore: JobStore {
    /// How the store opens and runs its database.
    public struct Configuration: Sendable {
        /// The database file; created if missing (its directory must exist).
        public var path: String
        /// Durability of acknowledged writes (inserts, completions, cancels, webhooks, files).
        /// Claims and lease renewals are never synced; see `docs/jobstore.md`.
        public var synchronous: Synchronous = .full
        /// How long a write waits for a lock held by another process before failing with `.busy`.
        public var busyTimeoutMilliseconds: Int = 5_000
        /// Read connections; readers beyond this many wait for a free one.
        public var readerCount: Int = 4
        /// Claims a job may use before an expired lease finishes it as `internal_error`.
        public var maxAttempts: Int = 3
        /// Total bytes the file cache may hold before evicting least-recently-used files.
        public var fileCacheCapacityBytes: Int64 = 256 << 20
        /// Retry schedule for webhook deliveries.
        public var webhookRetry = WebhookRetryPolicy()
        /// Run `PRAGMA quick_check` when opening an existing file (reads the whole file).
        public var verifyIntegrityOnOpen: Bool = true
        /// Upper bound on the database size in pages; writes beyond it fail with `.storageFull`.
        public var maxPageCount: Int64?
        /// The clock used for timestamps and lease expiry (replaceable in tests).
        public var clock: @Sendable () -> Timestamp = { .now }

        /// A configuration with defaults for the file at `path`.
        public init(path: String) { self.path = path }
    }

    /// The configuration the store was opened with.
    public let configuration: Configuration
    /// What the start-up pass over expired leases did (jobs whose worker died with the last process);
    /// later passes are the caller's to schedule with `requeueExpiredLeases()`.
    public let startupRequeue: RequeueReport
    /// The version of the SQLite library linked at run time (for diagnostics and benchmark reports).
    public static var sqliteVersion: String { String(cString: sqlite3_libversion()) }
    private let pool: ConnectionPool
    private let writeQueue = WriteQueue()
    /// Set when a sync of the log failed: every later write fails with it (see
    /// `Connection.commit(group:syncDurable:)`). Readable without waiting for the writer, as health
    /// checks and metrics scrapes do.
    private let writeFailure = Mutex<JobStoreError?>(nil)
    /// How many `completeAndClaimNext` calls still fail at their claim (a test hook: see
    /// `failClaimsAfterCompletion(_:)`); otherwise one relaxed load per call.
    private let failingCompletionClaims = Atomic<Int>(0)

    /// A file-cache read refreshes `last_used_at` only when it is older than this, so that
    /// repeated reads do not each cost a write transaction.
    private static let touchGranularityMilliseconds: Int64 = 1_000
    /// Purges delete this many jobs per transaction so the writer is never held for long.
    private static let purgeChunk = 500

    /// Opens (creating or migrating) the database, then requeues jobs whose lease has expired. Fails
    /// with an error naming the file when it is unwritable, corrupt, foreign or from a newer
    /// version; such a file is never modified.
    public init(configuration: Configuration) throws(JobStoreError) {
        self.configuration = configuration
        let pool = try wrap {
            let writer = try Connection(path: configuration.path, isReader: false)
            try writer.execute("PRAGMA busy_timeout=\(configuration.busyTimeoutMilliseconds)")
            // Readers that always hold a snapshot can keep checkpoints from resetting the WAL; cap
            // what stays on disk afterwards so the WAL cannot keep the size it reached in a burst.
            try writer.execute("PRAGMA journal_size_limit=\(64 << 20)")
            try Schema.prepare(writer, verifyIntegrity: configuration.verifyIntegrityOnOpen)
            try writer.setSynchronous(configuration.synchronous)
            if let maxPageCount = configuration.maxPageCount {
                try writer.execute("PRAGMA max_page_count=\(maxPageCount)")
            }
            var readers: [ConnectionSlot] = []
            for _ in 0..<max(configuration.readerCount, 1) {
                let reader = try Connection(path: configuration.path, isReader: true)
                try reader.execute("PRAGMA busy_timeout=\(configuration.busyTimeoutMilliseconds)")
                try reader.execute("PRAGMA query_only=1")
                readers.append(ConnectionSlot(reader))
            }
            return ConnectionPool(writer: writer, readers: readers)
        }
        self.pool = pool
        let now = configuration.clock().millisecondsSince1970
        startupRequeue = try wrap {
            try pool.writer.use { connection in
                let report = try connection.transaction(immediate: true) {
                    try Self.requeueExpiredLeases(on: connection, now: now, maxAttempts: configuration.maxAttempts)
                }
                // From here on every write goes through a group commit, which syncs the log itself
                // after the commits that must be durable (see `Connection.commit(group:syncDurable:)`).
                try connection.setSynchronous(.normal)
                return report
            }
        }
    }

    /// Opens the database at `path` with default settings.
    public convenience init(path: String) throws(JobStoreError) {
        try self.init(configuration: Configuration(path: path))
    }

    private var now: Int64 { configuration.clock().millisecondsSince1970 }

    // MARK: Jobs

    /// Inserts one job (see `JobStore.insert(_:)`); returns once its group commit is synced.
    public func insert(_ job: NewJob) throws(JobStoreError) -> Submission {
        let now = now
        return try write { connection in try Self.insert(job, on: connection, now: now) }
    }

    /// Inserts all jobs under one savepoint of one transaction (see `JobStore.insert(batch:)`).
    public func insert(batch jobs: [NewJob]) throws(JobStoreError) -> [Submission] {
        let now = now
        return try write { connection in try jobs.map { try Self.insert($0, on: connection, now: now) } }
    }

    private static func insert(_ job: NewJob, on connection: Connection, now: Int64) throws -> Submission {
        if let idempotency = job.idempotency, let existing = try existingJob(for: idempotency, on: connection) {
            return Submission(id: existing, created: false)
        }
        let id = job.id
        try connection.run(
            """
            INSERT INTO jobs (id, state, priority, language, request, callback_url, idempotency_key,
                              request_hash, created_at)
            VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?)
            """,
            [id.rawValue, job.priority, job.language, job.request, job.callbackURL, job.idempotency?.key,
             job.idempotency?.requestHash, now])
        let record = JobRecord(
            id: id, state: .queued, priority: job.priority, language: job.language, request: job.request,
            callbackURL: job.callbackURL, idempotencyKey: job.idempotency?.key, createdAt: Timestamp(millisecondsSince1970: now),
            startedAt: nil, finishedAt: nil, attempts: 0, worker: nil, leaseExpiresAt: nil, result: nil)
        return Submission(id: id, created: true, record: record)
    }

    private static func existingJob(for idempotency: Idempotency, on connection: Connection) throws -> JobID? {
        let row = try connection.with(
            "SELECT id, request_hash FROM jobs WHERE idempotency_key = ?", [idempotency.key]
        ) { statement in try statement.step() ? (statement.text(0) ?? "", statement.text(1)) : nil }
        guard let (id, hash) = row else { return nil }
        guard hash == idempotency.requestHash else {
            throw JobStoreError(
                .idempotencyConflict,
                "idempotency key \"\(idempotency.key)\" was already used by job \(id) with a different request")
        }
        return JobID(id)
    }

    /// Reads a job with its tests from a reader connection (see `JobStore.job(id:)`).
    public func job(id: JobID) throws(JobStoreError) -> JobRecord? {
        try read { connection in
            // One statement is one snapshot: the job row and its tests cannot disagree, without the
            // cost of an explicit read transaction. A job without tests yields one row of NULLs.
            try connection.with(
                """
                SELECT \(Self.qualifiedJobColumns), t.verdict, t.stdout, t.stderr, t.exit_code, t.signal, t.cpu_ms, t.wall_ms,
                       t.memory_bytes, t.stdout_truncated, t.stderr_truncated, t.message, t.extra
                FROM jobs LEFT JOIN job_tests t ON t.job_seq = jobs.seq
                WHERE jobs.id = ? ORDER BY t.test_index
                """, [id.rawValue]
            ) { statement in
                guard try statement.step() else { return nil }
                var record = Self.jobRecord(from: statement).1
                var tests: [TestResult] = []
                repeat {
                    if !statement.isNull(Self.jobColumnCount) {
                        tests.append(Self.testResult(from: statement, at: Self.jobColumnCount))
                    }
                } while try statement.step()
                record.result?.tests = tests
                return record
            }
        }
    }

    /// Looks up an idempotency key (see `JobStore.job(idempotency:)`).
    public func job(idempotency: Idempotency) throws(JobStoreError) -> JobID? {
        let existing = try read { connection in try Self.existingJob(for: idempotency, on: connection) }
        // A reader sees a commit before the leader's sync of it has finished (SQLite itself, at
        // FULL, publishes a commit only once synced). The job found must be durable before it is
        // reported, so wait for the writer: any write runs only after the previous group's sync.
        if existing != nil { try write(durable: false) { _ in () } }
        return existing
    }

    /// Lists jobs newest first; the cursor is the last job's internal sequence number in base 36.
    public func list(_ filter: JobFilter) throws(JobStoreError) -> JobPage {
        guard (1...1000).contains(filter.limit) else {
            throw JobStoreError(.invalidArgument, "page size \(filter.limit) is outside 1…1000")
        }
        var after = Int64.max
        if let cursor = filter.cursor {
            guard let seq = Int64(cursor, radix: 36), seq > 0 else {
                throw JobStoreError(.invalidArgument, "malformed listing cursor \"\(cursor)\"")
            }
            after = seq
        }
        var sql = """
            SELECT seq, id, state, priority, language, created_at, started_at, finished_at, attempts, verdict
            FROM jobs WHERE seq < ?
            """
        var values: [any SQLBindable] = [after]
        if !filter.states.isEmpty {
            // Sorted so each set of states maps to one cached statement.
            let states = filter.states.map(\.rawValue).sorted()
            sql += " AND state IN (\(states.map { _ in "?" }.joined(separator: ", ")))"
            values += states as [any SQLBindable]
        }
        if let from = filter.createdFrom {
            sql += " AND created_at >= ?"
            values.append(from.millisecondsSince1970)
        }
        if let before = filter.createdBefore {
            sql += " AND created_at < ?"
            values.append(before.millisecondsSince1970)
        }
        sql += " ORDER BY seq DESC LIMIT ?"
        values.append(filter.limit + 1)
        let query = sql
        let bindings = values
        let rows: [(Int64, JobSummary)] = try read { connection in
            try connection.with(query, bindings) { statement in
                var rows: [(Int64, JobSummary)] = []
                while try statement.step() {
                    rows.append((statement.int64(0), JobSummary(
                        id: JobID(statement.text(1) ?? ""),
                        state: JobState(rawValue: statement.text(2) ?? "") ?? .queued,
                        priority: Int(statement.int64(3)),
                        language: statement.text(4) ?? "",
                        createdAt: Timestamp(millisecondsSince1970: statement.int64(5)),
                        startedAt: statement.optionalInt64(6).map(Timestamp.init),
                        finishedAt: statement.optionalInt64(7).map(Timestamp.init),
                        attempts: Int(statement.int64(8)),
                        verdict: statement.text(9).map(Verdict.init(rawValue:)))))
                }
                return rows
            }
        }
        let page = Array(rows.prefix(filter.limit))
        let nextCursor = rows.count > filter.limit ? page.last.map { String($0.0, radix: 36) } : nil
        return JobPage(jobs: page.map(\.1), nextCursor: nextCursor)
    }

    /// Claims the next queued job with one `UPDATE … RETURNING` (see `JobStore.claimNext`).
    public func claimNext(worker: String, leaseMilliseconds: Int64) throws(JobStoreError) -> JobRecord? {
        let now = now
        // Losing a claim to power loss is harmless: the worker died with the machine and the job
        // is simply claimed again, so claims skip the fsync (see `Configuration.synchronous`).
        return try write(durable: false) { connection in
            try Self.claimNext(on: connection, worker: worker, now: now, leaseMilliseconds: leaseMilliseconds)
        }
    }

    private static func claimNext(on connection: Connection, worker: String, now: Int64, leaseMilliseconds: Int64) throws -> JobRecord? {
        try connection.with(
            """
            UPDATE jobs SET state = 'running', started_at = ?, attempts = attempts + 1, worker = ?,
                            lease_expires_at = ?
            -- Without ANALYZE statistics the planner prefers (state, created_at) and sorts every
            -- queued job per claim; the partial queue index yields the next job directly.
            WHERE seq = (SELECT seq FROM jobs INDEXED BY jobs_queue WHERE state = 'queued'
                         ORDER BY priority DESC, seq LIMIT 1)
            RETURNING \(jobColumns)
            """, [now, worker, now + leaseMilliseconds]
        ) { statement in try statement.step() ? jobRecord(from: statement).1 : nil }
    }

    /// Extends a lease; committed without fsync, like claims (see `JobStore.renewLease`).
    public func renewLease(id: JobID, worker: String, leaseMilliseconds: Int64) throws(JobStoreError) -> Timestamp {
        let expiry = now + leaseMilliseconds
        try write(durable: false) { connection in
            let changed = try connection.run(
                "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND state = 'running' AND worker = ?",
                [expiry, id.rawValue, worker])
            if changed == 0 { throw try Self.leaseLost(id: id, worker: worker, on: connection) }
        }
        return Timestamp(millisecondsSince1970: expiry)
    }

    /// Stores the result, its tests and the webhook in one durable write (see `JobStore.complete`).
    @discardableResult
    public func complete(id: JobID, worker: String, result: JobResult, webhook: WebhookRequest?,
                         finishedAt: Timestamp?) throws(JobStoreError) -> Timestamp {
        let now = now
        let finished = finishedAt?.millisecondsSince1970 ?? now
        try write { connection in
            try Self.complete(on: connection, id: id, worker: worker, result: result, webhook: webhook, finishedAt: finished, now: now)
        }
        return Timestamp(millisecondsSince1970: finished)
    }

    /// Completes a job and claims the next one in one durable write (see `JobStore.completeAndClaimNext`).
    public func completeAndClaimNext(
        id: JobID, worker: String, result: JobResult, webhook: WebhookRequest?, finishedAt: Timestamp?,
        leaseMilliseconds: Int64
    ) throws(JobStoreError) -> (finishedAt: Timestamp, next: JobRecord?) {
        let now = now
        let finished = finishedAt?.millisecondsSince1970 ?? now
        let next = try write { connection in
            try Self.complete(on: connection, id: id, worker: worker, result: result, webhook: webhook, finishedAt: finished, now: now)
            if self.failingCompletionClaims.load(ordering: .relaxed) > 0 {
                self.failingCompletionClaims.subtract(1, ordering: .relaxed)
                throw JobStoreError(.storageFull, "injected failure of the claim after completing \(id.rawValue)")
            }
            return try Self.claimNext(on: connection, worker: worker, now: now, leaseMilliseconds: leaseMilliseconds)
        }
        return (Timestamp(millisecondsSince1970: finished), next)
    }

    private static func complete(
        on connection: Connection, id: JobID, worker: String, result: JobResult, webhook: WebhookRequest?,
        finishedAt: Int64, now: Int64
    ) throws {
        let seq = try connection.with(
            """
            UPDATE jobs SET state = 'finished', finished_at = ?, lease_expires_at = NULL, verdict = ?,
                            message = ?, compile_output = ?, compile_output_truncated = ?, score = ?,
                            result_extra = ?
            WHERE id = ? AND state = 'running' AND worker = ?
            RETURNING seq
            """,
            [finishedAt, result.verdict.rawValue, result.message, result.compileOutput, result.compileOutputTruncated,
             result.score, result.extra, id.rawValue, worker]
        ) { statement in try statement.step() ? statement.int64(0) : nil }
        guard let seq else { throw try leaseLost(id: id, worker: worker, on: connection) }
        for (index, test) in result.tests.enumerated() {
            try connection.run(
                """
                INSERT INTO job_tests (job_seq, test_index, verdict, stdout, stderr, exit_code, signal, cpu_ms,
                                       wall_ms, memory_bytes, stdout_truncated, stderr_truncated, message, extra)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [seq, index, test.verdict.rawValue, test.stdout, test.stderr, test.exitCode, test.signal,
                 test.cpuMilliseconds, test.wallMilliseconds, test.memoryBytes, test.stdoutTruncated,
                 test.stderrTruncated, test.message, test.extra])
        }
        if let webhook { try enqueueWebhook(seq: seq, webhook, on: connection, now: now) }
    }

    /// Explains why a worker no longer owns a job.
    private static func leaseLost(id: JobID, worker: String, on connection: Connection) throws -> JobStoreError {
        let row = try connection.with("SELECT state, worker FROM jobs WHERE id = ?", [id.rawValue]) { statement in
            try statement.step() ? (statement.text(0) ?? "", statement.text(1)) : nil
        }
        guard let (state, holder) = row else { return JobStoreError(.notFound, "no job \(id)") }
        let reason = switch state {
        case "running": "it is now held by worker \(holder ?? "?")"
        case "queued": "its lease expired and it was requeued"
        case "cancelled": "it was cancelled"
        default: "it has already finished"
        }
        return JobStoreError(.leaseLost, "worker \(worker) no longer owns job \(id): \(reason)")
    }

    /// Cancels a queued or running job (see `JobStore.cancel`).
    public func cancel(id: JobID, webhook: WebhookRequest?, cancelledAt: Timestamp?) throws(JobStoreError) -> JobState {
        let now = now
        let finishedAt = cancelledAt?.millisecondsSince1970 ?? now
        return try write { connection in
            let seq = try connection.with(
                """
                UPDATE jobs SET state = 'cancelled', finished_at = ?, lease_expires_at = NULL
                WHERE id = ? AND state IN ('queued', 'running') RETURNING seq
                """, [finishedAt, id.rawValue]
            ) { statement in try statement.step() ? statement.int64(0) : nil }
            if let seq {
                if let webhook { try Self.enqueueWebhook(seq: seq, webhook, on: connection, now: now) }
                return .cancelled
            }
            let state = try connection.with("SELECT state FROM jobs WHERE id = ?", [id.rawValue]) { statement in
                try statement.step() ? statement.text(0) : nil
            }
            guard let state, let current = JobState(rawValue: state) else {
                throw JobStoreError(.notFound, "no job \(id)")
            }
            return current
        }
    }

    /// Reaps expired leases using the configured clock and `maxAttempts` (see `JobStore.requeueExpiredLeases`).
    public func requeueExpiredLeases() throws(JobStoreError) -> RequeueReport {
        let now = now
        let maxAttempts = configuration.maxAttempts
        return try write { connection in try Self.requeueExpiredLeases(on: connection, now: now, maxAttempts: maxAttempts) }
    }

    private static func requeueExpiredLeases(on connection: Connection, now: Int64, maxAttempts: Int) throws -> RequeueReport {
        let expired = try connection.with(
            """
            SELECT seq, id, attempts, worker, lease_expires_at, callback_url FROM jobs INDEXED BY jobs_lease
            WHERE state = 'running' AND lease_expires_at < ?
            """, [now]
        ) { statement in
            var rows: [(seq: Int64, id: String, attempts: Int64, worker: String?, expiry: Int64, callback: String?)] = []
            while try statement.step() {
                rows.append((statement.int64(0), statement.text(1) ?? "", statement.int64(2), statement.text(3),
                             statement.int64(4), statement.text(5)))
            }
            return rows
        }
        var report = RequeueReport()
        for job in expired {
            if job.attempts >= maxAttempts {
                let expiry = Timestamp(millisecondsSince1970: job.expiry)
                let message = "abandoned after \(job.attempts) attempts (limit \(maxAttempts)): each time the "
                    + "worker's lease expired before it reported a result; the last worker was "
                    + "\(job.worker ?? "unknown") and its lease ended at \(expiry)"
                try connection.run(
                    """
                    UPDATE jobs SET state = 'finished', finished_at = ?, lease_expires_at = NULL, verdict = ?,
                                    message = ?
                    WHERE seq = ?
                    """, [now, Verdict.internalError.rawValue, message, job.seq])
                if let callback = job.callback {
                    try enqueueWebhook(
                        seq: job.seq, WebhookRequest(url: callback, payload: nil), on: connection, now: now)
                }
                report.abandoned.append(JobID(job.id))
            } else {
                try connection.run(
                    """
                    UPDATE jobs SET state = 'queued', worker = NULL, lease_expires_at = NULL, started_at = NULL
                    WHERE seq = ?
                    """, [job.seq])
                report.requeued.append(JobID(job.id))
            }
        }
        return report
    }

    /// Requeues a running job its worker gives up, refunding the claim (see `JobStore.release`).
    public func release(id: JobID, worker: String) throws(JobStoreError) -> Bool {
        try write { connection in
            try connection.run(
                """
                UPDATE jobs SET state = 'queued', worker = NULL, lease_expires_at = NULL, started_at = NULL,
                                attempts = max(attempts - 1, 0)
                WHERE id = ? AND state = 'running' AND worker = ?
                """, [id.rawValue, worker]) > 0
        }
    }

    /// Deletes old finished jobs in chunks of 500 per transaction (see `JobStore.purgeFinished`).
    public func purgeFinished(before cutoff: Timestamp) throws(JobStoreError) -> Int {
        try deleteInChunks(
            """
            DELETE FROM jobs WHERE seq IN (
                SELECT seq FROM jobs INDEXED BY jobs_finished
                WHERE state IN ('finished', 'cancelled') AND finished_at < ? LIMIT ?)
            """, before: cutoff)
    }

    /// Runs `sql` (a DELETE bound to a cutoff and a row limit) one transaction per
    /// ``purgeChunk`` rows until a chunk comes back short, so a large purge never holds the
    /// writer for long. Returns the rows deleted.
    private func deleteInChunks(_ sql: String, before cutoff: Timestamp) throws(JobStoreError) -> Int {
        var total = 0
        while true {
            let deleted = try write { connection in
                try connection.run(sql, [cutoff.millisecondsSince1970, Self.purgeChunk])
            }
            total += deleted
            if deleted < Self.purgeChunk { return total }
        }
    }

    /// Deletes one finished or cancelled job (see `JobStore.deleteFinished`).
    public func deleteFinished(id: JobID) throws(JobStoreError) -> Bool {
        try write { connection in
            let deleted = try connection.run(
                "DELETE FROM jobs WHERE id = ? AND state IN ('finished', 'cancelled')", [id.rawValue])
            if deleted > 0 { return true }
            guard try connection.scalar("SELECT seq FROM jobs WHERE id = ?", [id.rawValue]) != nil else {
                throw JobStoreError(.notFound, "no job \(id)")
            }
            return false
        }
    }

    /// Counts jobs per state from a reader connection.
    public func countsByState() throws(JobStoreError) -> StateCounts {
        try read { connection in
            try connection.with("SELECT state, count(*) FROM jobs GROUP BY state") { statement in
                var counts = StateCounts()
                while try statement.step() {
                    let count = Int(statement.int64(1))
                    switch JobState(rawValue: statement.text(0) ?? "") {
                    case .queued: counts.queued = count
                    case .running: counts.running = count
                    case .finished: counts.finished = count
                    case .cancelled: counts.cancelled = count
                    case nil: break
                    }
                }
                return counts
            }
        }
    }

    /// `count(*)` over the `state = 'queued'` range of the `(state, created_at)` index: covering,
    /// so no job row is read.
    public func queuedCount() throws(JobStoreError) -> Int {
        try read { connection in
            Int(try connection.scalar("SELECT count(*) FROM jobs INDEXED BY jobs_state_created WHERE state = 'queued'") ?? 0)
        }
    }

    /// Grouped scans of the `jobs_statistics` and `jobs_state_created` indexes, plus one test
    /// lookup per runtime error (see `JobStore.statistics`); requests and results are never read.
    public func statistics(createdSince: Timestamp) throws(JobStoreError) -> JobStatistics {
        let firstDay = JobStatistics.day(of: createdSince)
        return try read { connection in
            var statistics = JobStatistics()
            try connection.with("SELECT language, count(*) FROM jobs GROUP BY language") { statement in
                while try statement.step() {
                    let count = Int(statement.int64(1))
                    statistics.byLanguage[statement.text(0) ?? "", default: 0] += count
                    statistics.total += count
                }
            }
            try connection.with("SELECT state, verdict, count(*) FROM jobs GROUP BY 1, 2") { statement in
                while try statement.step() {
                    guard let state = JobState(rawValue: statement.text(0) ?? "") else { continue }
                    let verdict = statement.text(1).map(Verdict.init(rawValue:))
                    if state == .finished && verdict == "runtime_error" { continue }  // split by signal below
                    statistics.byOutcome.append(JobStatistics.OutcomeCount(
                        state: state, verdict: verdict, signal: nil, count: Int(statement.int64(2))))
                }
            }
            // A runtime error's signal lives on its first failing test: one primary-key lookup per
            // such job, evaluated once each (materialized), then grouped.
            try connection.with("""
                WITH failed AS MATERIALIZED (
                    SELECT (SELECT t.signal FROM job_tests t WHERE t.job_seq = jobs.seq AND t.verdict = 'runtime_error'
                            ORDER BY t.test_index LIMIT 1) AS signal
                    FROM jobs WHERE state = 'finished' AND verdict = 'runtime_error')
                SELECT signal, count(*) FROM failed GROUP BY 1
                """) { statement in
                while try statement.step() {
                    statistics.byOutcome.append(JobStatistics.OutcomeCount(
                        state: .finished, verdict: "runtime_error",
                        signal: statement.optionalInt64(0).map { Int32(truncatingIfNeeded: $0) }, count: Int(statement.int64(1))))
                }
            }
            // Naming every state lets the (state, created_at) index serve the range.
            try connection.with("""
                SELECT created_at / ?, count(*) FROM jobs
                WHERE state IN ('queued', 'running', 'finished', 'cancelled') AND created_at >= ?
                GROUP BY 1
                """, [JobStatistics.millisecondsPerDay, firstDay * JobStatistics.millisecondsPerDay]) { statement in
                while try statement.step() {
                    statistics.createdPerDay[statement.int64(0), default: 0] += Int(statement.int64(1))
                }
            }
            return statistics
        }
    }

    // MARK: Webhooks

    /// Enqueues a delivery due now (see `JobStore.enqueueWebhook`).
    public func enqueueWebhook(jobID: JobID, _ webhook: WebhookRequest) throws(JobStoreError) -> Int64 {
        let now = now
        return try write { connection in
            guard let seq = try connection.scalar("SELECT seq FROM jobs WHERE id = ?", [jobID.rawValue]) else {
                throw JobStoreError(.notFound, "no job \(jobID)")
            }
            return try Self.enqueueWebhook(seq: seq, webhook, on: connection, now: now)
        }
    }

    @discardableResult
    private static func enqueueWebhook(seq: Int64, _ webhook: WebhookRequest, on connection: Connection, now: Int64) throws -> Int64 {
        try connection.run(
            """
            INSERT INTO webhook_deliveries (job_seq, url, payload, state, attempts, next_attempt_at, created_at, updated_at)
            VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)
            """, [seq, webhook.url, webhook.payload, now, now, now])
        return sqlite3_last_insert_rowid(connection.handle)
    }

    private static let webhookColumns =
        "w.id, j.id, w.url, w.payload, w.state, w.attempts, w.next_attempt_at, w.last_error"

    private static func webhook(from statement: Statement) -> WebhookDelivery {
        WebhookDelivery(
            id: statement.int64(0), jobID: JobID(statement.text(1) ?? ""), url: statement.text(2) ?? "",
            payload: statement.blob(3), state: WebhookState(rawValue: statement.text(4) ?? "") ?? .pending,
            attempts: Int(statement.int64(5)), nextAttemptAt: Timestamp(millisecondsSince1970: statement.int64(6)),
            lastError: statement.text(7))
    }

    /// Claims due deliveries (see `JobStore.claimDueWebhooks`).
    public func claimDueWebhooks(limit: Int, inFlightMilliseconds: Int64) throws(JobStoreError) -> [WebhookDelivery] {
        // SQLite reads a negative LIMIT as "no limit".
        guard limit > 0 else { return [] }
        let now = now
        // Like job claims, losing this to power loss only means the delivery is sent again.
        return try write(durable: false) { connection in
            let ids = try connection.with(
                """
                UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ?
                WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ?
                             ORDER BY next_attempt_at, id LIMIT ?)
                RETURNING id
                """, [now + inFlightMilliseconds, now, now, limit]
            ) { statement in
                var ids: [Int64] = []
                while try statement.step() { ids.append(statement.int64(0)) }
                return ids
            }
            return try ids.sorted().compactMap { id in try Self.webhook(id: id, on: connection) }
        }
    }

    private static func webhook(id: Int64, on connection: Connection) throws -> WebhookDelivery? {
        try connection.with(
            "SELECT \(webhookColumns) FROM webhook_deliveries w JOIN jobs j ON j.seq = w.job_seq WHERE w.id = ?", [id]
        ) { statement in try statement.step() ? Self.webhook(from: statement) : nil }
    }

    /// One delivery by id.
    public func webhook(id: Int64) throws(JobStoreError) -> WebhookDelivery? {
        try read { connection in try Self.webhook(id: id, on: connection) }
    }

    /// Marks a delivery delivered; throws `.notFound` for an unknown id.
    public func markWebhookDelivered(id: Int64) throws(JobStoreError) {
        let now = now
        try write { connection in
            let changed = try connection.run(
                "UPDATE webhook_deliveries SET state = 'delivered', last_error = NULL, updated_at = ? WHERE id = ?",
                [now, id])
            if changed == 0 { throw JobStoreError(.notFound, "no webhook delivery \(id)") }
        }
    }

    /// Reschedules with the configured `webhookRetry` backoff or gives up (see `JobStore.recordWebhookFailure`).
    public func recordWebhookFailure(id: Int64, error: String) throws(JobStoreError) -> WebhookState {
        let now = now
        let policy = configuration.webhookRetry
        return try write { connection in
            guard let attempts = try connection.scalar(
                "SELECT attempts FROM webhook_deliveries WHERE id = ? AND state = 'pending'", [id])
            else { throw JobStoreError(.notFound, "no pending webhook delivery \(id)") }
            if attempts >= Int64(policy.maxAttempts) {
                try connection.run(
                    "UPDATE webhook_deliveries SET state = 'failed', last_error = ?, updated_at = ? WHERE id = ?",
                    [error, now, id])
                return .failed
            }
            try connection.run(
                "UPDATE webhook_deliveries SET next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?",
                [now + policy.delay(afterAttempts: Int(attempts)), error, now, id])
            return .pending
        }
    }

    /// Gives up on a delivery; throws `.notFound` for an unknown id.
    public func markWebhookFailed(id: Int64, error: String) throws(JobStoreError) {
        let now = now
        try write { connection in
            let changed = try connection.run(
                "UPDATE webhook_deliveries SET state = 'failed', last_error = ?, updated_at = ? WHERE id = ?",
                [error, now, id])
            if changed == 0 { throw JobStoreError(.notFound, "no webhook delivery \(id)") }
        }
    }

    // MARK: File cache

    /// Stores a file and evicts least-recently-used ones in the same transaction (see `JobStore.putFile`).
    public func putFile(id: String, contents: Data) throws(JobStoreError) {
        guard !id.isEmpty, id.utf8.count <= 1024 else {
            throw JobStoreError(.invalidArgument, "file id must be 1…1024 bytes long")
        }
        let capacity = configuration.fileCacheCapacityBytes
        let size = Int64(contents.count)
        guard size <= capacity else {
            throw JobStoreError(.fileTooLarge, "file \(id) is \(size) bytes; the cache holds at most \(capacity)")
        }
        let now = now
        try write { connection in
            var used = try connection.scalar("SELECT total(size) FROM cached_files WHERE id != ?", [id]) ?? 0
            while used + size > capacity {
                guard let (victim, victimSize) = try connection.with(
                    "SELECT id, size FROM cached_files WHERE id != ? ORDER BY last_used_at, id LIMIT 1", [id],
                    { statement in try statement.step() ? (statement.text(0) ?? "", statement.int64(1)) : nil })
                else { break }
                try connection.run("DELETE FROM cached_files WHERE id = ?", [victim])
                used -= victimSize
            }
            try connection.run(
                """
                INSERT INTO cached_files (id, contents, size, created_at, last_used_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET contents = excluded.contents, size = excluded.size,
                                               last_used_at = excluded.last_used_at
                """, [id, contents, size, now, now])
        }
    }

    /// The file's metadata. Marking it used costs a (non-fsynced) write at most once per second per file.
    public func fileInfo(id: String) throws(JobStoreError) -> CachedFile? {
        let info = try read { connection in
            try connection.with("SELECT size, last_used_at FROM cached_files WHERE id = ?", [id]) { statement in
                try statement.step()
                    ? CachedFile(id: id, size: statement.int64(0),
                                 lastUsedAt: Timestamp(millisecondsSince1970: statement.int64(1)))
                    : nil
            }
        }
        guard let info else { return nil }
        return try touch(info)
    }

    /// The file's bytes, marking it used like `fileInfo(id:)`.
    public func fileContents(id: String) throws(JobStoreError) -> Data? {
        let row = try read { connection in
            try connection.with("SELECT contents, last_used_at FROM cached_files WHERE id = ?", [id]) { statement in
                try statement.step() ? (statement.blob(0) ?? Data(), statement.int64(1)) : nil
            }
        }
        guard let (contents, lastUsed) = row else { return nil }
        _ = try touch(CachedFile(
            id: id, size: Int64(contents.count), lastUsedAt: Timestamp(millisecondsSince1970: lastUsed)))
        return contents
    }

    /// Marks a file used now, unless it was marked within the touch granularity.
    private func touch(_ file: CachedFile) throws(JobStoreError) -> CachedFile {
        let now = now
        guard now - file.lastUsedAt.millisecondsSince1970 >= Self.touchGranularityMilliseconds else { return file }
        // Recency is a hint for eviction; losing it to power loss costs nothing, so no fsync.
        _ = try write(durable: false) { connection in
            try connection.run("UPDATE cached_files SET last_used_at = ? WHERE id = ?", [now, file.id])
        }
        var touched = file
        touched.lastUsedAt = Timestamp(millisecondsSince1970: now)
        return touched
    }

    /// Total bytes in the file cache.
    public func fileCacheSize() throws(JobStoreError) -> Int64 {
        try read { connection in try connection.scalar("SELECT total(size) FROM cached_files") ?? 0 }
    }

    /// Deletes files unused since `cutoff` in chunks of 500 per transaction (see `JobStore.purgeCachedFiles`).
    public func purgeCachedFiles(unusedSince cutoff: Timestamp) throws(JobStoreError) -> Int {
        try deleteInChunks(
            """
            DELETE FROM cached_files WHERE id IN (
                SELECT id FROM cached_files INDEXED BY cached_files_lru WHERE last_used_at < ? LIMIT ?)
            """, before: cutoff)
    }

    // MARK: Storage

    /// Page size, page count and free pages of the main database file.
    public func storageStats() throws(JobStoreError) -> StorageStats {
        // Health checks call this: a store that refuses writes since a failed sync is not healthy.
        if let failure = writeFailure.withLock({ $0 }) { throw failure }
        return try read { connection in
            StorageStats(
                pageSize: try connection.scalar("PRAGMA page_size") ?? 0,
                pageCount: try connection.scalar("PRAGMA page_count") ?? 0,
                freePages: try connection.scalar("PRAGMA freelist_count") ?? 0)
        }
    }

    /// Runs `PRAGMA incremental_vacuum` (the file is created with `auto_vacuum=INCREMENTAL`).
    public func incrementalVacuum(maxPages: Int?) throws(JobStoreError) -> Int64 {
        // The pragma reads 0 (or less) as "all pages"; an explicit 0 must mean none.
        if let maxPages, maxPages <= 0 { return 0 }
        return try write { connection in
            let before = try connection.scalar("PRAGMA freelist_count") ?? 0
            // The pragma frees one page per step; it must be stepped until done.
            try connection.run("PRAGMA incremental_vacuum(\(maxPages ?? 0))")
            let after = try connection.scalar("PRAGMA freelist_count") ?? 0
            return before - after
        }
    }

    /// Runs `PRAGMA integrity_check` (reads the whole file); throws `.corrupt` listing the damage.
    public func checkIntegrity() throws(JobStoreError) {
        try read { connection in try Schema.checkIntegrity(connection, pragma: "integrity_check") }
    }

    // MARK: Plumbing

    /// The columns `jobRecord(from:)` reads, in order.
    private static let jobColumns = """
        seq, id, state, priority, language, request, callback_url, idempotency_key, created_at, started_at,
        finished_at, attempts, worker, lease_expires_at, verdict, message, compile_output,
        compile_output_truncated, score, result_extra
        """

    private static func jobRecord(from statement: Statement) -> (Int64, JobRecord) {
        let result = statement.text(14).map { verdict in
            JobResult(
                verdict: Verdict(rawValue: verdict), message: statement.text(15), compileOutput: statement.blob(16),
                compileOutputTruncated: statement.bool(17), score: statement.double(18), tests: [],
                extra: statement.blob(19))
        }
        let record = JobRecord(
            id: JobID(statement.text(1) ?? ""),
            state: JobState(rawValue: statement.text(2) ?? "") ?? .queued,
            priority: Int(statement.int64(3)),
            language: statement.text(4) ?? "",
            request: statement.blob(5) ?? Data(),
            callbackURL: statement.text(6),
            idempotencyKey: statement.text(7),
            createdAt: Timestamp(millisecondsSince1970: statement.int64(8)),
            startedAt: statement.optionalInt64(9).map(Timestamp.init),
            finishedAt: statement.optionalInt64(10).map(Timestamp.init),
            attempts: Int(statement.int64(11)),
            worker: statement.text(12),
            leaseExpiresAt: statement.optionalInt64(13).map(Timestamp.init),
            result: result)
        return (statement.int64(0), record)
    }

    private static let jobColumnCount: Int32 = 20

    /// `jobColumns` prefixed with `jobs.`, for joins.
    private static let qualifiedJobColumns = jobColumns.split(separator: ",")
        .map { "jobs." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: ", ")

    /// Reads the 12 job_tests columns starting at `first`.
    private static func testResult(from statement: Statement, at first: Int32) -> TestResult {
        TestResult(
            verdict: Verdict(rawValue: statement.text(first) ?? ""), stdout: statement.blob(first + 1) ?? Data(),
            stderr: statement.blob(first + 2) ?? Data(), exitCode: statement.optionalInt64(first + 3).map { Int32($0) },
            signal: statement.optionalInt64(first + 4).map { Int32($0) },
            cpuMilliseconds: statement.optionalInt64(first + 5), wallMilliseconds: statement.optionalInt64(first + 6),
            memoryBytes: statement.optionalInt64(first + 7), stdoutTruncated: statement.bool(first + 8),
            stderrTruncated: statement.bool(first + 9), message: statement.text(first + 10),
            extra: statement.blob(first + 11))
    }

    /// Runs `body` as one write on the single writer connection, grouped with whatever other writes
    /// are waiting (see `GroupCommit.swift`): it returns once its group has committed and, for a
    /// durable write under `synchronous = FULL`, once the log is synced. `durable: false` writes
    /// are acknowledged at COMMIT without an fsync; a later sync covers them too, because the
    /// log is written in order.
    private func write<T: Sendable>(
        durable: Bool = true, _ body: @escaping @Sendable (Connection) throws -> T
    ) throws(JobStoreError) -> T {
        let mine = PendingWrite(durable: durable, body)
        var leads = writeQueue.enqueue(mine)
        let syncDurable = configuration.synchronous == .full
        while !mine.isFinished {
            if !leads {
                // Woken once: finished by a leader, or promoted to lead because ours is the oldest left.
                leads = mine.waitForTurn() == .promoted
                continue
            }
            // Nothing here throws: a failing write fails alone, inside `commit`, so the lead is
            // always handed on (or given up) by `nextGroup`.
            pool.writer.use { connection in
                while let group = writeQueue.nextGroup(leaderOwn: mine) {
                    if let failure = writeFailure.withLock({ $0 }) {
                        for write in group { write.fail(failure) }
                    } else if let failure = connection.commit(group: group, syncDurable: syncDurable) {
                        writeFailure.withLock { $0 = failure }
                    }
                }
            }
        }
        guard let outcome = mine.outcome else {
            throw JobStoreError(.sqlite, "internal: a grouped write finished without an outcome")
        }
        return try outcome.get()
    }

    /// How many times durable commits have synced the log (for tests).
    var walSyncCount: Int { pool.writer.use { $0.walSyncCount } }

    /// Makes the writer's log syncs return `result` instead of syncing (for tests of a failing disk).
    func simulateSyncResult(_ result: Int32?) {
        pool.writer.use { connection in connection.syncHook = result.map { value in { value } } }
    }

    /// Makes the next `count` `completeAndClaimNext` calls fail after their completion, which the
    /// failure undoes with the claim, as a real one in that transaction would (for tests of a
    /// caller's fallback).
    func failClaimsAfterCompletion(_ count: Int) { failingCompletionClaims.store(count, ordering: .relaxed) }

    /// Injected claim failures not yet used (for tests).
    var pendingClaimFailures: Int { failingCompletionClaims.load(ordering: .relaxed) }

    /// Runs `body` on a read connection (a committed snapshot; never waits for the writer).
    private func read<T: Sendable>(_ body: (Connection) throws -> T) throws(JobStoreError) -> T {
        try wrap { try pool.read(body) }
    }
}

/// Converts whatever the internals threw into a `JobStoreError` (they only throw that type).
private func wrap<T>(_ body: () throws -> T) throws(JobStoreError) -> T {
    do {
        return try body()
    } catch let error as JobStoreError {
        throw error
    } catch {
        throw JobStoreError(.sqlite, "unexpected error: \(error)")
    }
}
