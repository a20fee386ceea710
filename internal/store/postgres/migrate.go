package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// ErrSchemaTooNew means the database was migrated by a newer Sandpit than
// this one; Open refuses it rather than misread tables it does not know.
// Open's error matches it with errors.Is.
var ErrSchemaTooNew = errors.New("database schema is newer than this sandpit")

type schemaTooNewError struct{ db, known int }

func (e *schemaTooNewError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this sandpit (knows %d): upgrade sandpit or use a backup", e.db, e.known)
}

func (e *schemaTooNewError) Is(target error) bool { return target == ErrSchemaTooNew }

type migration struct {
	version int
	name    string
	sql     string
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// loadMigrations reads the embedded migrations and checks that their
// versions run 1, 2, 3, ... without gaps, so a misnumbered file is caught by
// any test rather than by a user's database.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries { // ReadDir sorts by name
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			return nil, fmt.Errorf("migration %s: name must look like 0001_what_it_does.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if v != len(ms)+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", e.Name(), len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	if len(ms) == 0 {
		return nil, errors.New("no migrations embedded")
	}
	return ms, nil
}

const createSchemaMigrations = `CREATE TABLE schema_migrations (
	version    integer     NOT NULL PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL
)`

// migrate applies the migrations the database lacks, each in its own
// transaction that first takes the migration advisory lock and then
// re-reads the current version, so that replicas starting at once wait for
// each other and apply every migration exactly once. The lock is
// transaction-level: a process that dies mid-migration releases it with its
// connection, and its migration rolls back (PostgreSQL's DDL is
// transactional).
func (s *Store) migrate(ctx context.Context, fsys fs.FS) error {
	ms, err := loadMigrations(fsys)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	known := ms[len(ms)-1].version
	for _, m := range ms {
		applied := false
		err := s.tx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockMigrate); err != nil {
				return fmt.Errorf("lock for migrations: %w", err)
			}
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
				return fmt.Errorf("look for schema_migrations: %w", err)
			}
			if !exists {
				if _, err := tx.Exec(ctx, createSchemaMigrations); err != nil {
					return fmt.Errorf("create schema_migrations: %w", err)
				}
			}
			current, err := schemaVersion(ctx, tx)
			if err != nil {
				return err
			}
			if current > known {
				return &schemaTooNewError{db: current, known: known}
			}
			if current >= m.version {
				return nil
			}
			// No arguments: pgx sends it with the simple protocol, which
			// allows the several statements of a migration file.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx,
				`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, now()); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			applied = true
			return nil
		})
		if err != nil {
			return err
		}
		if applied {
			s.log.Info("applied store migration", "database", s.name, "version", m.version, "name", m.name)
		}
	}
	return nil
}

func schemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var v *int
	if err := q.QueryRow(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}
