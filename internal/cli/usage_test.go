package cli_test

import (
	"testing"

	"sandpit.dev/sandpit/internal/testenv"
)

// TestUsageReport pins `sandpit usage` over a known history at a fixed
// time. (Its golden files are in testdata/usage_report: testdata/usage
// holds the command-line mistakes.)
func TestUsageReport(t *testing.T) {
	t.Parallel()
	clock := testenv.NewClock(testenv.UsageNow)
	s := testenv.StartWith(t, testenv.Options{Now: clock.Now})
	s.SeedUsage(t, testenv.UsageHistory()...)
	e := stackEnv(s)
	sc := scrubber(s)
	for _, c := range []struct {
		name string
		code int
		args []string
	}{
		{"default", 0, []string{"usage"}},
		{"three_days", 0, []string{"usage", "--days", "3"}},
		{"three_days_los_angeles", 0, []string{"usage", "--days", "3", "--tz", "America/Los_Angeles"}},
		{"today", 0, []string{"usage", "--days", "1"}},
		{"json", 0, []string{"usage", "--days", "2", "-o", "json"}},
		{"unknown_tz", 1, []string{"usage", "--tz", "Moon/Tranquility"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			expect(t, "usage_report/"+c.name, sc, c.code, e.sandpit(t, c.args...))
		})
	}
}
