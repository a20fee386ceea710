// Package cli holds the `sandpit` client commands. They talk to the server
// through the typed client (package client) only — never to the store or a
// runtime — so they work the same against a local or a remote server.
//
// Conventions: data goes to stdout (tables, or -o json|yaml), progress and
// hints to stderr; a failed command exits 1 with a message that says what
// to do next; usage mistakes exit 2.
package cli
