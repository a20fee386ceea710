package gitsync_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/gitsync"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// TestRunEnqueueAndRetry: Run syncs a new binding at once, again on
// Enqueue (not waiting for its hour-long period), and a failed listing is
// recorded and deletes nothing.
func TestRunEnqueueAndRetry(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	apply(t, st, appTemplate("file:///nowhere", `["*"]`))
	if err := st.CreateRepo(ctx, &sandbox.Repo{Name: "app", URL: "file:///nowhere", Template: "app"}); err != nil {
		t.Fatal(err)
	}
	var calls, fail atomic.Int32
	list := func(ctx context.Context, url string) ([]gitsync.Branch, error) {
		calls.Add(1)
		if fail.Load() == 1 {
			return nil, errors.New("remote unreachable")
		}
		return []gitsync.Branch{{Name: "main", SHA: strings.Repeat("a", 40)}}, nil
	}
	s := gitsync.New(gitsync.Config{Store: st, List: list, Every: time.Hour, Tick: 10 * time.Millisecond})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(runCtx) }()
	defer func() { stop(); <-done }()

	testenv.Eventually(t, "the first pass", func() bool {
		_, err := st.GetSandboxByName(ctx, "main")
		return err == nil
	})
	time.Sleep(50 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d listings before Enqueue; want 1 (the period is an hour)", n)
	}
	fail.Store(1)
	s.Enqueue("app")
	testenv.Eventually(t, "a failed pass recorded", func() bool {
		r, err := st.GetRepo(ctx, "app")
		return err == nil && r.Status.Error != ""
	})
	sb, err := st.GetSandboxByName(ctx, "main")
	if err != nil || sb.Spec.Deleting() {
		t.Fatalf("after a failed listing main is %+v, %v; want it kept", sb, err)
	}
	r, _ := st.GetRepo(ctx, "app")
	if !strings.Contains(r.Status.Error, "remote unreachable") || r.Status.Branches != 1 || r.Status.Matched != 1 {
		t.Errorf("status = %+v; want the error and the last good counts", r.Status)
	}
}

// TestLsRemoteTimeout: a remote that never answers fails the listing after
// the timeout instead of hanging the pass.
func TestLsRemoteTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	start := time.Now()
	_, err = gitsync.LsRemote(300*time.Millisecond)(context.Background(), "git://"+ln.Addr().String()+"/x.git")
	if err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("ls-remote of a silent remote = %v; want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestLsRemote lists a real remote over file:// and over git daemon.
func TestLsRemote(t *testing.T) {
	r := newRemote(t)
	feature := r.Commit("feature/x")
	main := r.git(r.Bare, "rev-parse", "main")
	for _, url := range []string{r.URL(), r.Daemon()} {
		bs, err := gitsync.LsRemote(0)(context.Background(), url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		want := []gitsync.Branch{{Name: "feature/x", SHA: feature}, {Name: "main", SHA: main}}
		if len(bs) != 2 || bs[0] != want[0] || bs[1] != want[1] {
			t.Errorf("%s: %v; want %v", url, bs, want)
		}
	}
	if _, err := gitsync.LsRemote(0)(context.Background(), "--upload-pack=touch /tmp/x"); err == nil {
		t.Errorf("a URL starting with '-' was passed to git")
	}
}
