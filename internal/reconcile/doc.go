// Package reconcile drives every sandbox toward its spec, level-based in
// the manner of controller-runtime: Reconcile(ctx, id) re-reads the store
// and the runtime each time, is idempotent, and asks to be called again
// (RequeueAfter) rather than sleeping. A work queue with bounded
// concurrency, per-key exclusivity and exponential retry backoff feeds it.
//
// The reconciler is the only writer of sandbox status and of the event log
// of launch stages; a killed server loses nothing, since the next Reconcile
// of each sandbox resumes from what the store and the runtime say. It
// imports the store, the runtime contract, the template format and the
// domain types; never the API or the CLI.
package reconcile
