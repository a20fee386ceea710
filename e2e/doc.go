// Package e2e holds Sandpit's end-to-end tests: they build the sandpit
// binary, run `sandpit serve` as a real child process over a real data
// dir, and drive it through the CLI and the typed client — launching the
// guestbook example with its real PostgreSQL, serving it through the
// endpoint proxy, killing the server with SIGKILL mid-launch and mid-delete,
// and checking that nothing of a deleted sandbox survives (process, port,
// directory, database).
package e2e
