// Package runtime defines where sandboxes run: the Runtime interface every
// runtime implements, its optional capabilities as small separate
// interfaces, and the types they exchange with the reconciler.
//
// Runtimes live in sub-packages (local/ runs processes on this host). The
// conformance harness in runtimetest/ is what every runtime must pass. This
// package imports the domain (internal/sandbox) and the template format, never
// the store, the reconciler or the API.
package runtime
