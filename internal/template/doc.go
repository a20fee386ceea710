// Package template owns the sandpit/v1 template format: its Go types, the
// strict YAML decoder that reports every mistake with file:line:column, the
// validation rules, the defaults, ${...} interpolation and the variables it
// can name (Vars), --set overrides, and the JSON Schema for editors.
//
// The store, the API, the runtimes and the CLI all read templates through
// this package, so a template means the same thing everywhere. It imports
// only internal/sandbox (for the naming rules) from this module; it must not
// import the store, the runtimes or anything that does I/O beyond parsing
// the bytes it is given.
package template
