package postgres

import (
	"net"
	"os"
	"testing"

	"sandpit.dev/sandpit/internal/pgtest"
)

// The tests run against a real PostgreSQL 15 cluster (internal/pgtest),
// started once for the package on first use and stopped when the tests
// end. Every test gets a database of its own, so they are independent and
// may run in parallel.

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m.Run)) }

// needCluster returns the cluster, or skips or fails t when there is none.
func needCluster(t testing.TB) *pgtest.Cluster {
	t.Helper()
	return pgtest.Get(t)
}

// newDatabase creates an empty database for t and returns its URL.
func newDatabase(t testing.TB) string {
	t.Helper()
	return needCluster(t).NewDatabase(t)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
