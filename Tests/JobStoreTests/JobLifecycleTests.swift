import Dispatch
import Foundation
import JobStore
import Synchronization
import Testing

@Suite struct JobLifecycleTests {
    @Test func insertedJobReadsBackExactly() throws {
        let fixture = try Fixture()
        let request = Data("{\"files\":[]}".utf8) + binaryOutput
        let submission = try fixture.store.insert(NewJob(
            language: "c", priority: 7, request: request, callbackURL: "http://example.test/cb",
            idempotency: Idempotency(key: "k1", requestHash: "h1")))
        #expect(submission.created)
        let record = try #require(try fixture.store.job(id: submission.id))
        #expect(record.id == submission.id)
        #expect(record.state == .queued)
        #expect(record.priority == 7)
        #expect(record.language == "c")
        #expect(record.request == request)
        #expect(record.callbackURL == "http://example.test/cb")
        #expect(record.idempotencyKey == "k1")
        #expect(record.createdAt == fixture.clock.now)
        #expect(record.startedAt == nil && record.finishedAt == nil && record.result == nil)
        #expect(record.attempts == 0)
        #expect(submission.record == record, "the insert's record is what a read returns")
        #expect(try fixture.store.job(id: JobID("missing")) == nil)
        let repeated = try fixture.store.insert(NewJob(
            language: "c", priority: 7, request: request, idempotency: Idempotency(key: "k1", requestHash: "h1")))
        #expect(!repeated.created && repeated.id == submission.id && repeated.record == nil)
    }

    @Test func idsAreRandomURLSafeAndDistinct() throws {
        let fixture = try Fixture()
        let ids = try fixture.store.insert(batch: (0..<200).map { job("\($0)") }).map(\.id.rawValue)
        #expect(Set(ids).count == 200)
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for id in ids {
            #expect(id.count == 22)
            #expect(id.allSatisfy(allowed.contains))
            // 128 bits in unpadded base64url: the last digit holds 2 bits, so it is A, Q, g or w.
            #expect("AQgw".contains(id.last!), "\(id)")
            // Which base64 decodes back to 16 bytes.
            let padded = id.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "=="
            #expect(Data(base64Encoded: padded)?.count == 16, "\(id)")
        }
        // Every digit shows up in the other positions of 200 random ids.
        #expect(Set(ids.flatMap { $0.dropLast() }).count == 64)
    }

    @Test func claimsByPriorityThenFIFOAndOnlyOnce() throws {
        let fixture = try Fixture()
        let low1 = try fixture.store.insert(job("low1", priority: 0)).id
        let high1 = try fixture.store.insert(job("high1", priority: 5)).id
        let low2 = try fixture.store.insert(job("low2", priority: 0)).id
        let high2 = try fixture.store.insert(job("high2", priority: 5)).id
        var order: [JobID] = []
        while let claimed = try fixture.store.claimNext(worker: "w1", leaseMilliseconds: 1_000) {
            #expect(claimed.state == .running)
            #expect(claimed.worker == "w1")
            #expect(claimed.attempts == 1)
            #expect(claimed.startedAt == fixture.clock.now)
            #expect(claimed.leaseExpiresAt == fixture.clock.now.adding(milliseconds: 1_000))
            order.append(claimed.id)
        }
        #expect(order == [high1, high2, low1, low2])
        #expect(try fixture.store.countsByState() == StateCounts(queued: 0, running: 4, finished: 0, cancelled: 0))
    }

    @Test func concurrentClaimersNeverShareAJob() throws {
        let fixture = try Fixture { $0.synchronous = .normal }
        let total = 300
        _ = try fixture.store.insert(batch: (0..<total).map { job("\($0)") })
        let claimed = Mutex<[JobID]>([])
        let failures = Mutex<[String]>([])
        let store = fixture.store
        DispatchQueue.concurrentPerform(iterations: 6) { worker in
            do {
                while let job = try store.claimNext(worker: "w\(worker)", leaseMilliseconds: 60_000) {
                    claimed.withLock { $0.append(job.id) }
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        let ids = claimed.withLock { $0 }
        #expect(ids.count == total)
        #expect(Set(ids).count == total)
    }

    @Test func completionStoresStructuredResultAndBytes() throws {
        let fixture = try Fixture()
        let id = try fixture.store.insert(job()).id
        _ = try #require(try fixture.store.claimNext(worker: "w", leaseMilliseconds: 5_000))
        fixture.clock.advance(by: 1_234)
        let result = JobResult(
            verdict: "wrong_answer", message: "test 2 differs", compileOutput: Data("warning: x".utf8),
            compileOutputTruncated: true, score: 0.5,
            tests: [
                TestResult(verdict: "accepted", stdout: binaryOutput, stderr: Data(), exitCode: 0, cpuMilliseconds: 12,
                           wallMilliseconds: 30, memoryBytes: 1 << 20),
                TestResult(verdict: "wrong_answer", stdout: Data(), stderr: binaryOutput, exitCode: nil, signal: 9,
                           stdoutTruncated: true, stderrTruncated: true, message: "killed", extra: Data([1, 2])),
            ],
            extra: Data("{}".utf8))
        let finishedAt = try fixture.store.complete(id: id, worker: "w", result: result, webhook: nil)
        let record = try #require(try fixture.store.job(id: id))
        #expect(record.state == .finished)
        #expect(record.finishedAt == fixture.clock.now)
        #expect(record.finishedAt == finishedAt)
        #expect(record.leaseExpiresAt == nil)
        #expect(record.result == result)
        // Empty output must stay an empty BLOB, not turn into NULL or text.
        #expect(record.result?.tests[1].stdout == Data())
        #expect(record.result?.tests[0].stdout == binaryOutput)
    }

    @Test func onlyTheLeaseHolderMayCompleteOrRenew() throws {
        let fixture = try Fixture()
        let id = try fixture.store.insert(job()).id
        _ = try fixture.store.claimNext(worker: "owner", leaseMilliseconds: 1_000)
        let stranger = #expect(throws: JobStoreError.self) {
            try fixture.store.complete(id: id, worker: "stranger", result: JobResult(verdict: "accepted"), webhook: nil)
        }
        #expect(stranger?.code == .leaseLost)
        #expect(stranger?.message.contains("held by worker owner") == true)
        fixture.clock.advance(by: 500)
        let expiry = try fixture.store.renewLease(id: id, worker: "owner", leaseMilliseconds: 1_000)
        #expect(expiry == fixture.clock.now.adding(milliseconds: 1_000))
        #expect(try fixture.store.job(id: id)?.leaseExpiresAt == expiry)
        let renewStranger = #expect(throws: JobStoreError.self) {
            try fixture.store.renewLease(id: id, worker: "stranger", leaseMilliseconds: 1_000)
        }
        #expect(renewStranger?.code == .leaseLost)
        let unknown = #expect(throws: JobStoreError.self) {
            try fixture.store.renewLease(id: JobID("nope"), worker: "owner", leaseMilliseconds: 1_000)
        }
        #expect(unknown?.code == .notFound)
        try fixture.store.complete(id: id, worker: "owner", result: JobResult(verdict: "accepted"), webhook: nil)
        let twice = #expect(throws: JobStoreError.self) {
            try fixture.store.complete(id: id, worker: "owner", result: JobResult(verdict: "accepted"), webhook: nil)
        }
        #expect(twice?.code == .leaseLost)
        #expect(twice?.message.contains("already finished") == true)
    }

    @Test func cancelQueuedRunningAndFinishedJobs() throws {
        let fixture = try Fixture()
        let queued = try fixture.store.insert(job("a")).id
        let running = try fixture.store.insert(job("b")).id
        let done = try fixture.store.insert(job("c")).id
        #expect(try fixture.store.cancel(id: queued, webhook: nil) == .cancelled)
        #expect(try fixture.store.claimNext(worker: "w", leaseMilliseconds: 1_000)?.id == running)
        #expect(try fixture.store.claimNext(worker: "w", leaseMilliseconds: 1_000)?.id == done)
        try fixture.store.complete(id: done, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil)
        #expect(try fixture.store.cancel(id: running, webhook: WebhookRequest(url: "http://h/", payload: nil)) == .cancelled)
        #expect(try fixture.store.cancel(id: done, webhook: nil) == .finished)
        #expect(try fixture.store.cancel(id: queued, webhook: nil) == .cancelled)
        let missing = #expect(throws: JobStoreError.self) { try fixture.store.cancel(id: JobID("x"), webhook: nil) }
        #expect(missing?.code == .notFound)
        // A worker finishing a job that was cancelled under it learns it lost the job.
        let late = #expect(throws: JobStoreError.self) {
            try fixture.store.complete(id: running, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil)
        }
        #expect(late?.code == .leaseLost)
        #expect(late?.message.contains("cancelled") == true)
        #expect(try fixture.store.job(id: running)?.state == .cancelled)
        #expect(try fixture.store.claimNext(worker: "w", leaseMilliseconds: 1_000) == nil)
        #expect(try fixture.store.countsByState() == StateCounts(queued: 0, running: 0, finished: 1, cancelled: 2))
    }

    @Test func expiredLeasesAreRequeuedThenAbandonedWithAReason() throws {
        let fixture = try Fixture { $0.maxAttempts = 2 }
        let id = try fixture.store.insert(NewJob(language: "c", request: Data("x".utf8), callbackURL: "http://h/cb")).id
        let other = try fixture.store.insert(job("healthy")).id
        _ = try fixture.store.claimNext(worker: "dies-1", leaseMilliseconds: 1_000)
        _ = try fixture.store.claimNext(worker: "lives", leaseMilliseconds: 10_000)
        fixture.clock.advance(by: 999)
        #expect(try fixture.store.requeueExpiredLeases() == RequeueReport())
        fixture.clock.advance(by: 2)
        #expect(try fixture.store.requeueExpiredLeases() == RequeueReport(requeued: [id], abandoned: []))
        let requeued = try #require(try fixture.store.job(id: id))
        #expect(requeued.state == .queued && requeued.worker == nil && requeued.leaseExpiresAt == nil)
        #expect(requeued.attempts == 1)
        // The worker that lost the lease can no longer complete it.
        let stale = #expect(throws: JobStoreError.self) {
            try fixture.store.complete(id: id, worker: "dies-1", result: JobResult(verdict: "accepted"), webhook: nil)
        }
        #expect(stale?.code == .leaseLost)

        #expect(try fixture.store.claimNext(worker: "dies-2", leaseMilliseconds: 1_000)?.attempts == 2)
        fixture.clock.advance(by: 5_000)
        #expect(try fixture.store.requeueExpiredLeases() == RequeueReport(requeued: [], abandoned: [id]))
        let abandoned = try #require(try fixture.store.job(id: id))
        #expect(abandoned.state == .finished)
        #expect(abandoned.result?.verdict == .internalError)
        let message = try #require(abandoned.result?.message)
        #expect(message.contains("2 attempts"))
        #expect(message.contains("dies-2"))
        #expect(try fixture.store.job(id: other)?.state == .running)
        // The callback learns about it: a delivery whose payload is rendered at delivery time.
        let deliveries = try fixture.store.claimDueWebhooks(limit: 10, inFlightMilliseconds: 1_000)
        #expect(deliveries.map(\.jobID) == [id])
        #expect(deliveries.first?.payload == nil)
        #expect(deliveries.first?.url == "http://h/cb")
    }

    @Test func openingRequeuesJobsWhoseWorkerDiedWithThePreviousProcess() throws {
        let directory = try TemporaryDirectory()
        let clock = ManualClock()
        var configuration = SQLiteJobStore.Configuration(path: directory.file("jobs.sqlite"))
        configuration.clock = { clock.now }
        let orphan: JobID
        let leased: JobID
        do {
            let store = try SQLiteJobStore(configuration: configuration)
            #expect(store.startupRequeue == RequeueReport())
            orphan = try store.insert(job("orphan")).id
            leased = try store.insert(job("still leased")).id
            _ = try store.claimNext(worker: "dead", leaseMilliseconds: 1_000)
            _ = try store.claimNext(worker: "alive-elsewhere", leaseMilliseconds: 60_000)
        }
        clock.advance(by: 5_000)
        let reopened = try SQLiteJobStore(configuration: configuration)
        #expect(reopened.startupRequeue == RequeueReport(requeued: [orphan], abandoned: []))
        #expect(try reopened.job(id: orphan)?.state == .queued)
        #expect(try reopened.job(id: leased)?.state == .running)
    }

    @Test func idempotencyKeysDeduplicateOrConflict() throws {
        let fixture = try Fixture()
        let key = Idempotency(key: "retry-me", requestHash: "sha-A")
        let first = try fixture.store.insert(NewJob(language: "c", request: Data("A".utf8), idempotency: key))
        let again = try fixture.store.insert(NewJob(language: "c", request: Data("A".utf8), idempotency: key))
        #expect(first.created && !again.created)
        #expect(first.id == again.id)
        #expect(try fixture.store.job(idempotency: key) == first.id)
        #expect(try fixture.store.job(idempotency: Idempotency(key: "never", requestHash: "x")) == nil)
        let changed = Idempotency(key: "retry-me", requestHash: "sha-B")
        let conflict = #expect(throws: JobStoreError.self) {
            try fixture.store.insert(NewJob(language: "c", request: Data("B".utf8), idempotency: changed))
        }
        #expect(conflict?.code == .idempotencyConflict)
        let lookupConflict = #expect(throws: JobStoreError.self) { try fixture.store.job(idempotency: changed) }
        #expect(lookupConflict?.code == .idempotencyConflict)
        // Within one batch the second use of a key returns the first job.
        let batch = try fixture.store.insert(batch: [
            NewJob(language: "c", request: Data(), idempotency: Idempotency(key: "b", requestHash: "1")),
            NewJob(language: "c", request: Data(), idempotency: Idempotency(key: "b", requestHash: "1")),
        ])
        #expect(batch[0].created && !batch[1].created && batch[0].id == batch[1].id)
        #expect(try fixture.store.countsByState().queued == 2)
    }

    @Test func batchInsertIsAllOrNothing() throws {
        let fixture = try Fixture()
        _ = try fixture.store.insert(NewJob(language: "c", request: Data(), idempotency: Idempotency(key: "k", requestHash: "1")))
        let failing = #expect(throws: JobStoreError.self) {
            try fixture.store.insert(batch: [
                job("one"), job("two"),
                NewJob(language: "c", request: Data(), idempotency: Idempotency(key: "k", requestHash: "2")),
            ])
        }
        #expect(failing?.code == .idempotencyConflict)
        #expect(try fixture.store.countsByState().queued == 1)
    }

    @Test func listFiltersAndPaginatesNewestFirst() throws {
        let fixture = try Fixture()
        let start = fixture.clock.now
        var ids: [JobID] = []
        for index in 0..<25 {
            ids.append(try fixture.store.insert(job("\(index)", language: index % 2 == 0 ? "c" : "python")).id)
            fixture.clock.advance(by: 10)
        }
        for _ in 0..<3 {
            let claimed = try #require(try fixture.store.claimNext(worker: "w", leaseMilliseconds: 1_000))
            try fixture.store.complete(id: claimed.id, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil)
        }
        // All jobs, 10 per page, newest first, no duplicates or gaps.
        var seen: [JobID] = []
        var cursor: String?
        repeat {
            let page = try fixture.store.list(JobFilter(limit: 10, cursor: cursor))
            seen += page.jobs.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(seen == ids.reversed())

        let finished = try fixture.store.list(JobFilter(states: [.finished]))
        #expect(finished.jobs.map(\.id) == Array(ids.prefix(3)).reversed())
        #expect(finished.jobs.allSatisfy { $0.verdict == "accepted" })
        #expect(finished.nextCursor == nil)

        // Jobs 5…9 were created at start+50 … start+90 ms.
        let window = try fixture.store.list(JobFilter(
            states: [.queued, .finished], createdFrom: start.adding(milliseconds: 50),
            createdBefore: start.adding(milliseconds: 100)))
        #expect(window.jobs.map(\.id) == Array(ids[5..<10]).reversed())

        let bad = #expect(throws: JobStoreError.self) { try fixture.store.list(JobFilter(cursor: "!!")) }
        #expect(bad?.code == .invalidArgument)
        let tooSmall = #expect(throws: JobStoreError.self) { try fixture.store.list(JobFilter(limit: 0)) }
        #expect(tooSmall?.code == .invalidArgument)
    }

    @Test func purgeRemovesOnlyOldFinishedJobsWithTheirChildren() throws {
        let fixture = try Fixture()
        let old = try fixture.store.insert(job("old")).id
        let cancelledOld = try fixture.store.insert(job("cancelled")).id
        let recent = try fixture.store.insert(job("recent")).id
        let waiting = try fixture.store.insert(job("waiting")).id
        _ = try fixture.store.claimNext(worker: "w", leaseMilliseconds: 100_000)
        try fixture.store.complete(
            id: old, worker: "w", result: JobResult(verdict: "accepted", tests: [TestResult(verdict: "accepted")]),
            webhook: WebhookRequest(url: "http://h/", payload: Data("p".utf8)))
        _ = try fixture.store.cancel(id: cancelledOld, webhook: nil)
        fixture.clock.advance(by: 60_000)
        let cutoff = fixture.clock.now
        _ = try fixture.store.claimNext(worker: "w", leaseMilliseconds: 100_000)
        try fixture.store.complete(id: recent, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil)
        #expect(try fixture.store.purgeFinished(before: cutoff) == 2)
        #expect(try fixture.store.job(id: old) == nil)
        #expect(try fixture.store.job(id: cancelledOld) == nil)
        #expect(try fixture.store.job(id: recent)?.state == .finished)
        #expect(try fixture.store.job(id: waiting)?.state == .queued)
        // Cascade: the purged job's webhook is gone too.
        #expect(try fixture.store.claimDueWebhooks(limit: 10, inFlightMilliseconds: 1_000) == [])
        try fixture.store.checkIntegrity()
    }

    @Test func dataSurvivesReopen() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("jobs.sqlite")
        let id: JobID
        do {
            let store = try SQLiteJobStore(path: path)
            id = try store.insert(job("keep me")).id
            _ = try store.claimNext(worker: "w", leaseMilliseconds: 10_000)
            try store.complete(id: id, worker: "w", result: JobResult(verdict: "accepted", tests: [
                TestResult(verdict: "accepted", stdout: binaryOutput),
            ]), webhook: nil)
        }
        let reopened = try SQLiteJobStore(path: path)
        let record = try #require(try reopened.job(id: id))
        #expect(record.request == Data("keep me".utf8))
        #expect(record.result?.tests.first?.stdout == binaryOutput)
    }
}
