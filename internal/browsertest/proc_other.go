//go:build !unix

package browsertest

import "time"

// waitGone has no way to list processes here; the browser itself was
// waited for.
func waitGone(string, time.Duration) []int { return nil }
