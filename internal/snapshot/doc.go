// Package snapshot owns data snapshots: named, immutable copies of a
// dependency's data that new sandboxes start from in constant time.
//
// The Manager keeps snapshot records in the store and drives the runtime's
// Snapshotter capability to capture a running sandbox's dependency, import
// a dump, and delete data. Creation runs in the background: the record is
// stored in phase Creating first (so a name is claimed once, and a server
// killed mid-way resumes the work at start), and becomes Ready only when
// the runtime has frozen complete data — a snapshot is never usable half
// made. Which sandboxes use a snapshot is computed from their templates
// and restore requests, not stored.
//
// Seeding a dependency from a snapshot (at launch or by a restore request)
// is the reconciler's and the runtime's job; this package resolves names
// for them (Resolve).
//
// It imports store, runtime, template and sandbox; never api, cli or a
// concrete runtime.
package snapshot
