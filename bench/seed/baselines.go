package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// restoreRun is one initdb + start + pg_restore -j 2 + check query.
type restoreRun struct {
	total, initdb, start, restore, query time.Duration
	dbBytes                              int64 // pg_database_size of the restored database
}

// pgRestore restores the dump into a new cluster the way a sandbox
// without snapshots would get its data: initdb, start postgres (with the
// sandbox runtime's settings), pg_restore -j 2 -C, then the check query.
// The clock runs from initdb's start to the check query's answer. The
// cluster is left running for the caller.
func pgRestore(ctx context.Context, dir string, ds *dataset) (restoreRun, *cluster, error) {
	var r restoreRun
	t0 := time.Now()
	c, err := initCluster(dir)
	if err != nil {
		return r, nil, err
	}
	t1 := time.Now()
	if err := c.start(sandboxSettings); err != nil {
		return r, c, err
	}
	conn, err := c.waitConnect(ctx, "postgres", 2*time.Minute)
	if err != nil {
		return r, c, err
	}
	conn.Close(context.Background())
	t2 := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(pgBin, "pg_restore"), "-j", "2", "-C", "-d", "postgres", ds.dump)
	cmd.Env = c.libpqEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return r, c, fmt.Errorf("pg_restore: %v: %s", err, out)
	}
	t3 := time.Now()
	if err := checkUntil(ctx, c.dsn(dbName), ds, time.Minute, false); err != nil {
		return r, c, err
	}
	t4 := time.Now()
	r = restoreRun{total: t4.Sub(t0), initdb: t1.Sub(t0), start: t2.Sub(t1), restore: t3.Sub(t2), query: t4.Sub(t3)}

	admin, err := pgx.Connect(ctx, c.dsn("postgres"))
	if err != nil {
		return r, c, err
	}
	defer admin.Close(context.Background())
	err = admin.QueryRow(ctx, "SELECT pg_database_size($1)", dbName).Scan(&r.dbBytes)
	return r, c, err
}

// quiesce prepares a restored cluster for the TEMPLATE runs: CREATE
// DATABASE refuses a template that anyone is connected to and waits up to
// 5 s for autovacuum workers (which a fresh restore attracts) to leave,
// so autovacuum is turned off; the restore's dirty buffers are flushed so
// that the first run does not pay for them.
func quiesce(ctx context.Context, admin *pgx.Conn) error {
	for _, q := range []string{
		"ALTER SYSTEM SET autovacuum = off",
		"SELECT pg_reload_conf()",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'",
		"CHECKPOINT",
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// templateCopy times CREATE DATABASE ... TEMPLATE shop STRATEGY strategy,
// a connection to the copy and the check query; then it drops the copy
// and checkpoints (not timed).
func templateCopy(ctx context.Context, c *cluster, admin *pgx.Conn, strategy string, i int, ds *dataset) (time.Duration, error) {
	name := "copy_" + strategy + "_" + strconv.Itoa(i)
	t0 := time.Now()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+dbName+" STRATEGY "+strategy); err != nil {
		return 0, fmt.Errorf("CREATE DATABASE ... STRATEGY %s: %w", strategy, err)
	}
	if err := checkUntil(ctx, c.dsn(name), ds, time.Minute, false); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	for _, q := range []string{"DROP DATABASE " + name, "CHECKPOINT"} {
		if _, err := admin.Exec(ctx, q); err != nil {
			return d, err
		}
	}
	return d, nil
}
