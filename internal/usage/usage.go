package usage

import (
	"sort"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Hours is how much sandbox time a day (or a whole report) holds.
type Hours struct {
	// Running is the time sandboxes spent running (summed over
	// sandboxes: two sandboxes running for an hour are two hours).
	Running time.Duration
	// Suspended is the time they spent suspended, for any reason.
	Suspended time.Duration
	// IdleSaved is the part of Suspended that idle suspend began: time
	// those sandboxes would have spent running, idle, without it.
	IdleSaved time.Duration
	// RunningByTemplate and RunningByOwner split Running. A key is present
	// only when its time is positive; the maps are never nil.
	RunningByTemplate map[string]time.Duration
	RunningByOwner    map[string]time.Duration
}

func newHours() Hours {
	return Hours{RunningByTemplate: map[string]time.Duration{}, RunningByOwner: map[string]time.Duration{}}
}

// add counts d of interval iv.
func (h *Hours) add(iv sandbox.UsageInterval, d time.Duration) {
	if iv.State == sandbox.UsageSuspended {
		h.Suspended += d
		if iv.Idle {
			h.IdleSaved += d
		}
		return
	}
	h.Running += d
	h.RunningByTemplate[iv.Template] += d
	h.RunningByOwner[iv.Owner] += d
}

func (h *Hours) merge(o Hours) {
	h.Running += o.Running
	h.Suspended += o.Suspended
	h.IdleSaved += o.IdleSaved
	for k, v := range o.RunningByTemplate {
		h.RunningByTemplate[k] += v
	}
	for k, v := range o.RunningByOwner {
		h.RunningByOwner[k] += v
	}
}

// IdleSavedShare is IdleSaved as a fraction of what would have run without
// idle suspend (Running + IdleSaved); 0 when nothing ran.
func (h Hours) IdleSavedShare() float64 {
	would := h.Running + h.IdleSaved
	if would <= 0 {
		return 0
	}
	return float64(h.IdleSaved) / float64(would)
}

// Day is one calendar day of a report.
type Day struct {
	// Start is the day's midnight in the report's location.
	Start time.Time
	Hours
}

// Date is the day as YYYY-MM-DD.
func (d Day) Date() string { return d.Start.Format(time.DateOnly) }

// Report is usage over a window, per calendar day.
type Report struct {
	// From and To are the window [From, To).
	From, To time.Time
	// Location is the time zone whose calendar days Days are.
	Location *time.Location
	// Days are the calendar days the window touches, oldest first, every
	// one of them even when nothing ran (the first and the last may be
	// partial: they count only what is in the window).
	Days []Day
	// Total sums Days.
	Total Hours
}

// Window is the window of a report on the last days calendar days in loc,
// today included: from the midnight that began the day days-1 days before
// now's day, until now. days below 1 count as 1.
func Window(now time.Time, days int, loc *time.Location) (from, to time.Time) {
	days = max(days, 1)
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d-(days-1), 0, 0, 0, 0, loc), now
}

// Aggregate computes usage in [from, to) per calendar day of loc (nil means
// UTC). Intervals are cut to the window and split at midnights; an open
// interval counts until now (and only in the window), so one that started
// after now (a clock that went back) counts nothing.
func Aggregate(ivs []sandbox.UsageInterval, from, to, now time.Time, loc *time.Location) Report {
	if loc == nil {
		loc = time.UTC
	}
	r := Report{From: from, To: to, Location: loc, Days: []Day{}, Total: newHours()}
	if !from.Before(to) {
		return r
	}
	// Day boundaries: bounds[i] starts Days[i], the last one ends the
	// last day. time.Date normalises a day after the month's last, and
	// days of 23 or 25 hours around daylight saving changes.
	y, m, d := from.In(loc).Date()
	var bounds []time.Time
	for i := 0; ; i++ {
		b := time.Date(y, m, d+i, 0, 0, 0, 0, loc)
		bounds = append(bounds, b)
		if !b.Before(to) {
			break
		}
		r.Days = append(r.Days, Day{Start: b, Hours: newHours()})
	}
	for _, iv := range ivs {
		start, end := iv.Start, now
		if iv.End != nil {
			end = *iv.End
		}
		if start.Before(from) {
			start = from
		}
		if end.After(to) {
			end = to
		}
		if !start.Before(end) {
			continue
		}
		// The day holding start: the last bound not after it.
		i := sort.Search(len(bounds), func(i int) bool { return bounds[i].After(start) }) - 1
		for ; i < len(r.Days) && bounds[i].Before(end); i++ {
			s, e := maxTime(start, bounds[i]), minTime(end, bounds[i+1])
			if s.Before(e) {
				r.Days[i].add(iv, e.Sub(s))
			}
		}
	}
	for _, day := range r.Days {
		r.Total.merge(day.Hours)
	}
	return r
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
