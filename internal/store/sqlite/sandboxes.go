package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

const sandboxColumns = `id, name, spec, status, generation, created_at, updated_at, last_activity_at`

// CreateSandbox implements store.Store. It also assigns an ID when sb.ID is
// empty.
func (s *Store) CreateSandbox(ctx context.Context, sb *sandbox.Sandbox) error {
	if sb.Name == "" {
		return errors.New("create sandbox: name is empty")
	}
	// Work on a copy so that a failed insert leaves the caller's struct as
	// it was.
	c := *sb
	if c.ID == "" {
		c.ID = sandbox.NewID()
	}
	c.Generation = 1
	c.UpdatedAt = now()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = c.UpdatedAt
	} else {
		c.CreatedAt = normTime(c.CreatedAt)
	}
	if c.Status.Phase == "" {
		c.Status.Phase = sandbox.PhasePending
	}
	spec, status, err := marshalSandbox(&c)
	if err != nil {
		return fmt.Errorf("create sandbox %q: %w", c.Name, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sandboxes
			(id, name, spec, status, phase, template, generation, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Name, spec, status, string(c.Status.Phase), c.Spec.Template, c.Generation,
			formatTime(c.CreatedAt), formatTime(c.UpdatedAt))
		if err != nil {
			return err
		}
		// Usage counts from when the store has it (UpdatedAt), not from a
		// CreatedAt the caller gave: every usage time is the store's.
		state, idle := sandbox.UsageOf(c.Status, "", false)
		return startUsage(ctx, tx, sandbox.UsageInterval{SandboxID: c.ID, Name: c.Name, Template: c.Spec.Template,
			Owner: sandbox.UsageOwner(c.Spec.CreatedBy), State: state, Idle: idle, Start: c.UpdatedAt})
	})
	if isUniqueViolation(err) {
		// The message names the column; the name is the likely one and
		// the one a user can act on.
		if strings.Contains(err.Error(), "sandboxes.name") {
			return fmt.Errorf("create sandbox %q: the name is taken; choose another or delete that sandbox first: %w", c.Name, store.ErrConflict)
		}
		return fmt.Errorf("create sandbox %q: id %q exists: %w", c.Name, c.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create sandbox %q: %w", c.Name, err)
	}
	*sb = c
	return nil
}

// GetSandbox implements store.Store.
func (s *Store) GetSandbox(ctx context.Context, id string) (*sandbox.Sandbox, error) {
	sb, err := scanSandbox(s.reader.QueryRowContext(ctx,
		`SELECT `+sandboxColumns+` FROM sandboxes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get sandbox %q: %w", id, err)
	}
	return sb, nil
}

// GetSandboxByName implements store.Store.
func (s *Store) GetSandboxByName(ctx context.Context, name string) (*sandbox.Sandbox, error) {
	sb, err := scanSandbox(s.reader.QueryRowContext(ctx,
		`SELECT `+sandboxColumns+` FROM sandboxes WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get sandbox named %q: %w", name, err)
	}
	return sb, nil
}

// ListSandboxes implements store.Store. Ties in created_at are broken by id
// so that the order is stable.
func (s *Store) ListSandboxes(ctx context.Context, opts store.ListOptions) ([]*sandbox.Sandbox, error) {
	var where []string
	var args []any
	if opts.Template != "" {
		where = append(where, "template = ?")
		args = append(args, opts.Template)
	}
	if opts.Phase != "" {
		where = append(where, "phase = ?")
		args = append(args, string(opts.Phase))
	}
	q := `SELECT ` + sandboxColumns + ` FROM sandboxes`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at, id`

	rows, err := s.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	defer rows.Close()
	out := []*sandbox.Sandbox{}
	for rows.Next() {
		sb, err := scanSandbox(rows)
		if err != nil {
			return nil, fmt.Errorf("list sandboxes: %w", err)
		}
		out = append(out, sb)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	return out, nil
}

// UpdateSpec implements store.Store. fn runs while this store's write lock
// is held: it must not call the store's writing methods, or it deadlocks.
func (s *Store) UpdateSpec(ctx context.Context, id string, fn func(*sandbox.Spec) error) (*sandbox.Sandbox, error) {
	return s.updateSpec(ctx, id, "", fn)
}

// RenameSandbox implements store.Store.
func (s *Store) RenameSandbox(ctx context.Context, id, name string, fn func(*sandbox.Spec) error) (*sandbox.Sandbox, error) {
	if name == "" {
		return nil, errors.New("rename sandbox: the new name is empty")
	}
	sb, err := s.updateSpec(ctx, id, name, fn)
	if isUniqueViolation(err) {
		return nil, fmt.Errorf("rename sandbox %q to %q: the name is taken; choose another or delete that sandbox first: %w", id, name, store.ErrConflict)
	}
	return sb, err
}

// TouchSandboxes implements store.Store.
func (s *Store) TouchSandboxes(ctx context.Context, activity map[string]time.Time) error {
	if len(activity) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		for id, t := range activity {
			at := formatTime(t)
			if _, err := tx.ExecContext(ctx, `UPDATE sandboxes SET last_activity_at = ?
				WHERE id = ? AND (last_activity_at IS NULL OR last_activity_at < ?)`, at, id, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record activity of %d sandboxes: %w", len(activity), err)
	}
	return nil
}

func (s *Store) updateSpec(ctx context.Context, id, rename string, fn func(*sandbox.Spec) error) (*sandbox.Sandbox, error) {
	var out *sandbox.Sandbox
	var fnErr error
	err := s.write(ctx, func(tx *sql.Tx) error {
		sb, err := scanSandbox(tx.QueryRowContext(ctx,
			`SELECT `+sandboxColumns+` FROM sandboxes WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if fnErr = fn(&sb.Spec); fnErr != nil {
			return fnErr
		}
		sb.Generation++
		sb.UpdatedAt = now()
		spec, err := json.Marshal(sb.Spec)
		if err != nil {
			return fmt.Errorf("encode spec: %w", err)
		}
		if rename != "" {
			sb.Name = rename
		}
		if _, err := tx.ExecContext(ctx,
			`UPDATE sandboxes SET name = ?, spec = ?, template = ?, generation = ?, updated_at = ? WHERE id = ?`,
			sb.Name, string(spec), sb.Spec.Template, sb.Generation, formatTime(sb.UpdatedAt), id); err != nil {
			return err
		}
		if err := recordSpecUsage(ctx, tx, sb, sb.UpdatedAt); err != nil {
			return err
		}
		out = sb
		return nil
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("update spec of sandbox %q: %w", id, err)
	}
	return out, nil
}

// UpdateStatus implements store.Store. It moves UpdatedAt too: UpdatedAt is
// when anything about the sandbox last changed.
func (s *Store) UpdateStatus(ctx context.Context, id string, st sandbox.Status) error {
	status, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("update status of sandbox %q: encode status: %w", id, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		at := now()
		res, err := tx.ExecContext(ctx, `UPDATE sandboxes SET status = ?, phase = ?, updated_at = ? WHERE id = ?`,
			string(status), string(st.Phase), formatTime(at), id)
		if err != nil {
			return err
		}
		if err := mustAffect(res); err != nil {
			return err
		}
		return recordStatusUsage(ctx, tx, id, st, at)
	})
	if err != nil {
		return fmt.Errorf("update status of sandbox %q: %w", id, err)
	}
	return nil
}

// DeleteSandbox implements store.Store. Its events go by ON DELETE CASCADE;
// its handle stays (see the handles table), and so do its usage intervals.
func (s *Store) DeleteSandbox(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sandboxes WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if err := mustAffect(res); err != nil {
			return err
		}
		return recordDeleteUsage(ctx, tx, id, now())
	})
	if err != nil {
		return fmt.Errorf("delete sandbox %q: %w", id, err)
	}
	return nil
}

func mustAffect(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

func marshalSandbox(sb *sandbox.Sandbox) (spec, status string, err error) {
	b, err := json.Marshal(sb.Spec)
	if err != nil {
		return "", "", fmt.Errorf("encode spec: %w", err)
	}
	c, err := json.Marshal(sb.Status)
	if err != nil {
		return "", "", fmt.Errorf("encode status: %w", err)
	}
	return string(b), string(c), nil
}

func scanSandbox(sc scanner) (*sandbox.Sandbox, error) {
	var sb sandbox.Sandbox
	var spec, status, created, updated string
	var activity sql.NullString
	if err := sc.Scan(&sb.ID, &sb.Name, &spec, &status, &sb.Generation, &created, &updated, &activity); err != nil {
		return nil, err
	}
	if activity.Valid {
		t, err := parseTime(activity.String)
		if err != nil {
			return nil, fmt.Errorf("sandbox %q: %w", sb.ID, err)
		}
		sb.LastActivityAt = &t
	}
	if err := json.Unmarshal([]byte(spec), &sb.Spec); err != nil {
		return nil, fmt.Errorf("sandbox %q: decode spec: %w", sb.ID, err)
	}
	if err := json.Unmarshal([]byte(status), &sb.Status); err != nil {
		return nil, fmt.Errorf("sandbox %q: decode status: %w", sb.ID, err)
	}
	var err error
	if sb.CreatedAt, err = parseTime(created); err != nil {
		return nil, fmt.Errorf("sandbox %q: %w", sb.ID, err)
	}
	if sb.UpdatedAt, err = parseTime(updated); err != nil {
		return nil, fmt.Errorf("sandbox %q: %w", sb.ID, err)
	}
	return &sb, nil
}
