import Foundation

/// A job's public identifier: 128 random bits, base64url without padding (22 characters).
public struct JobID: Hashable, Sendable, CustomStringConvertible {
    /// The identifier as it appears in URLs.
    public let rawValue: String

    /// Wraps an identifier received from a client; the store validates nothing but non-emptiness
    /// at lookup (an unknown id is simply not found).
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// A new unguessable identifier from the system's cryptographic random source.
    public static func random() -> JobID {
        // Two 64-bit draws (each one getrandom call) give the 128 bits, written as unpadded
        // base64url: 21 full 6-bit digits and the last 2 bits.
        var generator = SystemRandomNumberGenerator()
        let high = generator.next(), low = generator.next()
        let alphabet = Self.base64URLDigits
        let text = String(unsafeUninitializedCapacity: 22) { buffer in
            for index in 0..<22 {
                let bit = index * 6
                let digit: UInt64 = if bit + 6 <= 64 {
                    high >> UInt64(58 - bit)
                } else if bit < 64 {
                    (high << UInt64(bit - 58)) | (low >> UInt64(122 - bit))
                } else if bit + 6 <= 128 {
                    low >> UInt64(122 - bit)
                } else {
                    low << UInt64(bit - 122)
                }
                buffer[index] = alphabet[Int(digit & 63)]
            }
            return 22
        }
        return JobID(text)
    }

    private static let base64URLDigits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// The raw identifier.
    public var description: String { rawValue }
}

/// Where a job is in its life.
public enum JobState: String, Sendable, Hashable, CaseIterable {
    /// Waiting to be claimed by a worker.
    case queued
    /// Claimed by a worker holding an unexpired (or not yet reaped) lease.
    case running
    /// Has a result (including `internal_error` when it was abandoned).
    case finished
    /// Cancelled by a client before it finished.
    case cancelled
}

/// A wall-clock instant with millisecond precision, as stored in the database.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var millisecondsSince1970: Int64

    /// Wraps a count of milliseconds since the Unix epoch.
    public init(millisecondsSince1970: Int64) { self.millisecondsSince1970 = millisecondsSince1970 }

    /// `date` to the millisecond, rounded down (towards the past, also before 1970).
    public init(_ date: Date) {
        millisecondsSince1970 = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// The current wall-clock time.
    public static var now: Timestamp { Timestamp(Date()) }

    /// This instant moved by `milliseconds` (negative moves back).
    public func adding(milliseconds: Int64) -> Timestamp {
        Timestamp(millisecondsSince1970: millisecondsSince1970 + milliseconds)
    }

    /// The instant as a Foundation `Date`.
    public var date: Date { Date(timeIntervalSince1970: Double(millisecondsSince1970) / 1000) }

    /// Orders by time.
    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.millisecondsSince1970 < rhs.millisecondsSince1970
    }

    /// ISO 8601 with milliseconds.
    public var description: String {
        date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
    }
}

/// The overall or per-test outcome. The store only knows `internal_error`; the service defines the rest.
public struct Verdict: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral {
    /// The verdict's name as the API spells it.
    public let rawValue: String
    /// Wraps a verdict name.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Allows `"accepted"` wherever a verdict is expected.
    public init(stringLiteral value: String) { self.rawValue = value }
    /// The job could not be run because of a fault on our side (e.g. its worker kept dying).
    public static let internalError: Verdict = "internal_error"
}

/// A client's idempotency key and a hash of its canonical request, computed by the service.
public struct Idempotency: Hashable, Sendable {
    /// The key the client sent.
    public var key: String
    /// Any stable digest of the canonical request; compared for equality only.
    public var requestHash: String

    /// Pairs a key with the hash of the request it came with.
    public init(key: String, requestHash: String) {
        self.key = key
        self.requestHash = requestHash
    }
}

/// A job to insert. The request is opaque encoded bytes (e.g. JSON) that the store never parses.
public struct NewJob: Sendable {
    /// The id the job gets when inserted (new and random unless the caller chose it).
    public var id: JobID
    /// The language, kept as a column for listing and metrics.
    public var language: String
    /// Higher runs first; equal priorities run in submission order.
    public var priority: Int
    /// The full encoded request (files, stdin, args, options, limits, tests, metadata…).
    public var request: Data
    /// Where to POST the result, if anywhere.
    public var callbackURL: String?
    /// Deduplicates retried submissions.
    public var idempotency: Idempotency?

    /// Describes a job to insert.
    public init(
        id: JobID = .random(), language: String, priority: Int = 0, request: Data, callbackURL: String? = nil,
        idempotency: Idempotency? = nil
    ) {
        self.id = id
        self.language = language
        self.priority = priority
        self.request = request
        self.callbackURL = callbackURL
        self.idempotency = idempotency
    }
}

/// What inserting a job did.
public struct Submission: Hashable, Sendable {
    /// The new job, or the existing job with the same idempotency key and request.
    public var id: JobID
    /// False when an existing job was returned because of the idempotency key.
    public var created: Bool
    /// The job as `job(id:)` would return it right after the insert, when `created`: callers
    /// that show the new job need not read it back.
    public var record: JobRecord?

    /// Describes an insert's outcome.
    public init(id: JobID, created: Bool, record: JobRecord? = nil) {
        self.id = id
        self.created = created
        self.record = record
    }
}

/// The result of one test case; output is kept as raw bytes.
public struct TestResult: Hashable, Sendable {
    /// This test's outcome.
    public var verdict: Verdict
    /// Standard output bytes (possibly truncated).
    public var stdout: Data
    /// Standard error bytes (possibly truncated).
    public var stderr: Data
    /// Exit status when the program exited normally.
    public var exitCode: Int32?
    /// Terminating signal when the program was killed.
    public var signal: Int32?
    /// CPU time used.
    public var cpuMilliseconds: Int64?
    /// Wall-clock time used.
    public var wallMilliseconds: Int64?
    /// Peak memory used.
    public var memoryBytes: Int64?
    /// Whether stdout was cut at the output limit.
    public var stdoutTruncated: Bool
    /// Whether stderr was cut at the output limit.
    public var stderrTruncated: Bool
    /// A human-readable note (e.g. which limit was hit).
    public var message: String?
    /// Service-defined extra fields, encoded by the service.
    public var extra: Data?

    /// Describes one test's result.
    public init(
        verdict: Verdict, stdout: Data = Data(), stderr: Data = Data(), exitCode: Int32? = nil,
        signal: Int32? = nil, cpuMilliseconds: Int64? = nil, wallMilliseconds: Int64? = nil,
        memoryBytes: Int64? = nil, stdoutTruncated: Bool = false, stderrTruncated: Bool = false,
        message: String? = nil, extra: Data? = nil
    ) {
        self.verdict = verdict
        self.stdout = stdout
        self.stderr = stderr
        self.exitCode = exitCode
        self.signal = signal
        self.cpuMilliseconds = cpuMilliseconds
        self.wallMilliseconds = wallMilliseconds
        self.memoryBytes = memoryBytes
        self.stdoutTruncated = stdoutTruncated
        self.stderrTruncated = stderrTruncated
        self.message = message
        self.extra = extra
    }
}

/// A finished job's result.
public struct JobResult: Hashable, Sendable {
    /// The overall outcome.
    public var verdict: Verdict
    /// A human-readable explanation (always set for `internal_error`).
    public var message: String?
    /// Compiler output bytes, if there was a compile step.
    public var compileOutput: Data?
    /// Whether the compiler output was cut at the output limit.
    public var compileOutputTruncated: Bool
    /// An overall score, when the request asked for one.
    public var score: Double?
    /// Per-test results in test order.
    public var tests: [TestResult]
    /// Service-defined extra fields, encoded by the service.
    public var extra: Data?

    /// Describes a result.
    public init(
        verdict: Verdict, message: String? = nil, compileOutput: Data? = nil,
        compileOutputTruncated: Bool = false, score: Double? = nil, tests: [TestResult] = [],
        extra: Data? = nil
    ) {
        self.verdict = verdict
        self.message = message
        self.compileOutput = compileOutput
        self.compileOutputTruncated = compileOutputTruncated
        self.score = score
        self.tests = tests
        self.extra = extra
    }
}

/// A stored job with its request and, once finished, its result.
public struct JobRecord: Hashable, Sendable {
    /// The public identifier.
    public var id: JobID
    /// Current state.
    public var state: JobState
    /// Scheduling priority (higher first).
    public var priority: Int
    /// The request's language.
    public var language: String
    /// The encoded request exactly as inserted.
    public var request: Data
    /// The callback URL, if any.
    public var callbackURL: String?
    /// The idempotency key, if any.
    public var idempotencyKey: String?
    /// When the job was inserted.
    public var createdAt: Timestamp
    /// When the current (or last) attempt was claimed.
    public var startedAt: Timestamp?
    /// When it finished or was cancelled.
    public var finishedAt: Timestamp?
    /// How many times it has been claimed.
    public var attempts: Int
    /// The worker that holds (or last held) it.
    public var worker: String?
    /// When the current lease ends, while running.
    public var leaseExpiresAt: Timestamp?
    /// The result, once finished.
    public var result: JobResult?

    /// Describes a stored job (for backends).
    public init(
        id: JobID,
        state: JobState,
        priority: Int,
        language: String,
        request: Data,
        callbackURL: String?,
        idempotencyKey: String?,
        createdAt: Timestamp,
        startedAt: Timestamp?,
        finishedAt: Timestamp?,
        attempts: Int,
        worker: String?,
        leaseExpiresAt: Timestamp?,
        result: JobResult?
    ) {
        self.id = id
        self.state = state
        self.priority = priority
        self.language = language
        self.request = request
        self.callbackURL = callbackURL
        self.idempotencyKey = idempotencyKey
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.attempts = attempts
        self.worker = worker
        self.leaseExpiresAt = leaseExpiresAt
        self.result = result
    }
}

/// A job without its request and result bodies, for listings.
public struct JobSummary: Hashable, Sendable {
    /// The public identifier.
    public var id: JobID
    /// Current state.
    public var state: JobState
    /// Scheduling priority.
    public var priority: Int
    /// The request's language.
    public var language: String
    /// When the job was inserted.
    public var createdAt: Timestamp
    /// When the last attempt started.
    public var startedAt: Timestamp?
    /// When it finished or was cancelled.
    public var finishedAt: Timestamp?
    /// How many times it has been claimed.
    public var attempts: Int
    /// The overall verdict, once finished.
    public var verdict: Verdict?

    /// Describes a listed job (for backends).
    public init(
        id: JobID,
        state: JobState,
        priority: Int,
        language: String,
        createdAt: Timestamp,
        startedAt: Timestamp?,
        finishedAt: Timestamp?,
        attempts: Int,
        verdict: Verdict?
    ) {
        self.id = id
        self.state = state
        self.priority = priority
        self.language = language
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.attempts = attempts
        self.verdict = verdict
    }
}

/// Which jobs to list. Listing is newest first.
public struct JobFilter: Sendable {
    /// Only these states; empty means all.
    public var states: Set<JobState>
    /// Only jobs created at or after this instant.
    public var createdFrom: Timestamp?
    /// Only jobs created before this instant.
    public var createdBefore: Timestamp?
    /// Page size (1…1000).
    public var limit: Int
    /// Continue after the page that returned this cursor.
    public var cursor: String?

    /// Describes a listing.
    public init(
        states: Set<JobState> = [], createdFrom: Timestamp? = nil, createdBefore: Timestamp? = nil,
        limit: Int = 100, cursor: String? = nil
    ) {
        self.states = states
        self.createdFrom = createdFrom
        self.createdBefore = createdBefore
        self.limit = limit
        self.cursor = cursor
    }
}

/// One page of a listing.
public struct JobPage: Sendable {
    /// The jobs on this page, newest first.
    public var jobs: [JobSummary]
    /// Pass as `JobFilter.cursor` for the next page; nil on the last page.
    public var nextCursor: String?

    /// Describes a page (for backends).
    public init(
        jobs: [JobSummary],
        nextCursor: String?
    ) {
        self.jobs = jobs
        self.nextCursor = nextCursor
    }
}

/// How many jobs are in each state.
public struct StateCounts: Hashable, Sendable {
    /// Waiting jobs.
    public var queued: Int
    /// Jobs held by workers.
    public var running: Int
    /// Jobs with a result.
    public var finished: Int
    /// Cancelled jobs.
    public var cancelled: Int

    /// The count for one state.
    public subscript(state: JobState) -> Int {
        switch state {
        case .queued: queued
        case .running: running
        case .finished: finished
        case .cancelled: cancelled
        }
    }

    /// Describes counts per state.
    public init(
        queued: Int = 0,
        running: Int = 0,
        finished: Int = 0,
        cancelled: Int = 0
    ) {
        self.queued = queued
        self.running = running
        self.finished = finished
        self.cancelled = cancelled
    }
}

/// Counts of jobs for usage statistics, as aggregate queries over indexes compute them (no job
/// is loaded).
public struct JobStatistics: Hashable, Sendable {
    /// Every stored job (purged jobs are gone).
    public var total: Int
    /// Jobs per language id.
    public var byLanguage: [String: Int]
    /// Jobs per outcome, one entry per distinct (state, verdict, signal).
    public var byOutcome: [OutcomeCount]
    /// Jobs created on each UTC day since the day asked for, by day number (days since
    /// 1970-01-01 UTC); days without jobs are absent.
    public var createdPerDay: [Int64: Int]

    /// How many jobs ended one way.
    public struct OutcomeCount: Hashable, Sendable {
        /// The jobs' state.
        public var state: JobState
        /// Their verdict; nil until finished.
        public var verdict: Verdict?
        /// For `runtime_error`: the signal that ended the first test with that verdict (nil when
        /// it exited with a status). Nil for every other verdict.
        public var signal: Int32?
        /// How many jobs.
        public var count: Int

        /// Describes one outcome's count.
        public init(state: JobState, verdict: Verdict?, signal: Int32?, count: Int) {
            self.state = state
            self.verdict = verdict
            self.signal = signal
            self.count = count
        }
    }

    /// Milliseconds in a day, the width of `createdPerDay`'s buckets.
    public static let millisecondsPerDay: Int64 = 86_400_000

    /// The day number of an instant (UTC).
    public static func day(of timestamp: Timestamp) -> Int64 {
        timestamp.millisecondsSince1970 >= 0
            ? timestamp.millisecondsSince1970 / millisecondsPerDay
            : (timestamp.millisecondsSince1970 + 1) / millisecondsPerDay - 1
    }

    /// Describes the counts.
    public init(total: Int = 0, byLanguage: [String: Int] = [:], byOutcome: [OutcomeCount] = [], createdPerDay: [Int64: Int] = [:]) {
        self.total = total
        self.byLanguage = byLanguage
        self.byOutcome = byOutcome
        self.createdPerDay = createdPerDay
    }
}

/// What reaping expired leases did.
public struct RequeueReport: Hashable, Sendable {
    /// Jobs put back in the queue for another attempt.
    public var requeued: [JobID]
    /// Jobs that used up their attempts and finished as `internal_error`.
    public var abandoned: [JobID]

    /// Describes what a requeue pass did.
    public init(
        requeued: [JobID] = [],
        abandoned: [JobID] = []
    ) {
        self.requeued = requeued
        self.abandoned = abandoned
    }
}

/// Page-level size of the database file.
public struct StorageStats: Hashable, Sendable {
    /// Bytes per page.
    public var pageSize: Int64
    /// Pages in the file.
    public var pageCount: Int64
    /// Pages on the free list (reclaimable by `incrementalVacuum`).
    public var freePages: Int64
    /// The file's size in bytes (excluding the WAL).
    public var fileBytes: Int64 { pageSize * pageCount }
    /// Bytes held by free pages.
    public var freeBytes: Int64 { pageSize * freePages }

    /// Describes the file's pages.
    public init(
        pageSize: Int64,
        pageCount: Int64,
        freePages: Int64
    ) {
        self.pageSize = pageSize
        self.pageCount = pageCount
        self.freePages = freePages
    }
}

/// Where a webhook delivery is.
public enum WebhookState: String, Sendable, Hashable, CaseIterable {
    /// Waiting for its next attempt.
    case pending
    /// The receiver accepted it.
    case delivered
    /// Gave up (attempts exhausted or permanent failure).
    case failed
}

/// A webhook to send.
public struct WebhookRequest: Hashable, Sendable {
    /// The receiver.
    public var url: String
    /// The body to POST; nil means "render the job's result when delivering" (used for jobs the
    /// store itself finishes, whose payload format it does not know).
    public var payload: Data?

    /// Describes a webhook to send.
    public init(url: String, payload: Data?) {
        self.url = url
        self.payload = payload
    }
}

/// A stored webhook delivery.
public struct WebhookDelivery: Hashable, Sendable {
    /// The delivery's identifier.
    public var id: Int64
    /// The job it reports on.
    public var jobID: JobID
    /// The receiver.
    public var url: String
    /// The body, or nil to render from the job.
    public var payload: Data?
    /// Current state.
    public var state: WebhookState
    /// Attempts made so far (claims count as attempts).
    public var attempts: Int
    /// When it is next due (while pending).
    public var nextAttemptAt: Timestamp
    /// The error of the last failed attempt.
    public var lastError: String?

    /// Describes a stored delivery (for backends).
    public init(
        id: Int64,
        jobID: JobID,
        url: String,
        payload: Data?,
        state: WebhookState,
        attempts: Int,
        nextAttemptAt: Timestamp,
        lastError: String?
    ) {
        self.id = id
        self.jobID = jobID
        self.url = url
        self.payload = payload
        self.state = state
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
    }
}

/// Backoff for webhook retries: `baseDelay · 2^(attempts-1)`, capped, until `maxAttempts`.
public struct WebhookRetryPolicy: Hashable, Sendable {
    /// Attempts before the delivery is marked failed.
    public var maxAttempts: Int
    /// Delay after the first failure.
    public var baseDelayMilliseconds: Int64
    /// Longest delay between attempts.
    public var maxDelayMilliseconds: Int64

    /// Describes a retry schedule.
    public init(maxAttempts: Int = 8, baseDelayMilliseconds: Int64 = 1_000, maxDelayMilliseconds: Int64 = 600_000) {
        self.maxAttempts = maxAttempts
        self.baseDelayMilliseconds = baseDelayMilliseconds
        self.maxDelayMilliseconds = maxDelayMilliseconds
    }

    /// The delay before the attempt after `attempts` failed ones.
    public func delay(afterAttempts attempts: Int) -> Int64 {
        let exponent = min(max(attempts - 1, 0), 40)
        let delay = baseDelayMilliseconds.multipliedReportingOverflow(by: Int64(1) << exponent)
        return delay.overflow ? maxDelayMilliseconds : min(delay.partialValue, maxDelayMilliseconds)
    }
}

/// A cached support file's metadata.
public struct CachedFile: Hashable, Sendable {
    /// The client-chosen identifier.
    public var id: String
    /// Size in bytes.
    public var size: Int64
    /// Last time it was stored or read (second granularity; see `SQLiteJobStore.fileInfo`).
    public var lastUsedAt: Timestamp

    /// Describes a cached file (for backends).
    public init(
        id: String,
        size: Int64,
        lastUsedAt: Timestamp
    ) {
        self.id = id
        self.size = size
        self.lastUsedAt = lastUsedAt
    }
}
