package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

// Run runs the conformance suite against the adapter that open makes.
//
// open must return a new, empty store on every call (subtests run in
// parallel, each with its own store); Run closes each store when its subtest
// ends, so open should not.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	groups := []struct {
		name  string
		tests []test
	}{
		{"Templates", templateTests},
		{"Sandboxes", sandboxTests},
		{"Events", eventTests},
		{"Handles", handleTests},
		{"Snapshots", snapshotTests},
		{"Lifecycle", lifecycleTests},
		{"Repos", repoTests},
		{"Usage", usageTests},
		{"Times", timeTests},
		{"Context", contextTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					s := open(t)
					t.Cleanup(func() {
						if err := s.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					tc.run(t, s)
				})
			}
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// parallelism is how many goroutines the concurrency tests start: enough to
// make lost updates and duplicate versions likely if serialisation is wrong.
const parallelism = 20

// concurrently runs fn(i) for i in [0, n) from n goroutines released at
// once, and returns their errors by i.
func concurrently(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func digest(src string) string {
	h := sha256.Sum256([]byte(src))
	return hex.EncodeToString(h[:])
}

// tmpl is a template version as a client applies it.
func tmpl(name, src string) store.TemplateVersion {
	return store.TemplateVersion{
		Name:      name,
		Source:    []byte(src),
		Filename:  name + ".yaml",
		BaseDir:   "/srv/templates/" + name,
		Digest:    digest(src),
		CreatedBy: "alice@example.com",
	}
}

func newSandbox(name, template string) *sandbox.Sandbox {
	return &sandbox.Sandbox{
		ID:   sandbox.NewID(),
		Name: name,
		Spec: sandbox.Spec{Template: template, TemplateVersion: 1, CreatedBy: "alice@example.com"},
	}
}

func mustCreate(t *testing.T, s store.Store, sb *sandbox.Sandbox) *sandbox.Sandbox {
	t.Helper()
	if err := s.CreateSandbox(t.Context(), sb); err != nil {
		t.Fatalf("CreateSandbox(%q): %v", sb.Name, err)
	}
	return sb
}

func mustGet(t *testing.T, s store.Store, id string) *sandbox.Sandbox {
	t.Helper()
	sb, err := s.GetSandbox(t.Context(), id)
	if err != nil {
		t.Fatalf("GetSandbox(%q): %v", id, err)
	}
	return sb
}

func mustGetByName(t *testing.T, s store.Store, name string) *sandbox.Sandbox {
	t.Helper()
	sb, err := s.GetSandboxByName(t.Context(), name)
	if err != nil {
		t.Fatalf("GetSandboxByName(%q): %v", name, err)
	}
	return sb
}

func mustApply(t *testing.T, s store.Store, tv store.TemplateVersion) store.TemplateVersion {
	t.Helper()
	got, _, err := s.ApplyTemplate(t.Context(), tv)
	if err != nil {
		t.Fatalf("ApplyTemplate(%q): %v", tv.Name, err)
	}
	return got
}

func mustAppend(t *testing.T, s store.Store, ev sandbox.Event) sandbox.Event {
	t.Helper()
	got, err := s.AppendEvent(t.Context(), ev)
	if err != nil {
		t.Fatalf("AppendEvent(%q, %q): %v", ev.SandboxID, ev.Reason, err)
	}
	return got
}

// sameJSON compares through the API's encoding, which is what clients see;
// it also makes time.Time locations and monotonic readings irrelevant.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// wantErr checks that err wraps target and that its message names every
// one of mention, so that users learn what was not found.
func wantErr(t *testing.T, what string, err, target error, mention ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %v", what, err, target)
		return
	}
	for _, m := range mention {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("%s: error %q does not mention %q", what, err, m)
		}
	}
}

// checkStoredTime checks a time the store assigned: set and in UTC.
func checkStoredTime(t *testing.T, what string, tm time.Time) {
	t.Helper()
	switch {
	case tm.IsZero():
		t.Errorf("%s is zero", what)
	case tm.Location() != time.UTC:
		t.Errorf("%s = %v is not in UTC", what, tm)
	}
}

// sameTime checks that two reads of one stored time agree exactly.
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func canceledContext(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}
