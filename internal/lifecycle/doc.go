// Package lifecycle decides, from stored state and the clock alone, what
// should happen to a sandbox next: stay as it is, be suspended after being
// idle, wake, or be deleted because its TTL, its keep_failed period or the
// server's retention of suspended sandboxes ran out. It also holds the
// per-user limits (sandboxes, running sandboxes, pins).
//
// Everything here is a pure function of its arguments (the caller passes
// the time), so the reconciler can re-derive every decision after a
// restart and tests can step a fake clock through every transition. The
// reconciler acts on the decisions; the API computes the same deadlines to
// show them.
//
// It imports internal/sandbox and internal/template only.
package lifecycle
