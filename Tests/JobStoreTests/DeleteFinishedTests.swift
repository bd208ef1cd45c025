import Foundation
import JobStore
import Testing

@Suite struct DeleteFinishedTests {
    @Test func deletesOnlyFinishedOrCancelledJobsWithTheirTestsAndWebhooks() throws {
        let fixture = try Fixture()
        let running = try fixture.store.insert(job("running"))
        let queued = try fixture.store.insert(job("queued"))
        let finished = try fixture.store.insert(job("finished"))
        _ = try fixture.store.claimNext(worker: "w", leaseMilliseconds: 60_000)
        _ = try fixture.store.claimNext(worker: "w2", leaseMilliseconds: 60_000)
        _ = try fixture.store.claimNext(worker: "w3", leaseMilliseconds: 60_000)
        try fixture.store.complete(
            id: finished.id, worker: "w3", result: JobResult(verdict: "accepted", tests: [TestResult(verdict: "accepted")]),
            webhook: WebhookRequest(url: "http://example.test/", payload: Data("{}".utf8)))
        let delivery = try #require(try fixture.store.claimDueWebhooks(limit: 10, inFlightMilliseconds: 1_000).first)

        #expect(try fixture.store.deleteFinished(id: running.id) == false)
        #expect(try fixture.store.job(id: running.id)?.state == .running)
        #expect(try fixture.store.deleteFinished(id: finished.id))
        #expect(try fixture.store.job(id: finished.id) == nil)
        #expect(try fixture.store.webhook(id: delivery.id) == nil, "its webhook deliveries go with it")

        #expect(try fixture.store.cancel(id: queued.id, webhook: nil) == .cancelled)
        #expect(try fixture.store.deleteFinished(id: queued.id))
        #expect(throws: JobStoreError.self) { try fixture.store.deleteFinished(id: queued.id) }
        do {
            _ = try fixture.store.deleteFinished(id: JobID("unknown"))
            Issue.record("deleting an unknown job must throw notFound")
        } catch {
            #expect(error.code == .notFound)
        }
    }
}
