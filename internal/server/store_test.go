package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenStoreSQLiteByDefault(t *testing.T) {
	for _, spec := range []string{"", "sqlite"} {
		dir := t.TempDir()
		var logs bytes.Buffer
		st, err := openStore(t.Context(), spec, dir, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatalf("openStore(%q): %v", spec, err)
		}
		st.Close()
		if _, err := os.Stat(filepath.Join(dir, "sandpit.db")); err != nil {
			t.Errorf("openStore(%q) made no <data-dir>/sandpit.db: %v", spec, err)
		}
		if strings.Contains(logs.String(), "PostgreSQL") {
			t.Errorf("openStore(%q) logged %q", spec, logs.String())
		}
	}
}

// TestOpenStoreKeepsPasswordsOut: neither the log nor the error of a
// PostgreSQL store that cannot be reached, or of a store that is not one,
// shows the password.
func TestOpenStoreKeepsPasswordsOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	for _, tc := range []struct{ spec, wantErr string }{
		{fmt.Sprintf("postgres://sandpit:s3cret-pw@127.0.0.1:%d/sandpit?sslmode=disable&connect_timeout=5", port), "open postgres store postgres://sandpit:xxxxx@127.0.0.1"},
		{fmt.Sprintf("postgresql://sandpit:s3cret-pw@127.0.0.1:%d/sandpit?sslmode=disable&connect_timeout=5", port), "open postgres store postgresql://sandpit:xxxxx@127.0.0.1"},
		{"mysql://sandpit:s3cret-pw@db/sandpit", "want sqlite (the default, <data-dir>/sandpit.db) or a PostgreSQL URL"},
		{"host=db password=s3cret-pw", "want sqlite"},
	} {
		var logs bytes.Buffer
		st, err := openStore(t.Context(), tc.spec, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
		if err == nil {
			st.Close()
			t.Errorf("openStore(%q) succeeded", tc.spec)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("openStore: error %q does not say %q", err, tc.wantErr)
		}
		for what, s := range map[string]string{"error": err.Error(), "log": logs.String()} {
			if strings.Contains(s, "s3cret-pw") {
				t.Errorf("openStore's %s shows the password: %s", what, s)
			}
		}
		if strings.HasPrefix(tc.spec, "postgres") && !strings.Contains(logs.String(), "sandpit:xxxxx@127.0.0.1") {
			t.Errorf("openStore did not log which database it uses (redacted): %q", logs.String())
		}
	}
}
