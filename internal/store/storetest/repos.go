package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

var repoTests = []test{
	{"CreateGetList", testRepoCreateGetList},
	{"Conflict", testRepoConflict},
	{"Refused", testRepoRefused},
	{"Status", testRepoStatus},
	{"Delete", testRepoDelete},
}

func testRepoCreateGetList(t *testing.T, s store.Store) {
	ctx := context.Background()
	if list, err := s.ListRepos(ctx); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("ListRepos on an empty store = %v, %v; want an empty, non-nil slice", list, err)
	}
	b := &sandbox.Repo{Name: "web", URL: "file:///srv/web.git", Template: "web", CreatedBy: "admin"}
	if err := s.CreateRepo(ctx, b); err != nil {
		t.Fatal(err)
	}
	if b.CreatedAt.IsZero() || b.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v; want now, in UTC", b.CreatedAt)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	a := &sandbox.Repo{Name: "shop", URL: "git://127.0.0.1/shop.git", Template: "shop", Every: sandbox.Duration(30 * time.Second), CreatedAt: created}
	if err := s.CreateRepo(ctx, a); err != nil {
		t.Fatal(err)
	}
	if !a.CreatedAt.Equal(created.Truncate(time.Microsecond)) {
		t.Errorf("CreatedAt = %v; want the given one, to the microsecond", a.CreatedAt)
	}
	got, err := s.GetRepo(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Errorf("GetRepo = %+v; want what CreateRepo returned, %+v", got, a)
	}
	list, err := s.ListRepos(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "shop" || list[1].Name != "web" {
		t.Fatalf("ListRepos = %v; want shop, web (by name)", list)
	}
	if !reflect.DeepEqual(list[1], b) {
		t.Errorf("ListRepos[1] = %+v; want %+v", list[1], b)
	}
	if _, err := s.GetRepo(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRepo(unknown) = %v; want ErrNotFound", err)
	}
}

func testRepoConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateRepo(ctx, &sandbox.Repo{Name: "shop", URL: "u", Template: "t"}); err != nil {
		t.Fatal(err)
	}
	r := &sandbox.Repo{Name: "shop", URL: "other", Template: "t"}
	if err := s.CreateRepo(ctx, r); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateRepo with a taken name = %v; want ErrConflict", err)
	}
	if !r.CreatedAt.IsZero() {
		t.Errorf("a failed CreateRepo changed its argument")
	}
}

func testRepoRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, r := range []sandbox.Repo{
		{URL: "u", Template: "t"},
		{Name: "a", Template: "t"},
		{Name: "a", URL: "u"},
		{Name: "a", URL: "u", Template: "t", Every: -1},
	} {
		if err := s.CreateRepo(ctx, &r); err == nil {
			t.Errorf("CreateRepo(%+v) succeeded; want it refused", r)
		}
	}
}

func testRepoStatus(t *testing.T, s store.Store) {
	ctx := context.Background()
	r := &sandbox.Repo{Name: "shop", URL: "u", Template: "t"}
	if err := s.CreateRepo(ctx, r); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	st := sandbox.RepoStatus{LastSyncAt: &at, Error: "ls-remote: exit status 128", Branches: 200, Matched: 199}
	if err := s.UpdateRepoStatus(ctx, "shop", st); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRepo(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	want := at.UTC().Truncate(time.Microsecond)
	if got.Status.LastSyncAt == nil || !got.Status.LastSyncAt.Equal(want) || got.Status.LastSyncAt.Location() != time.UTC {
		t.Errorf("LastSyncAt = %v; want %v", got.Status.LastSyncAt, want)
	}
	if got.Status.Error != st.Error || got.Status.Branches != 200 || got.Status.Matched != 199 || got.Status.LastSuccessAt != nil {
		t.Errorf("Status = %+v; want %+v", got.Status, st)
	}
	if got.URL != "u" || got.Template != "t" || !got.CreatedAt.Equal(r.CreatedAt) {
		t.Errorf("UpdateRepoStatus changed more than the status: %+v", got)
	}
	if err := s.UpdateRepoStatus(ctx, "nope", st); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateRepoStatus(unknown) = %v; want ErrNotFound", err)
	}
}

func testRepoDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.CreateRepo(ctx, &sandbox.Repo{Name: "shop", URL: "u", Template: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRepo(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRepo(ctx, "shop"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRepo after DeleteRepo = %v; want ErrNotFound", err)
	}
	if err := s.DeleteRepo(ctx, "shop"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteRepo twice = %v; want ErrNotFound", err)
	}
	// The name is free again.
	if err := s.CreateRepo(ctx, &sandbox.Repo{Name: "shop", URL: "u2", Template: "t"}); err != nil {
		t.Errorf("CreateRepo after DeleteRepo: %v", err)
	}
}
