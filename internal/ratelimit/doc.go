// Package ratelimit limits failed authentication attempts per client
// address: the console's sign-in and the API's bearer tokens share one
// Limiter, so that guessing the admin token from one address is slowed to
// a handful of tries a minute whichever door is used.
//
// It owns the per-address token buckets and the choice of address: the
// connection's RemoteAddr only, never X-Forwarded-For or similar headers,
// which a client can forge to get a fresh bucket on every request (IPv6
// addresses count per /64, the block one host usually holds).
//
// It imports nothing from this module, so the API and the console can both
// use it without importing each other.
package ratelimit
