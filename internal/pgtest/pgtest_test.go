package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m.Run)) }

// The shared cluster hands out databases of their own that accept
// connections; a cluster of its own stops and leaves no directory.
func TestDatabasesAndStop(t *testing.T) {
	shared := Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := shared.NewDatabase(t), shared.NewDatabase(t)
	if a == b {
		t.Fatalf("two NewDatabase calls gave the same URL %s", a)
	}
	for _, u := range []string{a, b} {
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatalf("connect to %s: %v", u, err)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil || n != 0 {
			t.Errorf("%s: %d tables (%v), want an empty database", u, n, err)
		}
		conn.Close(ctx)
	}
	if Get(t) != shared {
		t.Error("Get started a second shared cluster")
	}

	own, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	if own.Port == shared.Port {
		t.Fatalf("a second cluster on the shared one's port %d", own.Port)
	}
	own.Stop()
	own.Stop() // a second Stop is harmless
	if _, err := os.Stat(own.Dir); !os.IsNotExist(err) {
		t.Errorf("Stop left %s (%v)", own.Dir, err)
	}
	if conn, err := pgx.Connect(ctx, own.URL("postgres")+"&connect_timeout=2"); err == nil {
		conn.Close(ctx)
		t.Errorf("the stopped cluster still accepts connections")
	}
}
