// Package sandbox holds Sandpit's domain types: sandboxes, their spec and
// status, phases and the transitions between them, events, and the rules for
// names.
//
// It is the innermost package: it imports nothing from this module, so the
// store, the runtimes, the reconciler and the API can all speak it without
// import cycles. It holds no behaviour that needs I/O.
package sandbox
