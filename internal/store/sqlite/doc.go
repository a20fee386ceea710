// Package sqlite is the embedded default store.Store: one SQLite file
// (pure Go, through modernc.org/sqlite, so no cgo) holding template
// versions, sandboxes, their events, the runtimes' handles, snapshot
// records and usage intervals.
//
// It owns the file and its schema: the numbered migrations embedded from
// migrations/, applied by Open and recorded in schema_migrations, and the
// connection settings (WAL, busy_timeout, foreign keys, synchronous=NORMAL,
// IMMEDIATE write transactions). Open refuses a database migrated by a newer
// Sandpit (ErrSchemaTooNew) instead of guessing at tables it does not know.
//
// Times are kept in UTC to the microsecond, the precision PostgreSQL has, so
// that every adapter returns the same values.
//
// It imports nothing from this module except internal/store and
// internal/sandbox, and must pass the conformance suite in
// internal/store/storetest.
package sqlite
