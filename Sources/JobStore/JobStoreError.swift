import CSQLite

/// Why a JobStore operation failed, with enough context to log it and to pick an HTTP status.
public struct JobStoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; callers branch on this, never on `message`.
    public enum Code: String, Sendable, Hashable {
        /// The disk (or the configured size bound) is full; nothing of the operation was written.
        case storageFull
        /// The database stayed locked by another process for longer than the busy timeout.
        case busy
        /// The file is not a valid SQLite database or its pages are damaged.
        case corrupt
        /// The file or its directory cannot be written (permissions, read-only mount, immutable file).
        case unwritable
        /// The file cannot be opened or created at all (missing directory, bad path).
        case cannotOpen
        /// The file was written by a newer JobStore schema; it is refused, never downgraded.
        case schemaTooNew
        /// The file is an SQLite database that belongs to something else; it is left untouched.
        case notAJobStore
        /// A low-level I/O error other than a full disk.
        case io
        /// No job, delivery or file has the given id.
        case notFound
        /// The worker no longer owns the job: it was cancelled, requeued or claimed by another worker.
        case leaseLost
        /// The same idempotency key was used before with a different request.
        case idempotencyConflict
        /// A cached file is larger than the whole cache capacity.
        case fileTooLarge
        /// An argument is outside what the store accepts (bad cursor, empty id, …).
        case invalidArgument
        /// Any other SQLite failure; `sqliteCode` says which.
        case sqlite
    }

    /// The kind of failure.
    public var code: Code
    /// Human-readable explanation, including the operation that failed.
    public var message: String
    /// The extended SQLite result code, when SQLite reported the failure.
    public var sqliteCode: Int32?
    /// The database file concerned, when the failure is about the file.
    public var path: String?

    /// Creates an error; `message` should say what was being done and why it failed.
    public init(_ code: Code, _ message: String, sqliteCode: Int32? = nil, path: String? = nil) {
        self.code = code
        self.message = message
        self.sqliteCode = sqliteCode
        self.path = path
    }

    /// True when retrying later may succeed and the API should answer 503 Service Unavailable.
    public var isTemporarilyUnavailable: Bool {
        switch code {
        case .storageFull, .busy, .io: true
        default: false
        }
    }

    /// One line: code, message, file and SQLite code.
    public var description: String {
        var text = "JobStoreError.\(code.rawValue): \(message)"
        if let path { text += " [file: \(path)]" }
        if let sqliteCode { text += " [sqlite code \(sqliteCode)]" }
        return text
    }

    /// Maps an SQLite result code to the error category callers act on.
    static func code(forSQLite result: Int32) -> Code {
        switch result & 0xFF {
        case SQLITE_FULL: .storageFull
        case SQLITE_BUSY, SQLITE_LOCKED: .busy
        case SQLITE_CORRUPT, SQLITE_NOTADB: .corrupt
        case SQLITE_READONLY, SQLITE_PERM: .unwritable
        case SQLITE_CANTOPEN: .cannotOpen
        case SQLITE_IOERR: .io
        default: .sqlite
        }
    }
}
