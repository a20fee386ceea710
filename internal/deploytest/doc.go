// Package deploytest holds the tests of the deploy/ folder (the Helm chart
// in deploy/helm/sandpit); only tests.
//
// The chart is rendered in-process with the Helm SDK, compared with a
// golden file, applied with server-side apply to a real test cluster
// (package kubetest) and its RBAC is exercised by impersonating the
// server's ServiceAccount: what the Kubernetes runtime does must be
// allowed, and a few things it must never do must be forbidden.
//
// It imports kubetest and client-go; production code must not import it.
package deploytest
