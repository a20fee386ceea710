// Package store keeps guestbook entries in PostgreSQL through pgx. It owns
// the schema (Migrate) and every SQL statement of the example; it knows
// nothing about HTTP.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"sandpit.dev/sandpit/examples/guestbook/internal/guestbook"
)

// Store is a pool of connections to the guestbook database.
type Store struct {
	pool *pgxpool.Pool
}

// Open parses a postgres:// URL and returns a Store. It does not connect:
// connections are made when first needed, so a server can start (and
// report itself not ready) while the database is still coming up.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can quote the URL, password included.
		return nil, errors.New("DATABASE_URL is not a valid PostgreSQL URL (expected postgres://user:password@host:port/database)")
	}
	cfg.MaxConns = 8
	cfg.ConnConfig.RuntimeParams["application_name"] = "guestbook"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes every connection.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.pool.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// WaitReady pings until the database answers, for at most timeout. It
// retries only errors that waiting can cure (connection refused, the server
// starting up); anything else, like a wrong password, returns at once.
func (s *Store) WaitReady(ctx context.Context, log *slog.Logger, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Millisecond
	for {
		err := s.Ping(ctx)
		if err == nil {
			return nil
		}
		if !transient(err) || time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("database not reachable: %w", err)
		}
		log.Info("waiting for the database", "err", err.Error(), "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 57P03 cannot_connect_now: "the database system is starting up".
		return pgErr.Code == "57P03"
	}
	var netErr net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

// migrations are applied in order, each once, and recorded in
// schema_migrations. Append new ones; never edit one that has shipped.
var migrations = []string{
	`CREATE TABLE entries (
		id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		author     text NOT NULL CHECK (char_length(author) BETWEEN 1 AND 60),
		message    text NOT NULL CHECK (char_length(message) BETWEEN 1 AND 500),
		created_at timestamptz NOT NULL DEFAULT now()
	)`,
	`CREATE INDEX entries_newest_first ON entries (created_at DESC, id DESC)`,
}

// migrateLock is the pg_advisory_xact_lock key that serialises concurrent
// migrations of one database ("guestbk" in ASCII).
const migrateLock int64 = 0x6775657374626b

// MigrateResult says what Migrate did.
type MigrateResult struct {
	Applied int  // migrations applied by this call
	Version int  // schema version afterwards
	Seeded  bool // whether the seed entries were written
}

// Migrate brings the schema up to date and, when the entries table is
// empty, writes a couple of seed entries, one of them naming the sandbox.
// It runs in one transaction under an advisory lock, so running it again,
// or twice at once, is safe: a Sandpit init step may be repeated.
func (s *Store) Migrate(ctx context.Context, sandbox string) (MigrateResult, error) {
	var res MigrateResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if current > len(migrations) {
			return fmt.Errorf("database schema is at version %d but this build knows only %d: run a newer build", current, len(migrations))
		}
		for v := current + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("apply migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v); err != nil {
				return fmt.Errorf("record migration %d: %w", v, err)
			}
			res.Applied++
		}
		res.Version = len(migrations)

		var empty bool
		if err := tx.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM entries)").Scan(&empty); err != nil {
			return fmt.Errorf("count entries: %w", err)
		}
		if !empty {
			return nil
		}
		// Oldest first: the welcome is the newest, so it heads the list.
		for _, e := range SeedEntries(sandbox) {
			if _, err := tx.Exec(ctx, "INSERT INTO entries (author, message) VALUES ($1, $2)", e.Author, e.Message); err != nil {
				return fmt.Errorf("seed entries: %w", err)
			}
		}
		res.Seeded = true
		return nil
	})
	if err != nil {
		return MigrateResult{}, err
	}
	return res, nil
}

// SeedEntries are written by Migrate into an empty table, oldest first.
func SeedEntries(sandbox string) []guestbook.NewEntry {
	if sandbox == "" {
		sandbox = "local"
	}
	return []guestbook.NewEntry{
		{Author: "guestbook migrate", Message: "This entry was written by `./bin/api migrate`, the template's init step, because the entries table was empty."},
		{Author: "Sandpit", Message: "Welcome to sandbox " + sandbox + "!"},
	}
}

// List returns at most limit entries, newest first.
func (s *Store) List(ctx context.Context, limit int) ([]guestbook.Entry, error) {
	rows, err := s.pool.Query(ctx,
		"SELECT id, author, message, created_at FROM entries ORDER BY created_at DESC, id DESC LIMIT $1", limit)
	if err != nil {
		return nil, fmt.Errorf("list entries: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (guestbook.Entry, error) {
		var e guestbook.Entry
		err := row.Scan(&e.ID, &e.Author, &e.Message, &e.CreatedAt)
		e.CreatedAt = e.CreatedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list entries: %w", err)
	}
	return entries, nil
}

// Create stores a new entry, which the caller has normalised, and returns
// it as stored.
func (s *Store) Create(ctx context.Context, n guestbook.NewEntry) (guestbook.Entry, error) {
	e := guestbook.Entry{Author: n.Author, Message: n.Message}
	err := s.pool.QueryRow(ctx,
		"INSERT INTO entries (author, message) VALUES ($1, $2) RETURNING id, created_at",
		n.Author, n.Message).Scan(&e.ID, &e.CreatedAt)
	if err != nil {
		return guestbook.Entry{}, fmt.Errorf("create entry: %w", err)
	}
	e.CreatedAt = e.CreatedAt.UTC()
	return e, nil
}

// Info asks PostgreSQL which database this is, which server runs it and how
// many entries it holds. Sandbox is left for the caller to fill in.
func (s *Store) Info(ctx context.Context) (guestbook.Info, error) {
	var i guestbook.Info
	err := s.pool.QueryRow(ctx,
		"SELECT current_database(), version(), (SELECT count(*) FROM entries)").
		Scan(&i.Database, &i.ServerVersion, &i.Entries)
	if err != nil {
		return guestbook.Info{}, fmt.Errorf("read database info: %w", err)
	}
	return i, nil
}
