// Package local is the local runtime: it runs each sandbox as processes on
// this host, the embedded default of `sandpit serve`.
//
// A sandbox owns one directory (<data>/sandboxes/<id>) holding its checkout,
// its dependencies' data, its logs and the shims' spec and status files; a
// set of loopback ports recorded in its handle before anything listens on
// them; and processes that all carry marker variables naming it. Services
// run under a shim (package shim) in process groups of their own, as an
// unprivileged user when the server is root. Every step of Up is idempotent
// and marked done on disk only after it succeeded, so a server killed at any
// point resumes where it stopped; Down finds processes by marker, not by pid
// files, so nothing survives a delete.
//
// A template's resource class becomes one cgroup for the whole sandbox
// (package cgroup), made by Up before any shim starts; every shim joins it
// before it starts its service or database. Where the host cannot enforce
// limits the sandbox runs without them, and Observe says why.
//
// It imports the runtime contract, the template format and the domain types;
// never the store, the reconciler or the API.
package local
