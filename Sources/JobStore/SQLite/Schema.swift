import CSQLite

/// The database layout and its forward migrations, versioned by `PRAGMA user_version`.
enum Schema {
    /// Marks files as ours ("JBST"), so an unrelated SQLite file is refused rather than migrated.
    static let applicationID: Int64 = 0x4A42_5354

    /// `migrations[n]` upgrades a database at version `n` to `n + 1`. Append only; never edit a
    /// released step, because databases in the field have already run it.
    static let migrations: [String] = [
        // 0 → 1: jobs, per-test results, webhook deliveries, file cache.
        """
        CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY,               -- internal; orders the queue (FIFO within a priority)
            id TEXT NOT NULL UNIQUE,               -- public, random
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'finished', 'cancelled')),
            priority INTEGER NOT NULL DEFAULT 0,
            language TEXT NOT NULL,
            request BLOB NOT NULL,                 -- opaque, encoded by the service
            callback_url TEXT,
            idempotency_key TEXT,
            request_hash TEXT,
            created_at INTEGER NOT NULL,           -- milliseconds since 1970
            started_at INTEGER,
            finished_at INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            worker TEXT,
            lease_expires_at INTEGER,
            verdict TEXT,                          -- NULL until finished
            message TEXT,
            compile_output BLOB,
            compile_output_truncated INTEGER NOT NULL DEFAULT 0,
            score REAL,
            result_extra BLOB
        );
        CREATE UNIQUE INDEX jobs_idempotency ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX jobs_queue ON jobs (priority DESC, seq) WHERE state = 'queued';
        CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'running';
        CREATE INDEX jobs_state_created ON jobs (state, created_at);
        CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('finished', 'cancelled');

        CREATE TABLE job_tests (
            job_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
            test_index INTEGER NOT NULL,
            verdict TEXT NOT NULL,
            stdout BLOB NOT NULL,
            stderr BLOB NOT NULL,
            exit_code INTEGER,
            signal INTEGER,
            cpu_ms INTEGER,
            wall_ms INTEGER,
            memory_bytes INTEGER,
            stdout_truncated INTEGER NOT NULL DEFAULT 0,
            stderr_truncated INTEGER NOT NULL DEFAULT 0,
            message TEXT,
            extra BLOB,
            PRIMARY KEY (job_seq, test_index)
        );

        CREATE TABLE webhook_deliveries (
            id INTEGER PRIMARY KEY,
            job_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
            url TEXT NOT NULL,
            payload BLOB,                          -- NULL: render from the job when delivering
            state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            last_error TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE INDEX webhook_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
        CREATE INDEX webhook_job ON webhook_deliveries (job_seq);

        CREATE TABLE cached_files (
            id TEXT PRIMARY KEY,
            contents BLOB NOT NULL,
            size INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            last_used_at INTEGER NOT NULL
        );
        CREATE INDEX cached_files_lru ON cached_files (last_used_at, id);
        """,
        // 1 → 2: counts by language and outcome (`statistics`) from an index instead of the
        // table, whose rows carry the requests.
        """
        CREATE INDEX jobs_statistics ON jobs (state, verdict, language);
        """,
    ]

    /// The version this build writes.
    static var currentVersion: Int64 { Int64(migrations.count) }

    /// Validates the file, configures WAL and brings the schema up to date. Nothing is written
    /// until the file has been recognised as a fresh database or an older-or-equal JobStore one.
    /// `migrations` is replaceable so tests can exercise an upgrade to a future version.
    static func prepare(_ connection: Connection, verifyIntegrity: Bool, migrations: [String] = migrations) throws {
        let currentVersion = Int64(migrations.count)
        let version: Int64
        let owner: Int64
        let objectCount: Int64
        do {
            version = try connection.scalar("PRAGMA user_version") ?? 0
            owner = try connection.scalar("PRAGMA application_id") ?? 0
            objectCount = try connection.scalar("SELECT count(*) FROM sqlite_master") ?? 0
        } catch var error as JobStoreError {
            error.message = "cannot read the database header (corrupt or not an SQLite database?): "
                + error.message
            throw error
        }
        let isFresh = version == 0 && owner == 0 && objectCount == 0
        if !isFresh && owner != applicationID {
            throw JobStoreError(
                .notAJobStore,
                "the file is an SQLite database of another application (application_id \(owner), "
                    + "\(objectCount) schema objects); refusing to modify it", path: connection.path)
        }
        if version > currentVersion {
            throw JobStoreError(
                .schemaTooNew,
                "the database has schema version \(version) but this build understands up to "
                    + "\(currentVersion); it was written by a newer JobStore and is left unchanged — "
                    + "run a newer build or restore a backup", path: connection.path)
        }
        if verifyIntegrity && !isFresh { try checkIntegrity(connection, pragma: "quick_check") }

        // auto_vacuum only takes effect before the first table exists.
        if isFresh { try connection.execute("PRAGMA auto_vacuum=INCREMENTAL") }
        let journalMode = try connection.with("PRAGMA journal_mode=WAL") { statement in
            try statement.step() ? statement.text(0) : nil
        }
        guard journalMode?.lowercased() == "wal" else {
            throw JobStoreError(
                .sqlite, "cannot switch the database to WAL mode (got \(journalMode ?? "nothing"))",
                path: connection.path)
        }
        try connection.execute("PRAGMA foreign_keys=ON")

        for step in Int(version)..<migrations.count {
            try connection.transaction(immediate: true) {
                try connection.execute(migrations[step])
                try connection.execute("PRAGMA application_id=\(applicationID)")
                try connection.execute("PRAGMA user_version=\(step + 1)")
            }
        }
    }

    /// Runs `integrity_check` or `quick_check`; throws `.corrupt` with the first problems found.
    static func checkIntegrity(_ connection: Connection, pragma: String) throws {
        var problems: [String] = []
        do {
            try connection.with("PRAGMA \(pragma)") { statement in
                while try statement.step() { problems.append(statement.text(0) ?? "") }
            }
        } catch var error as JobStoreError {
            if error.code == .sqlite { error.code = .corrupt }
            error.message = "\(pragma) failed: " + error.message
            throw error
        }
        guard problems != ["ok"] else { return }
        throw JobStoreError(
            .corrupt, "\(pragma) found damage: " + problems.prefix(5).joined(separator: "; "),
            sqliteCode: SQLITE_CORRUPT, path: connection.path)
    }
}
