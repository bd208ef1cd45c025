import Synchronization

/// A write waiting for the writer connection. Whichever thread next holds the writer runs every
/// waiting write in one transaction, so concurrent callers share a single commit (and fsync).
protocol GroupedWrite: AnyObject, Sendable {
    /// Whether the write must be synced before it is acknowledged.
    var durable: Bool { get }
    /// Runs the write inside the group's transaction; its value is kept until the commit.
    func perform(on connection: Connection) throws
    /// The group committed: hand the kept value to the caller.
    func succeed()
    /// The write (or its whole group) was rolled back.
    func fail(_ error: JobStoreError)
    /// Whether the caller already has its outcome.
    var isFinished: Bool { get }
}

final class PendingWrite<Value: Sendable>: GroupedWrite {
    let durable: Bool
    private let body: @Sendable (Connection) throws -> Value
    private let state = Mutex<(performed: Value?, outcome: Result<Value, JobStoreError>?)>((nil, nil))

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
            if let value = state.performed { state.outcome = .success(value) }
        }
    }

    func fail(_ error: JobStoreError) { state.withLock { $0.outcome = .failure(error) } }

    var isFinished: Bool { state.withLock { $0.outcome != nil } }

    var outcome: Result<Value, JobStoreError>? { state.withLock { $0.outcome } }
}

/// Writes queued for the next group, in arrival order.
final class WriteQueue: Sendable {
    /// Bounds one transaction, so a burst is committed in several groups rather than one huge one.
    static let maxGroupSize = 256
    private let waiting = Mutex<[any GroupedWrite]>([])

    func enqueue(_ write: any GroupedWrite) { waiting.withLock { $0.append(write) } }

    func takeGroup() -> [any GroupedWrite] {
        waiting.withLock { queue in
            let group = Array(queue.prefix(Self.maxGroupSize))
            queue.removeFirst(group.count)
            return group
        }
    }
}

extension Connection {
    /// Runs `group` in one `BEGIN IMMEDIATE … COMMIT`. Each write gets a savepoint, so a write that
    /// fails (a conflict, a full disk for its rows) is undone alone and the others still commit.
    /// Nobody is told "success" before COMMIT has returned.
    func commit(group: [any GroupedWrite], synchronous: Synchronous) {
        var performed: [any GroupedWrite] = []
        do {
            let anyDurable = group.contains { $0.durable }
            try setSynchronous(anyDurable ? synchronous : .normal)
            try run("BEGIN IMMEDIATE")
            for write in group {
                try run("SAVEPOINT grouped_write")
                do {
                    try write.perform(on: self)
                    try run("RELEASE grouped_write")
                    performed.append(write)
                } catch {
                    // After some errors (e.g. SQLITE_FULL) SQLite has already rolled back the whole
                    // transaction; then everyone in the group fails below.
                    guard isInTransaction else { throw error }
                    try run("ROLLBACK TO grouped_write")
                    try run("RELEASE grouped_write")
                    write.fail(Self.storeError(error))
                }
            }
            try run("COMMIT")
            for write in performed { write.succeed() }
        } catch {
            if isInTransaction { _ = try? run("ROLLBACK") }
            let failure = Self.storeError(error)
            for write in group where !write.isFinished { write.fail(failure) }
        }
    }

    static func storeError(_ error: any Error) -> JobStoreError {
        error as? JobStoreError ?? JobStoreError(.sqlite, "unexpected error: \(error)")
    }
}
