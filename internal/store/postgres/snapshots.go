package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	c.Message = cleanText(c.Message)
	c.ReadyAt = normTimePtr(c.ReadyAt)
	c.Handle = storedHandle(c.Handle)
	src := c.Source
	_, err := s.pool.Exec(ctx, `INSERT INTO snapshots (`+snapshotColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		c.ID, c.Name, c.Type, c.Version, string(c.Phase), c.Message, c.SizeBytes, c.Method,
		src.Kind, src.Sandbox, src.SandboxID, src.Dependency, src.File, src.Format, src.Database,
		c.CreatedBy, c.CreatedAt, c.ReadyAt, c.Handle)
	if constraint, ok := uniqueViolation(err); ok {
		if constraint == "snapshots_name_key" {
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
	snap, err := scanSnapshot(s.pool.QueryRow(ctx, `SELECT `+snapshotColumns+` FROM snapshots WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get snapshot %q: %w", id, err)
	}
	return snap, nil
}

// GetSnapshotByName implements store.Store.
func (s *Store) GetSnapshotByName(ctx context.Context, name string) (*sandbox.Snapshot, error) {
	snap, err := scanSnapshot(s.pool.QueryRow(ctx, `SELECT `+snapshotColumns+` FROM snapshots WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get snapshot named %q: %w", name, err)
	}
	return snap, nil
}

// ListSnapshots implements store.Store. The index behind name's UNIQUE
// constraint (COLLATE "C") gives the order without a sort.
func (s *Store) ListSnapshots(ctx context.Context) ([]*sandbox.Snapshot, error) {
	out, err := queryAll(ctx, s, scanSnapshot, `SELECT `+snapshotColumns+` FROM snapshots ORDER BY name`)
	if err != nil {
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
	err := mustAffect(s.pool.Exec(ctx, `UPDATE snapshots SET
		phase = $1, message = $2, size_bytes = $3, method = $4, version = $5, ready_at = $6, handle = $7,
		source_database = $8, source_format = $9
		WHERE id = $10`,
		string(snap.Phase), cleanText(snap.Message), snap.SizeBytes, snap.Method, snap.Version,
		normTimePtr(snap.ReadyAt), storedHandle(snap.Handle),
		snap.Source.Database, snap.Source.Format, snap.ID))
	if err != nil {
		return fmt.Errorf("update snapshot %q: %w", snap.ID, err)
	}
	return nil
}

// DeleteSnapshot implements store.Store.
func (s *Store) DeleteSnapshot(ctx context.Context, id string) error {
	if err := mustAffect(s.pool.Exec(ctx, `DELETE FROM snapshots WHERE id = $1`, id)); err != nil {
		return fmt.Errorf("delete snapshot %q: %w", id, err)
	}
	return nil
}

func scanSnapshot(sc scanner) (*sandbox.Snapshot, error) {
	var snap sandbox.Snapshot
	var phase string
	var ready *time.Time
	src := &snap.Source
	if err := sc.Scan(&snap.ID, &snap.Name, &snap.Type, &snap.Version, &phase, &snap.Message, &snap.SizeBytes, &snap.Method,
		&src.Kind, &src.Sandbox, &src.SandboxID, &src.Dependency, &src.File, &src.Format, &src.Database,
		&snap.CreatedBy, &snap.CreatedAt, &ready, &snap.Handle); err != nil {
		return nil, err
	}
	snap.Phase = sandbox.SnapshotPhase(phase)
	snap.CreatedAt = snap.CreatedAt.UTC()
	snap.ReadyAt = utcPtr(ready)
	snap.Handle = storedHandle(snap.Handle)
	return &snap, nil
}

// storedHandle is what the store keeps of a snapshot's handle: nil (NULL)
// for none, including an empty one.
func storedHandle(h []byte) []byte {
	if len(h) == 0 {
		return nil
	}
	return h
}
