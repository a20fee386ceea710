package api

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/usage"
)

// usage answers GET /api/v1/usage: sandbox-hours per calendar day over the
// last days days (today included, up to now) in the time zone tz.
func (s *Server) usage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	days := client.UsageDefaultDays
	if v := q.Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > client.UsageMaxDays {
			writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request",
				Message: fmt.Sprintf("days is %q: it must be a whole number of days from 1 to %d", v, client.UsageMaxDays),
				Hint:    fmt.Sprintf("leave it out for the last %d days, today included", client.UsageDefaultDays)})
			return
		}
		days = n
	}
	loc := time.UTC
	if tz := q.Get("tz"); tz != "" {
		l, err := time.LoadLocation(tz)
		// "Local" would be the server's own zone, which the client cannot
		// know; names are IANA names.
		if err != nil || tz == "Local" || strings.HasPrefix(tz, "/") {
			writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request",
				Message: fmt.Sprintf("unknown time zone %q", tz),
				Hint:    "give an IANA time zone name such as Europe/Berlin or America/New_York, or leave tz out for UTC"})
			return
		}
		loc = l
	}
	now := s.cfg.Now()
	from, to := usage.Window(now, days, loc)
	ivs, err := s.cfg.Store.UsageIntervals(r.Context(), from, to)
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	writeJSON(w, http.StatusOK, usageAnswer(usage.Aggregate(ivs, from, to, now, loc)))
}

func usageAnswer(rep usage.Report) client.Usage {
	out := client.Usage{
		From: rep.From.In(rep.Location), To: rep.To.In(rep.Location), TimeZone: rep.Location.String(),
		Days: make([]client.UsageDay, 0, len(rep.Days)),
		Totals: client.UsageTotals{
			UsageHours:       usageHours(rep.Total),
			IdleSavedPercent: math.Round(rep.Total.IdleSavedShare()*1000) / 10,
		},
	}
	for _, d := range rep.Days {
		out.Days = append(out.Days, client.UsageDay{Date: d.Date(), UsageHours: usageHours(d.Hours)})
	}
	return out
}

func usageHours(h usage.Hours) client.UsageHours {
	byKey := func(m map[string]time.Duration) map[string]float64 {
		out := make(map[string]float64, len(m))
		for k, d := range m {
			out[k] = hours(d)
		}
		return out
	}
	return client.UsageHours{
		RunningHours: hours(h.Running), SuspendedHours: hours(h.Suspended), IdleSavedHours: hours(h.IdleSaved),
		ByTemplate: byKey(h.RunningByTemplate), ByOwner: byKey(h.RunningByOwner),
	}
}

// hours is d in hours, to two decimals (36 seconds).
func hours(d time.Duration) float64 { return math.Round(d.Hours()*100) / 100 }
