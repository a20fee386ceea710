package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Usage is the answer of GET /api/v1/usage: sandbox-hours per calendar day
// of a time zone, and over the whole window.
//
// A sandbox-hour is one sandbox running (Pending, Provisioning, Ready, or
// Failed and kept for debugging) or suspended for an hour; two sandboxes
// running for an hour are two. Hours are rounded to two decimals (36
// seconds) each on its own, so a day's by-template hours may not add up
// exactly to its RunningHours.
type Usage struct {
	// From and To are the window [From, To): from the midnight that began
	// the first day to the time of the answer.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// TimeZone is the IANA name of the zone whose calendar days Days are.
	TimeZone string `json:"time_zone"`
	// Days are the window's days, oldest first, each one even when
	// nothing ran; the last is today, so far.
	Days   []UsageDay  `json:"days"`
	Totals UsageTotals `json:"totals"`
}

// UsageDay is one calendar day of a Usage.
type UsageDay struct {
	// Date is the day, YYYY-MM-DD.
	Date string `json:"date"`
	UsageHours
}

// UsageTotals sums a Usage's days.
type UsageTotals struct {
	UsageHours
	// IdleSavedPercent is IdleSavedHours as a share of what would have run
	// without idle suspend (RunningHours + IdleSavedHours), in percent
	// with one decimal; 0 when nothing ran.
	IdleSavedPercent float64 `json:"idle_saved_percent"`
}

// UsageHours is how many sandbox-hours a day or a window holds.
type UsageHours struct {
	// RunningHours is the time sandboxes spent running.
	RunningHours float64 `json:"running_hours"`
	// SuspendedHours is the time they spent suspended, for any reason.
	SuspendedHours float64 `json:"suspended_hours"`
	// IdleSavedHours is what idle suspend saved: the part of
	// SuspendedHours that idle suspend began, time those sandboxes would
	// otherwise have spent running, idle.
	IdleSavedHours float64 `json:"idle_saved_hours"`
	// ByTemplate and ByOwner split RunningHours by template and by owner
	// (who created the sandbox; "unknown" when nobody is recorded, "pool"
	// for warm pools until claimed, "repo:NAME" for branch sandboxes).
	ByTemplate map[string]float64 `json:"by_template"`
	ByOwner    map[string]float64 `json:"by_owner"`
}

// UsageDefaultDays and UsageMaxDays bound GET /api/v1/usage's days.
const (
	UsageDefaultDays = 14
	UsageMaxDays     = 90
)

// UsageOptions selects a Usage report; zero values take the server's
// defaults.
type UsageOptions struct {
	// Days is how many calendar days, today included (default 14, at most
	// 90).
	Days int
	// TimeZone is an IANA zone name such as Europe/Berlin (default UTC).
	TimeZone string
}

// Usage returns sandbox-hours per day over the last days calendar days
// (0: the server's default), in UTC.
func (c *Client) Usage(ctx context.Context, days int) (*Usage, error) {
	return c.UsageWith(ctx, UsageOptions{Days: days})
}

// UsageWith is Usage with every option.
func (c *Client) UsageWith(ctx context.Context, opts UsageOptions) (*Usage, error) {
	q := url.Values{}
	if opts.Days != 0 {
		q.Set("days", strconv.Itoa(opts.Days))
	}
	if opts.TimeZone != "" {
		q.Set("tz", opts.TimeZone)
	}
	var out Usage
	return &out, c.do(ctx, http.MethodGet, "/api/v1/usage", q, nil, &out)
}
