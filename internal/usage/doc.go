// Package usage turns the store's usage intervals (sandbox.UsageInterval:
// when each sandbox was running or suspended, under which template and
// owner) into usage accounting: sandbox-hours per calendar day of a time
// zone, running by template and by owner, suspended, and what idle suspend
// saved.
//
// Everything here is a pure function of its arguments (the caller passes
// the intervals and the time), so it is table-tested without a store or a
// clock. The API serves its results (GET /api/v1/usage); the store records
// the intervals (see store.Store.UsageIntervals).
//
// It imports internal/sandbox only.
package usage
