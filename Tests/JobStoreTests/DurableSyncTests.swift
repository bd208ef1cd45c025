import Dispatch
import Foundation
@testable import JobStore
import Synchronization
import Testing

/// The writer runs at `synchronous=NORMAL` and syncs the log itself after commits that hold a
/// durable write: these tests pin down which commits pay for a sync and that the log really is
/// synced (the sync goes through SQLite's own file object, so a failure there would show).
@Suite struct DurableSyncTests {
    @Test func durableWritesSyncAndRelaxedOnesDoNot() throws {
        let fixture = try Fixture()
        let store = fixture.store
        let before = store.walSyncCount
        let id = try store.insert(job("a")).id
        #expect(store.walSyncCount == before + 1, "an acknowledged insert is synced")
        _ = try #require(try store.claimNext(worker: "w", leaseMilliseconds: 60_000))
        _ = try store.renewLease(id: id, worker: "w", leaseMilliseconds: 60_000)
        #expect(store.walSyncCount == before + 1, "claims and renewals commit without a sync")
        try store.complete(id: id, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil)
        #expect(store.walSyncCount == before + 2, "a completion is synced")
        // A durable write that fails syncs nothing: there is nothing to make durable.
        #expect(throws: JobStoreError.self) {
            try store.complete(id: id, worker: "w", result: JobResult(verdict: "accepted"), webhook: nil)
        }
        #expect(store.walSyncCount == before + 2)
    }

    @Test func normalSynchronousNeverSyncs() throws {
        let fixture = try Fixture { $0.synchronous = .normal }
        let before = fixture.store.walSyncCount
        for index in 0..<5 { _ = try fixture.store.insert(job("\(index)")) }
        #expect(fixture.store.walSyncCount == before)
        #expect(try fixture.store.countsByState().queued == 5)
    }

    @Test func concurrentDurableWritesShareSyncs() throws {
        let fixture = try Fixture()
        let store = fixture.store
        let before = store.walSyncCount
        let failures = Mutex<[String]>([])
        // Threads of their own: Dispatch's pool may run fewer at once than asked while other suites run.
        let group = DispatchGroup()
        for thread in 0..<8 {
            group.enter()
            Thread {
                defer { group.leave() }
                for index in 0..<50 {
                    do { _ = try store.insert(job("\(thread)-\(index)")) } catch { failures.withLock { $0.append("\(error)") } }
                }
            }.start()
        }
        group.wait()
        #expect(failures.withLock { $0 } == [])
        let syncs = store.walSyncCount - before
        #expect(try store.countsByState().queued == 400)
        // Writers that arrive while a group commits wait and share the next commit and sync; a
        // sync per insert would mean no grouping at all (each sync takes long enough for the
        // seven other threads to queue behind it).
        #expect(syncs >= 1 && syncs < 400)
    }

    @Test func aLoneFailingWriteRollsBackAndTheNextCommits() throws {
        let fixture = try Fixture()
        _ = try fixture.store.insert(NewJob(language: "c", request: Data(), idempotency: Idempotency(key: "k", requestHash: "1")))
        let error = #expect(throws: JobStoreError.self) {
            try fixture.store.insert(NewJob(language: "c", request: Data("x".utf8), idempotency: Idempotency(key: "k", requestHash: "2")))
        }
        #expect(error?.code == .idempotencyConflict)
        _ = try fixture.store.insert(job("after"))
        #expect(try fixture.store.countsByState().queued == 2)
    }
}

/// A log sync that fails must not be followed by acknowledged writes on the same connection.
@Suite struct FailedSyncTests {
    @Test func aFailedSyncFailsItsDurableWritesAndEveryWriteAfterUntilReopened() throws {
        let fixture = try Fixture()
        let store = fixture.store
        let first = try store.insert(job("before")).id
        store.simulateSyncResult(10 | 4 << 8)  // SQLITE_IOERR_FSYNC
        let error = #expect(throws: JobStoreError.self) { try store.insert(job("during")) }
        #expect(error?.message.contains("syncing the write-ahead log failed") == true)
        // The disk "recovers", but the store does not trust it again: relaxed writes fail too.
        store.simulateSyncResult(nil)
        #expect(throws: JobStoreError.self) { try store.insert(job("after")) }
        #expect(throws: JobStoreError.self) { try store.claimNext(worker: "w", leaseMilliseconds: 1_000) }
        // Reads still work, but the store reports itself down (health checks ask storageStats).
        #expect(try store.job(id: first) != nil)
        #expect(throws: JobStoreError.self) { try store.storageStats() }
        // Reopening the file gives a working store again.
        let reopened = try SQLiteJobStore(configuration: store.configuration)
        _ = try reopened.insert(job("reopened"))
        #expect(try reopened.countsByState().queued >= 2)
    }

    @Test func aFoundIdempotencyKeyIsReportedAfterTheWriterHasSynced() throws {
        let fixture = try Fixture()
        let keyed = Idempotency(key: "k", requestHash: "h")
        let id = try fixture.store.insert(NewJob(language: "c", request: Data(), idempotency: keyed)).id
        let before = fixture.store.walSyncCount
        #expect(try fixture.store.job(idempotency: keyed) == id)
        // The barrier is a relaxed write: it waits for the writer but costs no sync of its own.
        #expect(fixture.store.walSyncCount == before)
        #expect(try fixture.store.job(idempotency: Idempotency(key: "other", requestHash: "h")) == nil)
    }
}
