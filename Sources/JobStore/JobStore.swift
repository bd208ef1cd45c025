// JobStore: durable job queue on SQLite. Implementation lands with issue 3.
import CSQLite
