package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

var snapshotTests = []test{
	{"CreateSetsDefaults", testCreateSnapshotDefaults},
	{"CreateKeepsGiven", testCreateSnapshotKeepsGiven},
	{"CreateConflict", testCreateSnapshotConflict},
	{"CreateConcurrentSameName", testCreateSnapshotConcurrentSameName},
	{"RoundTrip", testSnapshotRoundTrip},
	{"Handle", testSnapshotHandle},
	{"ReadyAt", testSnapshotReadyAt},
	{"Times", testSnapshotTimes},
	{"NotFound", testSnapshotNotFound},
	{"List", testListSnapshots},
	{"Update", testUpdateSnapshot},
	{"UpdateOnlyMutable", testUpdateSnapshotOnlyMutable},
	{"Delete", testDeleteSnapshot},
	{"Invalid", testSnapshotInvalid},
}

// newSnapshot is a snapshot as the API asks for one: no ID, phase or
// times yet.
func newSnapshot(name string) *sandbox.Snapshot {
	return &sandbox.Snapshot{
		Name:    name,
		Type:    "postgres",
		Version: "15",
		Source: sandbox.SnapshotSource{
			Kind: sandbox.SnapshotFromSandbox, Sandbox: "feature-x", SandboxID: "sb-00000000000000aa", Dependency: "db",
		},
		CreatedBy: "alice@example.com",
	}
}

// fullSnapshot sets every stored field, so that a column or codec that
// drops one shows up.
func fullSnapshot(name string) *sandbox.Snapshot {
	ready := time.Date(2025, 6, 1, 12, 0, 5, 654321000, time.UTC)
	return &sandbox.Snapshot{
		ID:        sandbox.NewSnapshotID(),
		Name:      name,
		Type:      "postgres",
		Version:   "16",
		Phase:     sandbox.SnapshotReady,
		Message:   "restored 3 tables",
		SizeBytes: 5 << 40, // beyond 32 bits
		Method:    "reflink",
		Source: sandbox.SnapshotSource{
			Kind: sandbox.SnapshotFromImport, Sandbox: "feature-x", SandboxID: "sb-00000000000000aa",
			Dependency: "db", File: "prod.dump", Format: "custom", Database: "shop",
		},
		CreatedBy: "ci-bot",
		CreatedAt: time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC),
		ReadyAt:   &ready,
		Handle:    []byte{0x00, 0xff, '{', '"', 0x00, '\n', 0x80},
	}
}

func mustCreateSnapshot(t *testing.T, s store.Store, snap *sandbox.Snapshot) *sandbox.Snapshot {
	t.Helper()
	if err := s.CreateSnapshot(t.Context(), snap); err != nil {
		t.Fatalf("CreateSnapshot(%q): %v", snap.Name, err)
	}
	return snap
}

func mustGetSnapshot(t *testing.T, s store.Store, id string) *sandbox.Snapshot {
	t.Helper()
	snap, err := s.GetSnapshot(t.Context(), id)
	if err != nil {
		t.Fatalf("GetSnapshot(%q): %v", id, err)
	}
	return snap
}

// sameSnapshot compares every stored field: the JSON (which omits Handle)
// with the times compared as instants, and Handle byte for byte, nil apart
// from non-nil. UsedBy is never stored, so a read must return it nil.
func sameSnapshot(t *testing.T, what string, got, want *sandbox.Snapshot) {
	t.Helper()
	sameTime(t, what+": CreatedAt", got.CreatedAt, want.CreatedAt)
	checkStoredTime(t, what+": CreatedAt", got.CreatedAt)
	switch {
	case (got.ReadyAt == nil) != (want.ReadyAt == nil):
		t.Errorf("%s: ReadyAt = %v, want %v", what, got.ReadyAt, want.ReadyAt)
	case got.ReadyAt != nil:
		sameTime(t, what+": ReadyAt", *got.ReadyAt, *want.ReadyAt)
		if got.ReadyAt.Location() != time.UTC {
			t.Errorf("%s: ReadyAt = %v is not in UTC", what, got.ReadyAt)
		}
	}
	if !bytes.Equal(got.Handle, want.Handle) || (got.Handle == nil) != (want.Handle == nil) {
		t.Errorf("%s: Handle = %#v, want %#v", what, got.Handle, want.Handle)
	}
	if got.UsedBy != nil {
		t.Errorf("%s: UsedBy = %q, want nil (it is not stored)", what, got.UsedBy)
	}
	sameJSON(t, what, got, want)
}

// checkSnapshotReads checks that both lookups return want.
func checkSnapshotReads(t *testing.T, s store.Store, what string, want *sandbox.Snapshot) {
	t.Helper()
	sameSnapshot(t, what+": GetSnapshot", mustGetSnapshot(t, s, want.ID), want)
	byName, err := s.GetSnapshotByName(t.Context(), want.Name)
	if err != nil {
		t.Fatalf("%s: GetSnapshotByName(%q): %v", what, want.Name, err)
	}
	sameSnapshot(t, what+": GetSnapshotByName", byName, want)
}

func testCreateSnapshotDefaults(t *testing.T, s store.Store) {
	snap := newSnapshot("nightly")
	before := time.Now()
	mustCreateSnapshot(t, s, snap)
	after := time.Now()
	if !strings.HasPrefix(snap.ID, "snap-") || len(snap.ID) != len(sandbox.NewSnapshotID()) {
		t.Errorf("ID = %q, want one from sandbox.NewSnapshotID", snap.ID)
	}
	if snap.Phase != sandbox.SnapshotCreating {
		t.Errorf("Phase = %q, want %q", snap.Phase, sandbox.SnapshotCreating)
	}
	checkStoredTime(t, "CreatedAt", snap.CreatedAt)
	if snap.CreatedAt.Before(before.Truncate(time.Microsecond)) || snap.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %v, want now (between %v and %v)", snap.CreatedAt, before, after)
	}
	if snap.ReadyAt != nil || snap.Handle != nil || snap.UsedBy != nil {
		t.Errorf("create invented ReadyAt %v, Handle %q or UsedBy %q", snap.ReadyAt, snap.Handle, snap.UsedBy)
	}
	checkSnapshotReads(t, s, "after create", snap)

	// Two snapshots get two ids.
	other := mustCreateSnapshot(t, s, newSnapshot("weekly"))
	if other.ID == snap.ID {
		t.Errorf("two snapshots got the same id %s", snap.ID)
	}
}

func testCreateSnapshotKeepsGiven(t *testing.T, s store.Store) {
	// Given values win over the defaults; times are kept as the store keeps
	// them (UTC, microseconds), in the caller's struct too.
	ist := time.FixedZone("IST", 5*3600+1800)
	created := time.Date(2024, 2, 29, 23, 59, 59, 123456789, ist)
	ready := created.Add(90*time.Second + 999)
	snap := newSnapshot("given")
	snap.ID = "snap-00000000000000ff"
	snap.Phase = sandbox.SnapshotReady
	snap.CreatedAt = created
	snap.ReadyAt = &ready
	mustCreateSnapshot(t, s, snap)
	if snap.ID != "snap-00000000000000ff" || snap.Phase != sandbox.SnapshotReady {
		t.Errorf("create replaced the given ID or Phase: %q %q", snap.ID, snap.Phase)
	}
	checkStoredTime(t, "CreatedAt", snap.CreatedAt)
	if !snap.CreatedAt.Equal(created.Truncate(time.Microsecond)) {
		t.Errorf("CreatedAt = %v, want the given %v to the microsecond", snap.CreatedAt, created)
	}
	if snap.ReadyAt == nil || !snap.ReadyAt.Equal(ready.Truncate(time.Microsecond)) || snap.ReadyAt.Location() != time.UTC {
		t.Errorf("ReadyAt = %v, want the given %v to the microsecond, in UTC", snap.ReadyAt, ready)
	}
	if ready.Location() != ist || ready.Nanosecond()%1000 == 0 {
		t.Errorf("create changed the caller's ReadyAt through the pointer: %v", ready)
	}
	checkSnapshotReads(t, s, "after create", snap)
}

func testCreateSnapshotConflict(t *testing.T, s store.Store) {
	first := mustCreateSnapshot(t, s, fullSnapshot("taken"))
	for _, tc := range []struct {
		what    string
		snap    *sandbox.Snapshot
		mention string
	}{
		{"same name", newSnapshot("taken"), "taken"},
		{"same name, given id", fullSnapshot("taken"), "taken"},
		{"same id", func() *sandbox.Snapshot { c := newSnapshot("fresh"); c.ID = first.ID; return c }(), first.ID},
	} {
		orig := *tc.snap
		err := s.CreateSnapshot(t.Context(), tc.snap)
		wantErr(t, "CreateSnapshot with "+tc.what, err, store.ErrConflict, tc.mention)
		if errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreateSnapshot with %s: conflict also matches ErrNotFound: %v", tc.what, err)
		}
		if !reflect.DeepEqual(*tc.snap, orig) {
			t.Errorf("failed CreateSnapshot with %s changed the caller's struct:\n got %+v\nwant %+v", tc.what, *tc.snap, orig)
		}
	}
	got, err := s.ListSnapshots(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("after conflicts the store holds %d snapshots, want only the first", len(got))
	}
	sameSnapshot(t, "the first after conflicts", got[0], first)
}

func testCreateSnapshotConcurrentSameName(t *testing.T, s store.Store) {
	snaps := make([]*sandbox.Snapshot, parallelism)
	for i := range snaps {
		snaps[i] = newSnapshot("race")
		snaps[i].Message = fmt.Sprint("goroutine ", i)
	}
	errs := concurrently(parallelism, func(i int) error { return s.CreateSnapshot(t.Context(), snaps[i]) })
	var winner *sandbox.Snapshot
	for i, err := range errs {
		switch {
		case err == nil && winner != nil:
			t.Errorf("goroutine %d also created %q", i, "race")
		case err == nil:
			winner = snaps[i]
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("goroutine %d: %v, want a conflict", i, err)
		case snaps[i].ID != "":
			t.Errorf("goroutine %d lost but its snapshot was given id %s", i, snaps[i].ID)
		}
	}
	if winner == nil {
		t.Fatal("no goroutine created the snapshot")
	}
	checkSnapshotReads(t, s, "the winner", winner)
	if l, err := s.ListSnapshots(t.Context()); err != nil || len(l) != 1 {
		t.Errorf("ListSnapshots after the race: %d snapshots, %v; want 1", len(l), err)
	}
}

func testSnapshotRoundTrip(t *testing.T, s store.Store) {
	snap := fullSnapshot("full")
	want := *snap
	mustCreateSnapshot(t, s, snap)
	sameSnapshot(t, "created vs given", snap, &want)
	checkSnapshotReads(t, s, "read", snap)
}

func testSnapshotHandle(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i, tc := range []struct {
		what       string
		handle     []byte
		want       []byte // nil: none
		afterwards []byte // set by UpdateSnapshot
		wantAfter  []byte
	}{
		{"nil", nil, nil, []byte(`{"dir":"/data/snap/1"}`), []byte(`{"dir":"/data/snap/1"}`)},
		{"empty is none", []byte{}, nil, []byte{}, nil},
		{"text", []byte(`{"password":"s3cret"}`), []byte(`{"password":"s3cret"}`), nil, nil},
		{"binary", []byte{0x00, 0xff, 0x00, 0x80, '\n'}, []byte{0x00, 0xff, 0x00, 0x80, '\n'},
			[]byte{0xfe, 0x00}, []byte{0xfe, 0x00}},
		{"large", bytes.Repeat([]byte{0x00, 0x01, 0xff}, 100_000), bytes.Repeat([]byte{0x00, 0x01, 0xff}, 100_000),
			[]byte{0x01}, []byte{0x01}},
	} {
		snap := newSnapshot(fmt.Sprint("handle-", i))
		snap.Handle = tc.handle
		mustCreateSnapshot(t, s, snap)
		got := mustGetSnapshot(t, s, snap.ID)
		if !bytes.Equal(got.Handle, tc.want) || (got.Handle == nil) != (tc.want == nil) {
			t.Errorf("%s: created with Handle %#v, read back %#v", tc.what, tc.handle, got.Handle)
		}
		sameSnapshot(t, tc.what+": created vs read", got, snap)

		got.Handle = tc.afterwards
		if err := s.UpdateSnapshot(ctx, got); err != nil {
			t.Fatalf("%s: UpdateSnapshot: %v", tc.what, err)
		}
		again := mustGetSnapshot(t, s, snap.ID)
		if !bytes.Equal(again.Handle, tc.wantAfter) || (again.Handle == nil) != (tc.wantAfter == nil) {
			t.Errorf("%s: updated to Handle %#v, read back %#v", tc.what, tc.afterwards, again.Handle)
		}
	}
}

func testSnapshotReadyAt(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := time.Date(2025, 7, 8, 9, 10, 11, 121314151, time.FixedZone("PST", -8*3600))
	for i, tc := range []struct {
		what         string
		create, upd  *time.Time
		wantC, wantU *time.Time
	}{
		{"nil, then set", nil, &at, nil, &at},
		{"set, then nil", &at, nil, &at, nil},
		{"nil, nil", nil, nil, nil, nil},
		{"set, then moved", &at, ptr(at.Add(time.Hour)), &at, ptr(at.Add(time.Hour))},
	} {
		snap := newSnapshot(fmt.Sprint("ready-", i))
		snap.ReadyAt = tc.create
		mustCreateSnapshot(t, s, snap)
		checkReadyAt(t, tc.what+": created", snap.ReadyAt, tc.wantC)
		got := mustGetSnapshot(t, s, snap.ID)
		checkReadyAt(t, tc.what+": read after create", got.ReadyAt, tc.wantC)

		got.ReadyAt = tc.upd
		if err := s.UpdateSnapshot(ctx, got); err != nil {
			t.Fatalf("%s: UpdateSnapshot: %v", tc.what, err)
		}
		checkReadyAt(t, tc.what+": read after update", mustGetSnapshot(t, s, snap.ID).ReadyAt, tc.wantU)
	}
}

func ptr[T any](v T) *T { return &v }

func checkReadyAt(t *testing.T, what string, got, want *time.Time) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Errorf("%s: ReadyAt = %v, want nil", what, *got)
	case want == nil:
	case got == nil:
		t.Errorf("%s: ReadyAt = nil, want %v", what, *want)
	case got.Location() != time.UTC:
		t.Errorf("%s: ReadyAt = %v is not in UTC", what, *got)
	case !got.Equal(want.Truncate(time.Microsecond)):
		t.Errorf("%s: ReadyAt = %v, want %v to the microsecond", what, *got, want.UTC())
	}
}

func testSnapshotTimes(t *testing.T, s store.Store) {
	// What a write hands back is exactly what later reads return, and in
	// UTC, from whatever zone the caller used.
	zones := []*time.Location{time.UTC, time.FixedZone("IST", 5*3600+1800), time.FixedZone("PST", -8*3600), time.Local}
	for i, loc := range zones {
		in := time.Date(2024, 2, 29, 23, 59, 59, 123456789, loc)
		snap := newSnapshot(fmt.Sprint("clock-", i))
		snap.CreatedAt = in
		mustCreateSnapshot(t, s, snap)
		if !snap.CreatedAt.Equal(in.Truncate(time.Microsecond)) {
			t.Errorf("%s: CreatedAt = %v, want %v to the microsecond", loc, snap.CreatedAt, in.UTC())
		}
		checkSnapshotReads(t, s, loc.String(), snap)
		l, err := s.ListSnapshots(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, got := range l {
			if got.ID == snap.ID {
				sameSnapshot(t, loc.String()+": listed", got, snap)
			}
		}
	}
	// A defaulted CreatedAt too.
	snap := mustCreateSnapshot(t, s, newSnapshot("now"))
	checkSnapshotReads(t, s, "defaulted CreatedAt", snap)
}

func testSnapshotNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	existing := mustCreateSnapshot(t, s, newSnapshot("exists"))
	const id = "snap-0000000000000000"
	gone := mustCreateSnapshot(t, s, newSnapshot("gone"))
	if err := s.DeleteSnapshot(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	upd := *existing
	upd.ID = id
	updGone := *gone
	updGone.Phase = sandbox.SnapshotReady
	for _, tc := range []struct {
		what    string
		call    func() error
		mention string
	}{
		{"GetSnapshot(unknown)", func() error { _, err := s.GetSnapshot(ctx, id); return err }, id},
		{"GetSnapshotByName(unknown)", func() error { _, err := s.GetSnapshotByName(ctx, "missing"); return err }, "missing"},
		{"UpdateSnapshot(unknown)", func() error { return s.UpdateSnapshot(ctx, &upd) }, id},
		{"DeleteSnapshot(unknown)", func() error { return s.DeleteSnapshot(ctx, id) }, id},
		{"GetSnapshot(deleted)", func() error { _, err := s.GetSnapshot(ctx, gone.ID); return err }, gone.ID},
		{"GetSnapshotByName(deleted)", func() error { _, err := s.GetSnapshotByName(ctx, gone.Name); return err }, gone.Name},
		{"UpdateSnapshot(deleted)", func() error { return s.UpdateSnapshot(ctx, &updGone) }, gone.ID},
		{"DeleteSnapshot(deleted)", func() error { return s.DeleteSnapshot(ctx, gone.ID) }, gone.ID},
		// A sandbox's id or name is not a snapshot's.
		{"GetSnapshot(a sandbox id)", func() error {
			sb := mustCreate(t, s, newSandbox("exists-sb", "shop"))
			_, err := s.GetSnapshot(ctx, sb.ID)
			return err
		}, "sb-"},
	} {
		wantErr(t, tc.what, tc.call(), store.ErrNotFound, tc.mention)
	}
	// None of that touched the snapshot that exists.
	checkSnapshotReads(t, s, "existing", existing)
}

func testListSnapshots(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("ListSnapshots on an empty store = %#v, want an empty, non-nil slice", got)
	}

	// Created out of order, and with CreatedAt against the name order, so
	// that neither creation order nor time passes for name order.
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	byID := map[string]*sandbox.Snapshot{}
	for i, name := range []string{"pg15-base", "a", "zz", "b-2", "b", "pg15"} {
		snap := newSnapshot(name)
		snap.CreatedAt = base.Add(-time.Duration(i) * time.Hour)
		if i%2 == 0 {
			snap = fullSnapshot(name)
		}
		byID[mustCreateSnapshot(t, s, snap).ID] = snap
	}
	if err := s.DeleteSnapshot(ctx, mustCreateSnapshot(t, s, newSnapshot("deleted")).ID); err != nil {
		t.Fatal(err)
	}

	got, err = s.ListSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, snap := range got {
		names = append(names, snap.Name)
		want, ok := byID[snap.ID]
		if !ok {
			t.Errorf("ListSnapshots returned %q (%s), which was not created or was deleted", snap.Name, snap.ID)
			continue
		}
		sameSnapshot(t, "listed "+snap.Name, snap, want)
	}
	sameJSON(t, "ListSnapshots names", names, []string{"a", "b", "b-2", "pg15", "pg15-base", "zz"})
}

func testUpdateSnapshot(t *testing.T, s store.Store) {
	ctx := t.Context()
	imp := newSnapshot("import")
	imp.Source = sandbox.SnapshotSource{Kind: sandbox.SnapshotFromImport, File: "prod.sql"}
	snap := mustCreateSnapshot(t, s, imp)
	other := mustCreateSnapshot(t, s, fullSnapshot("bystander"))

	// The life of an import: format and database are learnt while it runs,
	// the version when the dump is read, the rest when it is done.
	ready := time.Date(2025, 6, 1, 12, 30, 0, 1234567, time.UTC)
	steps := []struct {
		what   string
		change func(*sandbox.Snapshot)
	}{
		{"source learnt", func(c *sandbox.Snapshot) {
			c.Source.Format = "plain"
			c.Source.Database = "shop"
			c.Message = "restoring"
		}},
		{"version learnt", func(c *sandbox.Snapshot) { c.Version = "16" }},
		{"ready", func(c *sandbox.Snapshot) {
			c.Phase = sandbox.SnapshotReady
			c.Message = ""
			c.SizeBytes = 1 << 33
			c.Method = "btrfs"
			c.ReadyAt = &ready
			c.Handle = []byte(`{"subvolume":"/data/snapshots/import"}`)
		}},
		{"failed, handle dropped", func(c *sandbox.Snapshot) {
			c.Phase = sandbox.SnapshotFailed
			c.Message = "disk full"
			c.SizeBytes = 0
			c.ReadyAt = nil
			c.Handle = nil
			c.Source.Format = ""
			c.Source.Database = ""
		}},
	}
	want := mustGetSnapshot(t, s, snap.ID)
	for _, st := range steps {
		in := mustGetSnapshot(t, s, snap.ID)
		st.change(in)
		st.change(want)
		orig := *in
		if err := s.UpdateSnapshot(ctx, in); err != nil {
			t.Fatalf("%s: UpdateSnapshot: %v", st.what, err)
		}
		if !reflect.DeepEqual(*in, orig) {
			t.Errorf("%s: UpdateSnapshot changed the caller's struct:\n got %+v\nwant %+v", st.what, *in, orig)
		}
		if want.ReadyAt != nil {
			want.ReadyAt = ptr(want.ReadyAt.Truncate(time.Microsecond))
		}
		checkSnapshotReads(t, s, st.what, want)
	}
	checkSnapshotReads(t, s, "the other snapshot", other)
}

func testUpdateSnapshotOnlyMutable(t *testing.T, s store.Store) {
	ctx := t.Context()
	created := mustCreateSnapshot(t, s, fullSnapshot("fixed"))
	mustCreateSnapshot(t, s, newSnapshot("someone-else"))
	for _, tc := range []struct {
		what   string
		change func(*sandbox.Snapshot)
	}{
		{"Name", func(c *sandbox.Snapshot) { c.Name = "renamed" }},
		{"Name to a taken one", func(c *sandbox.Snapshot) { c.Name = "someone-else" }},
		{"Type", func(c *sandbox.Snapshot) { c.Type = "mysql" }},
		{"CreatedBy", func(c *sandbox.Snapshot) { c.CreatedBy = "mallory" }},
		{"CreatedAt", func(c *sandbox.Snapshot) { c.CreatedAt = c.CreatedAt.Add(time.Hour) }},
		{"Source.Kind", func(c *sandbox.Snapshot) { c.Source.Kind = sandbox.SnapshotFromSandbox }},
		{"Source.Sandbox", func(c *sandbox.Snapshot) { c.Source.Sandbox = "other" }},
		{"Source.SandboxID", func(c *sandbox.Snapshot) { c.Source.SandboxID = "sb-00000000000000bb" }},
		{"Source.Dependency", func(c *sandbox.Snapshot) { c.Source.Dependency = "cache" }},
		{"Source.File", func(c *sandbox.Snapshot) { c.Source.File = "other.sql" }},
		{"UsedBy", func(c *sandbox.Snapshot) { c.UsedBy = []string{"a", "b"} }},
		{"all of them", func(c *sandbox.Snapshot) {
			c.Name, c.Type, c.CreatedBy, c.CreatedAt = "renamed", "mysql", "mallory", time.Now()
			c.Source = sandbox.SnapshotSource{Kind: "other", Format: c.Source.Format, Database: c.Source.Database}
			c.UsedBy = []string{"a"}
		}},
	} {
		in := mustGetSnapshot(t, s, created.ID)
		tc.change(in)
		if err := s.UpdateSnapshot(ctx, in); err != nil {
			t.Errorf("UpdateSnapshot with a changed %s: %v, want it ignored", tc.what, err)
			continue
		}
		checkSnapshotReads(t, s, "after changing "+tc.what, created)
	}
	// The name it tried to take is still free, and the other one intact.
	if _, err := s.GetSnapshotByName(ctx, "renamed"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSnapshotByName(renamed) = %v, want ErrNotFound", err)
	}
	if got, err := s.GetSnapshotByName(ctx, "someone-else"); err != nil || got.ID == created.ID {
		t.Errorf("GetSnapshotByName(someone-else) = %+v, %v", got, err)
	}

	// And the mutable ones do change in the same call as ignored ones.
	in := mustGetSnapshot(t, s, created.ID)
	in.Name, in.Type = "renamed", "mysql"
	in.Message = "changed"
	if err := s.UpdateSnapshot(ctx, in); err != nil {
		t.Fatal(err)
	}
	want := *created
	want.Message = "changed"
	checkSnapshotReads(t, s, "mixed change", &want)
}

func testDeleteSnapshot(t *testing.T, s store.Store) {
	ctx := t.Context()
	doomed := mustCreateSnapshot(t, s, fullSnapshot("doomed"))
	keep := mustCreateSnapshot(t, s, fullSnapshot("keep"))
	if err := s.DeleteSnapshot(ctx, doomed.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetSnapshot(ctx, doomed.ID)
	wantErr(t, "GetSnapshot after delete", err, store.ErrNotFound, doomed.ID)
	_, err = s.GetSnapshotByName(ctx, doomed.Name)
	wantErr(t, "GetSnapshotByName after delete", err, store.ErrNotFound, doomed.Name)
	l, err := s.ListSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 1 || l[0].ID != keep.ID {
		t.Errorf("after delete ListSnapshots holds %d snapshots, want only %q", len(l), keep.Name)
	}

	// The name and the id are free again (a failed snapshot is replaced
	// this way), and nothing of the old record comes back.
	again := newSnapshot(doomed.Name)
	again.ID = doomed.ID
	mustCreateSnapshot(t, s, again)
	checkSnapshotReads(t, s, "recreated", again)
}

func testSnapshotInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	stored := mustCreateSnapshot(t, s, fullSnapshot("valid"))
	for _, tc := range []struct {
		what string
		call func() error
	}{
		{"CreateSnapshot without a name", func() error { return s.CreateSnapshot(ctx, newSnapshot("")) }},
		{"CreateSnapshot with a negative size", func() error {
			c := newSnapshot("negative")
			c.SizeBytes = -1
			return s.CreateSnapshot(ctx, c)
		}},
		{"UpdateSnapshot without a phase", func() error {
			c := *stored
			c.Phase, c.Message = "", "wiped"
			return s.UpdateSnapshot(ctx, &c)
		}},
		{"UpdateSnapshot with a negative size", func() error {
			c := *stored
			c.SizeBytes, c.Message = -1, "wiped"
			return s.UpdateSnapshot(ctx, &c)
		}},
	} {
		err := tc.call()
		if err == nil {
			t.Errorf("%s succeeded", tc.what)
		} else if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: %v, want neither ErrNotFound nor ErrConflict", tc.what, err)
		}
	}
	l, err := s.ListSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 1 {
		t.Errorf("after invalid calls the store holds %d snapshots, want 1", len(l))
	}
	checkSnapshotReads(t, s, "after invalid calls", stored)
}
