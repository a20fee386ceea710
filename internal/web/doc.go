// Package web serves the console: the pages a browser gets from `sandpit
// serve` at /, and their embedded assets.
//
// The console is a client of the same API as the CLI. Pages are rendered
// on the server as shells (layout, headings, forms with their labels) and
// filled in by static/app.js from the API, which it reaches with the
// session cookie the sign-in page sets and the CSRF token the page holds
// (internal/auth). Everything that is not a console page is handed to the
// API handler unchanged, so one listener serves both.
package web
