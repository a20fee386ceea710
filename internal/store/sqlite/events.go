package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

// AppendEvent implements store.Store. Seq always comes from the table's
// AUTOINCREMENT (a caller's Seq is ignored), so that readers resuming after
// a seq never miss an event stored later with a smaller one.
func (s *Store) AppendEvent(ctx context.Context, ev sandbox.Event) (sandbox.Event, error) {
	if ev.Time.IsZero() {
		ev.Time = now()
	} else {
		ev.Time = normTime(ev.Time)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO events
			(sandbox_id, time, type, reason, stage, message, duration_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
			ev.SandboxID, formatTime(ev.Time), string(ev.Type), ev.Reason, ev.Stage, ev.Message, ev.DurationMS,
		).Scan(&ev.Seq)
	})
	if isForeignKeyViolation(err) {
		err = fmt.Errorf("sandbox %q: %w", ev.SandboxID, store.ErrNotFound)
	}
	if err != nil {
		return sandbox.Event{}, fmt.Errorf("append %s event to sandbox %q: %w", ev.Reason, ev.SandboxID, err)
	}
	return ev, nil
}

// ListEvents implements store.Store. An unknown sandbox is ErrNotFound, so
// that a client tailing the log of a deleted sandbox learns it is gone.
func (s *Store) ListEvents(ctx context.Context, sandboxID string, afterSeq int64, limit int) ([]sandbox.Event, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	evs, err := s.queryEvents(ctx, sandboxID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("list events of sandbox %q: %w", sandboxID, err)
	}
	if len(evs) == 0 {
		// Only an empty page needs the extra lookup.
		var exists bool
		if err := s.reader.QueryRowContext(ctx,
			`SELECT EXISTS (SELECT 1 FROM sandboxes WHERE id = ?)`, sandboxID).Scan(&exists); err != nil {
			return nil, fmt.Errorf("list events of sandbox %q: %w", sandboxID, err)
		}
		if !exists {
			return nil, fmt.Errorf("list events of sandbox %q: %w", sandboxID, store.ErrNotFound)
		}
	}
	return evs, nil
}

func (s *Store) queryEvents(ctx context.Context, sandboxID string, afterSeq int64, limit int) ([]sandbox.Event, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT seq, sandbox_id, time, type, reason, stage, message, duration_ms
		FROM events WHERE sandbox_id = ? AND seq > ? ORDER BY seq LIMIT ?`, sandboxID, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	evs := []sandbox.Event{}
	for rows.Next() {
		var ev sandbox.Event
		var t, typ string
		if err := rows.Scan(&ev.Seq, &ev.SandboxID, &t, &typ, &ev.Reason, &ev.Stage, &ev.Message, &ev.DurationMS); err != nil {
			return nil, err
		}
		ev.Type = sandbox.EventType(typ)
		if ev.Time, err = parseTime(t); err != nil {
			return nil, fmt.Errorf("event %d: %w", ev.Seq, err)
		}
		evs = append(evs, ev)
	}
	return evs, rows.Err()
}

// SaveHandle implements store.Store.
func (s *Store) SaveHandle(ctx context.Context, sandboxID, runtime string, data []byte) error {
	switch {
	case sandboxID == "":
		return errors.New("save handle: sandbox id is empty")
	case runtime == "":
		return fmt.Errorf("save handle of sandbox %q: runtime is empty", sandboxID)
	}
	if data == nil {
		data = []byte{} // the column is NOT NULL; nil binds as NULL
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO handles (sandbox_id, runtime, data, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (sandbox_id) DO UPDATE SET runtime = excluded.runtime, data = excluded.data, updated_at = excluded.updated_at`,
			sandboxID, runtime, data, formatTime(now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("save %s handle of sandbox %q: %w", runtime, sandboxID, err)
	}
	return nil
}

// LoadHandle implements store.Store.
func (s *Store) LoadHandle(ctx context.Context, sandboxID string) (string, []byte, error) {
	var runtime string
	var data []byte
	err := s.reader.QueryRowContext(ctx, `SELECT runtime, data FROM handles WHERE sandbox_id = ?`, sandboxID).Scan(&runtime, &data)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return "", nil, fmt.Errorf("load handle of sandbox %q: %w", sandboxID, err)
	}
	if data == nil {
		data = []byte{}
	}
	return runtime, data, nil
}

// DeleteHandle implements store.Store.
func (s *Store) DeleteHandle(ctx context.Context, sandboxID string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM handles WHERE sandbox_id = ?`, sandboxID)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	if err != nil {
		return fmt.Errorf("delete handle of sandbox %q: %w", sandboxID, err)
	}
	return nil
}

// ListHandles implements store.Store.
func (s *Store) ListHandles(ctx context.Context, runtime string) (map[string][]byte, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT sandbox_id, data FROM handles WHERE runtime = ?`, runtime)
	if err != nil {
		return nil, fmt.Errorf("list %s handles: %w", runtime, err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var data []byte
		if err := rows.Scan(&id, &data); err != nil {
			return nil, fmt.Errorf("list %s handles: %w", runtime, err)
		}
		if data == nil {
			data = []byte{}
		}
		out[id] = data
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s handles: %w", runtime, err)
	}
	return out, nil
}
