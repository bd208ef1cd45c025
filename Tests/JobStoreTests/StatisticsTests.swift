import Foundation
@testable import JobStore
import Testing

@Suite struct StatisticsTests {
    /// Claims the oldest queued job and finishes it with `result`.
    func finishNext(_ store: SQLiteJobStore, _ result: JobResult) throws {
        let claimed = try #require(try store.claimNext(worker: "w", leaseMilliseconds: 60_000))
        try store.complete(id: claimed.id, worker: "w", result: result, webhook: nil)
    }

    @Test func timestampsFromDatesRoundTowardsThePast() {
        #expect(Timestamp(Date(timeIntervalSince1970: 1.2349)).millisecondsSince1970 == 1_234)
        #expect(Timestamp(Date(timeIntervalSince1970: 0)).millisecondsSince1970 == 0)
        // Before 1970 "down" is away from zero: the instant falls in the earlier millisecond.
        #expect(Timestamp(Date(timeIntervalSince1970: -0.0005)).millisecondsSince1970 == -1)
        #expect(Timestamp(Date(timeIntervalSince1970: 1_764_401_707.123)).date.timeIntervalSince1970 == 1_764_401_707.123)
    }

    @Test func countsByLanguageOutcomeAndDayWithoutLoadingJobs() throws {
        let fixture = try Fixture()
        let store = fixture.store
        let dayLength = JobStatistics.millisecondsPerDay
        let firstDay = JobStatistics.day(of: fixture.clock.now)
        // Day 0: two C jobs; one is a segfault on its second test, one exits non-zero.
        _ = try store.insert(job(language: "c"))
        _ = try store.insert(job(language: "c"))
        try finishNext(store, JobResult(verdict: "runtime_error", tests: [
            TestResult(verdict: "accepted", exitCode: 0),
            TestResult(verdict: "runtime_error", signal: 11),
            TestResult(verdict: "runtime_error", signal: 6),
        ]))
        try finishNext(store, JobResult(verdict: "runtime_error", tests: [TestResult(verdict: "runtime_error", exitCode: 3)]))
        // Day 2: three Python jobs — accepted, compile error, cancelled — and one still queued.
        fixture.clock.advance(by: 2 * dayLength)
        for _ in 0..<4 { _ = try store.insert(job(language: "python")) }
        try finishNext(store, JobResult(verdict: "accepted", tests: [TestResult(verdict: "accepted", exitCode: 0)]))
        try finishNext(store, JobResult(verdict: "compile_error", tests: [TestResult(verdict: "skipped")]))
        let cancelled = try #require(try store.list(JobFilter(states: [.queued], limit: 1)).jobs.first)
        _ = try store.cancel(id: cancelled.id, webhook: nil)

        let all = try store.statistics(createdSince: Timestamp(millisecondsSince1970: 0))
        #expect(all.total == 6)
        #expect(all.byLanguage == ["c": 2, "python": 4])
        let outcomes = Set(all.byOutcome)
        #expect(outcomes == [
            .init(state: .finished, verdict: "runtime_error", signal: 11, count: 1),  // the first runtime error's signal
            .init(state: .finished, verdict: "runtime_error", signal: nil, count: 1),
            .init(state: .finished, verdict: "accepted", signal: nil, count: 1),
            .init(state: .finished, verdict: "compile_error", signal: nil, count: 1),
            .init(state: .cancelled, verdict: nil, signal: nil, count: 1),
            .init(state: .queued, verdict: nil, signal: nil, count: 1),
        ])
        #expect(all.createdPerDay == [firstDay: 2, firstDay + 2: 4])
        // Only the days from createdSince's day on are counted, whatever its time of day.
        let recent = try store.statistics(createdSince: fixture.clock.now.adding(milliseconds: -dayLength))
        #expect(recent.createdPerDay == [firstDay + 2: 4])
        #expect(recent.total == 6, "the other counts cover every job")
    }

    @Test func dayNumbersAreUTCDays() {
        #expect(JobStatistics.day(of: Timestamp(millisecondsSince1970: 0)) == 0)
        #expect(JobStatistics.day(of: Timestamp(millisecondsSince1970: 86_399_999)) == 0)
        #expect(JobStatistics.day(of: Timestamp(millisecondsSince1970: 86_400_000)) == 1)
        #expect(JobStatistics.day(of: Timestamp(millisecondsSince1970: -1)) == -1)
    }

    @Test func statisticsQueriesUseIndexesNotTheJobsTable() throws {
        let fixture = try Fixture()
        _ = try fixture.store.insert(job())
        let connection = try Connection(path: fixture.path, isReader: true)
        func plan(_ sql: String) throws -> String {
            try connection.with("EXPLAIN QUERY PLAN " + sql) { statement in
                var lines: [String] = []
                while try statement.step() { lines.append(statement.text(3) ?? "") }
                return lines.joined(separator: "\n")
            }
        }
        // Reading the table would walk every request's overflow pages; the indexes hold the columns.
        #expect(try plan("SELECT language, count(*) FROM jobs GROUP BY language").contains("COVERING INDEX jobs_statistics"))
        #expect(try plan("SELECT state, verdict, count(*) FROM jobs GROUP BY 1, 2").contains("COVERING INDEX jobs_statistics"))
        #expect(try plan("""
            SELECT created_at / 86400000, count(*) FROM jobs
            WHERE state IN ('queued', 'running', 'finished', 'cancelled') AND created_at >= 0 GROUP BY 1
            """).contains("COVERING INDEX jobs_state_created"))
        #expect(try plan("SELECT seq FROM jobs WHERE state = 'finished' AND verdict = 'runtime_error'")
                .contains("COVERING INDEX jobs_statistics (state=? AND verdict=?)"))
    }

    @Test func aVersionOneDatabaseGainsTheStatisticsIndex() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("jobs.sqlite")
        do {
            let connection = try Connection(path: path, isReader: false)
            try Schema.prepare(connection, verifyIntegrity: true, migrations: Array(Schema.migrations.prefix(1)))
            #expect(try connection.scalar("PRAGMA user_version") == 1)
        }
        let store = try SQLiteJobStore(path: path)
        _ = try store.insert(job(language: "c"))
        #expect(try store.statistics(createdSince: .now).byLanguage == ["c": 1])
        let connection = try Connection(path: path, isReader: true)
        #expect(try connection.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'jobs_statistics'") == 1)
        #expect(try connection.scalar("PRAGMA user_version") == Schema.currentVersion)
    }
}
