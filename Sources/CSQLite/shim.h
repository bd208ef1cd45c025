#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <stddef.h>
#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro cast that Swift cannot import.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }

/// Syncs the write-ahead log of `db`'s main database: what `PRAGMA synchronous=FULL` does after
/// every commit, done here only after the commits that must be durable. Returns an SQLite
/// result code; SQLITE_ERROR when the database has no open log (it is not in WAL mode).
static inline int csqlite_sync_wal(sqlite3 *_Nonnull db) {
    sqlite3_file *file = NULL;
    int rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &file);
    if (rc != SQLITE_OK) return rc;
    if (file == NULL || file->pMethods == NULL) return SQLITE_ERROR;
    // SQLITE_SYNC_NORMAL is the flag SQLite itself syncs the log with at synchronous=FULL
    // (fdatasync on Linux).
    return file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
}
#endif
