// Package store owns Sandpit's persistent state: template versions,
// sandboxes (spec and status), their event logs, the runtimes' handles,
// the records of data snapshots (the data itself lives elsewhere) and the
// usage record (when each sandbox ran or slept, kept after it is gone).
//
// Store is the interface; adapters live in sub-packages (sqlite/ is the
// embedded default, postgres/ the one several servers can share) and must
// pass the conformance suite in storetest/, which
// runs against real databases. The store knows the domain types of
// internal/sandbox and nothing of runtimes, the reconciler or the API.
package store
