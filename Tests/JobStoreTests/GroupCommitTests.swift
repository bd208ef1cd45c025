import Dispatch
import Foundation
import JobStore
import Synchronization
import Testing

@Suite struct GroupCommitTests {
    @Test func concurrentWritersAreAllAcknowledgedAndAFailingWriteFailsAlone() throws {
        let fixture = try Fixture()
        _ = try fixture.store.insert(NewJob(language: "c", request: Data(), idempotency: Idempotency(key: "taken", requestHash: "1")))
        let store = fixture.store
        let acknowledged = Mutex<[JobID]>([])
        let conflicts = Mutex<Int>(0)
        let unexpected = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for index in 0..<40 {
                // Every tenth write from each thread reuses a key with another request: it must fail
                // with a conflict without taking the writes grouped with it down.
                let conflicting = index % 10 == 9
                let newJob = NewJob(
                    language: "c", request: Data("\(thread)-\(index)".utf8),
                    idempotency: conflicting ? Idempotency(key: "taken", requestHash: "other") : nil)
                do {
                    let id = try store.insert(newJob).id
                    acknowledged.withLock { $0.append(id) }
                } catch let error as JobStoreError where error.code == .idempotencyConflict && conflicting {
                    conflicts.withLock { $0 += 1 }
                } catch {
                    unexpected.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(unexpected.withLock { $0 } == [])
        #expect(conflicts.withLock { $0 } == 8 * 4)
        let ids = acknowledged.withLock { $0 }
        #expect(ids.count == 8 * 36)
        #expect(Set(ids).count == ids.count)
        #expect(try fixture.store.countsByState().queued == 8 * 36 + 1)
        for id in ids { #expect(try fixture.store.job(id: id) != nil) }
    }

    @Test func concurrentMixedWritesKeepTheirOwnResults() throws {
        let fixture = try Fixture()
        let ids = try fixture.store.insert(batch: (0..<60).map { job("\($0)") }).map(\.id)
        let store = fixture.store
        let failures = Mutex<[String]>([])
        let finished = Mutex<[JobID: String]>([:])
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            do {
                while let claimed = try store.claimNext(worker: "w\(worker)", leaseMilliseconds: 60_000) {
                    let verdict = "v-\(claimed.id.rawValue)"
                    try store.complete(id: claimed.id, worker: "w\(worker)", result: JobResult(
                        verdict: Verdict(rawValue: verdict), tests: [TestResult(verdict: "accepted", stdout: Data(verdict.utf8))]),
                        webhook: nil)
                    finished.withLock { $0[claimed.id] = verdict }
                }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        let results = finished.withLock { $0 }
        #expect(Set(results.keys) == Set(ids))
        for (id, verdict) in results {
            let record = try #require(try fixture.store.job(id: id))
            #expect(record.result?.verdict.rawValue == verdict)
            #expect(record.result?.tests.first?.stdout == Data(verdict.utf8))
        }
    }

    @Test func completeAndClaimNextHandsOverInOneStep() throws {
        let fixture = try Fixture()
        let ids = try fixture.store.insert(batch: (0..<3).map { job("\($0)") }).map(\.id)
        var current = try #require(try fixture.store.claimNext(worker: "w", leaseMilliseconds: 1_000))
        var done: [JobID] = []
        while true {
            done.append(current.id)
            let handover = try fixture.store.completeAndClaimNext(
                id: current.id, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil, leaseMilliseconds: 1_000)
            #expect(try fixture.store.job(id: current.id)?.finishedAt == handover.finishedAt)
            guard let next = handover.next else { break }
            #expect(next.state == .running && next.worker == "w")
            current = next
        }
        #expect(done == ids)
        #expect(try fixture.store.countsByState() == StateCounts(finished: 3))
        // A failed completion claims nothing.
        let queued = try fixture.store.insert(job("left alone")).id
        let error = #expect(throws: JobStoreError.self) {
            try fixture.store.completeAndClaimNext(
                id: ids[0], worker: "w", result: JobResult(verdict: "accepted"), webhook: nil, leaseMilliseconds: 1_000)
        }
        #expect(error?.code == .leaseLost)
        #expect(try fixture.store.job(id: queued)?.state == .queued)
    }

    /// A caller that put the finish time in its webhook's payload gets that time stored.
    @Test func completionsKeepAGivenFinishTime() throws {
        let fixture = try Fixture()
        try fixture.store.insert(batch: [job("a"), job("b"), job("c")])
        let given = Timestamp(millisecondsSince1970: 1_700_000_000_123)
        let first = try #require(try fixture.store.claimNext(worker: "w", leaseMilliseconds: 1_000))
        let handover = try fixture.store.completeAndClaimNext(
            id: first.id, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil, finishedAt: given, leaseMilliseconds: 1_000)
        #expect(handover.finishedAt == given)
        #expect(try fixture.store.job(id: first.id)?.finishedAt == given)
        let second = try #require(handover.next)
        let later = Timestamp(millisecondsSince1970: given.millisecondsSince1970 + 1)
        #expect(try fixture.store.complete(id: second.id, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil, finishedAt: later) == later)
        #expect(try fixture.store.job(id: second.id)?.finishedAt == later)
        // And a cancel, whose webhook payload carries its time too.
        let third = try #require(try fixture.store.claimNext(worker: "w", leaseMilliseconds: 1_000))
        #expect(try fixture.store.cancel(id: third.id, webhook: nil, cancelledAt: given) == .cancelled)
        #expect(try fixture.store.job(id: third.id)?.finishedAt == given)
    }
}
