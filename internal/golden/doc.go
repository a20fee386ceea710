// Package golden compares test output with golden files (testdata/...),
// rewriting them when the tests run with -update. It imports nothing from
// this module, so any package's tests can use it, including the ones that
// internal/testenv (which imports most of the server) cannot serve.
package golden
