package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"sandpit.dev/sandpit/internal/store"
)

const templateColumns = `name, version, source, filename, base_dir, digest, created_at, created_by`

// ApplyTemplate implements store.Store. The read of the latest version and
// the insert of the next one share one IMMEDIATE transaction on the single
// writer, so concurrent applies of one name are serialised and never race
// for a version number.
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		latest, err := scanTemplate(tx.QueryRowContext(ctx,
			`SELECT `+templateColumns+` FROM templates WHERE name = ? ORDER BY version DESC LIMIT 1`, tv.Name))
		switch {
		case err == nil && latest.Digest == tv.Digest:
			out = latest
			return nil
		case err == nil:
			out.Version = latest.Version + 1
		case errors.Is(err, sql.ErrNoRows):
			out.Version = 1
		default:
			return err
		}
		out.Name = tv.Name
		out.Source = append([]byte{}, tv.Source...)
		out.Filename = tv.Filename
		out.BaseDir = tv.BaseDir
		out.Digest = tv.Digest
		out.CreatedAt = now()
		out.CreatedBy = tv.CreatedBy
		_, err = tx.ExecContext(ctx, `INSERT INTO templates (`+templateColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			out.Name, out.Version, out.Source, out.Filename, out.BaseDir, out.Digest, formatTime(out.CreatedAt), out.CreatedBy)
		if isUniqueViolation(err) {
			// Only another process writing the same file can get here.
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
	var row *sql.Row
	if version == 0 {
		row = s.reader.QueryRowContext(ctx,
			`SELECT `+templateColumns+` FROM templates WHERE name = ? ORDER BY version DESC LIMIT 1`, name)
	} else {
		row = s.reader.QueryRowContext(ctx,
			`SELECT `+templateColumns+` FROM templates WHERE name = ? AND version = ?`, name, version)
	}
	tv, err := scanTemplate(row)
	switch {
	case errors.Is(err, sql.ErrNoRows) && version == 0:
		return store.TemplateVersion{}, fmt.Errorf("get template %q: %w", name, store.ErrNotFound)
	case errors.Is(err, sql.ErrNoRows):
		return store.TemplateVersion{}, fmt.Errorf("get template %q version %d: %w", name, version, store.ErrNotFound)
	case err != nil:
		return store.TemplateVersion{}, fmt.Errorf("get template %q version %d: %w", name, version, err)
	}
	return tv, nil
}

// ListTemplates implements store.Store.
func (s *Store) ListTemplates(ctx context.Context) ([]store.TemplateVersion, error) {
	// The primary key (name, version) makes both the MAX and the join
	// index lookups.
	tvs, err := s.queryTemplates(ctx, `SELECT `+templateColumns+` FROM templates t
		WHERE version = (SELECT MAX(version) FROM templates WHERE name = t.name)
		ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	return tvs, nil
}

// ListTemplateVersions implements store.Store.
func (s *Store) ListTemplateVersions(ctx context.Context, name string) ([]store.TemplateVersion, error) {
	tvs, err := s.queryTemplates(ctx,
		`SELECT `+templateColumns+` FROM templates WHERE name = ? ORDER BY version`, name)
	if err != nil {
		return nil, fmt.Errorf("list versions of template %q: %w", name, err)
	}
	if len(tvs) == 0 {
		return nil, fmt.Errorf("list versions of template %q: %w", name, store.ErrNotFound)
	}
	return tvs, nil
}

func (s *Store) queryTemplates(ctx context.Context, query string, args ...any) ([]store.TemplateVersion, error) {
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	tvs := []store.TemplateVersion{}
	for rows.Next() {
		tv, err := scanTemplate(rows)
		if err != nil {
			return nil, err
		}
		tvs = append(tvs, tv)
	}
	return tvs, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

func scanTemplate(sc scanner) (store.TemplateVersion, error) {
	var tv store.TemplateVersion
	var created string
	if err := sc.Scan(&tv.Name, &tv.Version, &tv.Source, &tv.Filename, &tv.BaseDir, &tv.Digest, &created, &tv.CreatedBy); err != nil {
		return store.TemplateVersion{}, err
	}
	var err error
	if tv.CreatedAt, err = parseTime(created); err != nil {
		return store.TemplateVersion{}, fmt.Errorf("template %q version %d: %w", tv.Name, tv.Version, err)
	}
	if tv.Source == nil {
		tv.Source = []byte{}
	}
	return tv, nil
}
