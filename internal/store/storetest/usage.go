package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

var usageTests = []test{
	{"CreateOpensRunning", testUsageCreateOpensRunning},
	{"UnknownOwner", testUsageUnknownOwner},
	{"CreatedSuspended", testUsageCreatedSuspended},
	{"SuspendAndResume", testUsageSuspendAndResume},
	{"SuspensionBecomesIdle", testUsageSuspensionBecomesIdle},
	{"FailedAndDeletingKeepState", testUsageFailedAndDeletingKeepState},
	{"DeleteClosesAndKeeps", testUsageDeleteClosesAndKeeps},
	{"RenameSplits", testUsageRenameSplits},
	{"Windows", testUsageWindows},
	{"Order", testUsageOrder},
	{"ConcurrentStatusWrites", testUsageConcurrentStatusWrites},
	{"UnknownSandbox", testUsageUnknownSandbox},
}

var (
	// [allFrom, allTo) holds every interval the tests make.
	allFrom = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	allTo   = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

const idleReason = "idle for 30m"

func mustUsage(t *testing.T, s store.Store, from, to time.Time) []sandbox.UsageInterval {
	t.Helper()
	ivs, err := s.UsageIntervals(t.Context(), from, to)
	if err != nil {
		t.Fatalf("UsageIntervals(%v, %v): %v", from, to, err)
	}
	if ivs == nil {
		t.Fatalf("UsageIntervals(%v, %v) = nil, want a non-nil slice", from, to)
	}
	for _, iv := range ivs {
		checkStoredTime(t, "interval start", iv.Start)
		if iv.End != nil {
			checkStoredTime(t, "interval end", *iv.End)
			if iv.End.Before(iv.Start) {
				t.Errorf("interval %+v ends before it starts", iv)
			}
		}
	}
	return ivs
}

// usageOf returns every interval of one sandbox, oldest first.
func usageOf(t *testing.T, s store.Store, id string) []sandbox.UsageInterval {
	t.Helper()
	var out []sandbox.UsageInterval
	for _, iv := range mustUsage(t, s, allFrom, allTo) {
		if iv.SandboxID == id {
			out = append(out, iv)
		}
	}
	return out
}

// wantUsage checks a sandbox's intervals: their states, idle flags and
// owners, in order; that they follow each other without gaps or overlaps;
// and that only the last is open, when open says so.
func wantUsage(t *testing.T, what string, got []sandbox.UsageInterval, open bool, want ...string) {
	t.Helper()
	var states []string
	for _, iv := range got {
		s := string(iv.State)
		if iv.Idle {
			s += "(idle)"
		}
		states = append(states, s)
	}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Fatalf("%s: intervals %v, want %v\n%+v", what, states, want, got)
	}
	for i, iv := range got {
		last := i == len(got)-1
		switch {
		case last && open && iv.End != nil:
			t.Errorf("%s: the last interval ended at %v, want it open", what, iv.End)
		case (!last || !open) && iv.End == nil:
			t.Errorf("%s: interval %d (%s) is open, want it closed", what, i, iv.State)
		}
		if !last && iv.End != nil && !iv.End.Equal(got[i+1].Start) {
			t.Errorf("%s: interval %d ends at %v but the next starts at %v", what, i, iv.End, got[i+1].Start)
		}
	}
}

// tick makes sure the store's clock moves on, so that the intervals of a
// test have distinct boundaries (times are kept to the microsecond).
func tick() { time.Sleep(2 * time.Millisecond) }

func setPhase(t *testing.T, s store.Store, id string, phase sandbox.Phase, reason string) {
	t.Helper()
	tick()
	if err := s.UpdateStatus(t.Context(), id, sandbox.Status{Phase: phase, SuspendReason: reason, Message: string(phase) + " " + reason}); err != nil {
		t.Fatalf("UpdateStatus(%s %s): %v", phase, reason, err)
	}
}

func testUsageCreateOpensRunning(t *testing.T, s store.Store) {
	before := time.Now().Add(-time.Second)
	sb := mustCreate(t, s, newSandbox("counted", "shop"))
	ivs := usageOf(t, s, sb.ID)
	wantUsage(t, "after create", ivs, true, "running")
	want := sandbox.UsageInterval{SandboxID: sb.ID, Name: "counted", Template: "shop", Owner: "alice@example.com",
		State: sandbox.UsageRunning, Start: sb.UpdatedAt}
	sameJSON(t, "interval after create", ivs[0], want)
	if ivs[0].Start.Before(before) || ivs[0].Start.After(time.Now().Add(time.Second)) {
		t.Errorf("interval starts at %v, want about now", ivs[0].Start)
	}

	// A given CreatedAt (the API's clock) does not move the start: usage
	// counts from when the store has the sandbox.
	dated := newSandbox("dated", "shop")
	dated.CreatedAt = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	mustCreate(t, s, dated)
	if ivs := usageOf(t, s, dated.ID); len(ivs) != 1 || !ivs[0].Start.Equal(dated.UpdatedAt) {
		t.Errorf("intervals of a sandbox created with CreatedAt %v: %+v, want one starting at %v", dated.CreatedAt, ivs, dated.UpdatedAt)
	}

	// Phases that keep it running open nothing new.
	for _, p := range []sandbox.Phase{sandbox.PhaseProvisioning, sandbox.PhaseReady, sandbox.PhaseProvisioning, sandbox.PhaseReady} {
		setPhase(t, s, sb.ID, p, "")
	}
	sameJSON(t, "interval after Provisioning and Ready", usageOf(t, s, sb.ID), ivs)
}

func testUsageUnknownOwner(t *testing.T, s store.Store) {
	sb := newSandbox("nobody", "shop")
	sb.Spec.CreatedBy = ""
	mustCreate(t, s, sb)
	if ivs := usageOf(t, s, sb.ID); len(ivs) != 1 || ivs[0].Owner != sandbox.UnknownOwner {
		t.Errorf("intervals of a sandbox without CreatedBy: %+v, want one owned by %q", ivs, sandbox.UnknownOwner)
	}
}

func testUsageCreatedSuspended(t *testing.T, s store.Store) {
	sb := newSandbox("asleep", "shop")
	sb.Status = sandbox.Status{Phase: sandbox.PhaseSuspended, SuspendReason: idleReason}
	mustCreate(t, s, sb)
	wantUsage(t, "created Suspended (idle)", usageOf(t, s, sb.ID), true, "suspended(idle)")
}

func testUsageSuspendAndResume(t *testing.T, s store.Store) {
	sb := mustCreate(t, s, newSandbox("sleeper", "shop"))
	setPhase(t, s, sb.ID, sandbox.PhaseProvisioning, "")
	setPhase(t, s, sb.ID, sandbox.PhaseReady, "")
	setPhase(t, s, sb.ID, sandbox.PhaseSuspended, idleReason)
	wantUsage(t, "after idle suspend", usageOf(t, s, sb.ID), true, "running", "suspended(idle)")
	// Status writes that keep the state (a resume in progress stays
	// Suspended) change nothing.
	setPhase(t, s, sb.ID, sandbox.PhaseSuspended, idleReason)
	setPhase(t, s, sb.ID, sandbox.PhaseReady, "")
	wantUsage(t, "after resume", usageOf(t, s, sb.ID), true, "running", "suspended(idle)", "running")
	setPhase(t, s, sb.ID, sandbox.PhaseSuspended, "suspend requested by bob")
	wantUsage(t, "after a manual suspend", usageOf(t, s, sb.ID), true, "running", "suspended(idle)", "running", "suspended")
	setPhase(t, s, sb.ID, sandbox.PhaseSuspended, "pool sandboxes sleep until claimed")
	wantUsage(t, "after another manual reason", usageOf(t, s, sb.ID), true, "running", "suspended(idle)", "running", "suspended")
	setPhase(t, s, sb.ID, sandbox.PhaseReady, "")
	ivs := usageOf(t, s, sb.ID)
	wantUsage(t, "after a second resume", ivs, true, "running", "suspended(idle)", "running", "suspended", "running")
	for _, iv := range ivs {
		if iv.Name != "sleeper" || iv.Template != "shop" || iv.Owner != "alice@example.com" {
			t.Errorf("interval %+v: want sleeper, shop, alice@example.com", iv)
		}
	}
}

// A suspension's reason may change while it lasts; whether it counts as
// idle follows.
func testUsageSuspensionBecomesIdle(t *testing.T, s store.Store) {
	sb := mustCreate(t, s, newSandbox("relabel", "shop"))
	setPhase(t, s, sb.ID, sandbox.PhaseSuspended, "suspend requested")
	setPhase(t, s, sb.ID, sandbox.PhaseSuspended, idleReason)
	wantUsage(t, "after the reason changed", usageOf(t, s, sb.ID), true, "running", "suspended", "suspended(idle)")
}

func testUsageFailedAndDeletingKeepState(t *testing.T, s store.Store) {
	// Failed is kept as it is, processes and all: still running, and so
	// while it is being deleted.
	failed := mustCreate(t, s, newSandbox("failed", "shop"))
	setPhase(t, s, failed.ID, sandbox.PhaseProvisioning, "")
	setPhase(t, s, failed.ID, sandbox.PhaseFailed, "")
	setPhase(t, s, failed.ID, sandbox.PhaseDeleting, "")
	wantUsage(t, "Failed, then Deleting", usageOf(t, s, failed.ID), true, "running")

	// A suspended sandbox being deleted has nothing running.
	asleep := mustCreate(t, s, newSandbox("asleep", "shop"))
	setPhase(t, s, asleep.ID, sandbox.PhaseSuspended, idleReason)
	setPhase(t, s, asleep.ID, sandbox.PhaseDeleting, idleReason)
	setPhase(t, s, asleep.ID, sandbox.PhaseDeleting, "")
	wantUsage(t, "Suspended, then Deleting", usageOf(t, s, asleep.ID), true, "running", "suspended(idle)")

	// First seen Deleting: running.
	gone := newSandbox("gone", "shop")
	gone.Status.Phase = sandbox.PhaseDeleting
	mustCreate(t, s, gone)
	wantUsage(t, "created Deleting", usageOf(t, s, gone.ID), true, "running")
}

func testUsageDeleteClosesAndKeeps(t *testing.T, s store.Store) {
	ctx := t.Context()
	running := mustCreate(t, s, newSandbox("running", "shop"))
	asleep := mustCreate(t, s, newSandbox("asleep", "blog"))
	setPhase(t, s, asleep.ID, sandbox.PhaseSuspended, idleReason)
	other := mustCreate(t, s, newSandbox("other", "shop"))
	for _, sb := range []*sandbox.Sandbox{running, asleep} {
		setPhase(t, s, sb.ID, sandbox.PhaseDeleting, "")
		tick()
		before := time.Now().Add(-time.Second)
		if err := s.DeleteSandbox(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSandbox(ctx, sb.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetSandbox after DeleteSandbox: %v", err)
		}
		ivs := usageOf(t, s, sb.ID)
		if len(ivs) == 0 {
			t.Fatalf("%s: no intervals left after the delete", sb.Name)
		}
		if end := ivs[len(ivs)-1].End; end == nil || end.Before(before) {
			t.Errorf("%s: last interval ends at %v, want about now", sb.Name, end)
		}
		for _, iv := range ivs {
			if iv.Name != sb.Name || iv.Template != sb.Spec.Template || iv.Owner != "alice@example.com" {
				t.Errorf("interval after the delete: %+v", iv)
			}
		}
	}
	wantUsage(t, "deleted while running", usageOf(t, s, running.ID), false, "running")
	wantUsage(t, "deleted while suspended", usageOf(t, s, asleep.ID), false, "running", "suspended(idle)")
	wantUsage(t, "a sandbox not deleted", usageOf(t, s, other.ID), true, "running")

	// Deleting it again, or a sandbox never known, changes nothing.
	before := mustUsage(t, s, allFrom, allTo)
	if err := s.DeleteSandbox(ctx, running.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteSandbox = %v, want ErrNotFound", err)
	}
	sameJSON(t, "intervals after a second delete", mustUsage(t, s, allFrom, allTo), before)

	// A new sandbox may take the name (and even the id) again; the old
	// intervals stay the old sandbox's.
	again := newSandbox("running", "shop")
	again.ID = running.ID
	mustCreate(t, s, again)
	if ivs := usageOf(t, s, running.ID); len(ivs) != 2 || ivs[0].End == nil || ivs[1].End != nil || ivs[1].Start.Before(*ivs[0].End) {
		t.Errorf("intervals of a reused id: %+v, want the old one closed and a new one open after it", ivs)
	}
}

func testUsageRenameSplits(t *testing.T, s store.Store) {
	ctx := t.Context()
	sb := newSandbox("pool-shop-1", "shop")
	sb.Spec.CreatedBy, sb.Spec.Pool = "pool", "shop"
	mustCreate(t, s, sb)
	setPhase(t, s, sb.ID, sandbox.PhaseReady, "")
	// A spec change that keeps name, template and owner splits nothing.
	tick()
	if _, err := s.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error { sp.Pin = &sandbox.Pin{By: "pool"}; return nil }); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, "after a pin", usageOf(t, s, sb.ID), true, "running")
	setPhase(t, s, sb.ID, sandbox.PhaseSuspended, "pool sandboxes sleep until claimed")
	tick()
	if _, err := s.RenameSandbox(ctx, sb.ID, "alice-shop", func(sp *sandbox.Spec) error {
		sp.Pool, sp.CreatedBy = "", "alice"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	setPhase(t, s, sb.ID, sandbox.PhaseReady, "")
	ivs := usageOf(t, s, sb.ID)
	wantUsage(t, "after a claim", ivs, true, "running", "suspended", "suspended", "running")
	for i, want := range [][2]string{{"pool-shop-1", "pool"}, {"pool-shop-1", "pool"}, {"alice-shop", "alice"}, {"alice-shop", "alice"}} {
		if ivs[i].Name != want[0] || ivs[i].Owner != want[1] {
			t.Errorf("interval %d: name %q, owner %q; want %q, %q", i, ivs[i].Name, ivs[i].Owner, want[0], want[1])
		}
	}

	// A refused rename or a failing fn splits nothing.
	mustCreate(t, s, newSandbox("taken", "shop"))
	_, err := s.RenameSandbox(ctx, sb.ID, "taken", func(sp *sandbox.Spec) error { sp.CreatedBy = "bob"; return nil })
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rename to a taken name: %v", err)
	}
	if _, err := s.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error { sp.CreatedBy = "bob"; return errAbort }); !errors.Is(err, errAbort) {
		t.Fatalf("UpdateSpec with a failing fn: %v", err)
	}
	sameJSON(t, "intervals after refused changes", usageOf(t, s, sb.ID), ivs)
}

// testUsageWindows checks which intervals a window returns: those that
// overlap [from, to), whole.
func testUsageWindows(t *testing.T, s store.Store) {
	a := mustCreate(t, s, newSandbox("a", "shop"))
	setPhase(t, s, a.ID, sandbox.PhaseSuspended, idleReason)
	setPhase(t, s, a.ID, sandbox.PhaseReady, "")
	tick()
	if err := s.DeleteSandbox(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	tick()
	b := mustCreate(t, s, newSandbox("b", "blog"))
	ivs := mustUsage(t, s, allFrom, allTo)
	if len(ivs) != 4 {
		t.Fatalf("intervals: %+v, want 4", ivs)
	}
	// a: running [t0, t1), suspended [t1, t2), running [t2, t3); b: running [t4, open).
	t0, t1, t2, t3, t4 := ivs[0].Start, ivs[1].Start, ivs[2].Start, *ivs[2].End, ivs[3].Start
	if ivs[3].SandboxID != b.ID || !t0.Before(t1) || !t1.Before(t2) || !t2.Before(t3) || !t3.Before(t4) {
		t.Fatalf("intervals do not follow each other as made: %+v", ivs)
	}
	us := time.Microsecond
	mid := func(x, y time.Time) time.Time { return x.Add(y.Sub(x) / 2).Truncate(us) }
	for _, c := range []struct {
		name     string
		from, to time.Time
		want     []int
	}{
		{"before everything", t0.Add(-time.Hour), t0, nil},
		{"the first microsecond", t0, t0.Add(us), []int{0}},
		{"inside the first", t0.Add(us), t1.Add(-us), []int{0}},
		{"cutting the first two", mid(t0, t1), mid(t1, t2), []int{0, 1}},
		{"from an end (ends are excluded)", t1, mid(t1, t2), []int{1}},
		{"up to a start (to is excluded)", mid(t0, t1), t1, []int{0}},
		{"across a's life", t0, t3, []int{0, 1, 2}},
		{"between a and b", t3, t4, nil},
		{"from a's end onward", t3, allTo, []int{3}},
		{"the open interval, far ahead", t4.Add(24 * time.Hour), t4.Add(48 * time.Hour), []int{3}},
		{"everything", allFrom, allTo, []int{0, 1, 2, 3}},
		{"empty window", mid(t1, t2), mid(t1, t2), nil},
		{"backwards window", t3, t0, nil},
	} {
		got := mustUsage(t, s, c.from, c.to)
		want := []sandbox.UsageInterval{}
		for _, i := range c.want {
			want = append(want, ivs[i])
		}
		sameJSON(t, "window "+c.name, got, want)
	}
	// Windows in other zones mean the same instants.
	loc := time.FixedZone("X", -5*3600)
	sameJSON(t, "window in another zone", mustUsage(t, s, mid(t0, t1).In(loc), mid(t1, t2).In(loc)), ivs[:2])
}

func testUsageOrder(t *testing.T, s store.Store) {
	var ids []string
	for i := range 5 {
		sb := mustCreate(t, s, newSandbox(fmt.Sprint("s", i), "shop"))
		ids = append(ids, sb.ID)
	}
	for _, id := range ids {
		setPhase(t, s, id, sandbox.PhaseSuspended, "")
	}
	ivs := mustUsage(t, s, allFrom, allTo)
	if len(ivs) != 10 {
		t.Fatalf("%d intervals, want 10", len(ivs))
	}
	for i := 1; i < len(ivs); i++ {
		p, c := ivs[i-1], ivs[i]
		if c.Start.Before(p.Start) || (c.Start.Equal(p.Start) && c.SandboxID < p.SandboxID) {
			t.Errorf("interval %d (%s at %v) listed after %s at %v", i, c.SandboxID, c.Start, p.SandboxID, p.Start)
		}
	}
}

// Status writes of one sandbox racing each other leave one open interval
// and intervals that follow each other.
func testUsageConcurrentStatusWrites(t *testing.T, s store.Store) {
	sb := mustCreate(t, s, newSandbox("busy", "shop"))
	errs := concurrently(parallelism, func(i int) error {
		st := sandbox.Status{Phase: sandbox.PhaseReady}
		if i%2 == 0 {
			st = sandbox.Status{Phase: sandbox.PhaseSuspended, SuspendReason: idleReason}
		}
		return s.UpdateStatus(t.Context(), sb.ID, st)
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("UpdateStatus %d: %v", i, err)
		}
	}
	ivs := usageOf(t, s, sb.ID)
	open := 0
	for i, iv := range ivs {
		if iv.End == nil {
			open++
			if i != len(ivs)-1 {
				t.Errorf("open interval %d is not the last", i)
			}
		}
		if i > 0 && (ivs[i-1].End == nil || !ivs[i-1].End.Equal(iv.Start)) {
			t.Errorf("interval %d starts at %v, the one before ends at %v", i, iv.Start, ivs[i-1].End)
		}
		if i > 0 && ivs[i-1].State == iv.State && ivs[i-1].Idle == iv.Idle {
			t.Errorf("intervals %d and %d are both %s", i-1, i, iv.State)
		}
	}
	if open != 1 {
		t.Errorf("%d open intervals, want 1: %+v", open, ivs)
	}
	stored := mustGet(t, s, sb.ID)
	want, _ := sandbox.UsageOf(stored.Status, "", false)
	if last := ivs[len(ivs)-1]; last.State != want {
		t.Errorf("open interval is %s but the stored phase is %s", last.State, stored.Status.Phase)
	}
}

func testUsageUnknownSandbox(t *testing.T, s store.Store) {
	if err := s.UpdateStatus(t.Context(), "sb-missing", sandbox.Status{Phase: sandbox.PhaseSuspended}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateStatus of an unknown sandbox = %v, want ErrNotFound", err)
	}
	if ivs := mustUsage(t, s, allFrom, allTo); len(ivs) != 0 {
		t.Errorf("intervals after writes to unknown sandboxes: %+v", ivs)
	}
}
