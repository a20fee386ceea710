// Package logfile owns the on-disk format of service logs: one line per
// record ("<RFC3339 time> <stream> <text>"), written to size-capped files
// that rotate to a single ".1" predecessor, and read back merged across
// files in time order, with tail and follow.
//
// Several files make up one unit's log because different processes write
// them (the shim writes a service's output, the server its build and init
// output); a file is only ever written by one process, so rotation needs no
// cross-process locking. It imports nothing from this module.
package logfile
