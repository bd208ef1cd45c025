import Foundation
import JobStore
import Testing

@Suite struct ReleaseTests {
    @Test func releaseRequeuesAtOnceAndRefundsTheAttempt() throws {
        let fixture = try Fixture { $0.maxAttempts = 1 }
        let id = try fixture.store.insert(job("released")).id
        let claimed = try #require(try fixture.store.claimNext(worker: "w1", leaseMilliseconds: 60_000))
        #expect(claimed.id == id)
        #expect(claimed.attempts == 1)

        #expect(try fixture.store.release(id: id, worker: "w1"))
        let queued = try #require(try fixture.store.job(id: id))
        #expect(queued.state == .queued)
        #expect(queued.worker == nil)
        #expect(queued.leaseExpiresAt == nil)
        #expect(queued.startedAt == nil)
        #expect(queued.attempts == 0, "a shutdown is not the job's fault")

        // With maxAttempts = 1 the job could not run again had the release counted as an attempt.
        let reclaimed = try #require(try fixture.store.claimNext(worker: "w2", leaseMilliseconds: 60_000))
        #expect(reclaimed.id == id)
        #expect(reclaimed.attempts == 1)
        try fixture.store.complete(id: id, worker: "w2", result: JobResult(verdict: "accepted"), webhook: nil)
        #expect(try fixture.store.job(id: id)?.state == .finished)
    }

    @Test func releaseByAnotherWorkerOrOfAFinishedJobChangesNothing() throws {
        let fixture = try Fixture()
        let id = try fixture.store.insert(job()).id
        _ = try fixture.store.claimNext(worker: "owner", leaseMilliseconds: 60_000)
        #expect(try fixture.store.release(id: id, worker: "someone-else") == false)
        #expect(try fixture.store.job(id: id)?.state == .running)
        try fixture.store.complete(id: id, worker: "owner", result: JobResult(verdict: "accepted"), webhook: nil)
        #expect(try fixture.store.release(id: id, worker: "owner") == false)
        #expect(try fixture.store.job(id: id)?.state == .finished)
        #expect(try fixture.store.release(id: JobID("unknown"), worker: "owner") == false)
    }
}

@Suite struct CachedFileRetentionTests {
    @Test func purgesOnlyFilesUnusedSinceTheCutoff() throws {
        let fixture = try Fixture()
        for index in 0..<1_200 { try fixture.store.putFile(id: "old-\(index)", contents: Data(repeating: 1, count: 10)) }
        try fixture.store.putFile(id: "used-again", contents: Data("x".utf8))
        fixture.clock.advance(by: 10_000)
        let cutoff = fixture.clock.now
        try fixture.store.putFile(id: "new", contents: Data("y".utf8))
        _ = try fixture.store.fileContents(id: "used-again")  // marks it used after the cutoff

        // More than one 500-file chunk: every chunk is deleted.
        #expect(try fixture.store.purgeCachedFiles(unusedSince: cutoff) == 1_200)
        #expect(try fixture.store.fileInfo(id: "old-0") == nil)
        #expect(try fixture.store.fileInfo(id: "old-1199") == nil)
        #expect(try fixture.store.fileContents(id: "new") == Data("y".utf8))
        #expect(try fixture.store.fileContents(id: "used-again") == Data("x".utf8))
        #expect(try fixture.store.purgeCachedFiles(unusedSince: cutoff) == 0)
    }
}
