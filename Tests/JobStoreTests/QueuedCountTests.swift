import Foundation
@testable import JobStore
import Testing

/// The admission check counts the queue on every submission, so it must cost what the queue
/// holds, not what the history holds.
@Suite struct QueuedCountTests {
    @Test func countsOnlyQueuedJobsWhateverHappenedToTheOthers() throws {
        let fixture = try Fixture()
        let store = fixture.store
        #expect(try store.queuedCount() == 0)
        for index in 0..<9 { _ = try store.insert(job("print(\(index))", priority: index % 3)) }
        #expect(try store.queuedCount() == 9)
        // Two run and finish, one is running, one is cancelled while queued.
        for _ in 0..<2 {
            let claimed = try #require(try store.claimNext(worker: "w", leaseMilliseconds: 60_000))
            try store.complete(id: claimed.id, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil)
        }
        _ = try #require(try store.claimNext(worker: "w", leaseMilliseconds: 60_000))
        let queued = try #require(try store.list(JobFilter(states: [.queued], limit: 1)).jobs.first)
        _ = try store.cancel(id: queued.id, webhook: nil)
        #expect(try store.queuedCount() == 5)
        #expect(try store.queuedCount() == store.countsByState().queued)
    }

    @Test func theCountReadsOnlyTheQueuedRangeOfAnIndex() throws {
        let fixture = try Fixture()
        _ = try fixture.store.insert(job())
        let connection = try Connection(path: fixture.path, isReader: true)
        let plan = try connection.with("EXPLAIN QUERY PLAN SELECT count(*) FROM jobs INDEXED BY jobs_state_created WHERE state = 'queued'") {
            statement in
            var lines: [String] = []
            while try statement.step() { lines.append(statement.text(3) ?? "") }
            return lines.joined(separator: "\n")
        }
        #expect(plan.contains("COVERING INDEX jobs_state_created (state=?)"), "plan: \(plan)")
    }
}
