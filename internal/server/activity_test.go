package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store/sqlite"
)

// TestFlushActivity checks that activity recorded in memory reaches the
// store every interval and once more at shutdown, keyed by the sandbox's
// current name, and that unknown names are dropped without an error.
func TestFlushActivity(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sandpit.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sb := &sandbox.Sandbox{Name: "busy", Spec: sandbox.Spec{Template: "t", TemplateVersion: 1}}
	if err := st.CreateSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	a := lifecycle.NewActivity(func() time.Time { return now })
	a.Touch("busy")
	a.Touch("gone") // deleted meanwhile: nothing to record

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		flushActivity(runCtx, st, a, 10*time.Millisecond, slog.New(slog.DiscardHandler))
		close(done)
	}()
	waitActivity(t, st, sb.ID, now)

	// The last touch before shutdown is flushed by the shutdown itself.
	stop()
	<-done
	now = now.Add(time.Minute)
	a.Touch("busy")
	flushActivity(canceled(), st, a, time.Hour, slog.New(slog.DiscardHandler))
	waitActivity(t, st, sb.ID, now)
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func waitActivity(t *testing.T, st *sqlite.Store, id string, want time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := st.GetSandbox(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.LastActivityAt != nil && got.LastActivityAt.Equal(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("last_activity_at = %v, want %v", got.LastActivityAt, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
