import CSQLite
import Foundation
import JobStore
import Testing

/// Opens `path` with raw SQLite (outside the store) and runs `sql`; returns the first integer column.
@discardableResult
func rawSQLite(_ path: String, _ sql: String) throws -> Int64? {
    var db: OpaquePointer?
    guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil) == SQLITE_OK, let db else {
        throw RawSQLiteError(message: "open \(path) failed")
    }
    defer { sqlite3_close_v2(db) }
    var statement: OpaquePointer?
    var remaining = sql
    var first: Int64?
    while !remaining.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        var tail: UnsafePointer<CChar>?
        let consumed: Int = try remaining.withCString { start in
            guard sqlite3_prepare_v2(db, start, -1, &statement, &tail) == SQLITE_OK else {
                throw RawSQLiteError(message: String(cString: sqlite3_errmsg(db)))
            }
            return tail.map { $0 - start } ?? strlen(start)
        }
        defer { sqlite3_finalize(statement) }
        var rc = sqlite3_step(statement)
        while rc == SQLITE_ROW {
            if first == nil { first = sqlite3_column_int64(statement, 0) }
            rc = sqlite3_step(statement)
        }
        guard rc == SQLITE_DONE else { throw RawSQLiteError(message: String(cString: sqlite3_errmsg(db))) }
        remaining = String(remaining.utf8.dropFirst(consumed))!
    }
    return first
}

struct RawSQLiteError: Error { let message: String }

@Suite struct SchemaAndStorageTests {
    @Test func newDatabaseUsesWALIncrementalVacuumAndCurrentVersion() throws {
        let fixture = try Fixture()
        _ = try fixture.store.insert(job())
        #expect(try rawSQLite(fixture.path, "PRAGMA user_version") == 2)
        #expect(try rawSQLite(fixture.path, "PRAGMA auto_vacuum") == 2)  // 2 = INCREMENTAL
        #expect(try rawSQLite(fixture.path, "PRAGMA application_id") == 0x4A42_5354)
        #expect(FileManager.default.fileExists(atPath: fixture.path + "-wal"))
    }

    @Test func databaseFromANewerVersionIsRefusedAndLeftUnchanged() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("jobs.sqlite")
        do { _ = try SQLiteJobStore(path: path) }
        try rawSQLite(path, "PRAGMA user_version = 99")
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let error = #expect(throws: JobStoreError.self) { try SQLiteJobStore(path: path) }
        #expect(error?.code == .schemaTooNew)
        #expect(error?.path == path)
        #expect(error?.message.contains("99") == true)
        #expect(error?.message.contains("newer") == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try rawSQLite(path, "PRAGMA user_version") == 99)
    }

    @Test func foreignSQLiteDatabaseIsRefused() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("other.sqlite")
        try rawSQLite(path, "CREATE TABLE customers (name TEXT); INSERT INTO customers VALUES ('x')")
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let error = #expect(throws: JobStoreError.self) { try SQLiteJobStore(path: path) }
        #expect(error?.code == .notAJobStore)
        #expect(error?.path == path)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    @Test func incrementalVacuumReturnsFreedPages() throws {
        let fixture = try Fixture()
        let big = Data(repeating: 0x5A, count: 200_000)
        let ids = try fixture.store.insert(batch: (0..<20).map { _ in NewJob(language: "c", request: big) }).map(\.id)
        for id in ids { _ = try fixture.store.cancel(id: id, webhook: nil) }
        let full = try fixture.store.storageStats()
        #expect(full.fileBytes >= 20 * 200_000)
        fixture.clock.advance(by: 1)
        #expect(try fixture.store.purgeFinished(before: fixture.clock.now) == 20)
        let purged = try fixture.store.storageStats()
        #expect(purged.freePages > 900)
        #expect(try fixture.store.incrementalVacuum(maxPages: 0) == 0)
        #expect(try fixture.store.storageStats().freePages == purged.freePages)
        let freed = try fixture.store.incrementalVacuum(maxPages: 100)
        #expect(freed == 100)
        #expect(try fixture.store.storageStats().freePages == purged.freePages - 100)
        _ = try fixture.store.incrementalVacuum(maxPages: nil)
        let vacuumed = try fixture.store.storageStats()
        #expect(vacuumed.freePages == 0)
        #expect(vacuumed.pageCount < full.pageCount - 900)
    }

    @Test func readersDoNotWaitForAWriterAndWritersReportBusy() throws {
        let fixture = try Fixture { $0.busyTimeoutMilliseconds = 200 }
        let id = try fixture.store.insert(job("visible")).id
        // Another process-like connection takes the write lock and keeps it.
        var db: OpaquePointer?
        #expect(sqlite3_open_v2(fixture.path, &db, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK)
        defer { sqlite3_close_v2(db) }
        #expect(sqlite3_exec(db, "BEGIN IMMEDIATE; INSERT INTO cached_files VALUES ('x', x'00', 1, 0, 0)", nil, nil, nil) == SQLITE_OK)
        let started = Date()
        #expect(try fixture.store.job(id: id)?.request == Data("visible".utf8))
        #expect(try fixture.store.countsByState().queued == 1)
        #expect(Date().timeIntervalSince(started) < 0.15)
        let busy = #expect(throws: JobStoreError.self) { try fixture.store.insert(job("blocked")) }
        #expect(busy?.code == .busy)
        #expect(busy?.isTemporarilyUnavailable == true)
        #expect(sqlite3_exec(db, "ROLLBACK", nil, nil, nil) == SQLITE_OK)
        _ = try fixture.store.insert(job("after"))
        #expect(try fixture.store.countsByState().queued == 2)
    }
}
