package main

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

// timeline is where one wake's or claim's time went, against the client's
// clock (zero: the client sent its request). The server's timestamps are
// comparable: it runs on the same host.
type timeline struct {
	spans  []span
	marks  map[string]time.Duration // moments: "request sent" is 0
	events []client.Event
	t0     time.Time
}

// span is one stage the server reported in status.stages.
type span struct {
	name     string
	state    sandbox.StageState
	from, to time.Duration
}

func newTimeline(t0 time.Time, sb *client.Sandbox, evs []client.Event) timeline {
	tl := timeline{t0: t0, marks: map[string]time.Duration{}}
	for _, st := range sb.Status.Stages {
		if st.FinishedAt == nil {
			continue
		}
		tl.spans = append(tl.spans, span{name: st.Name, state: st.State, from: st.StartedAt.Sub(t0), to: st.FinishedAt.Sub(t0)})
	}
	for _, ev := range evs {
		if ev.Time.Before(t0) {
			continue
		}
		tl.events = append(tl.events, ev)
		var mark string
		switch ev.Reason {
		case sandbox.ReasonClaimed:
			mark = "`Claimed` event (the claim is stored)"
		case sandbox.ReasonResuming:
			mark = "`Resuming` event (the reconciler starts)"
		case sandbox.ReasonLifecycle:
			if strings.HasPrefix(ev.Message, "woken by a request") {
				mark = "`woken by a request` event (the proxy's Wake is stored)"
			}
		case sandbox.ReasonPhaseChanged:
			mark = "`PhaseChanged` event: " + phaseIn(ev.Message)
		}
		if _, seen := tl.marks[mark]; mark != "" && !seen {
			tl.marks[mark] = ev.Time.Sub(t0)
		}
	}
	if sb.Status.ReadyAt != nil {
		tl.marks["status.ready_at (Ready stored)"] = sb.Status.ReadyAt.Sub(t0)
	}
	return tl
}

// phaseIn shortens a PhaseChanged message ("Suspended → Ready: ...") to its
// transition.
func phaseIn(msg string) string {
	if i := strings.Index(msg, ":"); i > 0 {
		return msg[:i]
	}
	return msg
}

func (tl timeline) log(what string) {
	log.Printf("  %s, against the client's clock (0 = request sent):", what)
	for _, ev := range tl.events {
		extra := ""
		if ev.DurationMS > 0 {
			extra = fmt.Sprintf(" (%s)", harness.FmtDur(ms(ev.DurationMS)))
		}
		log.Printf("    %9s  %-15s %-22s %s%s", harness.FmtDur(ev.Time.Sub(tl.t0)), ev.Reason, ev.Stage, ev.Message, extra)
	}
	for _, s := range tl.spans {
		log.Printf("    stage %-22s %-9s %9s → %9s  (%s)", s.name, s.state, harness.FmtDur(s.from), harness.FmtDur(s.to), harness.FmtDur(s.to-s.from))
	}
}

// logServiceLines prints the services' log lines written since t0 (their
// own starting and stopping messages), against the client's clock.
func logServiceLines(ctx context.Context, c *client.Client, name string, t0 time.Time) {
	var lines []client.LogLine
	err := c.Logs(ctx, name, client.LogOptions{Tail: 50}, func(l client.LogLine) error {
		if !l.Time.Before(t0) {
			lines = append(lines, l)
		}
		return nil
	})
	if err != nil {
		log.Printf("    logs: %v", err)
		return
	}
	for _, l := range lines {
		log.Printf("    %9s  log %-4s %.160s", harness.FmtDur(l.Time.Sub(t0)), l.Service, l.Text)
	}
}

// wakeResult is one wake of a suspended sandbox by a request.
type wakeResult struct {
	ttfb        time.Duration // request sent → first byte
	status      int
	nameOK      bool
	took        time.Duration // status.resume.took_ms
	suspendTook time.Duration // the Suspended event's duration (the suspend before this wake)
	tl          timeline
}

// measureWakes launches one sandbox, then n times: suspends it through the
// API, waits until it is Suspended, and times GET / through the proxy,
// which wakes it.
func measureWakes(ctx context.Context, srv *server, name string, n int) []wakeResult {
	c := srv.Client
	l := launch(ctx, srv, name, true)
	log.Printf("wake sandbox %s Ready in %s", name, harness.FmtDur(l.ready))
	evs, err := c.Events(ctx, name, 0)
	harness.Check(err)
	var seq int64
	if len(evs) > 0 {
		seq = evs[len(evs)-1].Seq
	}
	var out []wakeResult
	for i := 0; i < n; i++ {
		_, err := c.SuspendSandbox(ctx, name)
		harness.Check(err)
		_, err = waitFor(ctx, c, name, func(sb *client.Sandbox) (bool, error) {
			return sb.Status.Phase == client.PhaseSuspended, nil
		})
		harness.Check(err)
		time.Sleep(*settle)
		h, err := srv.proxyGet(ctx, name)
		harness.Check(err)
		w := wakeResult{ttfb: h.ttfb(), status: h.status, nameOK: strings.Contains(h.body, name)}
		sb, err := c.GetSandbox(ctx, name)
		harness.Check(err)
		if sb.Status.Resume != nil {
			w.took = ms(sb.Status.Resume.TookMS)
		}
		evs, err := c.Events(ctx, name, seq)
		harness.Check(err)
		if len(evs) > 0 {
			seq = evs[len(evs)-1].Seq
		}
		for _, ev := range evs {
			if ev.Reason == sandbox.ReasonSuspended {
				w.suspendTook = ms(ev.DurationMS)
			}
		}
		w.tl = newTimeline(h.start, sb, evs)
		w.tl.marks["first byte at the client"] = w.ttfb
		out = append(out, w)
		log.Printf("wake %d: first byte %s (HTTP %d, page names the sandbox: %v), server resume %s, phase now %s",
			i+1, harness.FmtDur(w.ttfb), w.status, w.nameOK, harness.FmtDur(w.took), sb.Status.Phase)
		if w.status != 200 || !w.nameOK {
			log.Printf("WARNING: wake %d answered %d: %.300s", i+1, h.status, h.body)
		}
		if *verbose {
			w.tl.log(fmt.Sprintf("wake %d", i+1))
			logServiceLines(ctx, c, name, h.start)
		}
	}
	deleteAndWait(ctx, c, name)
	return out
}

// claimResult is one CreateSandbox that claimed a pool sandbox.
type claimResult struct {
	launchResult
	refill time.Duration // claim sent → the pool's next sandbox Ready (or Suspended), server's clock
	tl     timeline
}

// claim creates name from the template, expecting it to be claimed from
// the warm pool of version, then waits for the pool to refill (a new
// sandbox in poolPhase) and deletes name.
func claim(ctx context.Context, srv *server, name string, version int, poolPhase sandbox.Phase) claimResult {
	c := srv.Client
	l := launch(ctx, srv, name, false)
	if !l.claimed {
		log.Printf("WARNING: %s was not claimed from the pool but launched afresh", name)
	}
	evs, err := c.Events(ctx, name, 0)
	harness.Check(err)
	r := claimResult{launchResult: l, tl: newTimeline(l.t0, l.sb, evs)}
	r.tl.marks["POST answered (201)"] = l.answered
	r.tl.marks["Ready seen by the client (at the claim's generation)"] = l.ready
	r.tl.marks["first byte at the client (GET sent after Ready)"] = l.firstByte
	m, err := waitPool(ctx, c, version, poolPhase, l.t0)
	harness.Check(err)
	switch {
	case poolPhase == client.PhaseSuspended && m.Status.SuspendedAt != nil:
		r.refill = m.Status.SuspendedAt.Sub(l.t0)
	case m.Status.ReadyAt != nil:
		r.refill = m.Status.ReadyAt.Sub(l.t0)
	default:
		r.refill = time.Since(l.t0)
	}
	log.Printf("%s: claimed %v, answered %s, Ready %s, first byte %s (HTTP %d, page names it: %v); pool refilled after %s",
		name, l.claimed, harness.FmtDur(l.answered), harness.FmtDur(l.ready), harness.FmtDur(l.firstByte), l.status, l.nameOK, harness.FmtDur(r.refill))
	if *verbose {
		r.tl.log(name)
		logServiceLines(ctx, c, name, l.t0)
	}
	deleteAndWait(ctx, c, name)
	return r
}

// waitPool waits until the template's warm pool holds a sandbox of version
// in phase (Ready at its generation, or Suspended) created after after, and
// returns it.
func waitPool(ctx context.Context, c *client.Client, version int, phase sandbox.Phase, after time.Time) (*client.Sandbox, error) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		sbs, err := c.ListSandboxes(ctx, client.ListOptions{Template: tmplName})
		if err != nil {
			return nil, err
		}
		for i := range sbs {
			sb := &sbs[i]
			if sb.Spec.Pool != tmplName || sb.Spec.TemplateVersion != version || sb.Spec.Deleting() || sb.CreatedAt.Before(after) {
				continue
			}
			switch {
			case sb.Status.Phase == client.PhaseFailed:
				return nil, fmt.Errorf("pool sandbox %s failed: %s", sb.Name, sb.Status.Message)
			case phase == client.PhaseReady && sb.Status.Phase == client.PhaseReady && sb.Status.ObservedGeneration == sb.Generation:
				return sb, nil
			case phase == client.PhaseSuspended && sb.Status.Phase == client.PhaseSuspended && sb.Status.SuspendedAt != nil:
				return sb, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the warm pool of %s version %d has no %s sandbox after 5 min", tmplName, version, phase)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memResult compares the processes of n sandboxes running and suspended.
type memResult struct {
	n                  int
	running, suspended memSample
	suspendTook        []time.Duration
	readyAll           time.Duration // all n created at once → all Ready
}

// measureMemory creates n sandboxes at once, waits until all are Ready and
// have served their page once, samples their processes, suspends all,
// samples again, and deletes them.
func measureMemory(ctx context.Context, srv *server, n int) *memResult {
	c := srv.Client
	res := &memResult{n: n}
	names := make([]string, n)
	t0 := time.Now()
	for i := range names {
		names[i] = fmt.Sprintf("mem-%02d", i)
		_, err := c.CreateSandbox(ctx, client.CreateSandboxRequest{Name: names[i], Template: tmplName, NoPool: true})
		harness.Check(err)
	}
	ids := map[string]bool{}
	for _, name := range names {
		sb, err := waitFor(ctx, c, name, readyNow)
		harness.Check(err)
		ids[sb.ID] = true
	}
	res.readyAll = time.Since(t0)
	log.Printf("memory: %d sandboxes Ready %s after they were created at once", n, harness.FmtDur(res.readyAll))
	for _, name := range names {
		h, err := srv.proxyGet(ctx, name)
		harness.Check(err)
		if h.status != 200 {
			log.Printf("WARNING: %s answered %d", name, h.status)
		}
	}
	time.Sleep(3 * time.Second)
	var err error
	res.running, err = sampleMemory(srv.Data, srv.Pid(), ids)
	harness.Check(err)
	log.Printf("memory: running: %d processes, %d listening, RSS %s, PSS %s; server RSS %s",
		res.running.processes, res.running.listening, mib(res.running.rss), mib(res.running.pss), mib(res.running.serverRSS))
	if res.running.processes == 0 {
		harness.Fatalf("found no process of the %d sandboxes: the marker scan (proc.Scan with local.NodeID(%s)) does not match the server's", n, srv.Data)
	}
	seqs := map[string]int64{}
	for _, name := range names {
		evs, err := c.Events(ctx, name, 0)
		harness.Check(err)
		if len(evs) > 0 {
			seqs[name] = evs[len(evs)-1].Seq
		}
		_, err = c.SuspendSandbox(ctx, name)
		harness.Check(err)
	}
	for _, name := range names {
		_, err := waitFor(ctx, c, name, func(sb *client.Sandbox) (bool, error) { return sb.Status.Phase == client.PhaseSuspended, nil })
		harness.Check(err)
		evs, err := c.Events(ctx, name, seqs[name])
		harness.Check(err)
		for _, ev := range evs {
			if ev.Reason == sandbox.ReasonSuspended {
				res.suspendTook = append(res.suspendTook, ms(ev.DurationMS))
			}
		}
	}
	time.Sleep(2 * time.Second)
	res.suspended, err = sampleMemory(srv.Data, srv.Pid(), ids)
	harness.Check(err)
	log.Printf("memory: suspended: %d processes, %d listening, RSS %s, PSS %s; server RSS %s",
		res.suspended.processes, res.suspended.listening, mib(res.suspended.rss), mib(res.suspended.pss), mib(res.suspended.serverRSS))
	for _, name := range names {
		_, err := c.DeleteSandbox(ctx, name)
		harness.Check(err)
	}
	harness.Check(waitNoSandboxes(ctx, c))
	return res
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
