package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"sandpit.dev/sandpit/internal/store"
)

const templateColumns = `name, version, source, filename, base_dir, digest, created_at, created_by`

// ApplyTemplate implements store.Store. The transaction first takes an
// advisory lock keyed by the name, so that concurrent applies of one name,
// from any process, are serialised: each reads the latest version after the
// previous apply committed, and none races for a version number.
func (s *Store) ApplyTemplate(ctx context.Context, tv store.TemplateVersion) (store.TemplateVersion, bool, error) {
	switch {
	case tv.Name == "":
		return store.TemplateVersion{}, false, errors.New("apply template: name is empty")
	case tv.Digest == "":
		// An empty digest would make every later apply look unchanged.
		return store.TemplateVersion{}, false, fmt.Errorf("apply template %q: digest is empty", tv.Name)
	}
	var out store.TemplateVersion
	created := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockClassTemplates, tv.Name); err != nil {
			return err
		}
		latest, err := scanTemplate(tx.QueryRow(ctx,
			`SELECT `+templateColumns+` FROM templates WHERE name = $1 ORDER BY version DESC LIMIT 1`, tv.Name))
		switch {
		case err == nil && latest.Digest == tv.Digest:
			out = latest
			return nil
		case err == nil:
			out.Version = latest.Version + 1
		case errors.Is(err, pgx.ErrNoRows):
			out.Version = 1
		default:
			return err
		}
		out.Name = tv.Name
		out.Source = append([]byte{}, tv.Source...) // non-nil: the column is NOT NULL
		out.Filename = tv.Filename
		out.BaseDir = tv.BaseDir
		out.Digest = tv.Digest
		out.CreatedAt = now()
		out.CreatedBy = tv.CreatedBy
		_, err = tx.Exec(ctx, `INSERT INTO templates (`+templateColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			out.Name, out.Version, out.Source, out.Filename, out.BaseDir, out.Digest, out.CreatedAt, out.CreatedBy)
		if _, ok := uniqueViolation(err); ok {
			// Only a writer that does not take the lock can get here.
			return fmt.Errorf("version %d was stored concurrently: %w", out.Version, store.ErrConflict)
		}
		created = err == nil
		return err
	})
	if err != nil {
		return store.TemplateVersion{}, false, fmt.Errorf("apply template %q: %w", tv.Name, err)
	}
	return out, created, nil
}

// GetTemplate implements store.Store.
func (s *Store) GetTemplate(ctx context.Context, name string, version int) (store.TemplateVersion, error) {
	var row pgx.Row
	if version == 0 {
		row = s.pool.QueryRow(ctx,
			`SELECT `+templateColumns+` FROM templates WHERE name = $1 ORDER BY version DESC LIMIT 1`, name)
	} else {
		row = s.pool.QueryRow(ctx,
			`SELECT `+templateColumns+` FROM templates WHERE name = $1 AND version = $2`, name, version)
	}
	tv, err := scanTemplate(row)
	switch {
	case errors.Is(err, pgx.ErrNoRows) && version == 0:
		return store.TemplateVersion{}, fmt.Errorf("get template %q: %w", name, store.ErrNotFound)
	case errors.Is(err, pgx.ErrNoRows):
		return store.TemplateVersion{}, fmt.Errorf("get template %q version %d: %w", name, version, store.ErrNotFound)
	case err != nil:
		return store.TemplateVersion{}, fmt.Errorf("get template %q version %d: %w", name, version, err)
	}
	return tv, nil
}

// ListTemplates implements store.Store. DISTINCT ON walks the primary key
// (name, version) backwards per name.
func (s *Store) ListTemplates(ctx context.Context) ([]store.TemplateVersion, error) {
	tvs, err := s.queryTemplates(ctx, `SELECT DISTINCT ON (name) `+templateColumns+` FROM templates
		ORDER BY name, version DESC`)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	return tvs, nil
}

// ListTemplateVersions implements store.Store.
func (s *Store) ListTemplateVersions(ctx context.Context, name string) ([]store.TemplateVersion, error) {
	tvs, err := s.queryTemplates(ctx,
		`SELECT `+templateColumns+` FROM templates WHERE name = $1 ORDER BY version`, name)
	if err != nil {
		return nil, fmt.Errorf("list versions of template %q: %w", name, err)
	}
	if len(tvs) == 0 {
		return nil, fmt.Errorf("list versions of template %q: %w", name, store.ErrNotFound)
	}
	return tvs, nil
}

func (s *Store) queryTemplates(ctx context.Context, query string, args ...any) ([]store.TemplateVersion, error) {
	return queryAll(ctx, s, scanTemplate, query, args...)
}

func scanTemplate(sc scanner) (store.TemplateVersion, error) {
	var tv store.TemplateVersion
	if err := sc.Scan(&tv.Name, &tv.Version, &tv.Source, &tv.Filename, &tv.BaseDir, &tv.Digest, &tv.CreatedAt, &tv.CreatedBy); err != nil {
		return store.TemplateVersion{}, err
	}
	tv.CreatedAt = tv.CreatedAt.UTC()
	if tv.Source == nil {
		tv.Source = []byte{}
	}
	return tv, nil
}
