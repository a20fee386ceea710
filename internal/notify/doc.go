// Package notify tells in-process listeners (event streams of the API, the
// CLI's `create --wait`) that something about a sandbox changed. A
// notification carries no data: listeners re-read the store, so a missed or
// coalesced notification never loses anything. It imports nothing from this
// module.
package notify
