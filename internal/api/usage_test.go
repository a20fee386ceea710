package api_test

import (
	"context"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// TestUsage pins the usage report over a known history, at a fixed time.
func TestUsage(t *testing.T) {
	t.Parallel()
	clock := testenv.NewClock(testenv.UsageNow)
	s := testenv.StartWith(t, testenv.Options{Now: clock.Now})
	s.SeedUsage(t, testenv.UsageHistory()...)
	get := func(q string) call { return call{method: "GET", path: "/api/v1/usage" + q} }
	runSteps(t, s, s.Scrubber(), "usage", []step{
		{"default", get(""), 200},
		{"three_days", get("?days=3"), 200},
		{"three_days_los_angeles", get("?days=3&tz=America/Los_Angeles"), 200},
		{"one_day_tokyo", get("?days=1&tz=Asia/Tokyo"), 200},
		{"days_zero", get("?days=0"), 400},
		{"days_too_many", get("?days=91"), 400},
		{"days_not_a_number", get("?days=two"), 400},
		{"days_fraction", get("?days=1.5"), 400},
		{"unknown_tz", get("?tz=Mars/Olympus_Mons"), 400},
		{"local_tz", get("?tz=Local"), 400},
		{"no_token", call{method: "GET", path: "/api/v1/usage", auth: "-"}, 401},
	})

	// The window's ends (the golden files show them scrubbed).
	for q, want := range map[string][2]string{
		"":                               {"2026-11-09T00:00:00Z", "2026-11-22T15:30:00Z"},
		"?days=90":                       {"2026-08-25T00:00:00Z", "2026-11-22T15:30:00Z"},
		"?days=3&tz=America/Los_Angeles": {"2026-11-20T00:00:00-08:00", "2026-11-22T07:30:00-08:00"},
	} {
		u := decode[client.Usage](t, do(t, s, get(q)))
		if got := [2]string{u.From.Format(time.RFC3339), u.To.Format(time.RFC3339)}; got != want {
			t.Errorf("GET /api/v1/usage%s: window %v, want %v", q, got, want)
		}
	}
	if u := decode[client.Usage](t, do(t, s, get("?days=90"))); len(u.Days) != 90 || u.Days[89].Date != "2026-11-22" {
		t.Errorf("90 days: %d days, the last %+v", len(u.Days), u.Days[len(u.Days)-1])
	}

	// The client asks the same.
	u, err := s.Client.UsageWith(context.Background(), client.UsageOptions{Days: 3, TimeZone: "Europe/Berlin"})
	if err != nil || u.TimeZone != "Europe/Berlin" || len(u.Days) != 3 || u.Totals.ByOwner["bob"] == 0 {
		t.Errorf("client UsageWith: %+v, %v", u, err)
	}
	if u, err := s.Client.Usage(context.Background(), 0); err != nil || len(u.Days) != client.UsageDefaultDays || u.TimeZone != "UTC" {
		t.Errorf("client Usage(0): %+v, %v", u, err)
	}
	if _, err := s.Client.Usage(context.Background(), 100); err == nil {
		t.Error("client Usage(100) worked")
	}
}

// TestUsageRecorded checks that what sandboxes really do reaches the
// report: the store records it as the reconciler moves them through their
// phases, and keeps it after they are gone.
func TestUsageRecorded(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, soloTemplate)
	start := time.Now()
	sb := s.Create(t, "counted", "solo")
	s.WaitPhase(t, "counted", sandbox.PhaseReady)
	ctx := context.Background()
	if _, err := s.Client.SuspendSandbox(ctx, "counted"); err != nil {
		t.Fatal(err)
	}
	s.WaitPhase(t, "counted", sandbox.PhaseSuspended)
	if _, err := s.Client.DeleteSandbox(ctx, "counted"); err != nil {
		t.Fatal(err)
	}
	s.WaitGone(t, "counted")

	ivs, err := s.Store.UsageIntervals(ctx, start.Add(-time.Minute), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, iv := range ivs {
		if iv.SandboxID != sb.ID || iv.Name != "counted" || iv.Template != "solo" || iv.Owner != "admin" || iv.End == nil || iv.Idle {
			t.Errorf("interval %+v: want a closed, non-idle one of counted (solo, admin)", iv)
		}
		states = append(states, string(iv.State))
	}
	if len(states) != 2 || states[0] != "running" || states[1] != "suspended" {
		t.Fatalf("intervals %v, want [running suspended]", states)
	}

	u, err := s.Client.Usage(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := u.Totals.ByTemplate["solo"]; !ok {
		t.Errorf("report has no running hours of template solo: %+v", u.Totals)
	}
	if _, ok := u.Totals.ByOwner["admin"]; !ok {
		t.Errorf("report has no running hours of owner admin: %+v", u.Totals)
	}
	if u.Totals.IdleSavedHours != 0 {
		t.Errorf("a suspension by hand counted as idle: %+v", u.Totals)
	}
}
