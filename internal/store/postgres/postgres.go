package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"sandpit.dev/sandpit/internal/store"
)

// Advisory lock keys. PostgreSQL's single-bigint and two-int4 key spaces
// do not overlap; both are per database, so other applications' locks in
// other databases of the cluster never collide with these.
const (
	// lockMigrate serialises migrations across processes.
	lockMigrate int64 = 0x73616e6470697401 // "sandpit" 01
	// lockEvents makes event seq order commit order (see AppendEvent).
	lockEvents int64 = 0x73616e6470697402
	// lockClassTemplates is the first key of the two-int4 lock that
	// serialises applies of one template name (the second is the name's
	// hashtext).
	lockClassTemplates int32 = 0x73616e64 // "sand"
)

// Store is the PostgreSQL implementation of store.Store. Every method is
// safe for concurrent use, also by other processes on the same database.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	// name is the connection string with its password redacted, for
	// messages.
	name string

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database dsn names (a postgres:// URL or a libpq
// keyword/value string; pgxpool's pool_* parameters are honoured, and
// PGPASSWORD or a .pgpass file supply a password the string leaves out),
// checks that it answers, and applies pending migrations. The role needs
// the right to create tables in the schema it uses (own the database, for
// example). A nil logger discards logs.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	return open(ctx, dsn, logger, migrationFS)
}

// open is Open with the migrations read from fsys (a migrations directory),
// so that tests can make a database as an older Sandpit left it.
func open(ctx context.Context, dsn string, logger *slog.Logger, fsys fs.FS) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("open postgres store: connection string is empty")
	}
	name := Redact(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors redact the password themselves.
		return nil, fmt.Errorf("open postgres store %s: %w", name, err)
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		// So that pg_stat_activity says whose connections these are.
		cfg.ConnConfig.RuntimeParams["application_name"] = "sandpit"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", name, err)
	}
	s := &Store{pool: pool, log: logger, name: name}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", name, err)
	}
	if err := s.migrate(ctx, fsys); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", name, err)
	}
	return s, nil
}

// Close closes the pool, waiting for connections in use to be returned.
// Calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// tx runs fn in a READ COMMITTED transaction and commits it unless fn
// fails. The deferred rollback (a no-op after commit) also covers a panic in
// fn: UpdateSpec runs caller code.
func (s *Store) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	// A failed rollback closes the connection, and the server rolls back.
	defer tx.Rollback(ctx)
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// pgCode returns the SQLSTATE of a server error, or "".
func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// uniqueViolation reports whether err is a unique violation (23505), and
// of which constraint.
func uniqueViolation(err error) (constraint string, ok bool) {
	var e *pgconn.PgError
	if errors.As(err, &e) && e.Code == "23505" {
		return e.ConstraintName, true
	}
	return "", false
}

func isForeignKeyViolation(err error) bool { return pgCode(err) == "23503" }

func mustAffect(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

// queryAll runs a query and scans every row with scan (pgx.CollectRows:
// an empty result is an empty slice, never nil, and the rows are closed).
func queryAll[T any](ctx context.Context, s *Store, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
}

func now() time.Time { return normTime(time.Now()) }

// normTime is what the store keeps of t: UTC, microseconds (timestamptz's
// precision; truncated here rather than rounded by the server, as the SQLite
// adapter does), no monotonic clock reading.
func normTime(t time.Time) time.Time { return t.Round(0).UTC().Truncate(time.Microsecond) }

// normTimePtr is normTime of *t in a new value, so that the caller's time
// is never changed through the pointer.
func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := normTime(*t)
	return &n
}

// utcPtr is a scanned nullable time in UTC.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// cleanText is what a text column can hold of s: NUL bytes and invalid
// UTF-8 become U+FFFD.
func cleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// Redact returns the connection string with its password, if any, replaced
// by "xxxxx", for logs and error messages. It handles URLs of any scheme
// (the userinfo and a password= query parameter) and keyword/value strings.
func Redact(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Fragment != "" {
		// Unparsable, or parsed wrongly (connection URLs have no fragment:
		// an unescaped '#' in the password started one): drop everything
		// between the user name and the last '@'.
		scheme, rest, _ := strings.Cut(dsn, "://")
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			return scheme + "://" + rest
		}
		user, _, hasPW := strings.Cut(rest[:at], ":")
		if !hasPW {
			return dsn
		}
		return scheme + "://" + user + ":xxxxx" + rest[at:]
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "password") {
			q.Set(k, "xxxxx")
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}

// kvPassword matches password=... in a keyword/value connection string,
// quoted ('...' with \' escapes) or not.
var kvPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)
