// Package runtimetest is the conformance harness every runtime passes:
// Run(t, Harness) launches real sandboxes from real templates (YAML parsed
// by template.Parse) whose services are the testsvc program, and checks
// what the runtime.Runtime contract promises: readiness, idempotent and
// resumable Up, observation, restart policies, permanent errors, ordering,
// init, interpolation, env layering, logs, exec and a Down that leaves
// nothing behind.
//
// testsvc/ is that program: a tiny configurable HTTP service. Helpers here
// build it (BuildTestsvc) into a directory every user can read, since
// services run as an unprivileged user when the tests run as root.
//
// It imports the runtime contract, the template format and the domain
// types; never a runtime implementation (those import it from their tests).
package runtimetest
