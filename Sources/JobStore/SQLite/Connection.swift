import CSQLite
import Foundation

/// One SQLite connection and the statements prepared on it.
///
/// Not thread-safe by itself: every instance is owned by exactly one `Mutex` in `ConnectionSlot`,
/// so SQLite's own per-connection mutex is switched off (`SQLITE_OPEN_NOMUTEX`).
final class Connection {
    let handle: OpaquePointer
    let path: String
    /// Prepared once, reused for the life of the connection (keyed by SQL text).
    private var statements: [String: Statement] = [:]
    /// Successful syncs of the write-ahead log after durable group commits (for tests).
    var walSyncCount = 0
    /// Replaces the log sync in tests (returns an SQLite result code).
    var syncHook: (() -> Int32)?

    /// Opens `path`. The writer may create the file; readers open an existing one read-write (WAL
    /// readers need the shared-memory index) and are then made `query_only` by the caller.
    init(path: String, isReader: Bool) throws {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | (isReader ? 0 : SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw JobStoreError(
                JobStoreError.code(forSQLite: rc), "cannot open the database: \(message)",
                sqliteCode: rc, path: path)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        // SQLite silently falls back to read-only when the file cannot be opened for writing;
        // a store that cannot persist acknowledged jobs must refuse to start instead.
        if !isReader && sqlite3_db_readonly(db, "main") == 1 {
            sqlite3_close_v2(db)
            throw JobStoreError(
                .unwritable, "the database file cannot be opened for writing (permissions, "
                    + "read-only mount or immutable file)", sqliteCode: SQLITE_READONLY, path: path)
        }
    }

    deinit {
        for statement in statements.values { sqlite3_finalize(statement.handle) }
        sqlite3_close_v2(handle)
    }

    /// An error built from the connection's last failure.
    func error(_ rc: Int32, _ doing: String) -> JobStoreError {
        let extended = sqlite3_extended_errcode(handle)
        let detail = String(cString: sqlite3_errmsg(handle))
        let code = JobStoreError.code(forSQLite: rc)
        return JobStoreError(code, "\(doing): \(detail)", sqliteCode: extended != 0 ? extended : rc, path: path)
    }

    /// Runs SQL without results (may hold several statements). Not cached: for set-up and DDL.
    func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        sqlite3_free(errorMessage)
        if rc != SQLITE_OK { throw error(rc, "executing \(sql.prefix(60))") }
    }

    /// The cached prepared statement for `sql`, prepared on first use.
    func prepared(_ sql: String) throws -> Statement {
        if let statement = statements[sql] { return statement }
        var raw: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, nil)
        guard rc == SQLITE_OK, let raw else { throw error(rc, "preparing \(sql.prefix(60))") }
        let statement = Statement(handle: raw, connection: self)
        statements[sql] = statement
        return statement
    }

    /// Runs `body` with the prepared statement for `sql`, bound to `values`; resets it afterwards
    /// so that no statement keeps a read snapshot (which would block WAL checkpoints).
    func with<T>(_ sql: String, _ values: [any SQLBindable] = [], _ body: (Statement) throws -> T) throws -> T {
        let statement = try prepared(sql)
        defer { statement.reset() }
        try statement.bind(values)
        return try body(statement)
    }

    /// Runs a statement that returns no rows; returns the number of rows changed.
    @discardableResult
    func run(_ sql: String, _ values: [any SQLBindable] = []) throws -> Int {
        try with(sql, values) { statement in
            while try statement.step() {}
            return Int(sqlite3_changes(handle))
        }
    }

    /// The first column of the first row as an integer, or nil when there is no row or it is NULL.
    func scalar(_ sql: String, _ values: [any SQLBindable] = []) throws -> Int64? {
        try with(sql, values) { statement in
            try statement.step() ? statement.optionalInt64(0) : nil
        }
    }

    var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Sets `PRAGMA synchronous` (only while the store opens: afterwards group commits sync the
    /// log themselves).
    func setSynchronous(_ level: Synchronous) throws {
        try execute("PRAGMA synchronous=\(level == .full ? "FULL" : "NORMAL")")
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT` (or `BEGIN` for readers) and rolls back on
    /// any error. SQLite rolls back by itself after some errors (e.g. SQLITE_FULL), hence the check.
    func transaction<T>(immediate: Bool, _ body: () throws -> T) throws -> T {
        try run(immediate ? "BEGIN IMMEDIATE" : "BEGIN")
        do {
            let value = try body()
            try run("COMMIT")
            return value
        } catch {
            if isInTransaction { _ = try? run("ROLLBACK") }
            throw error
        }
    }
}

/// A prepared statement owned by a `Connection`; columns are read by index.
final class Statement {
    let handle: OpaquePointer
    unowned let connection: Connection

    init(handle: OpaquePointer, connection: Connection) {
        self.handle = handle
        self.connection = connection
    }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    func bind(_ values: [any SQLBindable]) throws {
        for (offset, value) in values.enumerated() {
            let rc = value.bind(to: handle, at: Int32(offset + 1))
            if rc != SQLITE_OK { throw connection.error(rc, "binding parameter \(offset + 1)") }
        }
    }

    /// Advances; true when a row is available, false when done.
    func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error(rc, "running \(String(cString: sqlite3_sql(handle)).prefix(60))")
        }
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }
    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }
    func optionalInt64(_ column: Int32) -> Int64? { isNull(column) ? nil : int64(column) }
    func double(_ column: Int32) -> Double? { isNull(column) ? nil : sqlite3_column_double(handle, column) }
    func bool(_ column: Int32) -> Bool { int64(column) != 0 }

    func text(_ column: Int32) -> String? {
        guard let bytes = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    /// Bytes exactly as stored; an empty BLOB is `Data()`, a NULL is nil.
    func blob(_ column: Int32) -> Data? {
        if isNull(column) { return nil }
        guard let bytes = sqlite3_column_blob(handle, column) else { return Data() }
        return Data(bytes: bytes, count: Int(sqlite3_column_bytes(handle, column)))
    }
}

/// The `synchronous` levels the store uses in WAL mode.
public enum Synchronous: Sendable, Hashable {
    /// fsync the WAL at every commit: an acknowledged write survives power loss.
    case full
    /// fsync only at checkpoints: survives a process crash, may lose the last commits on power loss.
    case normal
}

/// A Swift value that can be bound to a statement parameter (always an immutable value type).
protocol SQLBindable: Sendable {
    func bind(to statement: OpaquePointer, at index: Int32) -> Int32
}

extension Int64: SQLBindable {
    func bind(to statement: OpaquePointer, at index: Int32) -> Int32 { sqlite3_bind_int64(statement, index, self) }
}

extension Int: SQLBindable {
    func bind(to statement: OpaquePointer, at index: Int32) -> Int32 { sqlite3_bind_int64(statement, index, Int64(self)) }
}

extension Int32: SQLBindable {
    func bind(to statement: OpaquePointer, at index: Int32) -> Int32 { sqlite3_bind_int64(statement, index, Int64(self)) }
}

extension Bool: SQLBindable {
    func bind(to statement: OpaquePointer, at index: Int32) -> Int32 { sqlite3_bind_int(statement, index, self ? 1 : 0) }
}

extension Double: SQLBindable {
    func bind(to statement: OpaquePointer, at index: Int32) -> Int32 { sqlite3_bind_double(statement, index, self) }
}

extension String: SQLBindable {
    func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
        var copy = self
        return copy.withUTF8 { bytes in
            sqlite3_bind_text64(
                statement, index, bytes.baseAddress, UInt64(bytes.count), csqlite_transient(), UInt8(SQLITE_UTF8))
        }
    }
}

extension Data: SQLBindable {
    func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
        // An empty buffer may have no base address, which SQLite would store as NULL; output that
        // was empty must stay an empty BLOB.
        if isEmpty { return sqlite3_bind_zeroblob(statement, index, 0) }
        return withUnsafeBytes { bytes in
            sqlite3_bind_blob64(statement, index, bytes.baseAddress, UInt64(bytes.count), csqlite_transient())
        }
    }
}

extension Optional: SQLBindable where Wrapped: SQLBindable {
    func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
        switch self {
        case .some(let value): value.bind(to: statement, at: index)
        case .none: sqlite3_bind_null(statement, index)
        }
    }
}
