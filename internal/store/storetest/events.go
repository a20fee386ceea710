package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

var eventTests = []test{
	{"AppendAssignsSeqAndTime", testAppendEvent},
	{"SeqNeverRepeats", testSeqNeverRepeats},
	{"AppendUnknownSandbox", testAppendUnknownSandbox},
	{"ListPages", testListEventsPages},
	{"ListUnknownSandbox", testListEventsUnknown},
}

func testAppendEvent(t *testing.T, s store.Store) {
	a := mustCreate(t, s, newSandbox("a", "shop"))
	b := mustCreate(t, s, newSandbox("b", "shop"))
	given := time.Date(2025, 3, 4, 5, 6, 7, 890123000, time.UTC)
	in := []sandbox.Event{
		{SandboxID: a.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonCreated, Message: "created by alice"},
		{SandboxID: b.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonStageStarted, Stage: sandbox.StageCheckout},
		{SandboxID: a.ID, Type: sandbox.EventWarning, Reason: sandbox.ReasonStageFailed, Stage: "build/api",
			Message: "exit status 1", DurationMS: 1234.5, Time: given},
		{SandboxID: a.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonInfo, Seq: 1},
	}
	var out []sandbox.Event
	var last int64
	for i, ev := range in {
		got := mustAppend(t, s, ev)
		if got.Seq <= last {
			t.Errorf("event %d: Seq %d after %d, want increasing across the store", i, got.Seq, last)
		}
		last = got.Seq
		checkStoredTime(t, fmt.Sprintf("event %d: Time", i), got.Time)
		want := ev
		want.Seq, want.Time = got.Seq, got.Time
		sameJSON(t, fmt.Sprintf("event %d as returned", i), got, want)
		out = append(out, got)
	}
	sameTime(t, "given Time", out[2].Time, given)

	for _, tc := range []struct {
		id   string
		want []sandbox.Event
	}{
		{a.ID, []sandbox.Event{out[0], out[2], out[3]}},
		{b.ID, []sandbox.Event{out[1]}},
	} {
		got, err := s.ListEvents(t.Context(), tc.id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		sameJSON(t, "ListEvents("+tc.id+")", got, tc.want)
		for i := range min(len(got), len(tc.want)) {
			sameTime(t, fmt.Sprintf("ListEvents(%s)[%d].Time", tc.id, i), got[i].Time, tc.want[i].Time)
		}
	}
}

func testSeqNeverRepeats(t *testing.T, s store.Store) {
	// Readers resume "after seq N"; a seq handed out again after a delete
	// would be skipped by them.
	a := mustCreate(t, s, newSandbox("a", "shop"))
	var last sandbox.Event
	for range 3 {
		last = mustAppend(t, s, sandbox.Event{SandboxID: a.ID, Reason: sandbox.ReasonInfo})
	}
	if err := s.DeleteSandbox(t.Context(), a.ID); err != nil {
		t.Fatal(err)
	}
	b := mustCreate(t, s, newSandbox("b", "shop"))
	next := mustAppend(t, s, sandbox.Event{SandboxID: b.ID, Reason: sandbox.ReasonInfo})
	if next.Seq <= last.Seq {
		t.Errorf("after deleting the newest events, Seq %d was handed out again (last was %d)", next.Seq, last.Seq)
	}
}

func testAppendUnknownSandbox(t *testing.T, s store.Store) {
	_, err := s.AppendEvent(t.Context(), sandbox.Event{SandboxID: "sb-0000000000000000", Reason: sandbox.ReasonInfo})
	wantErr(t, "AppendEvent(unknown sandbox)", err, store.ErrNotFound, "sb-0000000000000000")
}

func testListEventsPages(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, newSandbox("a", "shop"))
	b := mustCreate(t, s, newSandbox("b", "shop"))
	var all []sandbox.Event
	for i := range 10 {
		all = append(all, mustAppend(t, s, sandbox.Event{SandboxID: a.ID, Reason: sandbox.ReasonInfo, Message: fmt.Sprint(i)}))
		mustAppend(t, s, sandbox.Event{SandboxID: b.ID, Reason: sandbox.ReasonInfo}) // interleaved noise
	}

	for _, limit := range []int{0, 1, 3, 10, 11} {
		var got []sandbox.Event
		after := int64(0)
		for pages := 0; ; pages++ {
			if pages > len(all)+1 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			page, err := s.ListEvents(ctx, a.ID, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if page == nil {
				t.Fatalf("limit %d: ListEvents returned nil, want a non-nil slice", limit)
			}
			if limit > 0 && len(page) > limit {
				t.Fatalf("limit %d: page of %d events", limit, len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].Seq
		}
		sameJSON(t, fmt.Sprintf("events paged by %d", limit), got, all)
	}

	got, err := s.ListEvents(ctx, a.ID, all[6].Seq, 2)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "ListEvents(after 7th, limit 2)", got, all[7:9])
}

func testListEventsUnknown(t *testing.T, s store.Store) {
	_, err := s.ListEvents(t.Context(), "sb-0000000000000000", 0, 0)
	wantErr(t, "ListEvents(unknown)", err, store.ErrNotFound, "sb-0000000000000000")
}

var handleTests = []test{
	{"SaveLoadUpsert", testHandles},
	{"List", testListHandles},
	{"NotFound", testHandlesNotFound},
	{"OutliveSandbox", testHandlesOutliveSandbox},
}

func testHandles(t *testing.T, s store.Store) {
	ctx := t.Context()
	id := sandbox.NewID() // a handle needs no sandbox row
	for i, h := range []struct {
		runtime string
		data    []byte
	}{
		{"local", []byte(`{"pgid":4242}`)},
		{"local", []byte(`{"pgid":4243}`)}, // upsert
		{"kubernetes", []byte{0x00, 0xff}}, // another runtime took over; bytes kept as is
		{"kubernetes", []byte{}},
	} {
		if err := s.SaveHandle(ctx, id, h.runtime, h.data); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		rt, data, err := s.LoadHandle(ctx, id)
		if err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		if rt != h.runtime || !bytes.Equal(data, h.data) {
			t.Errorf("load %d = %q %q, want %q %q", i, rt, data, h.runtime, h.data)
		}
	}
	if err := s.DeleteHandle(ctx, id); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.LoadHandle(ctx, id)
	wantErr(t, "LoadHandle after DeleteHandle", err, store.ErrNotFound, id)
}

func testListHandles(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := map[string]map[string][]byte{"local": {}, "kubernetes": {}}
	for i := range 5 {
		rt := "local"
		if i%2 == 1 {
			rt = "kubernetes"
		}
		id := sandbox.NewID()
		data := []byte(fmt.Sprintf(`{"n":%d}`, i))
		if err := s.SaveHandle(ctx, id, rt, data); err != nil {
			t.Fatal(err)
		}
		want[rt][id] = data
	}
	want["none"] = map[string][]byte{}
	for rt, w := range want {
		got, err := s.ListHandles(ctx, rt)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			t.Errorf("ListHandles(%s) = nil, want a non-nil map", rt)
		}
		if len(got) != len(w) {
			t.Errorf("ListHandles(%s) has %d handles, want %d", rt, len(got), len(w))
		}
		for id, d := range w {
			if !bytes.Equal(got[id], d) {
				t.Errorf("ListHandles(%s)[%s] = %q, want %q", rt, id, got[id], d)
			}
		}
	}
}

func testHandlesNotFound(t *testing.T, s store.Store) {
	_, _, err := s.LoadHandle(t.Context(), "sb-0000000000000000")
	wantErr(t, "LoadHandle(unknown)", err, store.ErrNotFound, "sb-0000000000000000")
	err = s.DeleteHandle(t.Context(), "sb-0000000000000000")
	wantErr(t, "DeleteHandle(unknown)", err, store.ErrNotFound, "sb-0000000000000000")
}

func testHandlesOutliveSandbox(t *testing.T, s store.Store) {
	ctx := t.Context()
	sb := mustCreate(t, s, newSandbox("gone", "shop"))
	if err := s.SaveHandle(ctx, sb.ID, "local", []byte("h")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListHandles(ctx, "local")
	if err != nil {
		t.Fatal(err)
	}
	if string(got[sb.ID]) != "h" {
		t.Errorf("handle of a deleted sandbox is gone; a restarted server could not clean up after it")
	}
	// And a runtime can still update it while tearing down.
	if err := s.SaveHandle(ctx, sb.ID, "local", []byte("h2")); err != nil {
		t.Errorf("SaveHandle for a deleted sandbox: %v", err)
	}
}

var timeTests = []test{
	{"MicrosecondRoundTrip", testTimeRoundTrip},
	{"StoredEqualsReturned", testStoredEqualsReturned},
}

func testTimeRoundTrip(t *testing.T, s store.Store) {
	sb := mustCreate(t, s, newSandbox("clock", "shop"))
	zones := []*time.Location{time.UTC, time.FixedZone("IST", 5*3600+1800), time.FixedZone("PST", -8*3600)}
	for _, loc := range zones {
		in := time.Date(2024, 2, 29, 23, 59, 59, 123456789, loc)
		got := mustAppend(t, s, sandbox.Event{SandboxID: sb.ID, Reason: sandbox.ReasonInfo, Time: in})
		evs, err := s.ListEvents(t.Context(), sb.ID, got.Seq-1, 1)
		if err != nil || len(evs) != 1 {
			t.Fatalf("ListEvents: %v, %d events", err, len(evs))
		}
		for what, tm := range map[string]time.Time{"returned": got.Time, "listed": evs[0].Time} {
			if tm.Location() != time.UTC {
				t.Errorf("%s time %v from zone %s is not UTC", what, tm, loc)
			}
			if !tm.Truncate(time.Microsecond).Equal(in.Truncate(time.Microsecond)) {
				t.Errorf("%s time %v, want %v to the microsecond", what, tm, in.UTC())
			}
		}
		sameTime(t, "listed vs returned", evs[0].Time, got.Time)
	}
}

func testStoredEqualsReturned(t *testing.T, s store.Store) {
	// What a write hands back is exactly what later reads return, so that
	// callers can compare them (for example to detect changes).
	tv := mustApply(t, s, tmpl("shop", "x"))
	got, err := s.GetTemplate(t.Context(), "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	sameTime(t, "template CreatedAt", got.CreatedAt, tv.CreatedAt)

	sb := mustCreate(t, s, newSandbox("t", "shop"))
	sameSandbox(t, "created vs read", mustGet(t, s, sb.ID), sb)
	upd, err := s.UpdateSpec(t.Context(), sb.ID, func(sp *sandbox.Spec) error { sp.Ref = "x"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	sameSandbox(t, "updated vs read", mustGet(t, s, sb.ID), upd)
}

var contextTests = []test{
	{"Canceled", testCanceled},
}

func testCanceled(t *testing.T, s store.Store) {
	sb := mustCreate(t, s, newSandbox("live", "shop"))
	mustApply(t, s, tmpl("shop", "x"))
	snap := mustCreateSnapshot(t, s, fullSnapshot("kept"))
	snapUpd := *snap
	snapUpd.Phase, snapUpd.Message = sandbox.SnapshotFailed, "never stored"
	if err := s.SaveHandle(t.Context(), sb.ID, "local", []byte("h")); err != nil {
		t.Fatal(err)
	}
	ctx := canceledContext(t)
	fnCalled := false
	calls := []struct {
		name string
		call func() error
	}{
		{"ApplyTemplate", func() error { _, _, err := s.ApplyTemplate(ctx, tmpl("shop", "y")); return err }},
		{"GetTemplate", func() error { _, err := s.GetTemplate(ctx, "shop", 0); return err }},
		{"ListTemplates", func() error { _, err := s.ListTemplates(ctx); return err }},
		{"ListTemplateVersions", func() error { _, err := s.ListTemplateVersions(ctx, "shop"); return err }},
		{"CreateSandbox", func() error { return s.CreateSandbox(ctx, newSandbox("never", "shop")) }},
		{"GetSandbox", func() error { _, err := s.GetSandbox(ctx, sb.ID); return err }},
		{"GetSandboxByName", func() error { _, err := s.GetSandboxByName(ctx, sb.Name); return err }},
		{"ListSandboxes", func() error { _, err := s.ListSandboxes(ctx, store.ListOptions{}); return err }},
		{"UpdateSpec", func() error {
			_, err := s.UpdateSpec(ctx, sb.ID, func(*sandbox.Spec) error { fnCalled = true; return nil })
			return err
		}},
		{"UpdateStatus", func() error { return s.UpdateStatus(ctx, sb.ID, sandbox.Status{Phase: sandbox.PhaseReady}) }},
		{"DeleteSandbox", func() error { return s.DeleteSandbox(ctx, sb.ID) }},
		{"AppendEvent", func() error { _, err := s.AppendEvent(ctx, sandbox.Event{SandboxID: sb.ID}); return err }},
		{"ListEvents", func() error { _, err := s.ListEvents(ctx, sb.ID, 0, 0); return err }},
		{"SaveHandle", func() error { return s.SaveHandle(ctx, sb.ID, "kubernetes", []byte("x")) }},
		{"LoadHandle", func() error { _, _, err := s.LoadHandle(ctx, sb.ID); return err }},
		{"DeleteHandle", func() error { return s.DeleteHandle(ctx, sb.ID) }},
		{"ListHandles", func() error { _, err := s.ListHandles(ctx, "local"); return err }},
		{"CreateSnapshot", func() error { return s.CreateSnapshot(ctx, newSnapshot("never")) }},
		{"GetSnapshot", func() error { _, err := s.GetSnapshot(ctx, snap.ID); return err }},
		{"GetSnapshotByName", func() error { _, err := s.GetSnapshotByName(ctx, snap.Name); return err }},
		{"ListSnapshots", func() error { _, err := s.ListSnapshots(ctx); return err }},
		{"UpdateSnapshot", func() error { return s.UpdateSnapshot(ctx, &snapUpd) }},
		{"DeleteSnapshot", func() error { return s.DeleteSnapshot(ctx, snap.ID) }},
		{"UsageIntervals", func() error { _, err := s.UsageIntervals(ctx, allFrom, allTo); return err }},
	}
	for _, c := range calls {
		if err := c.call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", c.name, err)
		}
	}
	if fnCalled {
		t.Error("UpdateSpec ran fn under a canceled context")
	}

	// Nothing the canceled calls tried took effect.
	got := mustGet(t, s, sb.ID)
	sameSandbox(t, "sandbox after canceled writes", got, sb)
	if _, err := s.GetSandboxByName(t.Context(), "never"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("canceled CreateSandbox stored a sandbox: %v", err)
	}
	if vs, err := s.ListTemplateVersions(t.Context(), "shop"); err != nil || len(vs) != 1 {
		t.Errorf("canceled ApplyTemplate: %d versions, %v; want 1", len(vs), err)
	}
	if rt, _, err := s.LoadHandle(t.Context(), sb.ID); err != nil || rt != "local" {
		t.Errorf("canceled handle writes: LoadHandle = %q, %v; want local", rt, err)
	}
	if evs, err := s.ListEvents(t.Context(), sb.ID, 0, 0); err != nil || len(evs) != 0 {
		t.Errorf("canceled AppendEvent: %d events, %v; want 0", len(evs), err)
	}
	checkSnapshotReads(t, s, "snapshot after canceled writes", snap)
	if _, err := s.GetSnapshotByName(t.Context(), "never"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("canceled CreateSnapshot stored a snapshot: %v", err)
	}
	// Nor did the usage record move: the sandbox is still running, in its
	// first interval.
	wantUsage(t, "usage after canceled writes", usageOf(t, s, sb.ID), true, "running")
}
