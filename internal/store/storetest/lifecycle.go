package storetest

import (
	"errors"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

var lifecycleTests = []test{
	{"Rename", testRename},
	{"RenameConflict", testRenameConflict},
	{"RenameFnError", testRenameFnError},
	{"TouchOnlyForward", testTouchOnlyForward},
	{"TouchUnknownIgnored", testTouchUnknownIgnored},
	{"CreateKeepsGivenCreatedAt", testCreateKeepsGivenCreatedAt},
}

// The API stamps creation with its own clock (TTLs count from it); the
// store keeps that time, at its precision.
func testCreateKeepsGivenCreatedAt(t *testing.T, s store.Store) {
	at := time.Date(2031, 2, 3, 4, 5, 6, 789123456, time.FixedZone("X", 3600))
	sb := newSandbox("dated", "shop")
	sb.CreatedAt = at
	got := mustCreate(t, s, sb)
	want := at.UTC().Truncate(time.Microsecond)
	if !got.CreatedAt.Equal(want) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want)
	}
	if stored := mustGet(t, s, got.ID); !stored.CreatedAt.Equal(want) {
		t.Errorf("stored CreatedAt = %v, want %v", stored.CreatedAt, want)
	}
}

func testRename(t *testing.T, s store.Store) {
	ctx := t.Context()
	sb := mustCreate(t, s, newSandbox("pool-shop-1", "shop"))
	got, err := s.RenameSandbox(ctx, sb.ID, "alice-shop", func(sp *sandbox.Spec) error {
		sp.Pool = ""
		sp.CreatedBy = "alice"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "alice-shop" || got.Spec.CreatedBy != "alice" || got.Generation != 2 {
		t.Errorf("RenameSandbox returned name %q, created_by %q, generation %d; want alice-shop, alice, 2", got.Name, got.Spec.CreatedBy, got.Generation)
	}
	sameSandbox(t, "GetSandboxByName(new name)", mustGetByName(t, s, "alice-shop"), got)
	if _, err := s.GetSandboxByName(ctx, "pool-shop-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSandboxByName(old name) = %v, want ErrNotFound", err)
	}
	// The old name is free again.
	mustCreate(t, s, newSandbox("pool-shop-1", "shop"))
}

func testRenameConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, newSandbox("taken", "shop"))
	b := mustCreate(t, s, newSandbox("pool-b", "shop"))
	_, err := s.RenameSandbox(ctx, b.ID, "taken", func(sp *sandbox.Spec) error {
		sp.CreatedBy = "bob"
		return nil
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("RenameSandbox to a taken name = %v, want ErrConflict", err)
	}
	sameSandbox(t, "renamed sandbox after a conflict", mustGet(t, s, b.ID), b)
	sameSandbox(t, "holder of the name after a conflict", mustGet(t, s, a.ID), a)
}

func testRenameFnError(t *testing.T, s store.Store) {
	sb := mustCreate(t, s, newSandbox("keep-name", "shop"))
	_, err := s.RenameSandbox(t.Context(), sb.ID, "other", func(*sandbox.Spec) error { return errAbort })
	if !errors.Is(err, errAbort) {
		t.Fatalf("RenameSandbox with a failing fn = %v, want fn's error", err)
	}
	sameSandbox(t, "sandbox after a refused rename", mustGetByName(t, s, "keep-name"), sb)
}

func testTouchOnlyForward(t *testing.T, s store.Store) {
	ctx := t.Context()
	sb := mustCreate(t, s, newSandbox("busy", "shop"))
	if sb.LastActivityAt != nil {
		t.Fatalf("new sandbox has LastActivityAt %v, want nil", sb.LastActivityAt)
	}
	t1 := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	if err := s.TouchSandboxes(ctx, map[string]time.Time{sb.ID: t1}); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, s, sb.ID)
	if got.LastActivityAt == nil || !got.LastActivityAt.Equal(t1.Truncate(time.Microsecond)) {
		t.Fatalf("LastActivityAt = %v, want %v", got.LastActivityAt, t1.Truncate(time.Microsecond))
	}
	if got.Generation != sb.Generation || !got.UpdatedAt.Equal(sb.UpdatedAt) {
		t.Errorf("TouchSandboxes changed generation (%d → %d) or updated_at (%v → %v)", sb.Generation, got.Generation, sb.UpdatedAt, got.UpdatedAt)
	}
	// An older time does not move it back.
	if err := s.TouchSandboxes(ctx, map[string]time.Time{sb.ID: t1.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, sb.ID); !got.LastActivityAt.Equal(t1.Truncate(time.Microsecond)) {
		t.Errorf("an older touch moved LastActivityAt back to %v", got.LastActivityAt)
	}
	t2 := t1.Add(time.Minute)
	if err := s.TouchSandboxes(ctx, map[string]time.Time{sb.ID: t2}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, sb.ID); !got.LastActivityAt.Equal(t2.Truncate(time.Microsecond)) {
		t.Errorf("LastActivityAt = %v after a later touch, want %v", got.LastActivityAt, t2)
	}
	// Listing returns it too.
	l, err := s.ListSandboxes(ctx, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range l {
		if x.ID == sb.ID && (x.LastActivityAt == nil || !x.LastActivityAt.Equal(t2.Truncate(time.Microsecond))) {
			t.Errorf("ListSandboxes: LastActivityAt = %v, want %v", x.LastActivityAt, t2)
		}
	}
}

func testTouchUnknownIgnored(t *testing.T, s store.Store) {
	sb := mustCreate(t, s, newSandbox("known", "shop"))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.TouchSandboxes(t.Context(), map[string]time.Time{"sb-00000000deadbeef": now, sb.ID: now}); err != nil {
		t.Fatalf("TouchSandboxes with an unknown id: %v", err)
	}
	if got := mustGet(t, s, sb.ID); got.LastActivityAt == nil {
		t.Error("the known sandbox was not touched")
	}
	if err := s.TouchSandboxes(t.Context(), nil); err != nil {
		t.Errorf("TouchSandboxes(nil) = %v", err)
	}
}
