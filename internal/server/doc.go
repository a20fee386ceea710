// Package server assembles `sandpit serve`: it opens the store, resolves
// the service user, builds the runtime, the reconciler, the endpoint proxy
// and the API, and runs them until its context ends. It is the one place
// that knows every component; each component knows only its own
// dependencies, passed explicitly.
package server
