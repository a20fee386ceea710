// Package github is what Sandpit knows of GitHub: webhook deliveries
// (signature check and the few payload fields gitsync acts on) and a small
// REST client for the calls gitsync makes with the server's token —
// listing open pull requests, one upserted comment per pull request, and
// commit statuses. The API base URL is configurable, so GitHub Enterprise
// Server (https://HOST/api/v3) works like github.com.
//
// It imports only the standard library: no store, no sandbox types, so
// both the API (webhooks) and gitsync (listing, reporting) can use it.
// The token it is given is sent as a bearer token to the configured base
// URL and nowhere else; it never appears in errors or logs.
package github
