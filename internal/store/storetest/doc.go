// Package storetest is the conformance suite every store.Store adapter
// passes: Run drives an adapter through the contract documented on
// store.Store (versioning, conflicts under concurrency, not-found errors,
// event sequencing and paging, handles that outlive sandboxes, snapshot
// records and which of their fields may change, time round-trips, context
// cancellation) against a real database.
//
// It owns the behavioural definition of the contract; adapter-specific
// behaviour (files, migrations, pools) is tested in the adapter's package.
// It imports only internal/store and internal/sandbox, and is imported only
// by tests.
package storetest
