package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO sandboxes
			(id, name, spec, status, phase, template, generation, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			c.ID, c.Name, spec, status, string(c.Status.Phase), c.Spec.Template, c.Generation, c.CreatedAt, c.UpdatedAt); err != nil {
			return err
		}
		// Usage counts from when the store has it (UpdatedAt), not from a
		// CreatedAt the caller gave: every usage time is the store's.
		state, idle := sandbox.UsageOf(c.Status, "", false)
		return startUsage(ctx, tx, sandbox.UsageInterval{SandboxID: c.ID, Name: c.Name, Template: c.Spec.Template,
			Owner: sandbox.UsageOwner(c.Spec.CreatedBy), State: state, Idle: idle, Start: c.UpdatedAt})
	})
	if constraint, ok := uniqueViolation(err); ok {
		if constraint == "sandboxes_name_key" {
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
	sb, err := scanSandbox(s.pool.QueryRow(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get sandbox %q: %w", id, err)
	}
	return sb, nil
}

// GetSandboxByName implements store.Store.
func (s *Store) GetSandboxByName(ctx context.Context, name string) (*sandbox.Sandbox, error) {
	sb, err := scanSandbox(s.pool.QueryRow(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
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
		args = append(args, opts.Template)
		where = append(where, "template = $"+strconv.Itoa(len(args)))
	}
	if opts.Phase != "" {
		args = append(args, string(opts.Phase))
		where = append(where, "phase = $"+strconv.Itoa(len(args)))
	}
	q := `SELECT ` + sandboxColumns + ` FROM sandboxes`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at, id`

	out, err := queryAll(ctx, s, scanSandbox, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	return out, nil
}

// UpdateSpec implements store.Store. The row is read with SELECT ... FOR
// UPDATE in the transaction that writes it, so a concurrent UpdateSpec or
// RenameSandbox of the same sandbox, from this process or another, waits
// until this one commits and then runs fn on what it stored: no update is
// lost. fn runs while the row is locked; it must not call the store.
func (s *Store) UpdateSpec(ctx context.Context, id string, fn func(*sandbox.Spec) error) (*sandbox.Sandbox, error) {
	return s.updateSpec(ctx, id, "", fn)
}

// RenameSandbox implements store.Store.
func (s *Store) RenameSandbox(ctx context.Context, id, name string, fn func(*sandbox.Spec) error) (*sandbox.Sandbox, error) {
	if name == "" {
		return nil, errors.New("rename sandbox: the new name is empty")
	}
	sb, err := s.updateSpec(ctx, id, name, fn)
	if _, ok := uniqueViolation(err); ok {
		return nil, fmt.Errorf("rename sandbox %q to %q: the name is taken; choose another or delete that sandbox first: %w", id, name, store.ErrConflict)
	}
	return sb, err
}

func (s *Store) updateSpec(ctx context.Context, id, rename string, fn func(*sandbox.Spec) error) (*sandbox.Sandbox, error) {
	var out *sandbox.Sandbox
	var fnErr error
	err := s.tx(ctx, func(tx pgx.Tx) error {
		sb, err := scanSandbox(tx.QueryRow(ctx,
			`SELECT `+sandboxColumns+` FROM sandboxes WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
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
		if _, err := tx.Exec(ctx,
			`UPDATE sandboxes SET name = $1, spec = $2, template = $3, generation = $4, updated_at = $5 WHERE id = $6`,
			sb.Name, string(spec), sb.Spec.Template, sb.Generation, sb.UpdatedAt, id); err != nil {
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

// TouchSandboxes implements store.Store. The updates go in one batch (one
// round trip, one implicit transaction) in id order, so that two servers
// flushing overlapping sets lock rows in the same order and cannot
// deadlock.
func (s *Store) TouchSandboxes(ctx context.Context, activity map[string]time.Time) error {
	if len(activity) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, id := range slices.Sorted(maps.Keys(activity)) {
		b.Queue(`UPDATE sandboxes SET last_activity_at = $1
			WHERE id = $2 AND (last_activity_at IS NULL OR last_activity_at < $1)`, normTime(activity[id]), id)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("record activity of %d sandboxes: %w", len(activity), err)
	}
	return nil
}

// UpdateStatus implements store.Store. It moves UpdatedAt too: UpdatedAt is
// when anything about the sandbox last changed.
func (s *Store) UpdateStatus(ctx context.Context, id string, st sandbox.Status) error {
	status, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("update status of sandbox %q: encode status: %w", id, err)
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		// The update locks the row: the usage interval is read and
		// changed by one writer of this sandbox at a time.
		at := now()
		if err := mustAffect(tx.Exec(ctx, `UPDATE sandboxes SET status = $1, phase = $2, updated_at = $3 WHERE id = $4`,
			string(status), string(st.Phase), at, id)); err != nil {
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
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := mustAffect(tx.Exec(ctx, `DELETE FROM sandboxes WHERE id = $1`, id)); err != nil {
			return err
		}
		return recordDeleteUsage(ctx, tx, id, now())
	})
	if err != nil {
		return fmt.Errorf("delete sandbox %q: %w", id, err)
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
	var spec, status []byte
	var activity *time.Time
	if err := sc.Scan(&sb.ID, &sb.Name, &spec, &status, &sb.Generation, &sb.CreatedAt, &sb.UpdatedAt, &activity); err != nil {
		return nil, err
	}
	sb.CreatedAt, sb.UpdatedAt = sb.CreatedAt.UTC(), sb.UpdatedAt.UTC()
	sb.LastActivityAt = utcPtr(activity)
	if err := json.Unmarshal(spec, &sb.Spec); err != nil {
		return nil, fmt.Errorf("sandbox %q: decode spec: %w", sb.ID, err)
	}
	if err := json.Unmarshal(status, &sb.Status); err != nil {
		return nil, fmt.Errorf("sandbox %q: decode status: %w", sb.ID, err)
	}
	return &sb, nil
}
