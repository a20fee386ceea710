// Package testenv starts Sandpit's real components in-process for tests of
// the API, the client and the CLI: a SQLite store and the local runtime in a
// fresh data directory, the reconciler running, and the API on an httptest
// server with a known token. It also holds the golden-file helpers those
// tests share (an -update flag and scrubbers for ids, times, ports, digests
// and paths).
//
// Test binaries that use it must call Main from TestMain: the local runtime
// supervises every service with a shim, which is this test binary re-run
// as "shim SPEC".
//
// Only tests import it. It must not be imported by production code.
package testenv
