package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

const snapshotColumns = `id, name, type, version, phase, message, size_bytes, method,
	source_kind, source_sandbox, source_sandbox_id, source_dependency, source_file, source_format, source_database,
	created_by, created_at, ready_at, handle`

// CreateSnapshot implements store.Store.
func (s *Store) CreateSnapshot(ctx context.Context, snap *sandbox.Snapshot) error {
	if snap.Name == "" {
		return errors.New("create snapshot: name is empty")
	}
	if snap.SizeBytes < 0 {
		return fmt.Errorf("create snapshot %q: size %d is negative", snap.Name, snap.SizeBytes)
	}
	// Work on a copy so that a failed insert leaves the caller's struct as
	// it was.
	c := *snap
	if c.ID == "" {
		c.ID = sandbox.NewSnapshotID()
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now()
	} else {
		c.CreatedAt = normTime(c.CreatedAt)
	}
	if c.Phase == "" {
		c.Phase = sandbox.SnapshotCreating
	}
	c.ReadyAt = normTimePtr(c.ReadyAt)
	c.Handle = storedHandle(c.Handle)
	src := c.Source
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO snapshots (`+snapshotColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Name, c.Type, c.Version, string(c.Phase), c.Message, c.SizeBytes, c.Method,
			src.Kind, src.Sandbox, src.SandboxID, src.Dependency, src.File, src.Format, src.Database,
			c.CreatedBy, formatTime(c.CreatedAt), formatTimePtr(c.ReadyAt), c.Handle)
		return err
	})
	if isUniqueViolation(err) {
		if strings.Contains(err.Error(), "snapshots.name") {
			return fmt.Errorf("create snapshot %q: the name is taken; choose another or delete that snapshot first: %w", c.Name, store.ErrConflict)
		}
		return fmt.Errorf("create snapshot %q: id %q exists: %w", c.Name, c.ID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create snapshot %q: %w", c.Name, err)
	}
	*snap = c
	return nil
}

// GetSnapshot implements store.Store.
func (s *Store) GetSnapshot(ctx context.Context, id string) (*sandbox.Snapshot, error) {
	snap, err := scanSnapshot(s.reader.QueryRowContext(ctx,
		`SELECT `+snapshotColumns+` FROM snapshots WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get snapshot %q: %w", id, err)
	}
	return snap, nil
}

// GetSnapshotByName implements store.Store.
func (s *Store) GetSnapshotByName(ctx context.Context, name string) (*sandbox.Snapshot, error) {
	snap, err := scanSnapshot(s.reader.QueryRowContext(ctx,
		`SELECT `+snapshotColumns+` FROM snapshots WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get snapshot named %q: %w", name, err)
	}
	return snap, nil
}

// ListSnapshots implements store.Store. The index behind name's UNIQUE
// constraint gives the order without a sort.
func (s *Store) ListSnapshots(ctx context.Context) ([]*sandbox.Snapshot, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+snapshotColumns+` FROM snapshots ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	defer rows.Close()
	out := []*sandbox.Snapshot{}
	for rows.Next() {
		snap, err := scanSnapshot(rows)
		if err != nil {
			return nil, fmt.Errorf("list snapshots: %w", err)
		}
		out = append(out, snap)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return out, nil
}

// UpdateSnapshot implements store.Store. Only the mutable columns are in
// the SET list, so the immutable ones cannot change whatever snap holds.
func (s *Store) UpdateSnapshot(ctx context.Context, snap *sandbox.Snapshot) error {
	switch {
	case snap.Phase == "":
		// Create defaults it; here it would more likely be a half-filled
		// struct about to wipe the stored phase.
		return fmt.Errorf("update snapshot %q: phase is empty", snap.ID)
	case snap.SizeBytes < 0:
		return fmt.Errorf("update snapshot %q: size %d is negative", snap.ID, snap.SizeBytes)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE snapshots SET
			phase = ?, message = ?, size_bytes = ?, method = ?, version = ?, ready_at = ?, handle = ?,
			source_database = ?, source_format = ?
			WHERE id = ?`,
			string(snap.Phase), snap.Message, snap.SizeBytes, snap.Method, snap.Version,
			formatTimePtr(normTimePtr(snap.ReadyAt)), storedHandle(snap.Handle),
			snap.Source.Database, snap.Source.Format, snap.ID)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	if err != nil {
		return fmt.Errorf("update snapshot %q: %w", snap.ID, err)
	}
	return nil
}

// DeleteSnapshot implements store.Store.
func (s *Store) DeleteSnapshot(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM snapshots WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	if err != nil {
		return fmt.Errorf("delete snapshot %q: %w", id, err)
	}
	return nil
}

func scanSnapshot(sc scanner) (*sandbox.Snapshot, error) {
	var snap sandbox.Snapshot
	var phase, created string
	var ready sql.NullString
	src := &snap.Source
	if err := sc.Scan(&snap.ID, &snap.Name, &snap.Type, &snap.Version, &phase, &snap.Message, &snap.SizeBytes, &snap.Method,
		&src.Kind, &src.Sandbox, &src.SandboxID, &src.Dependency, &src.File, &src.Format, &src.Database,
		&snap.CreatedBy, &created, &ready, &snap.Handle); err != nil {
		return nil, err
	}
	snap.Phase = sandbox.SnapshotPhase(phase)
	var err error
	if snap.CreatedAt, err = parseTime(created); err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", snap.ID, err)
	}
	if ready.Valid {
		t, err := parseTime(ready.String)
		if err != nil {
			return nil, fmt.Errorf("snapshot %q: ready_at: %w", snap.ID, err)
		}
		snap.ReadyAt = &t
	}
	snap.Handle = storedHandle(snap.Handle)
	return &snap, nil
}

// storedHandle is what the store keeps of a snapshot's handle: nil (NULL)
// for none, including an empty one, whose zero-length blob the driver would
// read back as nil anyway.
func storedHandle(h []byte) []byte {
	if len(h) == 0 {
		return nil
	}
	return h
}

// normTimePtr is normTime of *t in a new value, so that the caller's time
// is never changed through the pointer.
func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := normTime(*t)
	return &n
}

// formatTimePtr formats t, or binds NULL for nil.
func formatTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}
