// Package auth holds what the API and the web console share to tell who a
// request comes from: browser sessions (a signed cookie set at sign-in)
// and the CSRF tokens that bind a state-changing request to its session.
//
// Sessions are signed, not stored: the cookie carries its id, subject and
// expiry under an HMAC whose key the server derives from its admin token,
// so every replica of a server accepts the sessions of the others, and
// changing the token signs everyone out. The bearer-token check itself
// stays in internal/api.
package auth
