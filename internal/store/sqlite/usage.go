package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Usage intervals (table usage_intervals, schema version 6) are written
// by the sandbox writes themselves, inside their transactions: see
// store.Store.UsageIntervals for when.

const usageColumns = `sandbox_id, name, template, owner, state, idle, started_at, ended_at`

// UsageIntervals implements store.Store. Times are fixed-width text, so
// the comparisons are text comparisons.
func (s *Store) UsageIntervals(ctx context.Context, from, to time.Time) ([]sandbox.UsageInterval, error) {
	if !from.Before(to) {
		return []sandbox.UsageInterval{}, nil // an empty window overlaps nothing
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT `+usageColumns+` FROM usage_intervals
		WHERE started_at < ? AND (ended_at IS NULL OR ended_at > ?)
		ORDER BY started_at, sandbox_id, id`, formatTime(to), formatTime(from))
	if err != nil {
		return nil, fmt.Errorf("list usage intervals: %w", err)
	}
	defer rows.Close()
	out := []sandbox.UsageInterval{}
	for rows.Next() {
		var iv sandbox.UsageInterval
		var state, start string
		var idle int
		var end sql.NullString
		if err := rows.Scan(&iv.SandboxID, &iv.Name, &iv.Template, &iv.Owner, &state, &idle, &start, &end); err != nil {
			return nil, fmt.Errorf("list usage intervals: %w", err)
		}
		iv.State, iv.Idle = sandbox.UsageState(state), idle == 1
		if iv.Start, err = parseTime(start); err != nil {
			return nil, fmt.Errorf("list usage intervals: %w", err)
		}
		if end.Valid {
			t, err := parseTime(end.String)
			if err != nil {
				return nil, fmt.Errorf("list usage intervals: %w", err)
			}
			iv.End = &t
		}
		out = append(out, iv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list usage intervals: %w", err)
	}
	return out, nil
}

// openUsage is a sandbox's open interval (ok false when it has none).
type openUsage struct {
	ok                    bool
	state                 sandbox.UsageState
	idle                  bool
	start                 time.Time
	name, template, owner string
}

func readOpenUsage(ctx context.Context, tx *sql.Tx, id string) (openUsage, error) {
	var o openUsage
	var state, start string
	var idle int
	err := tx.QueryRowContext(ctx, `SELECT name, template, owner, state, idle, started_at FROM usage_intervals
		WHERE sandbox_id = ? AND ended_at IS NULL`, id).Scan(&o.name, &o.template, &o.owner, &state, &idle, &start)
	if errors.Is(err, sql.ErrNoRows) {
		return o, nil
	}
	if err != nil {
		return o, fmt.Errorf("read open usage interval: %w", err)
	}
	o.ok, o.state, o.idle = true, sandbox.UsageState(state), idle == 1
	if o.start, err = parseTime(start); err != nil {
		return o, err
	}
	return o, nil
}

// at is when a change of the open interval happens: now, or its start if
// the clock went back (another process's clock, an adjustment), so that
// intervals never end before they begin.
func (o openUsage) at(now time.Time) time.Time {
	if o.ok && now.Before(o.start) {
		return o.start
	}
	return now
}

func closeUsage(ctx context.Context, tx *sql.Tx, id string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE usage_intervals SET ended_at = ? WHERE sandbox_id = ? AND ended_at IS NULL`,
		formatTime(at), id); err != nil {
		return fmt.Errorf("close usage interval: %w", err)
	}
	return nil
}

func startUsage(ctx context.Context, tx *sql.Tx, iv sandbox.UsageInterval) error {
	idle := 0
	if iv.Idle {
		idle = 1
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO usage_intervals (sandbox_id, name, template, owner, state, idle, started_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, iv.SandboxID, iv.Name, iv.Template, iv.Owner, string(iv.State), idle, formatTime(iv.Start)); err != nil {
		return fmt.Errorf("open usage interval: %w", err)
	}
	return nil
}

// recordStatusUsage follows a status write of sandbox id: when st puts it
// in another usage state than its open interval's, that interval ends and
// the next begins.
func recordStatusUsage(ctx context.Context, tx *sql.Tx, id string, st sandbox.Status, now time.Time) error {
	cur, err := readOpenUsage(ctx, tx, id)
	if err != nil {
		return err
	}
	state, idle := sandbox.UsageOf(st, cur.state, cur.idle)
	if cur.ok && cur.state == state && cur.idle == idle {
		return nil
	}
	var name, template, spec string
	if err := tx.QueryRowContext(ctx, `SELECT name, template, spec FROM sandboxes WHERE id = ?`, id).Scan(&name, &template, &spec); err != nil {
		return fmt.Errorf("read sandbox for its usage: %w", err)
	}
	var sp struct {
		CreatedBy string `json:"created_by"`
	}
	if err := json.Unmarshal([]byte(spec), &sp); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	at := cur.at(now)
	if cur.ok {
		if err := closeUsage(ctx, tx, id, at); err != nil {
			return err
		}
	}
	return startUsage(ctx, tx, sandbox.UsageInterval{SandboxID: id, Name: name, Template: template,
		Owner: sandbox.UsageOwner(sp.CreatedBy), State: state, Idle: idle, Start: at})
}

// recordSpecUsage follows a spec write of sb (already changed): when its
// name, template or owner changed, the open interval ends and the same
// state begins again under the new ones, so a sandbox claimed from a warm
// pool counts for the pool until the claim and for its new owner after.
func recordSpecUsage(ctx context.Context, tx *sql.Tx, sb *sandbox.Sandbox, now time.Time) error {
	cur, err := readOpenUsage(ctx, tx, sb.ID)
	if err != nil || !cur.ok {
		return err
	}
	owner := sandbox.UsageOwner(sb.Spec.CreatedBy)
	if cur.name == sb.Name && cur.template == sb.Spec.Template && cur.owner == owner {
		return nil
	}
	at := cur.at(now)
	if err := closeUsage(ctx, tx, sb.ID, at); err != nil {
		return err
	}
	return startUsage(ctx, tx, sandbox.UsageInterval{SandboxID: sb.ID, Name: sb.Name, Template: sb.Spec.Template,
		Owner: owner, State: cur.state, Idle: cur.idle, Start: at})
}

// recordDeleteUsage ends the open interval of a sandbox that is gone.
func recordDeleteUsage(ctx context.Context, tx *sql.Tx, id string, now time.Time) error {
	cur, err := readOpenUsage(ctx, tx, id)
	if err != nil || !cur.ok {
		return err
	}
	return closeUsage(ctx, tx, id, cur.at(now))
}
