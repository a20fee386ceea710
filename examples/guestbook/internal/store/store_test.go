package store_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"sandpit.dev/sandpit/examples/guestbook/internal/guestbook"
	"sandpit.dev/sandpit/examples/guestbook/internal/pgtest"
	"sandpit.dev/sandpit/examples/guestbook/internal/store"
)

func open(t *testing.T, pg *pgtest.Server) (*store.Store, string) {
	t.Helper()
	db := pg.CreateDatabase(t)
	st, err := store.Open(context.Background(), pg.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, db
}

func TestStore(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()

	t.Run("migrate creates the schema and seeds once", func(t *testing.T) {
		st, _ := open(t, pg)
		first, err := st.Migrate(ctx, "pr-42")
		if err != nil {
			t.Fatal(err)
		}
		if res := first; res.Applied == 0 || !res.Seeded {
			t.Fatalf("first migrate = %+v, want migrations applied and seeded", res)
		}
		entries, err := st.List(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		seeds := store.SeedEntries("pr-42")
		if len(entries) != len(seeds) {
			t.Fatalf("got %d entries after seeding, want %d", len(entries), len(seeds))
		}
		if got, want := entries[0].Message, "Welcome to sandbox pr-42!"; got != want {
			t.Errorf("newest entry = %q, want %q", got, want)
		}

		// Again: nothing to apply, nothing seeded, nothing duplicated.
		for i := range 2 {
			res, err := st.Migrate(ctx, "pr-42")
			if err != nil {
				t.Fatalf("migrate #%d: %v", i+2, err)
			}
			if res.Applied != 0 || res.Seeded || res.Version != first.Version {
				t.Fatalf("migrate #%d = %+v, want a no-op", i+2, res)
			}
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Entries != int64(len(seeds)) {
			t.Fatalf("after repeated migrate: %d entries, want %d", info.Entries, len(seeds))
		}
	})

	t.Run("migrate does not seed a table that has entries", func(t *testing.T) {
		st, _ := open(t, pg)
		if _, err := st.Migrate(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Create(ctx, guestbook.NewEntry{Author: "Ada", Message: "kept"}); err != nil {
			t.Fatal(err)
		}
		res, err := st.Migrate(ctx, "a")
		if err != nil || res.Seeded {
			t.Fatalf("migrate = %+v, %v; want no seeding", res, err)
		}
	})

	t.Run("concurrent migrations seed once", func(t *testing.T) {
		st, _ := open(t, pg)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		seeded := make(chan bool, 4)
		for range 4 {
			wg.Go(func() {
				res, err := st.Migrate(ctx, "race")
				errs <- err
				seeded <- res.Seeded
			})
		}
		wg.Wait()
		close(errs)
		close(seeded)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		n := 0
		for s := range seeded {
			if s {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d of 4 concurrent migrations seeded, want exactly 1", n)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Entries != int64(len(store.SeedEntries("race"))) {
			t.Fatalf("%d entries, want %d", info.Entries, len(store.SeedEntries("race")))
		}
	})

	t.Run("create and list newest first", func(t *testing.T) {
		st, _ := open(t, pg)
		if _, err := st.Migrate(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		var created []guestbook.Entry
		for i := range 3 {
			e, err := st.Create(ctx, guestbook.NewEntry{Author: "Ada", Message: fmt.Sprintf("message %d", i)})
			if err != nil {
				t.Fatal(err)
			}
			if e.ID == 0 || time.Since(e.CreatedAt) > time.Minute || e.CreatedAt.Location() != time.UTC {
				t.Fatalf("created entry %+v: want an id and a recent UTC time", e)
			}
			created = append(created, e)
		}
		got, err := st.List(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != created[2].ID || got[1].ID != created[1].ID {
			t.Fatalf("List(2) = %+v, want the last two created, newest first", got)
		}
		if got[0].Message != "message 2" || got[0].Author != "Ada" {
			t.Fatalf("List(2)[0] = %+v", got[0])
		}
	})

	t.Run("info comes from PostgreSQL", func(t *testing.T) {
		st, db := open(t, pg)
		if _, err := st.Migrate(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Database != db {
			t.Errorf("database = %q, want %q", info.Database, db)
		}
		if !strings.HasPrefix(info.ServerVersion, "PostgreSQL ") {
			t.Errorf("server version = %q, want PostgreSQL's version()", info.ServerVersion)
		}
		if info.Entries != 2 {
			t.Errorf("entries = %d, want 2 (the seeds)", info.Entries)
		}
	})

	t.Run("the database rejects what validation would", func(t *testing.T) {
		st, _ := open(t, pg)
		if _, err := st.Migrate(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		long := strings.Repeat("é", guestbook.MaxMessage+1)
		if _, err := st.Create(ctx, guestbook.NewEntry{Author: "Ada", Message: long}); err == nil {
			t.Fatal("a message over the limit was stored: the CHECK constraint is missing")
		}
		if _, err := st.Create(ctx, guestbook.NewEntry{Author: "Ada", Message: strings.Repeat("é", guestbook.MaxMessage)}); err != nil {
			t.Fatalf("a message at the limit (in characters, not bytes) was refused: %v", err)
		}
	})

	t.Run("wait ready returns at once when the database answers", func(t *testing.T) {
		st, _ := open(t, pg)
		if err := st.WaitReady(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenRejectsBadURLWithoutEchoingIt(t *testing.T) {
	_, err := store.Open(context.Background(), "postgres://user:s3cret@host:notaport/db")
	if err == nil {
		t.Fatal("Open accepted a bad URL")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestWaitReadyGivesUpOnARefusedPort(t *testing.T) {
	st, err := store.Open(context.Background(), "postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	start := time.Now()
	err = st.WaitReady(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), 500*time.Millisecond)
	if err == nil {
		t.Fatal("WaitReady succeeded against a closed port")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("WaitReady took %v with a 500ms timeout", d)
	}
}
