package storetest

import (
	"bytes"
	"fmt"
	"sort"
	"testing"

	"sandpit.dev/sandpit/internal/store"
)

var templateTests = []test{
	{"ApplyNewUnchangedChanged", testApplyTemplate},
	{"ApplyRevertCreatesVersion", testApplyRevert},
	{"ApplyConcurrentSameDigest", testApplyConcurrentSame},
	{"ApplyConcurrentDifferentDigests", testApplyConcurrentDifferent},
	{"ApplyKeepsBytes", testApplyKeepsBytes},
	{"Get", testGetTemplate},
	{"GetNotFound", testGetTemplateNotFound},
	{"List", testListTemplates},
	{"ListVersions", testListTemplateVersions},
}

func testApplyTemplate(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := tmpl("shop", "name: shop\n")
	steps := []struct {
		apply       store.TemplateVersion
		wantVersion int
		wantCreated bool
	}{
		{a, 1, true},
		{a, 1, false},
		{tmpl("shop", "name: shop\n# v2\n"), 2, true},
		{tmpl("shop", "name: shop\n# v2\n"), 2, false},
		{tmpl("blog", "name: blog\n"), 1, true},
	}
	first := map[int]store.TemplateVersion{}
	for i, st := range steps {
		got, created, err := s.ApplyTemplate(ctx, st.apply)
		if err != nil {
			t.Fatalf("step %d: ApplyTemplate: %v", i, err)
		}
		if got.Version != st.wantVersion || created != st.wantCreated {
			t.Errorf("step %d: got version %d created %v, want %d %v", i, got.Version, created, st.wantVersion, st.wantCreated)
		}
		want := st.apply
		want.Version = st.wantVersion
		want.CreatedAt = got.CreatedAt
		sameTemplate(t, fmt.Sprintf("step %d", i), got, want)
		checkStoredTime(t, fmt.Sprintf("step %d: CreatedAt", i), got.CreatedAt)
		if st.apply.Name == "shop" {
			if prev, ok := first[got.Version]; ok {
				// Unchanged: the stored version comes back as it was.
				sameTemplate(t, fmt.Sprintf("step %d: unchanged apply", i), got, prev)
			} else {
				first[got.Version] = got
			}
		}
	}
	stored, err := s.GetTemplate(ctx, "shop", 1)
	if err != nil {
		t.Fatal(err)
	}
	sameTemplate(t, "GetTemplate(shop, 1) after applies", stored, first[1])
}

func testApplyRevert(t *testing.T, s store.Store) {
	// Only the latest version's digest counts: going back to older content
	// is a change like any other.
	a, b := tmpl("shop", "a"), tmpl("shop", "b")
	mustApply(t, s, a)
	mustApply(t, s, b)
	got, created, err := s.ApplyTemplate(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 3 || !created || got.Digest != a.Digest {
		t.Errorf("re-applying version 1's content: got version %d created %v digest %.8s, want 3 true %.8s",
			got.Version, created, got.Digest, a.Digest)
	}
}

func testApplyConcurrentSame(t *testing.T, s store.Store) {
	got := make([]store.TemplateVersion, parallelism)
	created := make([]bool, parallelism)
	errs := concurrently(parallelism, func(i int) (err error) {
		got[i], created[i], err = s.ApplyTemplate(t.Context(), tmpl("shop", "same"))
		return err
	})
	n := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
			continue
		}
		if created[i] {
			n++
		}
		if got[i].Version != 1 {
			t.Errorf("goroutine %d: version %d, want 1", i, got[i].Version)
		}
	}
	if n != 1 {
		t.Errorf("%d applies reported created, want exactly 1", n)
	}
	vs, err := s.ListTemplateVersions(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 {
		t.Errorf("%d versions stored, want 1", len(vs))
	}
}

func testApplyConcurrentDifferent(t *testing.T, s store.Store) {
	got := make([]store.TemplateVersion, parallelism)
	errs := concurrently(parallelism, func(i int) (err error) {
		var created bool
		got[i], created, err = s.ApplyTemplate(t.Context(), tmpl("shop", fmt.Sprintf("content %d", i)))
		if err == nil && !created {
			err = fmt.Errorf("new content reported unchanged (version %d)", got[i].Version)
		}
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}
	versions := make([]int, 0, parallelism)
	byVersion := map[int]store.TemplateVersion{}
	for _, tv := range got {
		versions = append(versions, tv.Version)
		byVersion[tv.Version] = tv
	}
	sort.Ints(versions)
	for i, v := range versions {
		if v != i+1 {
			t.Fatalf("versions %v, want 1..%d each once", versions, parallelism)
		}
	}
	stored, err := s.ListTemplateVersions(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != parallelism {
		t.Fatalf("%d versions stored, want %d", len(stored), parallelism)
	}
	for i, tv := range stored {
		if tv.Version != i+1 {
			t.Errorf("ListTemplateVersions[%d].Version = %d, want %d", i, tv.Version, i+1)
		}
		sameTemplate(t, fmt.Sprintf("version %d", tv.Version), tv, byVersion[tv.Version])
	}
}

func testApplyKeepsBytes(t *testing.T, s store.Store) {
	// Source is kept byte for byte: not normalised, not required to be
	// UTF-8, and empty stays empty.
	for _, src := range [][]byte{{0x00, 0xff, 0xfe, '\r', '\n'}, {}} {
		tv := tmpl("bytes", "")
		tv.Source = src
		tv.Digest = digest(string(src))
		got := mustApply(t, s, tv)
		stored, err := s.GetTemplate(t.Context(), "bytes", got.Version)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stored.Source, src) {
			t.Errorf("Source = %q, want %q", stored.Source, src)
		}
	}
}

func testGetTemplate(t *testing.T, s store.Store) {
	ctx := t.Context()
	v1 := mustApply(t, s, tmpl("shop", "one"))
	v2 := mustApply(t, s, tmpl("shop", "two"))
	mustApply(t, s, tmpl("other", "x"))
	for _, tc := range []struct {
		version int
		want    store.TemplateVersion
	}{{0, v2}, {1, v1}, {2, v2}} {
		got, err := s.GetTemplate(ctx, "shop", tc.version)
		if err != nil {
			t.Fatalf("GetTemplate(shop, %d): %v", tc.version, err)
		}
		sameTemplate(t, fmt.Sprintf("GetTemplate(shop, %d)", tc.version), got, tc.want)
	}
}

func testGetTemplateNotFound(t *testing.T, s store.Store) {
	mustApply(t, s, tmpl("shop", "one"))
	for _, tc := range []struct {
		name    string
		version int
		mention []string
	}{
		{"nope", 0, []string{"nope"}},
		{"nope", 1, []string{"nope"}},
		{"shop", 2, []string{"shop", "2"}},
	} {
		_, err := s.GetTemplate(t.Context(), tc.name, tc.version)
		wantErr(t, fmt.Sprintf("GetTemplate(%s, %d)", tc.name, tc.version), err, store.ErrNotFound, tc.mention...)
	}
}

func testListTemplates(t *testing.T, s store.Store) {
	got, err := s.ListTemplates(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("ListTemplates on an empty store = %#v, want an empty, non-nil slice", got)
	}
	mustApply(t, s, tmpl("web", "1"))
	mustApply(t, s, tmpl("api", "1"))
	api2 := mustApply(t, s, tmpl("api", "2"))
	mustApply(t, s, tmpl("web", "2"))
	web3 := mustApply(t, s, tmpl("web", "3"))
	mustApply(t, s, tmpl("web", "3")) // unchanged
	db := mustApply(t, s, tmpl("db", "1"))

	got, err = s.ListTemplates(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []store.TemplateVersion{api2, db, web3}
	if len(got) != len(want) {
		t.Fatalf("ListTemplates returned %d templates, want %d (latest of each, by name)", len(got), len(want))
	}
	for i := range want {
		sameTemplate(t, fmt.Sprintf("ListTemplates[%d]", i), got[i], want[i])
	}
}

func testListTemplateVersions(t *testing.T, s store.Store) {
	var want []store.TemplateVersion
	for i := range 4 {
		want = append(want, mustApply(t, s, tmpl("shop", fmt.Sprint(i))))
	}
	mustApply(t, s, tmpl("other", "x"))
	got, err := s.ListTemplateVersions(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d versions, want %d", len(got), len(want))
	}
	for i := range want {
		sameTemplate(t, fmt.Sprintf("ListTemplateVersions[%d]", i), got[i], want[i])
	}
	_, err = s.ListTemplateVersions(t.Context(), "nope")
	wantErr(t, "ListTemplateVersions(nope)", err, store.ErrNotFound, "nope")
}

func sameTemplate(t *testing.T, what string, got, want store.TemplateVersion) {
	t.Helper()
	if !bytes.Equal(got.Source, want.Source) {
		t.Errorf("%s: Source = %q, want %q", what, got.Source, want.Source)
	}
	sameTime(t, what+": CreatedAt", got.CreatedAt, want.CreatedAt)
	sameJSON(t, what, got, want) // every field but Source
}
