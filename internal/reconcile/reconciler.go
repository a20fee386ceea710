package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/template"
)

// Config holds the reconciler's dependencies.
type Config struct {
	Store   store.Store
	Runtime runtime.Runtime
	Logger  *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Workers bounds how many sandboxes are reconciled at once (default 4).
	Workers int
	// Resync is how often a settled sandbox is looked at again (default 30s).
	Resync time.Duration
	// CollectEvery is how often the runtime is searched for resources no
	// sandbox owns (default 5m; also done at start).
	CollectEvery time.Duration
	// RetryBase and RetryMax bound the backoff of failed passes (defaults
	// 500ms and 2m).
	RetryBase, RetryMax time.Duration
	// EndpointURL returns an endpoint's public URL.
	EndpointURL func(sandboxName, endpoint string) string
	// OnChange is called after every status write and after a sandbox is
	// gone (sb is then the last known state and gone is true): the server
	// updates the proxy's routes and wakes event streams from it.
	OnChange func(sb *sandbox.Sandbox, gone bool)
	// Registerer receives the reconciler's metrics (none when nil).
	Registerer prometheus.Registerer
	// ResolveSnapshot finds the snapshots dependencies start from (nil:
	// snapshots are not supported, and a dependency naming one fails).
	ResolveSnapshot runtime.SnapshotResolver
	// Policy is the server's lifecycle settings (idle suspend override,
	// keep-failed default, retention of suspended sandboxes).
	Policy lifecycle.Policy
	// Activity, when set, returns activity the server recorded in memory
	// but may not have stored yet (the current time while a session is
	// open), so that an idle suspend never misses recent use.
	Activity func(sandboxName string) time.Time
	// PoolEvery is how often warm pools are checked (default Resync;
	// they are also checked after every change that can affect them).
	PoolEvery time.Duration
}

// Result tells the worker when to look at the sandbox again.
type Result struct {
	RequeueAfter time.Duration
}

// Reconciler drives sandboxes to their spec.
type Reconciler struct {
	cfg     Config
	log     *slog.Logger
	queue   *Queue
	metrics *metrics

	mu       sync.Mutex
	inflight map[string]*inflight

	// templates caches parsed template versions (immutable) for the
	// lifecycle settings every pass needs.
	tmplMu    sync.Mutex
	templates map[string]*template.Template

	pools        chan struct{} // a pool check is wanted
	poolsStopped atomic.Bool
}

// inflight is a running Up, cancelled when its sandbox's spec changes
// (deletion requested) so a delete never waits for a slow build.
type inflight struct {
	cancel context.CancelFunc
	key    string // launchKey of the sandbox being launched
}

// New returns a reconciler; Run starts it.
func New(cfg Config) *Reconciler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.CollectEvery <= 0 {
		cfg.CollectEvery = 5 * time.Minute
	}
	if cfg.PoolEvery <= 0 {
		cfg.PoolEvery = cfg.Resync
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 500 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.EndpointURL == nil {
		cfg.EndpointURL = func(s, e string) string { return "http://" + e + "--" + s + ".localhost" }
	}
	return &Reconciler{
		cfg: cfg,
		log: cfg.Logger.With("component", "reconciler"),
		// Delays are durations on the real clock: a controlled clock that
		// stands still must not freeze retries and requeues.
		queue:    NewQueue(cfg.RetryBase, cfg.RetryMax, time.Now),
		metrics:  newMetrics(cfg.Registerer, cfg.Store),
		inflight: map[string]*inflight{},

		templates: map[string]*template.Template{},
		pools:     make(chan struct{}, 1),
	}
}

// now is the clock at the store's precision (microseconds), so that times
// the reconciler writes compare exactly with ones read back.
func (r *Reconciler) now() time.Time { return r.cfg.Now().UTC().Truncate(time.Microsecond) }

// Enqueue asks for sandbox id to be reconciled. Call it after every spec
// change. If an Up of the sandbox is running and the spec moved on (a
// deletion was requested), that Up is cancelled.
func (r *Reconciler) Enqueue(id string) {
	r.queue.Add(id)
	r.mu.Lock()
	f := r.inflight[id]
	r.mu.Unlock()
	if f == nil {
		return
	}
	// Lifecycle-only changes (a pin, an extension) leave the launch alone.
	sb, err := r.cfg.Store.GetSandbox(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (sb.Spec.Deleting() || sb.Spec.SuspendRequestedAt != nil || launchKey(sb) != f.key ||
		sb.Spec.FailRequested.Pending(sb.Status.FailRequestHonored))) {
		f.cancel()
	}
}

// Run reconciles until ctx ends: it queues every known sandbox and every id
// the runtime holds (so orphans left by a crash are collected), then serves
// the queue with the configured number of workers.
func (r *Reconciler) Run(ctx context.Context) error {
	if err := r.enqueueAll(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started
		}
		return err
	}
	var wg sync.WaitGroup
	for i := 0; i < r.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(ctx)
		}()
	}
	tick := time.NewTicker(r.cfg.CollectEvery)
	defer tick.Stop()
	poolTick := time.NewTicker(r.cfg.PoolEvery)
	defer poolTick.Stop()
	r.checkPools(ctx)
	for {
		select {
		case <-ctx.Done():
			r.queue.ShutDown()
			wg.Wait()
			return nil
		case <-tick.C:
			if err := r.enqueueAll(ctx); err != nil {
				r.log.Warn("list sandboxes for collection", "err", err)
			}
		case <-poolTick.C:
			r.checkPools(ctx)
		case <-r.pools:
			r.checkPools(ctx)
		}
	}
}

func (r *Reconciler) enqueueAll(ctx context.Context) error {
	sbs, err := r.cfg.Store.ListSandboxes(ctx, store.ListOptions{})
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	for _, sb := range sbs {
		r.queue.Add(sb.ID)
	}
	held, err := r.cfg.Runtime.Sandboxes(ctx)
	if err != nil {
		return fmt.Errorf("list what the %s runtime holds: %w", r.cfg.Runtime.Name(), err)
	}
	for _, id := range held {
		r.queue.Add(id) // a Reconcile of an id with no sandbox removes what it left
	}
	return nil
}

func (r *Reconciler) worker(ctx context.Context) {
	for {
		id, shutdown := r.queue.Get()
		if shutdown {
			return
		}
		res, err := r.Reconcile(ctx, id)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			d := r.queue.AddRateLimited(id)
			r.metrics.reconciles.WithLabelValues("error").Inc()
			r.log.Warn("reconcile failed; will retry", "sandbox", id, "retry_in", d, "err", err)
		default:
			r.queue.Forget(id)
			r.metrics.reconciles.WithLabelValues("success").Inc()
			if res.RequeueAfter > 0 {
				r.queue.AddAfter(id, res.RequeueAfter)
			}
		}
		r.queue.Done(id)
	}
}

// Reconcile brings one sandbox toward its spec. It is idempotent and safe to
// call at any time for any id, including ids with no sandbox (whatever the
// runtime holds for them is removed).
func (r *Reconciler) Reconcile(ctx context.Context, id string) (Result, error) {
	sb, err := r.cfg.Store.GetSandbox(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Result{}, r.collect(ctx, id)
	}
	if err != nil {
		return Result{}, err
	}
	if sb.Spec.Deleting() {
		return r.delete(ctx, sb)
	}
	if sb.Status.ObservedGeneration != sb.Generation && sb.Status.LaunchKey != "" && sb.Status.LaunchKey == launchKey(sb) {
		// Only lifecycle settings changed (a pin, an extension, a
		// suspend request): nothing to relaunch.
		st := sb.Status
		st.ObservedGeneration = sb.Generation
		r.writeStatus(ctx, sb, st)
	}
	if sb.Spec.FailRequested.Pending(sb.Status.FailRequestHonored) {
		r.failOnRequest(ctx, sb)
	}
	dec := r.evaluate(ctx, sb)
	switch dec.Action {
	case lifecycle.Delete:
		return r.expire(ctx, sb, dec.Reason)
	case lifecycle.Suspend:
		return r.suspend(ctx, sb, dec.Reason)
	case lifecycle.Wake:
		return r.resume(ctx, sb)
	}
	settled := r.requeue(dec)
	switch {
	case sb.Status.Phase == sandbox.PhaseSuspended:
		// Asleep: its changes apply when it wakes.
		return settled, nil
	case sb.Status.ObservedGeneration == sb.Generation && sb.Status.Phase == sandbox.PhaseFailed:
		// Kept for debugging: refresh what runs, change nothing.
		r.refresh(ctx, sb)
		return settled, nil
	case sb.Status.ObservedGeneration == sb.Generation && sb.Status.Phase == sandbox.PhaseReady:
		if r.refresh(ctx, sb) {
			return settled, nil
		}
		r.event(ctx, sb, sandbox.Event{Type: sandbox.EventWarning, Reason: sandbox.ReasonInfo, Message: "a service's supervisor is gone (host restarted or process killed); starting it again"})
	}
	return r.provision(ctx, sb, "")
}

// collect removes runtime resources of an id that has no sandbox.
func (r *Reconciler) collect(ctx context.Context, id string) error {
	held, err := r.cfg.Runtime.Sandboxes(ctx)
	if err != nil {
		return err
	}
	for _, h := range held {
		if h == id {
			r.log.Info("removing resources that no sandbox owns", "sandbox", id)
			return r.cfg.Runtime.Down(ctx, id, discard{})
		}
	}
	return nil
}

// refresh updates the status's service states from the runtime; it reports
// whether the sandbox is healthy.
func (r *Reconciler) refresh(ctx context.Context, sb *sandbox.Sandbox) bool {
	obs, err := r.cfg.Runtime.Observe(ctx, sb.ID)
	if err != nil {
		r.log.Warn("observe sandbox", "sandbox", sb.Name, "err", err)
		return sb.Status.Phase != sandbox.PhaseReady
	}
	st := sb.Status
	st.Services, st.Dependencies = obs.Services, mergeDeps(st.Dependencies, obs.Dependencies)
	if !reflect.DeepEqual(st, sb.Status) {
		for _, s := range obs.Services {
			if s.State == sandbox.ServiceExited && !serviceWas(sb.Status.Services, s.Name, sandbox.ServiceExited) {
				r.event(ctx, sb, sandbox.Event{Type: sandbox.EventWarning, Reason: sandbox.ReasonServiceExited, Message: fmt.Sprintf("service %s %s", s.Name, s.Message)})
			}
		}
		r.writeStatus(ctx, sb, st)
	}
	return obs.Healthy
}

func serviceWas(list []sandbox.ServiceStatus, name string, state sandbox.ServiceState) bool {
	for _, s := range list {
		if s.Name == name {
			return s.State == state
		}
	}
	return false
}

// mergeDeps keeps what the reconciler knows of dependencies (version,
// databases) that the runtime does not report.
func mergeDeps(old, obs []sandbox.DependencyStatus) []sandbox.DependencyStatus {
	out := make([]sandbox.DependencyStatus, len(obs))
	for i, d := range obs {
		for _, o := range old {
			if o.Name == d.Name {
				if d.Version == "" {
					d.Version = o.Version
				}
				if d.Databases == nil {
					d.Databases = o.Databases
				}
			}
		}
		out[i] = d
	}
	return out
}

func (r *Reconciler) delete(ctx context.Context, sb *sandbox.Sandbox) (Result, error) {
	if sb.Status.Phase != sandbox.PhaseDeleting {
		st := sb.Status
		r.setPhase(ctx, sb, &st, sandbox.PhaseDeleting, "deleting")
		r.writeStatus(ctx, sb, st)
	}
	started := r.now()
	p := r.newProgress(ctx, sb, sb.Status)
	if err := r.cfg.Runtime.Down(ctx, sb.ID, p); err != nil {
		st := p.snapshot()
		st.Message = "deleting: " + firstLine(err.Error())
		r.writeStatus(ctx, sb, st)
		return Result{}, fmt.Errorf("delete %s: %w", sb.Name, err)
	}
	if err := r.cfg.Store.DeleteSandbox(ctx, sb.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return Result{}, fmt.Errorf("delete %s from the store: %w", sb.Name, err)
	}
	d := r.now().Sub(started)
	r.metrics.stageDuration.WithLabelValues("delete", "success").Observe(d.Seconds())
	r.log.Info("sandbox deleted", "sandbox", sb.Name, "id", sb.ID, "took", round(d))
	if r.cfg.OnChange != nil {
		r.cfg.OnChange(sb, true)
	}
	return Result{}, nil
}

// provision launches the sandbox, or relaunches it after a change. With a
// resume reason it wakes a Suspended sandbox instead: the phase stays
// Suspended (the proxy holds requests meanwhile) until it is Ready.
func (r *Reconciler) provision(ctx context.Context, sb *sandbox.Sandbox, resume string) (Result, error) {
	tv, err := r.cfg.Store.GetTemplate(ctx, sb.Spec.Template, sb.Spec.TemplateVersion)
	if err != nil {
		return r.fail(ctx, sb, sb.Status, fmt.Errorf("template %s version %d: %w", sb.Spec.Template, sb.Spec.TemplateVersion, err))
	}
	t, err := template.Parse(tv.Filename, tv.Source)
	if err == nil {
		t, err = t.WithSet(sb.Spec.Set)
	}
	if err != nil {
		return r.fail(ctx, sb, sb.Status, fmt.Errorf("template %s version %d no longer parses: %w", tv.Name, tv.Version, err))
	}

	st := sb.Status
	started := r.now()
	if resume != "" {
		st.Message = "resuming: " + resume
		r.event(ctx, sb, sandbox.Event{Type: sandbox.EventNormal, Reason: sandbox.ReasonResuming, Message: "resuming: " + resume})
		st.Resume = &sandbox.ResumeTiming{StartedAt: started, Reason: resume}
	} else {
		if st.Phase != sandbox.PhaseProvisioning {
			r.setPhase(ctx, sb, &st, sandbox.PhaseProvisioning, "")
		}
		st.Message = "launching"
		st.Timing = nil
	}
	st.Runtime = r.cfg.Runtime.Name()
	st.Stages = nil
	st.ReadyAt, st.FailedAt = nil, nil
	st.Endpoints = r.endpoints(sb, t, nil)
	st.Dependencies = nil
	for _, name := range t.DependencyOrder {
		d := t.Dependencies[name]
		st.Dependencies = append(st.Dependencies, sandbox.DependencyStatus{Name: name, Type: d.Type, Version: d.Version, State: sandbox.ServicePending, Databases: d.Databases})
	}
	r.writeStatus(ctx, sb, st)

	upCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.mu.Lock()
	r.inflight[sb.ID] = &inflight{cancel: cancel, key: launchKey(sb)}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.inflight, sb.ID)
		r.mu.Unlock()
	}()
	// A deletion requested between our read and the registration above
	// would otherwise go unnoticed until Up ends.
	if cur, err := r.cfg.Store.GetSandbox(ctx, sb.ID); err != nil || cur.Spec.Deleting() || cur.Spec.SuspendRequestedAt != nil || launchKey(cur) != launchKey(sb) ||
		cur.Spec.FailRequested.Pending(cur.Status.FailRequestHonored) {
		return Result{RequeueAfter: time.Millisecond}, nil
	}

	endpointURLs := map[string]string{}
	for _, name := range t.EndpointOrder {
		endpointURLs[name] = r.cfg.EndpointURL(sb.Name, name)
	}
	inst := &runtime.Instance{
		ID: sb.ID, Name: sb.Name, Template: t, TemplateVersion: tv.Version, BaseDir: tv.BaseDir,
		Ref: sb.Spec.Ref, Set: sb.Spec.Set, EndpointURLs: endpointURLs,
		Seeds: seeds(t, sb.Spec), ResolveSnapshot: r.cfg.ResolveSnapshot,
	}
	p := r.newProgress(ctx, sb, st)
	obs, err := r.cfg.Runtime.Up(upCtx, inst, p)
	if err != nil {
		p.failOpen(err)
		st = p.snapshot()
		if ctx.Err() != nil {
			// The server is shutting down: the next one resumes.
			r.writeStatus(context.Background(), sb, withMessage(st, "interrupted by a server shutdown; resumes on start"))
			return Result{}, nil
		}
		if upCtx.Err() != nil {
			r.writeStatus(ctx, sb, withMessage(st, "launch cancelled: the sandbox changed"))
			return Result{RequeueAfter: time.Millisecond}, nil
		}
		if runtime.IsPermanent(err) {
			return r.fail(ctx, sb, st, err)
		}
		n := r.queue.Failures(sb.ID) + 1
		r.event(ctx, sb, sandbox.Event{Type: sandbox.EventWarning, Reason: sandbox.ReasonRetrying, Message: fmt.Sprintf("launch attempt %d failed, retrying: %v", n, err)})
		r.writeStatus(ctx, sb, withMessage(st, "retrying after: "+firstLine(err.Error())))
		return Result{}, err
	}

	st = p.snapshot()
	now := r.now()
	r.setPhase(ctx, sb, &st, sandbox.PhaseReady, "")
	st.ObservedGeneration = sb.Generation
	st.LaunchKey = launchKey(sb)
	st.Ref, st.SHA = obs.Ref, obs.SHA
	st.Services = obs.Services
	st.Dependencies = mergeDeps(st.Dependencies, obs.Dependencies)
	st.Endpoints = r.endpoints(sb, t, obs.Upstreams)
	st.Resources = obs.Resources
	st.ReadyAt = &now
	st.SuspendedAt, st.SuspendReason = nil, ""
	if sb.Spec.Pool != "" || sb.Spec.ClaimedAt != nil {
		// A pool sandbox is ready, or a claimed one is: its pool may
		// refill now without slowing the claim down.
		defer r.WantPoolCheck()
	}
	if resume != "" {
		took := now.Sub(started)
		st.Resume.TookMS = ms(took)
		r.metrics.launch.WithLabelValues("resume").Observe(took.Seconds())
		r.writeStatus(ctx, sb, st)
		r.log.Info("sandbox resumed", "sandbox", sb.Name, "id", sb.ID, "took", round(took), "reason", resume)
		return r.requeue(r.evaluate(ctx, sb)), nil
	}
	ext, checkout := p.ext.totals()
	total := now.Sub(sb.CreatedAt)
	if sb.Spec.ClaimedAt != nil {
		total = now.Sub(*sb.Spec.ClaimedAt)
	}
	st.Timing = &sandbox.Timing{TotalMS: ms(total), ExternalMS: ms(ext), CheckoutMS: ms(checkout), OverheadMS: ms(total - ext)}
	r.metrics.launch.WithLabelValues("total").Observe(total.Seconds())
	r.metrics.launch.WithLabelValues("external").Observe(ext.Seconds())
	r.metrics.launch.WithLabelValues("overhead").Observe((total - ext).Seconds())
	r.writeStatus(ctx, sb, st)
	r.log.Info("sandbox ready", "sandbox", sb.Name, "id", sb.ID, "took", round(total), "overhead", round(total-ext))
	return r.requeue(r.evaluate(ctx, sb)), nil
}

// seeds says what each dependency's data starts from: the latest restore
// request, else the template's snapshot, else nothing (empty). The keys
// stay the same once a dependency is seeded, so its data is never replaced
// unless a new restore is asked for.
func seeds(t *template.Template, spec sandbox.Spec) map[string]runtime.Seed {
	out := map[string]runtime.Seed{}
	for _, name := range t.DependencyOrder {
		if r, ok := spec.Restores[name]; ok {
			out[name] = runtime.Seed{Key: fmt.Sprintf("restore %d %s", r.Seq, r.Snapshot), Snapshot: r.Snapshot}
		} else if snap := t.Dependencies[name].Snapshot; snap != "" {
			out[name] = runtime.Seed{Key: "snapshot " + snap, Snapshot: snap}
		}
	}
	return out
}

func withMessage(st sandbox.Status, msg string) sandbox.Status {
	st.Message = msg
	return st
}

// fail marks the sandbox Failed and keeps everything it has for debugging.
func (r *Reconciler) fail(ctx context.Context, sb *sandbox.Sandbox, st sandbox.Status, err error) (Result, error) {
	now := r.now()
	r.setPhase(ctx, sb, &st, sandbox.PhaseFailed, err.Error())
	st.FailedAt = &now
	st.ObservedGeneration = sb.Generation
	// What failed to launch: a pin or an extension of the failed sandbox
	// must not relaunch it; a changed ref or template version does.
	st.LaunchKey = launchKey(sb)
	if obs, oerr := r.cfg.Runtime.Observe(ctx, sb.ID); oerr == nil {
		st.Services, st.Dependencies = obs.Services, mergeDeps(st.Dependencies, obs.Dependencies)
	}
	r.writeStatus(ctx, sb, st)
	r.log.Warn("sandbox failed", "sandbox", sb.Name, "id", sb.ID, "err", err)
	if sb.Spec.ClaimedAt != nil {
		r.WantPoolCheck() // the claim is over either way
	}
	return Result{}, nil
}

// failOnRequest marks a sandbox Failed because someone asked (a CI run
// whose tests failed), stopping nothing: like a failed launch, it is kept
// as it is for debugging until its keep_failed ends. A sandbox that is
// Failed already keeps its own failure. The request is honoured once.
func (r *Reconciler) failOnRequest(ctx context.Context, sb *sandbox.Sandbox) {
	req := sb.Spec.FailRequested
	st := sb.Status
	if st.Phase != sandbox.PhaseFailed {
		now := r.now()
		msg := req.Reason
		if msg == "" {
			msg = "marked Failed on request"
		}
		r.setPhase(ctx, sb, &st, sandbox.PhaseFailed, msg)
		st.FailedAt = &now
		if obs, err := r.cfg.Runtime.Observe(ctx, sb.ID); err == nil {
			st.Services, st.Dependencies = obs.Services, mergeDeps(st.Dependencies, obs.Dependencies)
		}
		r.log.Info("sandbox marked failed on request", "sandbox", sb.Name, "id", sb.ID, "reason", req.Reason, "by", req.By)
	}
	at := req.At
	st.FailRequestHonored = &at
	st.ObservedGeneration = sb.Generation
	// What runs was made from this spec: the request is not a change that
	// relaunches anything (launchKey leaves it out).
	st.LaunchKey = launchKey(sb)
	r.writeStatus(ctx, sb, st)
}

func (r *Reconciler) endpoints(sb *sandbox.Sandbox, t *template.Template, ups map[string]map[string]string) []sandbox.EndpointStatus {
	var out []sandbox.EndpointStatus
	for _, name := range t.EndpointOrder {
		ep := sandbox.EndpointStatus{Name: name, URL: r.cfg.EndpointURL(sb.Name, name)}
		for _, rt := range t.Endpoints[name].Routes {
			svc, port, _ := template.ParseTarget(rt.To)
			ep.Routes = append(ep.Routes, sandbox.Route{PathPrefix: rt.Path, Service: svc, Port: port, Upstream: ups[svc][port]})
		}
		out = append(out, ep)
	}
	return out
}

// setPhase moves st to phase, recording an event; a transition the phase
// graph does not allow is logged (it means a bug) but still made, since the
// reconciler's view of the world is the truth.
func (r *Reconciler) setPhase(ctx context.Context, sb *sandbox.Sandbox, st *sandbox.Status, phase sandbox.Phase, msg string) {
	from := st.Phase
	if from == phase {
		st.Message = msg
		return
	}
	if !from.CanTransition(phase) && from != "" {
		r.log.Error("unexpected phase transition", "sandbox", sb.Name, "from", from, "to", phase)
	}
	st.Phase, st.Message = phase, msg
	text := fmt.Sprintf("%s → %s", from, phase)
	if msg != "" {
		text += ": " + firstLine(msg)
	}
	typ := sandbox.EventNormal
	if phase == sandbox.PhaseFailed {
		typ = sandbox.EventWarning
		text = fmt.Sprintf("%s → %s: %s", from, phase, msg)
	}
	r.event(ctx, sb, sandbox.Event{Type: typ, Reason: sandbox.ReasonPhaseChanged, Message: text})
}

// writeStatus persists st if it differs from what is stored.
func (r *Reconciler) writeStatus(ctx context.Context, sb *sandbox.Sandbox, st sandbox.Status) {
	if reflect.DeepEqual(st, sb.Status) {
		return
	}
	if err := r.cfg.Store.UpdateStatus(ctx, sb.ID, st); err != nil {
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			r.log.Error("write status", "sandbox", sb.Name, "err", err)
		}
		return
	}
	sb.Status = st
	if r.cfg.OnChange != nil {
		cp := *sb
		r.cfg.OnChange(&cp, false)
	}
}

func (r *Reconciler) event(ctx context.Context, sb *sandbox.Sandbox, ev sandbox.Event) {
	ev.SandboxID = sb.ID
	if ev.Time.IsZero() {
		ev.Time = r.now()
	}
	if _, err := r.cfg.Store.AppendEvent(ctx, ev); err != nil {
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			r.log.Error("append event", "sandbox", sb.Name, "err", err)
		}
		return
	}
	if r.cfg.OnChange != nil {
		cp := *sb
		r.cfg.OnChange(&cp, false)
	}
}

// discard is a Progress for work no sandbox will show (collecting orphans).
type discard struct{}

func (discard) StageStarted(string)                     {}
func (discard) StageFinished(string, error)             {}
func (discard) StageSkipped(string, string)             {}
func (discard) Event(sandbox.EventType, string, string) {}
func (discard) External(string) func()                  { return func() {} }
