// Package postgres is the store.Store for PostgreSQL, through pgx's
// connection pool (github.com/jackc/pgx/v5/pgxpool): the store to use when
// two or more `sandpit serve` replicas share one database, for example a
// Kubernetes Deployment. It holds what the SQLite adapter holds (template
// versions, sandboxes, their events, the runtimes' handles, snapshot records,
// repository bindings and usage intervals) and passes the same conformance suite in
// internal/store/storetest.
//
// It owns its schema: the numbered migrations embedded from migrations/
// (the SQLite adapter's, version for version, in PostgreSQL types), applied
// by Open and recorded in schema_migrations. Each migration runs in its own
// transaction holding a transaction-level advisory lock, so replicas that
// start at once apply each migration exactly once; Open refuses a database
// migrated by a newer Sandpit (ErrSchemaTooNew).
//
// Concurrency across processes comes from the database, not from locks in
// this process: UpdateSpec and RenameSandbox read the row with SELECT ... FOR
// UPDATE in the transaction that writes it, ApplyTemplate serialises applies
// of one name with an advisory lock keyed by the name, and AppendEvent
// takes an advisory lock around taking a seq and committing, so that seq
// order is commit order and a reader resuming "after seq N" never misses an
// event committed later with a smaller seq.
//
// Times are timestamptz, kept to the microsecond and returned in UTC, as
// the SQLite adapter does. PostgreSQL text cannot hold NUL bytes or invalid
// UTF-8: free-form messages (of events and snapshots) are stored with those
// replaced by U+FFFD (what the API's JSON encoding shows for invalid UTF-8
// anyway), and what the write returns says so; spec, status and repository
// status are json (not jsonb), which keeps them as written, \u0000 included.
//
// Only transaction-level advisory locks are used, never session-level
// state, so a connection pooler in transaction mode (PgBouncer) may sit in
// front; add default_query_exec_mode=exec to the URL if it cannot keep
// prepared statements (the tests pass in that mode and in simple_protocol).
//
// Connection strings are never logged or put in errors with their password:
// use Redact.
//
// It imports nothing from this module except internal/store and
// internal/sandbox.
package postgres
