package sandbox

import "errors"

// Sentinel errors shared by the store, the runtimes and the API, defined
// here so that none of them has to import another to recognise them.
var (
	// ErrNotFound: no such template, version, sandbox, service or handle.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the name is taken, or a concurrent change won.
	ErrConflict = errors.New("conflict")
)
