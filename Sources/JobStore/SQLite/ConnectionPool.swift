import Synchronization

/// A connection guarded by its own mutex. `Mutex` is `Sendable` whatever it guards, so this class
/// is `Sendable` without `@unchecked`: the only way to reach the connection is `withLock`.
final class ConnectionSlot: Sendable {
    private let mutex: Mutex<Connection>

    init(_ connection: sending Connection) { mutex = Mutex(connection) }

    func use<T: Sendable, Failure: Error>(_ body: (Connection) throws(Failure) -> T) throws(Failure) -> T {
        try mutex.withLock { connection throws(Failure) in try body(connection) }
    }

    /// Runs `body` only if nobody holds the connection; nil when it is busy.
    func useIfAvailable<T: Sendable>(_ body: (Connection) throws -> T) throws -> T? {
        try mutex.withLockIfAvailable { connection in try body(connection) }
    }
}

/// One writer connection (every write is serialised through it) and a few read connections.
/// In WAL mode readers see the last committed snapshot and never wait for the writer.
final class ConnectionPool: Sendable {
    let writer: ConnectionSlot
    private let readers: [ConnectionSlot]
    private let nextReader = Atomic<Int>(0)

    init(writer: sending Connection, readers: [ConnectionSlot]) {
        self.writer = ConnectionSlot(writer)
        self.readers = readers
    }

    /// Runs `body` on a free read connection, or waits for one if all are busy.
    func read<T: Sendable>(_ body: (Connection) throws -> T) throws -> T {
        let start = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue & Int.max
        for offset in 0..<readers.count {
            if let value = try readers[(start + offset) % readers.count].useIfAvailable(body) { return value }
        }
        return try readers[start % readers.count].use(body)
    }
}
