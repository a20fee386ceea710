// Package pgtest starts a real PostgreSQL 15 for tests; only tests import
// it. Production code must not.
//
// Start runs initdb in a fresh directory under /var/tmp and postgres on a
// free loopback port (trust authentication for the superuser postgres,
// durability off: the data is throwaway), and Stop takes it down and
// removes the directory. PostgreSQL refuses to run as root, so when the
// tests run as root the cluster runs as the unprivileged user "sandpit",
// which must exist. The server binaries come from $PG_BIN, else Debian's
// /usr/lib/postgresql/15/bin.
//
// Get shares one cluster per test binary, started on first use; Main, from
// TestMain, stops it when the tests end. Each test takes a database of its
// own with NewDatabase, so tests sharing the cluster stay independent.
// When the binaries or the user are missing, Get skips the test with a
// message saying what to install, unless CI=true, when it fails.
//
// postgres dies with the test binary (Pdeathsig), even one killed by
// -timeout; directories such runs leave behind are removed by a later
// Start once they are an hour old.
//
// It imports nothing from this module.
package pgtest
