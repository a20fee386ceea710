package testenv

import (
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
)

// SeedUsage writes usage intervals straight into the stack's SQLite store,
// as if sandboxes had run then. The store stamps the intervals it records
// with its own clock as sandboxes change, so a test of usage reports that
// wants a history at known times (days ago, across midnights) writes one
// this way, with the schema's SQL (internal/store/sqlite's
// migrations/0006_usage.sql).
func (s *Stack) SeedUsage(t testing.TB, ivs ...sandbox.UsageInterval) {
	t.Helper()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.Join(s.DataDir, "sandpit.db"), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	format := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }
	for _, iv := range ivs {
		var end any
		if iv.End != nil {
			end = format(*iv.End)
		}
		idle := 0
		if iv.Idle {
			idle = 1
		}
		if _, err := tx.Exec(`INSERT INTO usage_intervals (sandbox_id, name, template, owner, state, idle, started_at, ended_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, iv.SandboxID, iv.Name, iv.Template, iv.Owner, string(iv.State), idle, format(iv.Start), end); err != nil {
			t.Fatalf("seed usage interval %+v: %v", iv, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// UsageNow is "now" for tests of usage reports over UsageHistory: a
// Sunday afternoon.
var UsageNow = time.Date(2026, 11, 22, 15, 30, 0, 0, time.UTC)

// UsageHistory is a usage record for tests of usage reports: a few
// sandboxes over the days before UsageNow, deleted and still running,
// with idle and manual suspensions, a warm pool's sandbox claimed by bob,
// and intervals that span midnights (UTC and other zones).
func UsageHistory() []sandbox.UsageInterval {
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	iv := func(id, name, tmpl, owner string, state sandbox.UsageState, idle bool, start, end string) sandbox.UsageInterval {
		out := sandbox.UsageInterval{SandboxID: id, Name: name, Template: tmpl, Owner: owner, State: state, Idle: idle, Start: at(start)}
		if end != "" {
			e := at(end)
			out.End = &e
		}
		return out
	}
	const (
		run = sandbox.UsageRunning
		sus = sandbox.UsageSuspended
	)
	return []sandbox.UsageInterval{
		// Long gone: before any window.
		iv("sb-0000000000000001", "old", "shop", "alice", run, false, "2026-10-01T08:00:00Z", "2026-10-01T18:00:00Z"),
		// Nobody recorded as its creator; twelve days ago.
		iv("sb-0000000000000002", "legacy", "blog", sandbox.UnknownOwner, run, false, "2026-11-10T00:00:00Z", "2026-11-10T06:00:00Z"),
		// alice's: runs, sleeps through the night (idle), wakes, is
		// suspended by hand, and is deleted.
		iv("sb-0000000000000003", "alice-shop", "shop", "alice", run, false, "2026-11-20T09:00:00Z", "2026-11-20T17:00:00Z"),
		iv("sb-0000000000000003", "alice-shop", "shop", "alice", sus, true, "2026-11-20T17:00:00Z", "2026-11-21T09:00:00Z"),
		iv("sb-0000000000000003", "alice-shop", "shop", "alice", run, false, "2026-11-21T09:00:00Z", "2026-11-21T12:30:00Z"),
		iv("sb-0000000000000003", "alice-shop", "shop", "alice", sus, false, "2026-11-21T12:30:00Z", "2026-11-21T14:00:00Z"),
		// A pull request's, running since last night.
		iv("sb-0000000000000004", "pr-42", "shop", "repo:shop", run, false, "2026-11-21T22:00:00Z", ""),
		// A warm pool's: launched, asleep until bob claims it, then his.
		iv("sb-0000000000000005", "pool-blog-1", "blog", "pool", run, false, "2026-11-22T08:00:00Z", "2026-11-22T08:12:00Z"),
		iv("sb-0000000000000005", "pool-blog-1", "blog", "pool", sus, false, "2026-11-22T08:12:00Z", "2026-11-22T09:00:00Z"),
		iv("sb-0000000000000005", "bob-blog", "blog", "bob", sus, false, "2026-11-22T09:00:00Z", "2026-11-22T09:00:30Z"),
		iv("sb-0000000000000005", "bob-blog", "blog", "bob", run, false, "2026-11-22T09:00:30Z", ""),
		// bob's other sandbox, idle-suspended this morning and still asleep.
		iv("sb-0000000000000006", "bob-shop", "shop", "bob", run, false, "2026-11-22T01:00:00Z", "2026-11-22T03:00:00Z"),
		iv("sb-0000000000000006", "bob-shop", "shop", "bob", sus, true, "2026-11-22T03:00:00Z", ""),
	}
}
