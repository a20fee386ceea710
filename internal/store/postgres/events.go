package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

// AppendEvent implements store.Store. Seq always comes from the table's
// identity sequence (a caller's Seq is ignored), which never hands a value
// out twice.
//
// A sequence alone orders events by when they took their seq, not by when
// they committed: with two inserts in flight, seq 11 can commit before seq
// 10, and a reader that saw 11 and resumes "after 11" never sees 10. So the
// insert runs in a transaction holding an advisory lock from before it takes
// its seq until it has committed (PostgreSQL makes a commit visible before it
// releases the transaction's locks): appends are serialised across every
// process on the database, and seq order is commit order. Appends are
// small and rare next to everything else a launch does.
func (s *Store) AppendEvent(ctx context.Context, ev sandbox.Event) (sandbox.Event, error) {
	if ev.Time.IsZero() {
		ev.Time = now()
	} else {
		ev.Time = normTime(ev.Time)
	}
	ev.Reason, ev.Stage, ev.Message = cleanText(ev.Reason), cleanText(ev.Stage), cleanText(ev.Message)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockEvents); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO events
			(sandbox_id, time, type, reason, stage, message, duration_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq`,
			ev.SandboxID, ev.Time, string(ev.Type), ev.Reason, ev.Stage, ev.Message, ev.DurationMS,
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
	var lim any // NULL: LIMIT NULL is no limit
	if limit > 0 {
		lim = int64(limit)
	}
	evs, err := s.queryEvents(ctx, sandboxID, afterSeq, lim)
	if err != nil {
		return nil, fmt.Errorf("list events of sandbox %q: %w", sandboxID, err)
	}
	if len(evs) == 0 {
		// Only an empty page needs the extra lookup.
		var exists bool
		if err := s.pool.QueryRow(ctx,
			`SELECT EXISTS (SELECT 1 FROM sandboxes WHERE id = $1)`, sandboxID).Scan(&exists); err != nil {
			return nil, fmt.Errorf("list events of sandbox %q: %w", sandboxID, err)
		}
		if !exists {
			return nil, fmt.Errorf("list events of sandbox %q: %w", sandboxID, store.ErrNotFound)
		}
	}
	return evs, nil
}

func (s *Store) queryEvents(ctx context.Context, sandboxID string, afterSeq int64, limit any) ([]sandbox.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, sandbox_id, time, type, reason, stage, message, duration_ms
		FROM events WHERE sandbox_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, sandboxID, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	evs := []sandbox.Event{}
	for rows.Next() {
		var ev sandbox.Event
		var typ string
		if err := rows.Scan(&ev.Seq, &ev.SandboxID, &ev.Time, &typ, &ev.Reason, &ev.Stage, &ev.Message, &ev.DurationMS); err != nil {
			return nil, err
		}
		ev.Type = sandbox.EventType(typ)
		ev.Time = ev.Time.UTC()
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
	_, err := s.pool.Exec(ctx, `INSERT INTO handles (sandbox_id, runtime, data, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (sandbox_id) DO UPDATE SET runtime = excluded.runtime, data = excluded.data, updated_at = excluded.updated_at`,
		sandboxID, runtime, data, now())
	if err != nil {
		return fmt.Errorf("save %s handle of sandbox %q: %w", runtime, sandboxID, err)
	}
	return nil
}

// LoadHandle implements store.Store.
func (s *Store) LoadHandle(ctx context.Context, sandboxID string) (string, []byte, error) {
	var runtime string
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT runtime, data FROM handles WHERE sandbox_id = $1`, sandboxID).Scan(&runtime, &data)
	if errors.Is(err, pgx.ErrNoRows) {
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
	if err := mustAffect(s.pool.Exec(ctx, `DELETE FROM handles WHERE sandbox_id = $1`, sandboxID)); err != nil {
		return fmt.Errorf("delete handle of sandbox %q: %w", sandboxID, err)
	}
	return nil
}

// ListHandles implements store.Store.
func (s *Store) ListHandles(ctx context.Context, runtime string) (map[string][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT sandbox_id, data FROM handles WHERE runtime = $1`, runtime)
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
