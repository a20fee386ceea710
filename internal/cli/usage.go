package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"sandpit.dev/sandpit/client"
)

func (a *app) usageCmd() *cobra.Command {
	var days int
	var tz string
	c := &cobra.Command{
		Use:   "usage",
		Short: "Show sandbox-hours per day, by template and owner, and what idle suspend saved",
		Long: `Show how many sandbox-hours sandboxes used per calendar day: running
(launching, Ready, or Failed and kept for debugging) and suspended, then the
running hours per template and per owner over the whole period, and what idle
suspend saved — the hours sandboxes slept because they were idle, which they
would otherwise have spent running. Two sandboxes running for an hour are two
sandbox-hours. The server keeps this record after sandboxes are deleted.

Days are calendar days of --tz (default UTC), today included (so far).

  sandpit usage                         the last 14 days
  sandpit usage --days 30 --tz Europe/Berlin
  sandpit usage -o json                 hours to two decimals, per day and in total`,
		Args: cobra.NoArgs,
	}
	c.Flags().IntVar(&days, "days", client.UsageDefaultDays, fmt.Sprintf("how many calendar days, today included (1 to %d)", client.UsageMaxDays))
	c.Flags().StringVar(&tz, "tz", "", "IANA time zone whose calendar days to count, such as Europe/Berlin (default UTC)")
	return readCommand(a, c, func(ctx context.Context, cl *client.Client, _ []string) (*client.Usage, error) {
		if days < 1 || days > client.UsageMaxDays {
			return nil, fmt.Errorf("invalid argument %d for --days: give 1 to %d", days, client.UsageMaxDays)
		}
		return cl.UsageWith(ctx, client.UsageOptions{Days: days, TimeZone: tz})
	}, func(u *client.Usage) error { return printUsage(a.env.Stdout, u) })
}

// printUsage writes a usage report for people: a line per day, then the
// running hours per template and per owner, then what idle suspend saved.
func printUsage(w io.Writer, u *client.Usage) error {
	switch n := len(u.Days); {
	case n == 1:
		fmt.Fprintf(w, "Sandbox-hours on %s (%s; until %s)\n\n", u.Days[0].Date, u.TimeZone, u.To.Format("15:04"))
	case n > 1:
		fmt.Fprintf(w, "Sandbox-hours from %s to %s (%s; today until %s)\n\n", u.Days[0].Date, u.Days[n-1].Date, u.TimeZone, u.To.Format("15:04"))
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "DAY\tRUNNING\tSUSPENDED\tIDLE SAVED")
	// Days without any use show "-", so the ones with some stand out.
	day := func(h float64) string {
		if h == 0 {
			return "-"
		}
		return hrs(h)
	}
	for _, d := range u.Days {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Date, day(d.RunningHours), day(d.SuspendedHours), day(d.IdleSavedHours))
	}
	t := u.Totals
	fmt.Fprintf(tw, "total\t%s\t%s\t%s\n", hrs(t.RunningHours), hrs(t.SuspendedHours), hrs(t.IdleSavedHours))
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, part := range []struct {
		title string
		hours map[string]float64
	}{{"TEMPLATE", t.ByTemplate}, {"OWNER", t.ByOwner}} {
		if len(part.hours) == 0 {
			continue
		}
		fmt.Fprintln(w)
		tw := newTable(w)
		fmt.Fprintf(tw, "%s\tRUNNING\tSHARE\n", part.title)
		for _, k := range byHours(part.hours) {
			share := 0.0
			if t.RunningHours > 0 {
				share = 100 * part.hours[k] / t.RunningHours
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f%%\n", k, hrs(part.hours[k]), share)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	_, err := fmt.Fprintf(w, "idle suspend saved %s sandbox-hours (%.1f%% of what would have run)\n", hrs(t.IdleSavedHours), t.IdleSavedPercent)
	return err
}

// hrs formats hours for a table: one decimal (six minutes).
func hrs(h float64) string { return fmt.Sprintf("%.1f", h) }

// byHours returns the keys of m, most hours first, then by name.
func byHours(m map[string]float64) []string {
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int {
		switch {
		case m[a] > m[b]:
			return -1
		case m[a] < m[b]:
			return 1
		}
		return 0
	})
	return keys
}
