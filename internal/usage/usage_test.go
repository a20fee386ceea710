package usage

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func zone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// iv makes an interval: state is "run", "sus" or "idle"; end "" is open.
func iv(state, tmpl, owner, start, end string) sandbox.UsageInterval {
	out := sandbox.UsageInterval{SandboxID: "sb-" + tmpl + "-" + owner, Name: tmpl, Template: tmpl, Owner: owner, Start: at(start)}
	switch state {
	case "run":
		out.State = sandbox.UsageRunning
	case "sus":
		out.State = sandbox.UsageSuspended
	case "idle":
		out.State, out.Idle = sandbox.UsageSuspended, true
	default:
		panic(state)
	}
	if end != "" {
		e := at(end)
		out.End = &e
	}
	return out
}

// show writes hours compactly: "run 3h0m0s sus 1h0m0s idle 30m0s tmpl[shop=3h0m0s] owner[alice=3h0m0s]".
func show(h Hours) string {
	kv := func(m map[string]time.Duration) string {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s=%s", k, m[k]))
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprintf("run %s sus %s idle %s tmpl[%s] owner[%s]", h.Running, h.Suspended, h.IdleSaved, kv(h.RunningByTemplate), kv(h.RunningByOwner))
}

func TestAggregate(t *testing.T) {
	const none = "run 0s sus 0s idle 0s tmpl[] owner[]"
	for _, c := range []struct {
		name     string
		ivs      []sandbox.UsageInterval
		from, to string
		now      string // default: to
		loc      string // default: UTC
		// want is "DATE: hours" per day, then "total: hours".
		want []string
	}{
		{
			name: "nothing recorded",
			from: "2026-11-20T00:00:00Z", to: "2026-11-22T15:30:00Z",
			want: []string{"2026-11-20: " + none, "2026-11-21: " + none, "2026-11-22: " + none, "total: " + none},
		},
		{
			name: "one closed interval in a day",
			ivs:  []sandbox.UsageInterval{iv("run", "shop", "alice", "2026-11-21T09:00:00Z", "2026-11-21T12:30:00Z")},
			from: "2026-11-21T00:00:00Z", to: "2026-11-22T00:00:00Z",
			want: []string{
				"2026-11-21: run 3h30m0s sus 0s idle 0s tmpl[shop=3h30m0s] owner[alice=3h30m0s]",
				"total: run 3h30m0s sus 0s idle 0s tmpl[shop=3h30m0s] owner[alice=3h30m0s]",
			},
		},
		{
			name: "split at midnight",
			ivs:  []sandbox.UsageInterval{iv("run", "shop", "alice", "2026-11-20T22:00:00Z", "2026-11-22T01:00:00Z")},
			from: "2026-11-20T00:00:00Z", to: "2026-11-22T12:00:00Z",
			want: []string{
				"2026-11-20: run 2h0m0s sus 0s idle 0s tmpl[shop=2h0m0s] owner[alice=2h0m0s]",
				"2026-11-21: run 24h0m0s sus 0s idle 0s tmpl[shop=24h0m0s] owner[alice=24h0m0s]",
				"2026-11-22: run 1h0m0s sus 0s idle 0s tmpl[shop=1h0m0s] owner[alice=1h0m0s]",
				"total: run 27h0m0s sus 0s idle 0s tmpl[shop=27h0m0s] owner[alice=27h0m0s]",
			},
		},
		{
			name: "cut by the window on both sides",
			ivs:  []sandbox.UsageInterval{iv("sus", "shop", "alice", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")},
			from: "2026-11-21T06:00:00Z", to: "2026-11-22T06:00:00Z",
			want: []string{
				"2026-11-21: run 0s sus 18h0m0s idle 0s tmpl[] owner[]",
				"2026-11-22: run 0s sus 6h0m0s idle 0s tmpl[] owner[]",
				"total: run 0s sus 24h0m0s idle 0s tmpl[] owner[]",
			},
		},
		{
			name: "outside the window",
			ivs: []sandbox.UsageInterval{
				iv("run", "shop", "alice", "2026-11-19T00:00:00Z", "2026-11-21T00:00:00Z"), // ends where the window starts
				iv("run", "shop", "alice", "2026-11-22T00:00:00Z", ""),                     // starts where it ends
			},
			from: "2026-11-21T00:00:00Z", to: "2026-11-22T00:00:00Z", now: "2026-11-23T00:00:00Z",
			want: []string{"2026-11-21: " + none, "total: " + none},
		},
		{
			name: "open intervals count until now",
			ivs: []sandbox.UsageInterval{
				iv("run", "shop", "alice", "2026-11-22T08:00:00Z", ""),
				iv("idle", "blog", "bob", "2026-11-22T10:00:00Z", ""),
				iv("run", "blog", "bob", "2026-11-22T16:00:00Z", ""), // after now (a clock that went back)
			},
			from: "2026-11-22T00:00:00Z", to: "2026-11-23T00:00:00Z", now: "2026-11-22T15:30:00Z",
			want: []string{
				"2026-11-22: run 7h30m0s sus 5h30m0s idle 5h30m0s tmpl[shop=7h30m0s] owner[alice=7h30m0s]",
				"total: run 7h30m0s sus 5h30m0s idle 5h30m0s tmpl[shop=7h30m0s] owner[alice=7h30m0s]",
			},
		},
		{
			name: "open intervals stop at the window's end",
			ivs:  []sandbox.UsageInterval{iv("run", "shop", "alice", "2026-11-21T20:00:00Z", "")},
			from: "2026-11-21T00:00:00Z", to: "2026-11-22T00:00:00Z", now: "2026-11-25T00:00:00Z",
			want: []string{
				"2026-11-21: run 4h0m0s sus 0s idle 0s tmpl[shop=4h0m0s] owner[alice=4h0m0s]",
				"total: run 4h0m0s sus 0s idle 0s tmpl[shop=4h0m0s] owner[alice=4h0m0s]",
			},
		},
		{
			name: "a sandbox's life: run, idle suspend, wake, manual suspend, delete",
			ivs: []sandbox.UsageInterval{
				iv("run", "shop", "alice", "2026-11-21T09:00:00Z", "2026-11-21T12:00:00Z"),
				iv("idle", "shop", "alice", "2026-11-21T12:00:00Z", "2026-11-22T08:00:00Z"),
				iv("run", "shop", "alice", "2026-11-22T08:00:00Z", "2026-11-22T10:00:00Z"),
				iv("sus", "shop", "alice", "2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z"),
			},
			from: "2026-11-21T00:00:00Z", to: "2026-11-22T15:30:00Z",
			want: []string{
				"2026-11-21: run 3h0m0s sus 12h0m0s idle 12h0m0s tmpl[shop=3h0m0s] owner[alice=3h0m0s]",
				"2026-11-22: run 2h0m0s sus 9h0m0s idle 8h0m0s tmpl[shop=2h0m0s] owner[alice=2h0m0s]",
				"total: run 5h0m0s sus 21h0m0s idle 20h0m0s tmpl[shop=5h0m0s] owner[alice=5h0m0s]",
			},
		},
		{
			name: "by template and by owner",
			ivs: []sandbox.UsageInterval{
				iv("run", "shop", "alice", "2026-11-22T00:00:00Z", "2026-11-22T02:00:00Z"),
				iv("run", "shop", "bob", "2026-11-22T01:00:00Z", "2026-11-22T04:00:00Z"),
				iv("run", "blog", "alice", "2026-11-22T01:00:00Z", "2026-11-22T01:30:00Z"),
				iv("run", "blog", sandbox.UnknownOwner, "2026-11-22T03:00:00Z", "2026-11-22T03:15:00Z"),
			},
			from: "2026-11-22T00:00:00Z", to: "2026-11-23T00:00:00Z",
			want: []string{
				"2026-11-22: run 5h45m0s sus 0s idle 0s tmpl[blog=45m0s,shop=5h0m0s] owner[alice=2h30m0s,bob=3h0m0s,unknown=15m0s]",
				"total: run 5h45m0s sus 0s idle 0s tmpl[blog=45m0s,shop=5h0m0s] owner[alice=2h30m0s,bob=3h0m0s,unknown=15m0s]",
			},
		},
		{
			name: "days of another time zone",
			// 22:00 to 01:00 in New York (UTC-5 in November).
			ivs:  []sandbox.UsageInterval{iv("run", "shop", "alice", "2026-11-22T03:00:00Z", "2026-11-22T06:00:00Z")},
			from: "2026-11-21T05:00:00Z", to: "2026-11-23T05:00:00Z", loc: "America/New_York",
			want: []string{
				"2026-11-21: run 2h0m0s sus 0s idle 0s tmpl[shop=2h0m0s] owner[alice=2h0m0s]",
				"2026-11-22: run 1h0m0s sus 0s idle 0s tmpl[shop=1h0m0s] owner[alice=1h0m0s]",
				"total: run 3h0m0s sus 0s idle 0s tmpl[shop=3h0m0s] owner[alice=3h0m0s]",
			},
		},
		{
			name: "a day of 23 hours (daylight saving starts)",
			// Berlin moves from UTC+1 to UTC+2 on 29 March 2026.
			ivs:  []sandbox.UsageInterval{iv("run", "shop", "alice", "2026-03-27T00:00:00Z", "")},
			from: "2026-03-28T23:00:00Z", to: "2026-03-30T22:00:00Z", loc: "Europe/Berlin",
			want: []string{
				"2026-03-29: run 23h0m0s sus 0s idle 0s tmpl[shop=23h0m0s] owner[alice=23h0m0s]",
				"2026-03-30: run 24h0m0s sus 0s idle 0s tmpl[shop=24h0m0s] owner[alice=24h0m0s]",
				"total: run 47h0m0s sus 0s idle 0s tmpl[shop=47h0m0s] owner[alice=47h0m0s]",
			},
		},
		{
			name: "a day of 25 hours (daylight saving ends)",
			ivs:  []sandbox.UsageInterval{iv("idle", "shop", "alice", "2026-10-20T00:00:00Z", "")},
			from: "2026-10-24T22:00:00Z", to: "2026-10-25T23:00:00Z", loc: "Europe/Berlin",
			want: []string{
				"2026-10-25: run 0s sus 25h0m0s idle 25h0m0s tmpl[] owner[]",
				"total: run 0s sus 25h0m0s idle 25h0m0s tmpl[] owner[]",
			},
		},
		{
			name: "empty window",
			ivs:  []sandbox.UsageInterval{iv("run", "shop", "alice", "2026-11-20T00:00:00Z", "")},
			from: "2026-11-22T00:00:00Z", to: "2026-11-22T00:00:00Z",
			want: []string{"total: " + none},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var loc *time.Location
			if c.loc != "" {
				loc = zone(c.loc)
			}
			now := c.to
			if c.now != "" {
				now = c.now
			}
			r := Aggregate(c.ivs, at(c.from), at(c.to), at(now), loc)
			var got []string
			for _, d := range r.Days {
				got = append(got, d.Date()+": "+show(d.Hours))
				if d.RunningByTemplate == nil || d.RunningByOwner == nil {
					t.Errorf("day %s has nil maps", d.Date())
				}
			}
			got = append(got, "total: "+show(r.Total))
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			want := time.UTC
			if loc != nil {
				want = loc
			}
			for _, d := range r.Days {
				if d.Start.Location() != want || d.Start.Hour() != 0 || d.Start.Minute() != 0 {
					t.Errorf("day %v does not start at midnight in %s", d.Start, want)
				}
			}
			if r.Location != want || !r.From.Equal(at(c.from)) || !r.To.Equal(at(c.to)) {
				t.Errorf("report window %v..%v in %v", r.From, r.To, r.Location)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	for _, c := range []struct {
		now  string
		days int
		loc  string
		from string
	}{
		{"2026-11-22T15:30:00Z", 14, "UTC", "2026-11-09T00:00:00Z"},
		{"2026-11-22T15:30:00Z", 1, "UTC", "2026-11-22T00:00:00Z"},
		{"2026-11-22T15:30:00Z", 0, "UTC", "2026-11-22T00:00:00Z"},
		{"2026-11-22T00:00:00Z", 2, "UTC", "2026-11-21T00:00:00Z"},
		// 21:00 on the 21st in Los Angeles (UTC-8).
		{"2026-11-22T05:00:00Z", 1, "America/Los_Angeles", "2026-11-21T08:00:00Z"},
		// Across the start of daylight saving: midnight was UTC+1.
		{"2026-03-30T12:00:00Z", 3, "Europe/Berlin", "2026-03-27T23:00:00Z"},
		// Across a month's end.
		{"2026-03-02T12:00:00Z", 3, "UTC", "2026-02-28T00:00:00Z"},
	} {
		from, to := Window(at(c.now), c.days, zone(c.loc))
		if !from.Equal(at(c.from)) || !to.Equal(at(c.now)) {
			t.Errorf("Window(%s, %d, %s) = %v, %v; want %s, %s", c.now, c.days, c.loc, from.UTC(), to, c.from, c.now)
		}
		if from.Location().String() != c.loc {
			t.Errorf("Window(%s, %d, %s) starts in %s", c.now, c.days, c.loc, from.Location())
		}
	}
}

func TestIdleSavedShare(t *testing.T) {
	for _, c := range []struct {
		run, idle time.Duration
		want      float64
	}{
		{0, 0, 0},
		{3 * time.Hour, 0, 0},
		{3 * time.Hour, time.Hour, 0.25},
		{0, time.Hour, 1},
	} {
		h := Hours{Running: c.run, Suspended: c.idle + time.Hour, IdleSaved: c.idle}
		if got := h.IdleSavedShare(); got != c.want {
			t.Errorf("IdleSavedShare(run %s, idle %s) = %v, want %v", c.run, c.idle, got, c.want)
		}
	}
}
