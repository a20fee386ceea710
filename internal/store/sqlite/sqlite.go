package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"sandpit.dev/sandpit/internal/store"
)

// busyTimeout bounds how long a connection waits for a lock held by another
// process using the same file (within one process writers queue on the
// single writer connection instead). The driver's busy handler also gives up
// as soon as the caller's context is done.
const busyTimeout = 10 * time.Second

// Store is the SQLite implementation of store.Store.
//
// It keeps two connection pools on the same file. Every write goes through a
// pool of exactly one connection, so writers in this process queue in
// database/sql (cheap, and cancellable through the context) rather than in
// SQLite's busy handler, which polls with sleeps of up to 100ms. Reads use a
// separate pool of read-only connections that WAL lets proceed while a write
// transaction is open, each seeing the last committed state.
type Store struct {
	writer *sql.DB
	reader *sql.DB
	log    *slog.Logger
	path   string

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens the database at path, creating it with mode 0600 when missing,
// and applies pending migrations. The directory must exist. A nil logger
// discards logs.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	return open(ctx, path, logger, migrationFS)
}

// open is Open with the migrations read from fsys (a migrations directory),
// so that tests can make a database as an older Sandpit left it.
func open(ctx context.Context, path string, logger *slog.Logger, fsys fs.FS) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("open sqlite store: path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := ensureFile(abs, logger); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}

	s := &Store{log: logger, path: abs}
	s.writer, err = sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	// One connection that lives as long as the store: see Store. Keeping it
	// open also keeps the WAL index around instead of rebuilding it.
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)

	if err := s.init(ctx, fsys); err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}

	s.reader, err = sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		s.writer.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.reader.SetMaxOpenConns(n)
	s.reader.SetMaxIdleConns(n)
	if err := s.reader.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	return s, nil
}

// init checks the journal mode and migrates; it runs on the writer before
// any reader connection exists.
func (s *Store) init(ctx context.Context, migrations fs.FS) error {
	var mode string
	if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	// SQLite silently keeps the old mode when WAL is impossible (for
	// example on some network filesystems); without WAL readers would block
	// writers and the locking assumptions here would be wrong.
	if mode != "wal" {
		return fmt.Errorf("journal_mode is %q, not wal: put the database on a local filesystem that supports shared memory", mode)
	}
	return s.migrate(ctx, migrations)
}

// dsn builds a file: URI so that any path (with '?', '#' or '%' in it)
// survives; the driver reads its underscore keys from the URI's query and
// SQLite ignores them. The pragmas are in the DSN, not run once after Open,
// because database/sql may open a new connection at any time.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		// query_only rather than mode=ro: a read-only open cannot create
		// the -shm file and fails when the writer has not made it yet.
		q.Add("_query_only", "1")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		// BEGIN IMMEDIATE takes the write lock when the transaction starts,
		// so a writer in another process waits in the busy handler instead
		// of failing with SQLITE_BUSY when its read would upgrade to a
		// write after someone else committed.
		q.Add("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	if u.Path != "" && u.Path[0] != '/' {
		u.Path = "/" + u.Path // Windows drive letters: file:///C:/...
	}
	return u.String()
}

// ensureFile creates the database file with mode 0600 before SQLite does, so
// that the permission does not depend on the umask; SQLite gives the -wal and
// -shm files the database file's mode. An existing file is left as it is.
func ensureFile(path string, logger *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case errors.Is(err, fs.ErrExist):
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("%s is a directory", path)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			logger.Warn("store database is readable by other users; it holds template sources and runtime handles",
				"path", path, "mode", fi.Mode().Perm().String(), "fix", "chmod 600 "+path)
		}
		return nil
	default:
		return err
	}
}

// Close closes both pools. The writer goes last so that its connection, the
// last one, checkpoints the WAL into the database file.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.reader != nil {
			errs = append(errs, s.reader.Close())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Lets SQLite refresh planner statistics it found missing; cheap.
		if _, err := s.writer.ExecContext(ctx, "PRAGMA optimize"); err != nil {
			s.log.Debug("pragma optimize on close", "err", err)
		}
		errs = append(errs, s.writer.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close sqlite store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// write runs fn in an IMMEDIATE transaction on the writer connection.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	// Deferred so that a panic in fn (UpdateSpec runs caller code) does not
	// leave the only writer connection inside a transaction forever.
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// sqliteCode returns the extended result code of a driver error, or 0.
func sqliteCode(err error) int {
	var e *sqlitedriver.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUniqueViolation(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKeyViolation(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// timeLayout has a fixed width so that text order is time order. Microsecond
// precision matches PostgreSQL's timestamptz, so both adapters return the
// same values.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

func now() time.Time { return normTime(time.Now()) }

// normTime is what the store keeps of t: UTC, microseconds, no monotonic
// clock reading.
func normTime(t time.Time) time.Time { return t.Round(0).UTC().Truncate(time.Microsecond) }

func formatTime(t time.Time) string { return normTime(t).Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}
