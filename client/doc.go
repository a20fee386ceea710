// Package client is the typed Go client of Sandpit's HTTP API, and the
// home of the API's wire types. The CLI and the end-to-end tests use it;
// so can any program that drives Sandpit (a CI bot, say).
//
// Sandbox and Event are the domain types themselves (aliases), so the API's
// JSON is exactly the domain's JSON, pinned by golden files in internal/api.
package client
