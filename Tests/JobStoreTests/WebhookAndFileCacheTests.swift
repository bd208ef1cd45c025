import Foundation
import JobStore
import Testing

@Suite struct WebhookTests {
    /// A finished job with a webhook enqueued by its completion.
    private func completedJob(_ fixture: Fixture, payload: Data = Data("{\"ok\":1}".utf8)) throws -> JobID {
        let id = try fixture.store.insert(NewJob(language: "c", request: Data(), callbackURL: "http://h/cb")).id
        _ = try fixture.store.claimNext(worker: "w", leaseMilliseconds: 1_000)
        try fixture.store.complete(
            id: id, worker: "w", result: JobResult(verdict: "accepted"),
            webhook: WebhookRequest(url: "http://h/cb", payload: payload))
        return id
    }

    @Test func completionEnqueuesADueDelivery() throws {
        let fixture = try Fixture()
        let id = try completedJob(fixture)
        let due = try fixture.store.claimDueWebhooks(limit: 10, inFlightMilliseconds: 30_000)
        #expect(due.count == 1)
        let delivery = try #require(due.first)
        #expect(delivery.jobID == id)
        #expect(delivery.url == "http://h/cb")
        #expect(delivery.payload == Data("{\"ok\":1}".utf8))
        #expect(delivery.state == .pending)
        #expect(delivery.attempts == 1)
        // In flight: hidden from other senders until the in-flight window passes.
        #expect(try fixture.store.claimDueWebhooks(limit: 10, inFlightMilliseconds: 30_000) == [])
        fixture.clock.advance(by: 30_000)
        #expect(try fixture.store.claimDueWebhooks(limit: 10, inFlightMilliseconds: 30_000).map(\.attempts) == [2])
        try fixture.store.markWebhookDelivered(id: delivery.id)
        #expect(try fixture.store.webhook(id: delivery.id)?.state == .delivered)
        fixture.clock.advance(by: 100_000)
        #expect(try fixture.store.claimDueWebhooks(limit: 10, inFlightMilliseconds: 30_000) == [])
    }

    @Test func failuresBackOffExponentiallyThenGiveUp() throws {
        let fixture = try Fixture {
            $0.webhookRetry = WebhookRetryPolicy(maxAttempts: 3, baseDelayMilliseconds: 1_000, maxDelayMilliseconds: 60_000)
        }
        _ = try completedJob(fixture)
        var delays: [Int64] = []
        var state = WebhookState.pending
        var deliveryID: Int64 = 0
        while state == .pending {
            let due = try fixture.store.claimDueWebhooks(limit: 1, inFlightMilliseconds: 30_000)
            let delivery = try #require(due.first)
            deliveryID = delivery.id
            let failedAt = fixture.clock.now
            state = try fixture.store.recordWebhookFailure(id: delivery.id, error: "HTTP 502 after attempt \(delivery.attempts)")
            if state == .pending {
                let next = try #require(try fixture.store.webhook(id: delivery.id)).nextAttemptAt
                delays.append(next.millisecondsSince1970 - failedAt.millisecondsSince1970)
                // Not due one millisecond early, due exactly on time.
                fixture.clock.advance(by: delays.last! - 1)
                #expect(try fixture.store.claimDueWebhooks(limit: 1, inFlightMilliseconds: 30_000) == [])
                fixture.clock.advance(by: 1)
            }
        }
        #expect(delays == [1_000, 2_000])
        let failed = try #require(try fixture.store.webhook(id: deliveryID))
        #expect(failed.state == .failed)
        #expect(failed.attempts == 3)
        #expect(failed.lastError == "HTTP 502 after attempt 3")
        #expect(WebhookRetryPolicy(maxAttempts: 99, baseDelayMilliseconds: 1_000, maxDelayMilliseconds: 5_000)
            .delay(afterAttempts: 60) == 5_000)
    }

    @Test func permanentFailureAndUnknownDeliveries() throws {
        let fixture = try Fixture()
        let id = try completedJob(fixture)
        let extra = try fixture.store.enqueueWebhook(jobID: id, WebhookRequest(url: "http://other/", payload: nil))
        try fixture.store.markWebhookFailed(id: extra, error: "HTTP 410 Gone")
        #expect(try fixture.store.webhook(id: extra)?.state == .failed)
        #expect(try fixture.store.claimDueWebhooks(limit: 10, inFlightMilliseconds: 1_000).count == 1)
        let unknownJob = #expect(throws: JobStoreError.self) {
            try fixture.store.enqueueWebhook(jobID: JobID("missing"), WebhookRequest(url: "http://x/", payload: nil))
        }
        #expect(unknownJob?.code == .notFound)
        let unknownDelivery = #expect(throws: JobStoreError.self) { try fixture.store.markWebhookDelivered(id: 9_999) }
        #expect(unknownDelivery?.code == .notFound)
    }

    @Test func pendingDeliveriesSurviveRestart() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("jobs.sqlite")
        let jobID: JobID
        do {
            let store = try SQLiteJobStore(path: path)
            jobID = try store.insert(NewJob(language: "c", request: Data())).id
            _ = try store.claimNext(worker: "w", leaseMilliseconds: 1_000)
            try store.complete(id: jobID, worker: "w", result: JobResult(verdict: "accepted"),
                               webhook: WebhookRequest(url: "http://h/", payload: binaryOutput))
        }
        let reopened = try SQLiteJobStore(path: path)
        let due = try reopened.claimDueWebhooks(limit: 10, inFlightMilliseconds: 1_000)
        #expect(due.map(\.jobID) == [jobID])
        #expect(due.first?.payload == binaryOutput)
    }
}

@Suite struct FileCacheTests {
    @Test func storesReplacesAndReadsBytes() throws {
        let fixture = try Fixture()
        #expect(try fixture.store.fileInfo(id: "a.txt") == nil)
        #expect(try fixture.store.fileContents(id: "a.txt") == nil)
        try fixture.store.putFile(id: "a.txt", contents: binaryOutput)
        #expect(try fixture.store.fileContents(id: "a.txt") == binaryOutput)
        #expect(try fixture.store.fileInfo(id: "a.txt")?.size == Int64(binaryOutput.count))
        try fixture.store.putFile(id: "a.txt", contents: Data("v2".utf8))
        #expect(try fixture.store.fileContents(id: "a.txt") == Data("v2".utf8))
        try fixture.store.putFile(id: "empty", contents: Data())
        #expect(try fixture.store.fileContents(id: "empty") == Data())
        #expect(try fixture.store.fileCacheSize() == 2)
        let badID = #expect(throws: JobStoreError.self) { try fixture.store.putFile(id: "", contents: Data()) }
        #expect(badID?.code == .invalidArgument)
    }

    @Test func evictsLeastRecentlyUsedToStayUnderCapacity() throws {
        let fixture = try Fixture { $0.fileCacheCapacityBytes = 3_000 }
        let kilobyte = Data(repeating: 7, count: 1_000)
        for name in ["a", "b", "c"] {
            try fixture.store.putFile(id: name, contents: kilobyte)
            fixture.clock.advance(by: 2_000)
        }
        // Reading "a" (HEAD counts too) makes "b" the least recently used.
        #expect(try fixture.store.fileInfo(id: "a") != nil)
        fixture.clock.advance(by: 2_000)
        try fixture.store.putFile(id: "d", contents: kilobyte)
        #expect(try fixture.store.fileInfo(id: "b") == nil)
        for name in ["a", "c", "d"] { #expect(try fixture.store.fileInfo(id: name) != nil) }
        #expect(try fixture.store.fileCacheSize() == 3_000)
        // A bigger file evicts as many as needed.
        fixture.clock.advance(by: 2_000)
        try fixture.store.putFile(id: "big", contents: Data(repeating: 1, count: 2_500))
        #expect(try fixture.store.fileCacheSize() <= 3_000)
        #expect(try fixture.store.fileInfo(id: "big") != nil)
        let tooLarge = #expect(throws: JobStoreError.self) {
            try fixture.store.putFile(id: "huge", contents: Data(repeating: 0, count: 3_001))
        }
        #expect(tooLarge?.code == .fileTooLarge)
        #expect(try fixture.store.fileInfo(id: "big") != nil)
    }
}
