import Foundation
@testable import JobStore
import Testing

@Suite struct MigrationTests {
    @Test func aPopulatedDatabaseIsMigratedForwardOnceAndKeepsItsData() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("jobs.sqlite")
        let id: JobID
        do {
            let store = try SQLiteJobStore(path: path)
            id = try store.insert(NewJob(language: "c", request: binaryOutput)).id
        }
        // A hypothetical next version adds a column with a default and a table.
        let future = Schema.migrations + [
            """
            ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
            CREATE TABLE tenants (name TEXT PRIMARY KEY);
            """
        ]
        for _ in 0..<2 {  // the second open finds the next version and must not re-run the step
            let connection = try Connection(path: path, isReader: false)
            try Schema.prepare(connection, verifyIntegrity: true, migrations: future)
            #expect(try connection.scalar("PRAGMA user_version") == Schema.currentVersion + 1)
            #expect(try connection.scalar("SELECT count(*) FROM jobs WHERE tenant = 'default'") == 1)
            #expect(try connection.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'tenants'") == 1)
        }
        // This build now refuses the file instead of touching it…
        let refused = #expect(throws: JobStoreError.self) { try SQLiteJobStore(path: path) }
        #expect(refused?.code == .schemaTooNew)
        // …and the job written by this build is intact underneath.
        let connection = try Connection(path: path, isReader: true)
        #expect(try connection.with("SELECT request FROM jobs WHERE id = ?", [id.rawValue]) { statement in
            try statement.step() ? statement.blob(0) : nil
        } == binaryOutput)
    }
}
