package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/logfile"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

// Up implements runtime.Runtime.
func (r *Runtime) Up(ctx context.Context, inst *runtime.Instance, p runtime.Progress) (*runtime.Observation, error) {
	t := inst.Template
	unlock, err := r.lockSandbox(ctx, inst.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	h, err := r.prepare(ctx, inst)
	if err != nil {
		return nil, err
	}
	if err := r.ensureResources(ctx, inst, h, p); err != nil {
		return nil, err
	}
	// Build or init steps a killed server left running would race with
	// the ones about to run.
	r.killStale(inst.ID)
	if err := r.stopRemoved(ctx, inst); err != nil {
		return nil, err
	}

	if err := r.ensureCheckout(ctx, inst, h, p); err != nil {
		return nil, err
	}
	svcs, err := r.render(inst, h)
	if err != nil {
		return nil, runtime.Permanent(err)
	}
	for _, name := range t.ServiceOrder {
		if err := r.renderFiles(svcs[name].workdir, svcs[name].files); err != nil {
			return nil, fmt.Errorf("render files of %s: %w", name, err)
		}
	}

	// Builds and dependencies do not wait for each other.
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var buildErr, depErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		if buildErr = r.buildAll(ctx2, inst, svcs, p); buildErr != nil {
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		if depErr = r.dependencies(ctx2, inst, h, p); depErr != nil {
			cancel()
		}
	}()
	wg.Wait()
	if err := firstReal(buildErr, depErr); err != nil {
		return nil, err
	}

	if err := r.startServices(ctx, inst, h, svcs, p); err != nil {
		return nil, err
	}
	r.dropUnusedGroup(inst.ID)
	return r.observe(inst.ID, h)
}

// firstReal prefers an error that caused a cancellation over the
// cancellation it caused in the other branch.
func firstReal(errs ...error) error {
	var cancelled error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if errors.Is(err, context.Canceled) {
			cancelled = err
			continue
		}
		return err
	}
	return cancelled
}

// prepare loads or creates the handle. Ports and the directory layout are
// recorded before anything could listen on a port, so a server killed right
// after never leaks or double-books one.
func (r *Runtime) prepare(ctx context.Context, inst *runtime.Instance) (*handle, error) {
	t := inst.Template
	h, err := r.loadHandle(ctx, inst.ID)
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = &handle{Ports: map[string]map[string]int{}}
	}
	h.Name = inst.Name
	want := map[string][]string{}
	h.Units = h.Units[:0]
	for _, name := range t.ServiceOrder {
		h.Units = append(h.Units, unitRef{Name: name, Kind: "service"})
		for _, p := range t.Services[name].Ports {
			want[name] = append(want[name], p.Name)
		}
	}
	for _, name := range t.DependencyOrder {
		h.Units = append(h.Units, unitRef{Name: name, Kind: t.Dependencies[name].Type})
		want[name] = []string{"postgres"}
	}
	if h.Suspended {
		// Resuming: take the ports back where nobody took them meanwhile.
		for unit, ports := range h.Ports {
			for pn, port := range ports {
				if !r.ports.reclaim(inst.ID, port) {
					r.log.Info("port taken while suspended; choosing another", "sandbox", inst.ID, "unit", unit, "port", port)
					delete(ports, pn)
				}
			}
		}
		h.Suspended = false
	}
	for unit, names := range want {
		if h.Ports[unit] == nil {
			h.Ports[unit] = map[string]int{}
		}
		for _, pn := range names {
			if _, ok := h.Ports[unit][pn]; ok {
				continue
			}
			port, err := r.ports.allocate(inst.ID)
			if err != nil {
				return nil, err
			}
			h.Ports[unit][pn] = port
		}
	}
	for _, ports := range h.Ports {
		for _, p := range ports {
			r.ports.reserve(inst.ID, p)
		}
	}
	if err := r.saveHandle(ctx, inst.ID, h); err != nil {
		return nil, err
	}
	dir := r.SandboxDir(inst.ID)
	for _, d := range []struct {
		path  string
		mode  fs.FileMode
		owned bool
	}{
		{dir, 0o755, false},
		{r.runDir(inst.ID), 0o700, false},
		{r.logDir(inst.ID), 0o750, false},
		{r.stateDir(inst.ID), 0o700, false},
		{filepath.Join(dir, "deps"), 0o755, false},
		{filepath.Join(dir, "tmp"), 0o700, true},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("create %s: %w", d.path, err)
		}
		if d.owned {
			if err := r.cfg.User.Chown(d.path); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range t.DependencyOrder {
		if _, err := r.ensurePassword(inst.ID, name); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func (r *Runtime) ensureCheckout(ctx context.Context, inst *runtime.Instance, h *handle, p runtime.Progress) error {
	key := checkoutKey(inst)
	if r.isDone(inst.ID, "checkout", key) {
		p.StageSkipped(sandbox.StageCheckout, "already checked out")
		return nil
	}
	p.StageStarted(sandbox.StageCheckout)
	done := p.External("checkout")
	res, err := r.checkout(ctx, inst)
	done()
	if err == nil {
		h.SourceRoot, h.Ref, h.SHA = res.root, res.ref, res.sha
		if err = r.saveHandle(ctx, inst.ID, h); err == nil {
			err = r.markDone(inst.ID, "checkout", key)
		}
	}
	p.StageFinished(sandbox.StageCheckout, err)
	return err
}

func checkoutKey(inst *runtime.Instance) string {
	src := inst.Template.Source
	if src == nil {
		return "none"
	}
	return strings.Join([]string{src.Git, src.Path, src.Ref, inst.BaseDir, inst.Ref}, "\x00")
}

// renderedService is a service with every ${...} expanded.
type renderedService struct {
	name    string
	svc     *template.Service
	workdir string
	env     []string
	build   string
	init    string
	run     string
	files   []renderedFile
	ports   map[string]int
	// source identifies the checkout the service is built from and runs
	// in: a new checkout (another ref or source) means a new build and a
	// restart, even when the commands read the same.
	source string
	// inputs digests the rendered files: a service reads them at start,
	// so a change restarts it.
	inputs string
	// ready is the readiness probe with its exec command expanded.
	ready *template.Probe
	// buildKey is the build command and env as they would be for any
	// sandbox name: a sandbox renamed when claimed from a warm pool (its
	// name, and URLs made from it, reach the build's env) keeps its build.
	// Builds must not bake the sandbox's name in; services get it at start.
	buildKey string
}

// anyName stands for the sandbox's name in build keys.
const anyName = "\x00sandbox\x00"

func (r *Runtime) vars(inst *runtime.Instance, h *handle) *template.Vars {
	t := inst.Template
	v := &template.Vars{
		SandboxName:  inst.Name,
		SandboxID:    inst.ID,
		GitRef:       h.Ref,
		GitSHA:       h.SHA,
		Services:     map[string]template.ServiceVars{},
		Dependencies: map[string]template.DependencyVars{},
		Endpoints:    inst.EndpointURLs,
	}
	for _, name := range t.ServiceOrder {
		sv := template.ServiceVars{Host: "127.0.0.1"}
		for _, p := range t.Services[name].Ports {
			sv.Ports = append(sv.Ports, template.PortVar{Name: p.Name, Port: h.Ports[name][p.Name]})
		}
		v.Services[name] = sv
	}
	for _, name := range t.DependencyOrder {
		d := t.Dependencies[name]
		db := ""
		if len(d.Databases) > 0 {
			db = d.Databases[0]
		}
		v.Dependencies[name] = template.DependencyVars{
			Host: "127.0.0.1", Port: h.Ports[name]["postgres"],
			User: postgresUser, Password: r.readPassword(inst.ID, name), Database: db,
		}
	}
	return v
}

func (r *Runtime) render(inst *runtime.Instance, h *handle) (map[string]*renderedService, error) {
	t := inst.Template
	v := r.vars(inst, h)
	root := filepath.Join(r.SandboxDir(inst.ID), h.SourceRoot)
	base := r.baseEnv(inst.ID, inst.Name)
	keyVars := *v
	keyVars.SandboxName = anyName
	keyVars.Endpoints = map[string]string{}
	for ep, url := range v.Endpoints {
		keyVars.Endpoints[ep] = strings.ReplaceAll(url, "--"+inst.Name+".", "--"+anyName+".")
	}
	keyBase := r.baseEnv(inst.ID, anyName)
	out := map[string]*renderedService{}
	for _, name := range t.ServiceOrder {
		// The template owns the variable namespace and the expansion rules
		// (template env under service env, paths re-checked after
		// expansion); --set overrides are already applied to t.
		spec, err := t.ExpandService(name, v, nil)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(spec.Run) == "" {
			// CheckTemplate refuses such templates; one applied before
			// that check existed fails here, for good.
			return nil, errors.New(noRunMessage(name, t.Services[name]))
		}
		rs := &renderedService{
			name: name, svc: t.Services[name], ports: h.Ports[name], workdir: filepath.Join(root, spec.Workdir),
			source: checkoutKey(inst) + "\x00" + h.SourceRoot + "\x00" + h.SHA,
			build:  spec.Build, init: spec.Init, run: spec.Run, ready: spec.Ready,
			env: mergeEnv(base, spec.Env),
		}
		if spec.Build != "" {
			ks, err := t.ExpandService(name, &keyVars, nil)
			if err != nil {
				return nil, err
			}
			rs.buildKey = ks.Build + "\x00" + strings.Join(mergeEnv(keyBase, ks.Env), "\x00")
		}
		inputs := sha256.New()
		for _, f := range spec.Files {
			mode, perr := strconv.ParseUint(f.Mode, 8, 32)
			if perr != nil {
				mode = 0o644
			}
			rs.files = append(rs.files, renderedFile{path: f.Path, content: f.Content, mode: fs.FileMode(mode)})
			fmt.Fprintf(inputs, "%s\x00%o\x00%d\x00%s", f.Path, mode, len(f.Content), f.Content)
		}
		if len(spec.Files) > 0 {
			rs.inputs = hex.EncodeToString(inputs.Sum(nil)[:12])
		}
		out[name] = rs
	}
	return out, nil
}

func (r *Runtime) buildAll(ctx context.Context, inst *runtime.Instance, svcs map[string]*renderedService, p runtime.Progress) error {
	var todo []*renderedService
	for _, name := range inst.Template.ServiceOrder {
		if s := svcs[name]; s.build != "" {
			todo = append(todo, s)
		}
	}
	if len(todo) == 0 {
		p.StageSkipped(sandbox.StageBuild, "no service has a build command")
		return nil
	}
	p.StageStarted(sandbox.StageBuild)
	err := func() error {
		for _, s := range todo {
			key := s.source + "\x00" + s.buildKey
			stage := sandbox.StageBuild + "/" + s.name
			if r.isDone(inst.ID, "build-"+s.name, key) {
				p.StageSkipped(stage, "already built")
				continue
			}
			p.StageStarted(stage)
			err := r.runServiceTask(ctx, inst, s, "build", s.build, p)
			if err == nil {
				err = r.markDone(inst.ID, "build-"+s.name, key)
			}
			p.StageFinished(stage, err)
			if err != nil {
				return err
			}
		}
		return nil
	}()
	p.StageFinished(sandbox.StageBuild, err)
	return err
}

// runServiceTask runs a build or init command of a service. A command that
// ran and failed is permanent: running it again gives the same result.
func (r *Runtime) runServiceTask(ctx context.Context, inst *runtime.Instance, s *renderedService, kind, command string, p runtime.Progress) error {
	tl, err := logfile.Open(r.taskLog(inst.ID, s.name), r.cfg.LogMaxBytes)
	if err != nil {
		return err
	}
	defer tl.Close()
	// One log line per command line, so a multi-line script reads as
	// written rather than flattened into one line.
	for i, line := range strings.Split(strings.TrimRight(command, "\n"), "\n") {
		prompt := "$ "
		if i > 0 {
			prompt = "> "
		}
		_ = tl.WriteLine(nowUTC(), "system", prompt+line)
	}
	done := p.External(kind)
	err = r.runTask(ctx, inst.ID, task{
		unit: s.name, what: kind + " of " + s.name, stream: kind,
		argv: []string{"/bin/sh", "-c", command}, dir: s.workdir, env: s.env, log: tl,
	})
	done()
	var te *taskError
	if errors.As(err, &te) {
		return runtime.Permanent(fmt.Errorf("%w\nsee `sandpit logs %s %s`", err, inst.Name, s.name))
	}
	return err
}

func (r *Runtime) dependencies(ctx context.Context, inst *runtime.Instance, h *handle, p runtime.Progress) error {
	t := inst.Template
	if len(t.DependencyOrder) == 0 {
		p.StageSkipped(sandbox.StageDependencies, "no dependencies")
		return nil
	}
	p.StageStarted(sandbox.StageDependencies)
	errs := make([]error, len(t.DependencyOrder))
	var wg sync.WaitGroup
	for i, name := range t.DependencyOrder {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stage := sandbox.StageDependencies + "/" + name
			p.StageStarted(stage)
			errs[i] = r.ensurePostgres(ctx, inst, h, name, t.Dependencies[name], p)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("dependency %s: %w", name, errs[i])
			}
			p.StageFinished(stage, errs[i])
		}()
	}
	wg.Wait()
	err := firstReal(errs...)
	p.StageFinished(sandbox.StageDependencies, err)
	return err
}

// stageGroup reports one top-level stage made of per-service parts that
// run concurrently: it starts with the first part and ends with the last.
type stageGroup struct {
	p     runtime.Progress
	name  string
	mu    sync.Mutex
	left  int
	begun bool
	ended bool
}

func (g *stageGroup) begin() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.begun {
		g.begun = true
		g.p.StageStarted(g.name)
	}
}

func (g *stageGroup) end(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended {
		return
	}
	g.left--
	if err != nil || g.left == 0 {
		g.ended = true
		g.p.StageFinished(g.name, err)
	}
}

// startServices runs each service's init, start and readiness wait as soon
// as everything in its `after` list is ready. Dependencies are ready by now.
func (r *Runtime) startServices(ctx context.Context, inst *runtime.Instance, h *handle, svcs map[string]*renderedService, p runtime.Progress) error {
	t := inst.Template
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := map[string]chan struct{}{}
	for _, name := range t.ServiceOrder {
		ready[name] = make(chan struct{})
	}
	nInit := 0
	for _, name := range t.ServiceOrder {
		if svcs[name].init != "" {
			nInit++
		}
	}
	initG := &stageGroup{p: p, name: "init", left: nInit}
	startG := &stageGroup{p: p, name: sandbox.StageStart, left: len(t.ServiceOrder)}
	readyG := &stageGroup{p: p, name: sandbox.StageReady, left: len(t.ServiceOrder)}
	errs := make([]error, len(t.ServiceOrder))
	var wg sync.WaitGroup
	for i, name := range t.StartOrder() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := svcs[name]
			for _, a := range s.svc.After {
				if ch, ok := ready[a]; ok {
					select {
					case <-ch:
					case <-ctx.Done():
						errs[i] = ctx.Err()
						return
					}
				}
			}
			err := r.startService(ctx, inst, s, p, initG, startG, readyG)
			if err != nil {
				errs[i] = err
				cancel()
				return
			}
			close(ready[name])
		}()
	}
	wg.Wait()
	return firstReal(errs...)
}

func (r *Runtime) startService(ctx context.Context, inst *runtime.Instance, s *renderedService, p runtime.Progress, initG, startG, readyG *stageGroup) error {
	if s.init != "" {
		stage := "init/" + s.name
		if r.isDone(inst.ID, "init-"+s.name, s.init) {
			p.StageSkipped(stage, "already ran")
			initG.begin()
			initG.end(nil)
		} else {
			initG.begin()
			p.StageStarted(stage)
			err := r.runServiceTask(ctx, inst, s, "init", s.init, p)
			if err == nil {
				err = r.markDone(inst.ID, "init-"+s.name, s.init)
			}
			p.StageFinished(stage, err)
			initG.end(err)
			if err != nil {
				return err
			}
		}
	}
	startG.begin()
	stage := sandbox.StageStart + "/" + s.name
	p.StageStarted(stage)
	restart := string(s.svc.Restart)
	if restart == "" {
		restart = string(template.RestartAlways)
	}
	spec := &shim.Spec{
		Name: s.name, Argv: []string{"/bin/sh", "-c", s.run}, Dir: s.workdir, Env: s.env,
		Restart: restart,
	}
	done := p.External("start")
	adopted, err := r.ensureShim(ctx, inst.ID, s.name, spec, s.source+"\x00"+s.inputs)
	done()
	p.StageFinished(stage, err)
	startG.end(err)
	if err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	if adopted {
		p.Event(sandbox.EventNormal, sandbox.ReasonAdopted, fmt.Sprintf("service %s was already running (across a server restart, or while only something else changed); kept it", s.name))
	}
	readyG.begin()
	stage = sandbox.StageReady + "/" + s.name
	p.StageStarted(stage)
	done = p.External("ready")
	err = r.waitReady(ctx, probeTarget{id: inst.ID, name: inst.Name, unit: s.name, probe: s.ready, ports: s.ports, workdir: s.workdir, env: s.env})
	done()
	p.StageFinished(stage, err)
	readyG.end(err)
	return err
}
