//go:build unix

package sqlite

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Not parallel: the umask is process-wide.
func TestFilePermissions(t *testing.T) {
	// The most permissive umask, so that only Open's own choice can make
	// the files private.
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	path := filepath.Join(t.TempDir(), "sandpit.db")
	s := openTest(t, path, nil)
	// A write, so that the -wal file has content and the -shm file exists.
	if err := s.CreateSandbox(t.Context(), &sandbox.Sandbox{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s has mode %v, want -rw-------", filepath.Base(p), got)
		}
	}
}
