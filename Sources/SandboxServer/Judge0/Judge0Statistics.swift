import Foundation
import JobStore
import Synchronization

/// Judge0's `GET /statistics`: submissions counted in total, today and on each of the last 30
/// days, by language and by status, and the database's size — computed from the store's
/// aggregate counts (``JobStore/statistics(createdSince:)``) and kept for ten minutes, as Judge0
/// caches it; `invalidate_cache=true` recomputes.
///
/// Judge0's shape, key for key: `{created_at, cached_until, submissions: {total, today,
/// last_30_days: {"YYYY-MM-DD": n, …}}, languages: [{language: {id, name}, count}], statuses:
/// [{status: {id, name}, count}], database: {size_pretty, size_in_bytes}}`. The 31 days run from
/// today back to today − 30 (UTC); lists are sorted by count, largest first.
struct Judge0Statistics: Sendable {
    /// How long a computed answer is served (Judge0: 10 minutes).
    static let cacheDuration: Duration = .seconds(600)
    /// Days in `last_30_days` besides today.
    static let pastDays: Int64 = 30

    /// A language as the statistics name it: Judge0's id and display name.
    typealias LanguageName = (id: Int, name: String)

    /// The answer, rendered.
    /// - Parameter languageNames: Judge0 names by native language id; languages without one
    ///   (native-only) are not listed, as Judge0 knows only its own ids.
    static func render(_ statistics: JobStatistics, storage: StorageStats, now: Date,
                       languageNames: [String: LanguageName]) -> Judge0JSON {
        let today = JobStatistics.day(of: JobStore::Timestamp(now))
        let days = (0...pastDays).map { today - $0 }
        let perDay = days.map { day in (Self.dateString(day: day), Judge0JSON.integer(statistics.createdPerDay[day] ?? 0)) }

        var byLanguage: [(language: LanguageName, count: Int)] = []
        for (native, count) in statistics.byLanguage {
            if let name = languageNames[native] { byLanguage.append((name, count)) }
        }
        byLanguage.sort { ($1.count, $0.language.id) < ($0.count, $1.language.id) }

        var byStatus: [Judge0Status: Int] = [:]
        for outcome in statistics.byOutcome { byStatus[status(of: outcome), default: 0] += outcome.count }
        let statuses = byStatus.sorted { ($1.value, $0.key.rawValue) < ($0.value, $1.key.rawValue) }

        return .object([
            ("created_at", Judge0Format.datetime(now)),
            ("cached_until", Judge0Format.datetime(now.addingTimeInterval(Double(cacheDuration.components.seconds)))),
            ("submissions", .object([
                ("total", .integer(statistics.total)),
                ("today", .integer(statistics.createdPerDay[today] ?? 0)),
                ("last_30_days", .object(perDay)),
            ])),
            ("languages", .array(byLanguage.map { entry in
                .object([
                    ("language", .object([("id", .integer(entry.language.id)), ("name", .string(entry.language.name))])),
                    ("count", .integer(entry.count)),
                ])
            })),
            // Judge0 names a status here with `name` (its enumeration's field), not `description`.
            ("statuses", .array(statuses.map { status, count in
                .object([
                    ("status", .object([("id", .integer(status.rawValue)), ("name", .string(status.description))])),
                    ("count", .integer(count)),
                ])
            })),
            ("database", .object([
                ("size_pretty", .string(prettySize(bytes: storage.fileBytes))),
                ("size_in_bytes", .integer(Int(storage.fileBytes))),
            ])),
        ])
    }

    /// The Judge0 status of jobs with this outcome, by the rules of ``Judge0Outcome``. Only an
    /// exec-format failure cannot be told from other internal errors here: it counts as 13.
    static func status(of outcome: JobStatistics.OutcomeCount) -> Judge0Status {
        switch outcome.state {
        case .queued: return .inQueue
        case .running: return .processing
        case .cancelled: return .internalError
        case .finished: break
        }
        switch outcome.verdict.flatMap({ Verdict(rawValue: $0.rawValue) }) {
        case .accepted?: return .accepted
        case .wrongAnswer?: return .wrongAnswer
        case .timeLimitExceeded?: return .timeLimitExceeded
        case .compileError?: return .compilationError
        case .memoryLimitExceeded?: return .runtimeErrorOther
        case .outputLimitExceeded?: return .runtimeErrorSIGXFSZ
        case .runtimeError?: return outcome.signal.map { Judge0Status.forSignal(Int($0)) } ?? .runtimeErrorNZEC
        case .internalError?, .skipped?, nil: return .internalError
        }
    }

    /// `YYYY-MM-DD` of a day number (UTC).
    static func dateString(day: Int64) -> String {
        String(Timestamp.format(Date(timeIntervalSince1970: Double(day) * 86_400)).prefix(10))
    }

    /// PostgreSQL's `pg_size_pretty`, which Judge0 reports: bytes below 10 kB, then kB, MB, GB, TB
    /// with halves rounded away from zero, each unit used below 20480 of it.
    static func prettySize(bytes: Int64) -> String {
        if bytes < 10 * 1024 { return "\(bytes) bytes" }
        var halves = bytes >> 9  // in half-kB, keeping one bit for rounding
        for unit in ["kB", "MB", "GB"] {
            if halves < 20 * 1024 - 1 { return "\((halves + 1) / 2) \(unit)" }
            halves >>= 10
        }
        return "\((halves + 1) / 2) TB"
    }
}

/// The last `/statistics` answer and when it stops being served.
final class Judge0StatisticsCache: Sendable {
    private let entry = Mutex<(json: Judge0JSON, expires: ContinuousClock.Instant)?>(nil)

    /// The cached answer, or `compute()`'s (then cached) when there is none, it has expired, or
    /// `invalidate` asks for a fresh one.
    func answer(invalidate: Bool, _ compute: () throws -> Judge0JSON) rethrows -> Judge0JSON {
        let now = ContinuousClock.now
        if !invalidate, let cached = entry.withLock({ $0 }), cached.expires > now { return cached.json }
        let fresh = try compute()
        entry.withLock { $0 = (fresh, now + Judge0Statistics.cacheDuration) }
        return fresh
    }
}
