package reconcile

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
)

// progress implements runtime.Progress for one Up or Down: it keeps the
// sandbox's stage list, appends events and persists status as stages move,
// and measures how much of the launch was spent waiting on external work.
type progress struct {
	r   *Reconciler
	ctx context.Context
	sb  *sandbox.Sandbox

	mu     sync.Mutex
	status sandbox.Status
	ext    extTimer
}

func (r *Reconciler) newProgress(ctx context.Context, sb *sandbox.Sandbox, st sandbox.Status) *progress {
	return &progress{r: r, ctx: ctx, sb: sb, status: st}
}

func (p *progress) snapshot() sandbox.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.status
	st.Stages = append([]sandbox.Stage(nil), p.status.Stages...)
	return st
}

func (p *progress) stageIndex(name string) int {
	for i := len(p.status.Stages) - 1; i >= 0; i-- {
		if p.status.Stages[i].Name == name {
			return i
		}
	}
	return -1
}

func (p *progress) StageStarted(name string) {
	now := p.r.now()
	p.mu.Lock()
	if i := p.stageIndex(name); i >= 0 {
		p.status.Stages = append(p.status.Stages[:i], p.status.Stages[i+1:]...)
	}
	p.status.Stages = append(p.status.Stages, sandbox.Stage{Name: name, State: sandbox.StageRunning, StartedAt: now})
	p.r.event(p.ctx, p.sb, sandbox.Event{Type: sandbox.EventNormal, Reason: sandbox.ReasonStageStarted, Stage: name, Message: stageVerb(name) + " started"})
	p.persist()
	p.mu.Unlock()
}

// persist writes the status; the caller holds p.mu, which keeps writes from
// concurrent stages in order and p.sb free of races.
func (p *progress) persist() {
	st := p.status
	st.Stages = append([]sandbox.Stage(nil), p.status.Stages...)
	p.r.writeStatus(p.ctx, p.sb, st)
}

func (p *progress) StageFinished(name string, err error) {
	now := p.r.now()
	p.mu.Lock()
	i := p.stageIndex(name)
	if i < 0 {
		p.status.Stages = append(p.status.Stages, sandbox.Stage{Name: name, StartedAt: now})
		i = len(p.status.Stages) - 1
	}
	s := &p.status.Stages[i]
	s.FinishedAt = &now
	d := now.Sub(s.StartedAt)
	ev := sandbox.Event{Stage: name, DurationMS: ms(d)}
	if err != nil {
		s.State, s.Message = sandbox.StageFailed, firstLine(err.Error())
		ev.Type, ev.Reason, ev.Message = sandbox.EventWarning, sandbox.ReasonStageFailed, fmt.Sprintf("%s failed after %s: %v", stageVerb(name), round(d), err)
	} else {
		s.State = sandbox.StageSucceeded
		ev.Type, ev.Reason, ev.Message = sandbox.EventNormal, sandbox.ReasonStageSucceeded, fmt.Sprintf("%s finished in %s", stageVerb(name), round(d))
	}
	if !strings.Contains(name, "/") {
		p.r.metrics.stageDuration.WithLabelValues(name, resultLabel(err)).Observe(d.Seconds())
	}
	p.r.event(p.ctx, p.sb, ev)
	p.persist()
	p.mu.Unlock()
}

func (p *progress) StageSkipped(name, reason string) {
	now := p.r.now()
	p.mu.Lock()
	if i := p.stageIndex(name); i >= 0 {
		p.status.Stages = append(p.status.Stages[:i], p.status.Stages[i+1:]...)
	}
	p.status.Stages = append(p.status.Stages, sandbox.Stage{Name: name, State: sandbox.StageSkipped, StartedAt: now, FinishedAt: &now, Message: reason})
	// Skips are bookkeeping: recorded in the stage list, and in the event
	// log only for top-level stages so resumed launches stay readable.
	if !strings.Contains(name, "/") {
		p.r.event(p.ctx, p.sb, sandbox.Event{Type: sandbox.EventNormal, Reason: sandbox.ReasonStageSkipped, Stage: name, Message: stageVerb(name) + " skipped: " + reason})
	}
	p.mu.Unlock()
}

func (p *progress) Event(typ sandbox.EventType, reason, message string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.r.event(p.ctx, p.sb, sandbox.Event{Type: typ, Reason: reason, Message: message})
}

func (p *progress) External(kind string) func() {
	return p.ext.begin(kind, p.r.now)
}

// failOpen marks stages still running as failed (or interrupted), so a
// stage list never claims work is going on after Up returned.
func (p *progress) failOpen(err error) {
	now := p.r.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.status.Stages {
		s := &p.status.Stages[i]
		if s.State == sandbox.StageRunning {
			s.State, s.FinishedAt, s.Message = sandbox.StageFailed, &now, firstLine(err.Error())
		}
	}
}

// extTimer measures the union of possibly overlapping external spans: the
// wall time during which at least one was in flight.
type extTimer struct {
	mu       sync.Mutex
	active   int
	since    time.Time
	total    time.Duration
	checkout time.Duration
}

func (e *extTimer) begin(kind string, now func() time.Time) func() {
	start := now()
	e.mu.Lock()
	if e.active == 0 {
		e.since = start
	}
	e.active++
	e.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			end := now()
			e.mu.Lock()
			defer e.mu.Unlock()
			e.active--
			if e.active == 0 {
				e.total += end.Sub(e.since)
			}
			if kind == "checkout" {
				e.checkout += end.Sub(start)
			}
		})
	}
}

func (e *extTimer) totals() (total, checkout time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.total, e.checkout
}

func stageVerb(name string) string {
	top, part, ok := strings.Cut(name, "/")
	if !ok {
		return top
	}
	return top + " of " + part
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(time.Millisecond)
	default:
		return d.Round(10 * time.Millisecond)
	}
}

func resultLabel(err error) string {
	if err != nil {
		return "failure"
	}
	return "success"
}
