import CSQLite
import Dispatch
import Synchronization

/// A write waiting for the writer connection. One caller at a time, the leader, runs every
/// waiting write in one transaction, so concurrent callers share a single commit (and fsync).
protocol GroupedWrite: AnyObject, Sendable {
    /// Whether the write must be synced before it is acknowledged.
    var durable: Bool { get }
    /// Runs the write inside the group's transaction; its value is kept until the commit.
    func perform(on connection: Connection) throws
    /// The group committed (and, for a durable write, was synced): hand the kept value to the caller.
    func succeed()
    /// The write (or its whole group) was rolled back, or its sync failed.
    func fail(_ error: JobStoreError)
    /// Makes the write's caller the next leader (see ``WriteQueue``).
    func promote()
    /// Whether the caller already has its outcome.
    var isFinished: Bool { get }
}

final class PendingWrite<Value: Sendable>: GroupedWrite {
    /// What wakes a caller waiting for its write.
    enum Wake {
        /// The write has its outcome.
        case finished
        /// The write is still queued and its caller now leads the next groups.
        case promoted
    }

    let durable: Bool
    private let body: @Sendable (Connection) throws -> Value
    private let state = Mutex<(performed: Value?, outcome: Result<Value, JobStoreError>?)>((nil, nil))
    /// Signalled once: when the write finishes, or when its caller is promoted to leader. A
    /// semaphore rather than a wait on the writer's `Mutex`, whose priority-inheritance futex
    /// makes every waiter spin in the kernel while the leader runs.
    private let wakeUp = DispatchSemaphore(value: 0)

    init(durable: Bool, _ body: @escaping @Sendable (Connection) throws -> Value) {
        self.durable = durable
        self.body = body
    }

    func perform(on connection: Connection) throws {
        let value = try body(connection)
        state.withLock { $0.performed = value }
    }

    func succeed() {
        state.withLock { state in
            // Never left without an outcome: a caller woken without one would take itself for promoted.
            state.outcome = state.performed.map { .success($0) }
                ?? .failure(JobStoreError(.sqlite, "internal: a grouped write was acknowledged without having run"))
        }
        wakeUp.signal()
    }

    func fail(_ error: JobStoreError) {
        state.withLock { $0.outcome = .failure(error) }
        wakeUp.signal()
    }

    func promote() { wakeUp.signal() }

    /// Blocks until the write has finished or its caller has been promoted.
    func waitForTurn() -> Wake {
        wakeUp.wait()
        return isFinished ? .finished : .promoted
    }

    var isFinished: Bool { state.withLock { $0.outcome != nil } }

    var outcome: Result<Value, JobStoreError>? { state.withLock { $0.outcome } }
}

/// Writes queued for the next group, in arrival order, and who leads.
///
/// The first caller to find no leader becomes the leader: it commits groups of queued writes until
/// its own is done, then hands the lead to the caller of the oldest queued write, or steps down
/// when none is left. Every other caller sleeps until its write is committed (or it is promoted),
/// woken exactly once, so a busy writer costs each waiter one wake-up and no lock contention.
final class WriteQueue: Sendable {
    /// Bounds one transaction, so a burst is committed in several groups rather than one huge one.
    static let maxGroupSize = 256
    private let state = Mutex<(waiting: [any GroupedWrite], hasLeader: Bool)>(([], false))

    /// Queues `write`; true when its caller must lead now.
    func enqueue(_ write: any GroupedWrite) -> Bool {
        state.withLock { state in
            state.waiting.append(write)
            if state.hasLeader { return false }
            state.hasLeader = true
            return true
        }
    }

    /// For the leader, whose write is `own`: the next group to commit, or nil once `own` is
    /// finished — after handing the lead to the oldest waiting write, if any.
    func nextGroup(leaderOwn own: any GroupedWrite) -> [any GroupedWrite]? {
        state.withLock { state in
            if own.isFinished {
                if let next = state.waiting.first { next.promote() } else { state.hasLeader = false }
                return nil
            }
            // `own` is unfinished, so it is still waiting: the group is never empty.
            let group = Array(state.waiting.prefix(Self.maxGroupSize))
            state.waiting.removeFirst(group.count)
            return group
        }
    }
}

extension Connection {
    /// Runs `group` in one `BEGIN IMMEDIATE … COMMIT`; acknowledges its relaxed writes at once and
    /// its durable ones after syncing the log when `syncDurable` (the connection itself runs at
    /// `synchronous=NORMAL`, so only commits that hold a durable write pay for an fsync). In a
    /// group of several, each write gets a savepoint, so a write that fails (a conflict, a full
    /// disk for its rows) is undone alone and the others still commit. Nobody is told "success"
    /// before COMMIT has returned. Returns the error of a failed sync of the log, after which the
    /// caller must never commit on this connection again (see the end of this function).
    func commit(group: [any GroupedWrite], syncDurable: Bool) -> JobStoreError? {
        var performed: [any GroupedWrite] = []
        let isolated = group.count > 1
        do {
            try run("BEGIN IMMEDIATE")
            for write in group {
                // A lone write needs no savepoint: if it fails, the whole transaction is its own.
                if isolated { try run("SAVEPOINT grouped_write") }
                do {
                    try write.perform(on: self)
                    if isolated { try run("RELEASE grouped_write") }
                    performed.append(write)
                } catch {
                    // After some errors (e.g. SQLITE_FULL) SQLite has already rolled back the whole
                    // transaction; then everyone in the group fails below.
                    guard isolated, isInTransaction else { throw error }
                    try run("ROLLBACK TO grouped_write")
                    try run("RELEASE grouped_write")
                    write.fail(Self.storeError(error))
                }
            }
            try run("COMMIT")
        } catch {
            if isInTransaction { _ = try? run("ROLLBACK") }
            let failure = Self.storeError(error)
            for write in group where !write.isFinished { write.fail(failure) }
            return nil
        }
        for write in performed where !write.durable || !syncDurable { write.succeed() }
        guard syncDurable, performed.contains(where: \.durable) else { return nil }
        let rc = syncHook?() ?? csqlite_sync_wal(handle)
        if rc == SQLITE_OK {
            walSyncCount += 1
            for write in performed where write.durable { write.succeed() }
            return nil
        }
        // Committed but not known to be on disk, so not acknowledged. And no write is ever
        // acknowledged again on this connection: after a failed fsync the kernel may have dropped
        // the dirty pages, so a later sync could "succeed" over a hole in the log (PostgreSQL's
        // fsyncgate). The store stays refused until it is reopened, which recovers from the log.
        let failure = JobStoreError(
            JobStoreError.code(forSQLite: rc),
            "syncing the write-ahead log failed (SQLite result code \(rc)); the store refuses writes until it is reopened",
            sqliteCode: rc, path: path)
        for write in performed where write.durable { write.fail(failure) }
        return failure
    }

    static func storeError(_ error: any Error) -> JobStoreError {
        error as? JobStoreError ?? JobStoreError(.sqlite, "unexpected error: \(error)")
    }
}
