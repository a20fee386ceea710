package storetest

import (
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

var sandboxTests = []test{
	{"CreateSetsFields", testCreateSetsFields},
	{"CreateKeepsPhase", testCreateKeepsPhase},
	{"CreateAssignsID", testCreateAssignsID},
	{"CreateConflict", testCreateConflict},
	{"CreateConcurrentSameName", testCreateConcurrentSameName},
	{"RoundTrip", testSandboxRoundTrip},
	{"GetNotFound", testGetSandboxNotFound},
	{"List", testListSandboxes},
	{"UpdateSpec", testUpdateSpec},
	{"UpdateSpecFnError", testUpdateSpecFnError},
	{"UpdateSpecNotFound", testUpdateSpecNotFound},
	{"UpdateSpecConcurrent", testUpdateSpecConcurrent},
	{"UpdateStatus", testUpdateStatus},
	{"UpdateStatusNotFound", testUpdateStatusNotFound},
	{"Delete", testDeleteSandbox},
	{"DeleteNotFound", testDeleteSandboxNotFound},
}

func testCreateSetsFields(t *testing.T, s store.Store) {
	sb := newSandbox("feature-x", "shop")
	sb.Generation = 7 // ignored: a new sandbox is generation 1
	mustCreate(t, s, sb)
	if sb.Generation != 1 {
		t.Errorf("Generation = %d, want 1", sb.Generation)
	}
	if sb.Status.Phase != sandbox.PhasePending {
		t.Errorf("Status.Phase = %q, want %q", sb.Status.Phase, sandbox.PhasePending)
	}
	checkStoredTime(t, "CreatedAt", sb.CreatedAt)
	sameTime(t, "UpdatedAt", sb.UpdatedAt, sb.CreatedAt)

	got := mustGet(t, s, sb.ID)
	sameSandbox(t, "GetSandbox after create", got, sb)
	byName, err := s.GetSandboxByName(t.Context(), sb.Name)
	if err != nil {
		t.Fatal(err)
	}
	sameSandbox(t, "GetSandboxByName after create", byName, sb)
}

func testCreateKeepsPhase(t *testing.T, s store.Store) {
	sb := newSandbox("pooled", "shop")
	sb.Status.Phase = sandbox.PhaseProvisioning
	mustCreate(t, s, sb)
	if got := mustGet(t, s, sb.ID).Status.Phase; got != sandbox.PhaseProvisioning {
		t.Errorf("Status.Phase = %q, want the given %q", got, sandbox.PhaseProvisioning)
	}
}

func testCreateAssignsID(t *testing.T, s store.Store) {
	sb := newSandbox("no-id", "shop")
	sb.ID = ""
	mustCreate(t, s, sb)
	if sb.ID == "" {
		t.Fatal("CreateSandbox left ID empty")
	}
	sameSandbox(t, "GetSandbox", mustGet(t, s, sb.ID), sb)
}

func testCreateConflict(t *testing.T, s store.Store) {
	first := mustCreate(t, s, newSandbox("taken", "shop"))
	for _, tc := range []struct {
		what string
		sb   *sandbox.Sandbox
	}{
		{"same name", newSandbox("taken", "other")},
		{"same id", &sandbox.Sandbox{ID: first.ID, Name: "fresh", Spec: sandbox.Spec{Template: "shop"}}},
	} {
		err := s.CreateSandbox(t.Context(), tc.sb)
		wantErr(t, "CreateSandbox with "+tc.what, err, store.ErrConflict)
		if errors.Is(err, store.ErrNotFound) {
			t.Errorf("CreateSandbox with %s: conflict also matches ErrNotFound: %v", tc.what, err)
		}
	}
	got, err := s.ListSandboxes(t.Context(), store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != first.ID {
		t.Errorf("after conflicts the store holds %d sandboxes, want only the first", len(got))
	}
}

func testCreateConcurrentSameName(t *testing.T, s store.Store) {
	sbs := make([]*sandbox.Sandbox, parallelism)
	for i := range sbs {
		sbs[i] = newSandbox("race", "shop")
	}
	errs := concurrently(parallelism, func(i int) error { return s.CreateSandbox(t.Context(), sbs[i]) })
	var winner *sandbox.Sandbox
	for i, err := range errs {
		switch {
		case err == nil && winner != nil:
			t.Errorf("goroutine %d also created %q", i, "race")
		case err == nil:
			winner = sbs[i]
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("goroutine %d: %v, want a conflict", i, err)
		}
	}
	if winner == nil {
		t.Fatal("no goroutine created the sandbox")
	}
	got, err := s.GetSandboxByName(t.Context(), "race")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != winner.ID {
		t.Errorf("stored id %s, want the winner's %s", got.ID, winner.ID)
	}
}

// fullStatus exercises every field of Status, so that a column or codec
// that drops one shows up.
func fullStatus() sandbox.Status {
	at := time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)
	done := at.Add(1500 * time.Millisecond)
	exit := 3
	return sandbox.Status{
		Phase:              sandbox.PhaseReady,
		Message:            "ready in 4.2s",
		ObservedGeneration: 2,
		Runtime:            "local",
		Ref:                "main",
		SHA:                "0123456789abcdef0123456789abcdef01234567",
		Endpoints: []sandbox.EndpointStatus{{
			Name: "app", URL: "https://app--feature-x.example.com",
			Routes: []sandbox.Route{{PathPrefix: "/api", Service: "api", Port: "http", Upstream: "127.0.0.1:41000"}},
		}},
		Services: []sandbox.ServiceStatus{
			{Name: "api", State: sandbox.ServiceRunning, Ready: true, PID: 4242, Ports: map[string]int{"http": 41000}},
			{Name: "worker", State: sandbox.ServiceExited, Restarts: 2, ExitCode: &exit, Message: "exit status 3"},
		},
		Dependencies: []sandbox.DependencyStatus{{
			Name: "db", Type: "postgres", Version: "15", State: sandbox.ServiceRunning, Ready: true,
			Host: "127.0.0.1", Port: 41001, Databases: []string{"shop"},
		}},
		Stages: []sandbox.Stage{
			{Name: sandbox.StageCheckout, State: sandbox.StageSucceeded, StartedAt: at, FinishedAt: &done},
			{Name: "build/api", State: sandbox.StageRunning, StartedAt: done, Message: "go build"},
		},
		Timing:  &sandbox.Timing{TotalMS: 4200.5, ExternalMS: 4000.25, CheckoutMS: 300, OverheadMS: 200.25},
		ReadyAt: &done,
	}
}

func testSandboxRoundTrip(t *testing.T, s store.Store) {
	del := time.Date(2025, 6, 2, 8, 30, 0, 999999000, time.UTC)
	sb := &sandbox.Sandbox{
		ID:   sandbox.NewID(),
		Name: "full",
		Spec: sandbox.Spec{
			Template: "shop", TemplateVersion: 3, Ref: "feature/x",
			Set:                 map[string]string{"services.api.env.DEBUG": "1", "resources.class": "small"},
			DeletionRequestedAt: &del,
			CreatedBy:           "ci-bot",
		},
	}
	mustCreate(t, s, sb)
	st := fullStatus()
	if err := s.UpdateStatus(t.Context(), sb.ID, st); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, sb.ID)
	sameJSON(t, "Spec", got.Spec, sb.Spec)
	sameJSON(t, "Status", got.Status, st)
}

func testGetSandboxNotFound(t *testing.T, s store.Store) {
	mustCreate(t, s, newSandbox("exists", "shop"))
	_, err := s.GetSandbox(t.Context(), "sb-0000000000000000")
	wantErr(t, "GetSandbox(unknown)", err, store.ErrNotFound, "sb-0000000000000000")
	_, err = s.GetSandboxByName(t.Context(), "missing")
	wantErr(t, "GetSandboxByName(unknown)", err, store.ErrNotFound, "missing")
}

func testListSandboxes(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListSandboxes(ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("ListSandboxes on an empty store = %#v, want an empty, non-nil slice", got)
	}

	type row struct {
		name, template string
		phase          sandbox.Phase
	}
	rows := []row{
		{"a", "shop", sandbox.PhaseReady},
		{"b", "blog", sandbox.PhaseReady},
		{"c", "shop", sandbox.PhaseFailed},
		{"d", "shop", sandbox.PhasePending},
		{"e", "blog", sandbox.PhaseFailed},
		{"f", "shop", sandbox.PhaseReady},
	}
	for _, r := range rows {
		sb := mustCreate(t, s, newSandbox(r.name, r.template))
		if r.phase != sandbox.PhasePending {
			if err := s.UpdateStatus(ctx, sb.ID, sandbox.Status{Phase: r.phase}); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, tc := range []struct {
		opts store.ListOptions
		want []string
	}{
		{store.ListOptions{}, []string{"a", "b", "c", "d", "e", "f"}},
		{store.ListOptions{Template: "shop"}, []string{"a", "c", "d", "f"}},
		{store.ListOptions{Phase: sandbox.PhaseReady}, []string{"a", "b", "f"}},
		{store.ListOptions{Template: "shop", Phase: sandbox.PhaseFailed}, []string{"c"}},
		{store.ListOptions{Template: "blog", Phase: sandbox.PhasePending}, []string{}},
		{store.ListOptions{Template: "nope"}, []string{}},
	} {
		what := fmt.Sprintf("ListSandboxes(%+v)", tc.opts)
		got, err := s.ListSandboxes(ctx, tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got == nil {
			t.Errorf("%s = nil, want a non-nil slice", what)
		}
		// Creation order is the contract, with ties in CreatedAt (a coarse
		// clock) broken by ID; the names are compared as a set.
		if !sort.SliceIsSorted(got, func(i, j int) bool {
			if !got[i].CreatedAt.Equal(got[j].CreatedAt) {
				return got[i].CreatedAt.Before(got[j].CreatedAt)
			}
			return got[i].ID < got[j].ID
		}) {
			t.Errorf("%s is not ordered by CreatedAt, then ID", what)
		}
		names := []string{}
		for _, sb := range got {
			names = append(names, sb.Name)
			if tc.opts.Phase != "" && sb.Status.Phase != tc.opts.Phase {
				t.Errorf("%s returned %s in phase %s", what, sb.Name, sb.Status.Phase)
			}
		}
		sort.Strings(names)
		sameJSON(t, what, names, tc.want)
	}
}

func testUpdateSpec(t *testing.T, s store.Store) {
	ctx := t.Context()
	sb := mustCreate(t, s, newSandbox("upd", "shop"))
	st := sandbox.Status{Phase: sandbox.PhaseReady, ObservedGeneration: 1, Message: "up"}
	if err := s.UpdateStatus(ctx, sb.ID, st); err != nil {
		t.Fatal(err)
	}
	before := mustGet(t, s, sb.ID)

	var seen sandbox.Spec
	got, err := s.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error {
		seen = *sp
		sp.Ref = "feature/y"
		sp.Template = "shop-v2"
		sp.Set = map[string]string{"k": "v"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "spec passed to fn", seen, before.Spec)
	if got.Generation != 2 {
		t.Errorf("Generation = %d, want 2", got.Generation)
	}
	if got.UpdatedAt.Before(before.UpdatedAt) {
		t.Errorf("UpdatedAt went back from %v to %v", before.UpdatedAt, got.UpdatedAt)
	}
	checkStoredTime(t, "UpdatedAt", got.UpdatedAt)
	sameTime(t, "CreatedAt", got.CreatedAt, before.CreatedAt)
	sameJSON(t, "Status after UpdateSpec", got.Status, st)
	if got.Spec.Ref != "feature/y" || got.Spec.Set["k"] != "v" {
		t.Errorf("returned spec %+v lacks the change", got.Spec)
	}
	sameSandbox(t, "GetSandbox after UpdateSpec", mustGet(t, s, sb.ID), got)

	// The template filter follows the spec.
	for tmplName, want := range map[string]int{"shop-v2": 1, "shop": 0} {
		l, err := s.ListSandboxes(ctx, store.ListOptions{Template: tmplName})
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != want {
			t.Errorf("ListSandboxes(Template: %s) after the template changed: %d sandboxes, want %d", tmplName, len(l), want)
		}
	}
}

var errAbort = errors.New("storetest: fn refused")

func testUpdateSpecFnError(t *testing.T, s store.Store) {
	sb := mustCreate(t, s, newSandbox("abort", "shop"))
	got, err := s.UpdateSpec(t.Context(), sb.ID, func(sp *sandbox.Spec) error {
		sp.Ref = "should-not-stick"
		return fmt.Errorf("validate: %w", errAbort)
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("UpdateSpec returned %v, want fn's error", err)
	}
	if err.Error() != "validate: "+errAbort.Error() {
		t.Errorf("UpdateSpec changed fn's error to %q", err)
	}
	if got != nil {
		t.Errorf("UpdateSpec returned a sandbox with an error: %+v", got)
	}
	sameSandbox(t, "sandbox after aborted UpdateSpec", mustGet(t, s, sb.ID), sb)
}

func testUpdateSpecNotFound(t *testing.T, s store.Store) {
	called := false
	_, err := s.UpdateSpec(t.Context(), "sb-0000000000000000", func(*sandbox.Spec) error {
		called = true
		return nil
	})
	wantErr(t, "UpdateSpec(unknown)", err, store.ErrNotFound, "sb-0000000000000000")
	if called {
		t.Error("UpdateSpec called fn for an unknown sandbox")
	}
}

func testUpdateSpecConcurrent(t *testing.T, s store.Store) {
	sb := mustCreate(t, s, newSandbox("busy", "shop"))
	errs := concurrently(parallelism, func(i int) error {
		_, err := s.UpdateSpec(t.Context(), sb.ID, func(sp *sandbox.Spec) error {
			if sp.Set == nil {
				sp.Set = map[string]string{}
			}
			sp.Set[fmt.Sprint("k", i)] = "v"
			return nil
		})
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	got := mustGet(t, s, sb.ID)
	if len(got.Spec.Set) != parallelism {
		t.Errorf("%d of %d concurrent spec changes survived", len(got.Spec.Set), parallelism)
	}
	if got.Generation != 1+parallelism {
		t.Errorf("Generation = %d, want %d", got.Generation, 1+parallelism)
	}
}

func testUpdateStatus(t *testing.T, s store.Store) {
	ctx := t.Context()
	sb := mustCreate(t, s, newSandbox("st", "shop"))
	if _, err := s.UpdateSpec(ctx, sb.ID, func(sp *sandbox.Spec) error { sp.Ref = "dev"; return nil }); err != nil {
		t.Fatal(err)
	}
	before := mustGet(t, s, sb.ID)
	st := fullStatus()
	st.Phase = sandbox.PhaseSuspended
	if err := s.UpdateStatus(ctx, sb.ID, st); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, sb.ID)
	if got.Generation != before.Generation {
		t.Errorf("UpdateStatus changed Generation from %d to %d", before.Generation, got.Generation)
	}
	sameJSON(t, "Spec after UpdateStatus", got.Spec, before.Spec)
	sameJSON(t, "Status", got.Status, st)
	sameTime(t, "CreatedAt", got.CreatedAt, before.CreatedAt)

	for phase, want := range map[sandbox.Phase]int{sandbox.PhaseSuspended: 1, sandbox.PhasePending: 0} {
		l, err := s.ListSandboxes(ctx, store.ListOptions{Phase: phase})
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != want {
			t.Errorf("ListSandboxes(Phase: %s) after UpdateStatus: %d sandboxes, want %d", phase, len(l), want)
		}
	}
}

func testUpdateStatusNotFound(t *testing.T, s store.Store) {
	err := s.UpdateStatus(t.Context(), "sb-0000000000000000", sandbox.Status{Phase: sandbox.PhaseReady})
	wantErr(t, "UpdateStatus(unknown)", err, store.ErrNotFound, "sb-0000000000000000")
}

func testDeleteSandbox(t *testing.T, s store.Store) {
	ctx := t.Context()
	sb := mustCreate(t, s, newSandbox("doomed", "shop"))
	keep := mustCreate(t, s, newSandbox("keep", "shop"))
	for range 3 {
		mustAppend(t, s, sandbox.Event{SandboxID: sb.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonInfo})
	}
	mustAppend(t, s, sandbox.Event{SandboxID: keep.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonInfo})
	if err := s.SaveHandle(ctx, sb.ID, "local", []byte(`{"pids":[1]}`)); err != nil {
		t.Fatal(err)
	}

	if err := s.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetSandbox(ctx, sb.ID)
	wantErr(t, "GetSandbox after delete", err, store.ErrNotFound)
	_, err = s.GetSandboxByName(ctx, sb.Name)
	wantErr(t, "GetSandboxByName after delete", err, store.ErrNotFound)
	_, err = s.ListEvents(ctx, sb.ID, 0, 0)
	wantErr(t, "ListEvents after delete", err, store.ErrNotFound)
	if rt, _, err := s.LoadHandle(ctx, sb.ID); err != nil || rt != "local" {
		t.Errorf("LoadHandle after deleting the sandbox = %q, %v; the handle must outlive the row", rt, err)
	}
	if evs, err := s.ListEvents(ctx, keep.ID, 0, 0); err != nil || len(evs) != 1 {
		t.Errorf("other sandbox's events after delete: %d, %v; want 1, nil", len(evs), err)
	}

	// The name is free again, and a sandbox reusing the id starts with an
	// empty event log: the old events are gone, not hidden.
	again := &sandbox.Sandbox{ID: sb.ID, Name: sb.Name, Spec: sb.Spec}
	mustCreate(t, s, again)
	evs, err := s.ListEvents(ctx, sb.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 {
		t.Errorf("recreated sandbox has %d events of its predecessor", len(evs))
	}
}

func testDeleteSandboxNotFound(t *testing.T, s store.Store) {
	err := s.DeleteSandbox(t.Context(), "sb-0000000000000000")
	wantErr(t, "DeleteSandbox(unknown)", err, store.ErrNotFound, "sb-0000000000000000")
}

func sameSandbox(t *testing.T, what string, got, want *sandbox.Sandbox) {
	t.Helper()
	sameTime(t, what+": CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(t, what+": UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	sameJSON(t, what, got, want)
}
