package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/template"
)

// ErrInvalid marks a request that is wrong in itself (a bad name, an
// unknown dependency); the API answers 400.
var ErrInvalid = errors.New("invalid request")

// ErrUnsupported: the runtime cannot keep snapshots.
var ErrUnsupported = errors.New("this server's runtime does not support snapshots")

// hinted carries what the user can do about an error.
type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }

// Hint says what to do next.
func (e *hinted) Hint() string { return e.hint }

func withHint(err error, hint string) error { return &hinted{err: err, hint: hint} }

// kindError reads as its message alone while errors.Is still tells its
// kind (ErrInvalid, store.ErrConflict, ...), so users do not see "conflict:
// " prefixes.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func errf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// notFound turns a store lookup's error into "no KIND named NAME".
func notFound(err error, kind, name string) error {
	if errors.Is(err, store.ErrNotFound) {
		return errf(store.ErrNotFound, "no %s named %q", kind, name)
	}
	return err
}

// Config holds the Manager's dependencies.
type Config struct {
	Store store.Store
	// Runtime keeps the data; nil means snapshots are not supported.
	Runtime runtime.Snapshotter
	Logger  *slog.Logger
	Now     func() time.Time
	// SpoolDir holds uploaded dumps until they are imported (created 0700).
	SpoolDir string
	// Workers bounds how many snapshots are made at once (default 1: each
	// one reads or writes a whole database).
	Workers int
	// OnReady is called when a snapshot becomes Ready, so sandboxes that
	// wait for it are reconciled now rather than at their next retry.
	OnReady func(s *sandbox.Snapshot)
	// Notify is called after an event was added to a sandbox, for
	// watchers.
	Notify func(sandboxID string)
}

// Manager creates, lists, resolves and deletes snapshots.
type Manager struct {
	cfg Config
	log *slog.Logger
	sem chan struct{}
	wg  sync.WaitGroup

	mu     sync.Mutex
	runCtx context.Context
	// templates caches parsed template versions (they are immutable).
	templates map[string]*template.Template
}

// New returns a Manager; call Start before creating snapshots.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	return &Manager{
		cfg: cfg, log: cfg.Logger.With("component", "snapshots"), sem: make(chan struct{}, cfg.Workers),
		runCtx: context.Background(), templates: map[string]*template.Template{},
	}
}

// Store describes how the runtime keeps snapshots ("" when unsupported).
func (m *Manager) Store() (method, description string) {
	if m.cfg.Runtime == nil {
		return "", ""
	}
	return m.cfg.Runtime.SnapshotStore()
}

// Start removes what a crash left (data and uploads no record owns,
// uploads that never finished) and resumes snapshots still Creating. Work
// runs until ctx ends; Wait waits for it.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	m.runCtx = ctx
	m.mu.Unlock()
	if m.cfg.Runtime == nil {
		return nil
	}
	if err := os.MkdirAll(m.cfg.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	all, err := m.cfg.Store.ListSnapshots(ctx)
	if err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	known := map[string]*sandbox.Snapshot{}
	for _, s := range all {
		known[s.ID] = s
	}
	ids, err := m.cfg.Runtime.SnapshotIDs(ctx)
	if err != nil {
		return fmt.Errorf("snapshots: list stored data: %w", err)
	}
	for _, id := range ids {
		if s := known[id]; s == nil || s.Phase == sandbox.SnapshotFailed {
			m.log.Info("removing snapshot data no snapshot owns", "id", id)
			if err := m.cfg.Runtime.DeleteSnapshot(ctx, id); err != nil {
				m.log.Warn("remove leftover snapshot data", "id", id, "err", err)
			}
		}
	}
	spooled, _ := os.ReadDir(m.cfg.SpoolDir)
	for _, e := range spooled {
		id := strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".part"), ".dump")
		if s := known[id]; s == nil || s.Phase != sandbox.SnapshotCreating || strings.HasSuffix(e.Name(), ".part") {
			_ = os.Remove(filepath.Join(m.cfg.SpoolDir, e.Name()))
		}
	}
	for _, s := range all {
		if s.Phase != sandbox.SnapshotCreating {
			continue
		}
		if s.Source.Kind == sandbox.SnapshotFromImport && !fileExists(m.spoolPath(s.ID)) {
			// The upload never completed: the client saw its request fail,
			// and the file is on its side. Nothing usable exists.
			m.log.Warn("dropping a snapshot whose upload a restart interrupted", "snapshot", s.Name)
			if err := m.cfg.Store.DeleteSnapshot(ctx, s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("snapshots: %w", err)
			}
			continue
		}
		m.log.Info("resuming snapshot creation interrupted by a restart", "snapshot", s.Name, "source", s.Source.Kind)
		m.launch(s)
	}
	return nil
}

// Wait waits for snapshot work to stop (after Start's ctx ended).
func (m *Manager) Wait() { m.wg.Wait() }

func (m *Manager) spoolPath(id string) string { return filepath.Join(m.cfg.SpoolDir, id+".dump") }

// Capture starts making a snapshot of a sandbox's dependency.
func (m *Manager) Capture(ctx context.Context, name, sandboxName, dep, by string) (*sandbox.Snapshot, error) {
	if err := m.supported(); err != nil {
		return nil, err
	}
	if err := sandbox.ValidateSnapshotName(name); err != nil {
		return nil, errf(ErrInvalid, "%v", err)
	}
	sb, err := m.cfg.Store.GetSandboxByName(ctx, sandboxName)
	if err != nil {
		return nil, withHint(notFound(err, "sandbox", sandboxName), "see `sandpit list` for the sandboxes")
	}
	if sb.Spec.Deleting() {
		return nil, errf(store.ErrConflict, "sandbox %s is being deleted", sb.Name)
	}
	t, err := m.template(ctx, sb.Spec.Template, sb.Spec.TemplateVersion)
	if err != nil {
		return nil, err
	}
	d := t.Dependencies[dep]
	if d == nil {
		return nil, withHint(errf(ErrInvalid, "sandbox %s has no dependency %q", sb.Name, dep), depChoices(t))
	}
	s := &sandbox.Snapshot{
		Name: name, Type: d.Type, Version: d.Version, CreatedBy: by,
		Source: sandbox.SnapshotSource{Kind: sandbox.SnapshotFromSandbox, Sandbox: sb.Name, SandboxID: sb.ID, Dependency: dep},
	}
	if err := m.claim(ctx, s); err != nil {
		return nil, err
	}
	m.log.Info("capturing snapshot", "snapshot", name, "sandbox", sb.Name, "dependency", dep)
	m.launch(s)
	return m.withUsers(ctx, s)
}

// ImportRequest describes a dump to import.
type ImportRequest struct {
	Name, Type, Version, Database, Filename, By string
}

var (
	reVersion    = regexp.MustCompile(`^[0-9]{1,3}$`)
	reIdentifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$-]{0,62}$`)
)

// Import stores the dump read from body and starts restoring it into a new
// snapshot. The name is claimed before the upload, so a taken name fails
// fast; a failed upload leaves nothing.
func (m *Manager) Import(ctx context.Context, req ImportRequest, body io.Reader) (*sandbox.Snapshot, error) {
	if err := m.supported(); err != nil {
		return nil, err
	}
	if err := sandbox.ValidateSnapshotName(req.Name); err != nil {
		return nil, errf(ErrInvalid, "%v", err)
	}
	switch {
	case req.Type == "":
		return nil, withHint(errf(ErrInvalid, "no dependency type given"), "pass --type postgres")
	case req.Type != "postgres":
		return nil, withHint(errf(ErrInvalid, "cannot import dependency type %q", req.Type), "the supported type is postgres")
	case req.Version != "" && !reVersion.MatchString(req.Version):
		return nil, withHint(errf(ErrInvalid, "version %q is not a major version", req.Version), `use the major version only, like "15"`)
	case req.Database != "" && !reIdentifier.MatchString(req.Database):
		return nil, errf(ErrInvalid, "database name %q: use letters, digits, '_' and '-', starting with a letter (at most 63)", req.Database)
	}
	s := &sandbox.Snapshot{
		Name: req.Name, Type: req.Type, Version: req.Version, CreatedBy: req.By,
		Source: sandbox.SnapshotSource{Kind: sandbox.SnapshotFromImport, File: filepath.Base(req.Filename), Database: req.Database},
	}
	if req.Filename == "" {
		s.Source.File = ""
	}
	if err := m.claim(ctx, s); err != nil {
		return nil, err
	}
	if err := m.spool(s.ID, body); err != nil {
		// Nothing was made: give the name back.
		_ = m.cfg.Store.DeleteSnapshot(context.WithoutCancel(ctx), s.ID)
		if errors.Is(err, ErrInvalid) {
			return nil, err
		}
		return nil, fmt.Errorf("upload the dump: %w", err)
	}
	m.log.Info("importing snapshot", "snapshot", s.Name, "file", s.Source.File)
	m.launch(s)
	return m.withUsers(ctx, s)
}

// spool writes the upload to a .part file and renames it when complete, so
// a restart can tell a whole upload from a torn one.
func (m *Manager) spool(id string, body io.Reader) error {
	part := m.spoolPath(id) + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, body)
	if err == nil && n == 0 {
		err = errf(ErrInvalid, "the dump is empty: nothing was uploaded")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, m.spoolPath(id))
	}
	if err != nil {
		os.Remove(part)
	}
	return err
}

// claim stores s in phase Creating. A Failed snapshot of the same name is
// replaced; any other is a conflict.
func (m *Manager) claim(ctx context.Context, s *sandbox.Snapshot) error {
	for attempt := 0; ; attempt++ {
		err := m.cfg.Store.CreateSnapshot(ctx, s)
		if !errors.Is(err, store.ErrConflict) || attempt > 0 {
			return err
		}
		old, gerr := m.cfg.Store.GetSnapshotByName(ctx, s.Name)
		if gerr != nil {
			return err
		}
		if old.Phase != sandbox.SnapshotFailed {
			hint := "choose another name, or delete it first with `sandpit snapshot delete " + s.Name + "`"
			if old.Phase == sandbox.SnapshotCreating {
				hint = "it is being created now; wait for it (`sandpit snapshot get " + s.Name + "`) or choose another name"
			}
			return withHint(errf(store.ErrConflict, "snapshot %s already exists (%s)", s.Name, old.Phase), hint)
		}
		if err := m.cfg.Store.DeleteSnapshot(ctx, old.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
}

func (m *Manager) launch(orig *sandbox.Snapshot) {
	// The work updates its own copy: the caller goes on to answer with
	// the record as it was.
	cp := *orig
	s := &cp
	m.mu.Lock()
	ctx := m.runCtx
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case m.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-m.sem }()
		m.make(ctx, s)
	}()
}

// make does the work of creating s and records the outcome.
func (m *Manager) make(ctx context.Context, s *sandbox.Snapshot) {
	start := m.cfg.Now()
	var data *runtime.SnapshotData
	var err error
	switch s.Source.Kind {
	case sandbox.SnapshotFromSandbox:
		data, err = m.cfg.Runtime.CaptureSnapshot(ctx, s.Source.SandboxID, s.Source.Dependency, s.ID)
	default:
		data, err = m.cfg.Runtime.ImportSnapshot(ctx, runtime.ImportRequest{
			SnapshotID: s.ID, Type: s.Type, Version: s.Version, DumpPath: m.spoolPath(s.ID), Database: s.Source.Database,
		})
	}
	if ctx.Err() != nil {
		// Shutting down: the record stays Creating and the next start
		// redoes the work from the beginning.
		return
	}
	bg := context.WithoutCancel(ctx)
	took := m.cfg.Now().Sub(start)
	if err != nil {
		m.log.Warn("snapshot creation failed", "snapshot", s.Name, "err", err)
		if derr := m.cfg.Runtime.DeleteSnapshot(bg, s.ID); derr != nil {
			m.log.Warn("remove data of failed snapshot", "snapshot", s.Name, "err", derr)
		}
		os.Remove(m.spoolPath(s.ID))
		s.Phase, s.Message = sandbox.SnapshotFailed, err.Error()
		if uerr := m.cfg.Store.UpdateSnapshot(bg, s); uerr != nil && !errors.Is(uerr, store.ErrNotFound) {
			m.log.Error("record failed snapshot", "snapshot", s.Name, "err", uerr)
		}
		m.sandboxEvent(bg, s, sandbox.EventWarning, fmt.Sprintf("capturing dependency %s as snapshot %s failed: %v", s.Source.Dependency, s.Name, err))
		return
	}
	now := m.cfg.Now()
	s.Phase, s.Message = sandbox.SnapshotReady, ""
	s.Version, s.SizeBytes, s.Method, s.Handle, s.ReadyAt = data.Version, data.SizeBytes, data.Method, data.Handle, &now
	if data.Database != "" {
		s.Source.Database = data.Database
	}
	if data.Format != "" {
		s.Source.Format = data.Format
	}
	if err := m.cfg.Store.UpdateSnapshot(bg, s); err != nil {
		// Deleted while it was being made (delete --force): drop the data.
		m.log.Info("snapshot was deleted while being created; removing its data", "snapshot", s.Name, "err", err)
		_ = m.cfg.Runtime.DeleteSnapshot(bg, s.ID)
		return
	}
	os.Remove(m.spoolPath(s.ID))
	m.log.Info("snapshot ready", "snapshot", s.Name, "size", humanBytes(s.SizeBytes), "method", s.Method, "took", took.Round(time.Millisecond))
	m.sandboxEvent(bg, s, sandbox.EventNormal, fmt.Sprintf("dependency %s captured as snapshot %s (%s, %s) in %s", s.Source.Dependency, s.Name, humanBytes(s.SizeBytes), s.Method, took.Round(time.Millisecond)))
	if m.cfg.OnReady != nil {
		m.cfg.OnReady(s)
	}
}

// sandboxEvent tells a captured sandbox's watchers what happened to it.
func (m *Manager) sandboxEvent(ctx context.Context, s *sandbox.Snapshot, typ sandbox.EventType, msg string) {
	if s.Source.Kind != sandbox.SnapshotFromSandbox {
		return
	}
	_, err := m.cfg.Store.AppendEvent(ctx, sandbox.Event{SandboxID: s.Source.SandboxID, Type: typ, Reason: sandbox.ReasonSnapshotCaptured, Message: msg})
	if err != nil {
		return // the sandbox is gone
	}
	if m.cfg.Notify != nil {
		m.cfg.Notify(s.Source.SandboxID)
	}
}

// Get returns a snapshot with the sandboxes that use it.
func (m *Manager) Get(ctx context.Context, name string) (*sandbox.Snapshot, error) {
	s, err := m.cfg.Store.GetSnapshotByName(ctx, name)
	if err != nil {
		return nil, withHint(notFound(err, "snapshot", name), "see `sandpit snapshot list` for the snapshots")
	}
	return m.withUsers(ctx, s)
}

// List returns every snapshot with its users.
func (m *Manager) List(ctx context.Context) ([]*sandbox.Snapshot, error) {
	all, err := m.cfg.Store.ListSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	users, err := m.users(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range all {
		s.UsedBy = users[s.Name]
		if s.UsedBy == nil {
			s.UsedBy = []string{}
		}
	}
	return all, nil
}

func (m *Manager) withUsers(ctx context.Context, s *sandbox.Snapshot) (*sandbox.Snapshot, error) {
	users, err := m.users(ctx)
	if err != nil {
		return nil, err
	}
	cp := *s
	cp.UsedBy = users[s.Name]
	if cp.UsedBy == nil {
		cp.UsedBy = []string{}
	}
	return &cp, nil
}

// users maps snapshot names to the sandboxes (not being deleted) whose
// template starts a dependency from it or that asked to be restored from
// it, sorted.
func (m *Manager) users(ctx context.Context) (map[string][]string, error) {
	sbs, err := m.cfg.Store.ListSandboxes(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, sb := range sbs {
		if sb.Spec.Deleting() {
			continue
		}
		names := map[string]bool{}
		if t, err := m.template(ctx, sb.Spec.Template, sb.Spec.TemplateVersion); err == nil {
			for _, d := range t.Dependencies {
				if d.Snapshot != "" {
					names[d.Snapshot] = true
				}
			}
		}
		for _, r := range sb.Spec.Restores {
			names[r.Snapshot] = true
		}
		for n := range names {
			out[n] = append(out[n], sb.Name)
		}
	}
	for _, l := range out {
		sort.Strings(l)
	}
	return out, nil
}

func (m *Manager) template(ctx context.Context, name string, version int) (*template.Template, error) {
	key := fmt.Sprintf("%s@%d", name, version)
	m.mu.Lock()
	t := m.templates[key]
	m.mu.Unlock()
	if t != nil {
		return t, nil
	}
	tv, err := m.cfg.Store.GetTemplate(ctx, name, version)
	if err != nil {
		return nil, err
	}
	t, err = template.Parse(tv.Filename, tv.Source)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.templates[key] = t
	m.mu.Unlock()
	return t, nil
}

// Delete deletes a snapshot. While sandboxes use it, only with force:
// they keep their own data either way (clones do not depend on their
// source), but new launches and restores from it then fail.
func (m *Manager) Delete(ctx context.Context, name string, force bool) error {
	s, err := m.cfg.Store.GetSnapshotByName(ctx, name)
	if err != nil {
		return withHint(notFound(err, "snapshot", name), "see `sandpit snapshot list` for the snapshots")
	}
	if !force {
		users, err := m.users(ctx)
		if err != nil {
			return err
		}
		if u := users[name]; len(u) > 0 {
			return withHint(errf(store.ErrConflict, "snapshot %s is used by %s", name, strings.Join(u, ", ")),
				"delete those sandboxes first, or pass --force: they keep their data, but new sandboxes and restores from this snapshot will fail")
		}
		if s.Phase == sandbox.SnapshotCreating {
			return withHint(errf(store.ErrConflict, "snapshot %s is still being created", name), "wait until it is Ready or Failed, or pass --force to stop using it")
		}
	}
	// The record goes first: from then on nothing resolves the name, and a
	// crash before the data is gone leaves data that Start removes.
	if err := m.cfg.Store.DeleteSnapshot(ctx, s.ID); err != nil {
		return err
	}
	if s.Phase != sandbox.SnapshotCreating && m.cfg.Runtime != nil {
		if err := m.cfg.Runtime.DeleteSnapshot(ctx, s.ID); err != nil {
			m.log.Warn("remove snapshot data (retried at the next start)", "snapshot", name, "err", err)
		}
	}
	m.log.Info("snapshot deleted", "snapshot", name, "forced", force)
	return nil
}

// Resolve implements runtime.SnapshotResolver.
func (m *Manager) Resolve(ctx context.Context, name string) (*runtime.SnapshotRef, error) {
	s, err := m.cfg.Store.GetSnapshotByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, runtime.Permanent(fmt.Errorf("snapshot %s does not exist: create it with `sandpit snapshot import %s --type postgres --file DUMP` or `sandpit snapshot create %s --from SANDBOX/DEPENDENCY`, then recreate this sandbox", name, name, name))
	}
	if err != nil {
		return nil, err
	}
	switch s.Phase {
	case sandbox.SnapshotFailed:
		return nil, runtime.Permanent(fmt.Errorf("snapshot %s could not be created (%s): create it again, then recreate this sandbox", name, firstLine(s.Message)))
	case sandbox.SnapshotCreating:
		return nil, fmt.Errorf("snapshot %s is still being created; the sandbox continues when it is Ready", name)
	}
	return &runtime.SnapshotRef{ID: s.ID, Name: s.Name, Type: s.Type, Version: s.Version, Handle: s.Handle}, nil
}

// CheckTemplate checks a template's snapshot references against the
// snapshots that exist: a type or major version mismatch is an error (at
// the reference's position); a missing snapshot only a warning, since a
// template may be applied before its snapshot is imported.
func (m *Manager) CheckTemplate(ctx context.Context, t *template.Template) (warnings []string, err error) {
	var errs template.ErrorList
	for _, name := range t.DependencyOrder {
		d := t.Dependencies[name]
		if d.Snapshot == "" {
			continue
		}
		path := "dependencies." + name + ".snapshot"
		s, gerr := m.cfg.Store.GetSnapshotByName(ctx, d.Snapshot)
		switch {
		case errors.Is(gerr, store.ErrNotFound):
			warnings = append(warnings, fmt.Sprintf("%s: dependency %s starts from snapshot %s, which does not exist yet: sandboxes of this template fail until you create it (`sandpit snapshot import %s --type %s --file DUMP`)", t.Pos(path), name, d.Snapshot, d.Snapshot, d.Type))
		case gerr != nil:
			return nil, gerr
		case s.Type != d.Type:
			errs = append(errs, &template.Error{Pos: t.Pos(path), Path: path, Msg: fmt.Sprintf("snapshot %s holds %s data, but dependency %s is %s: use a %s snapshot", s.Name, s.Type, name, d.Type, d.Type)})
		case s.Version != "" && s.Version != d.Version:
			errs = append(errs, &template.Error{Pos: t.Pos(path), Path: path, Msg: fmt.Sprintf("snapshot %s holds %s %s data, but dependency %s is %s %s: set version: %q, or use a snapshot made with %s %s", s.Name, s.Type, s.Version, name, d.Type, d.Version, s.Version, d.Type, d.Version)})
		case s.Phase == sandbox.SnapshotFailed:
			warnings = append(warnings, fmt.Sprintf("%s: snapshot %s failed to be created (%s): sandboxes of this template fail until you create it again", t.Pos(path), d.Snapshot, firstLine(s.Message)))
		}
	}
	if len(errs) > 0 {
		return warnings, &errs
	}
	return warnings, nil
}

// CheckRestore checks that a sandbox's dependency can be reset to a
// snapshot now, and returns the snapshot.
func (m *Manager) CheckRestore(ctx context.Context, sb *sandbox.Sandbox, dep, name string) (*sandbox.Snapshot, error) {
	if err := m.supported(); err != nil {
		return nil, err
	}
	t, err := m.template(ctx, sb.Spec.Template, sb.Spec.TemplateVersion)
	if err != nil {
		return nil, err
	}
	d := t.Dependencies[dep]
	if d == nil {
		return nil, withHint(errf(ErrInvalid, "sandbox %s has no dependency %q", sb.Name, dep), depChoices(t))
	}
	s, err := m.cfg.Store.GetSnapshotByName(ctx, name)
	if err != nil {
		return nil, withHint(notFound(err, "snapshot", name), "see `sandpit snapshot list` for the snapshots")
	}
	switch {
	case s.Phase == sandbox.SnapshotCreating:
		return nil, withHint(errf(store.ErrConflict, "snapshot %s is still being created", name), "wait until it is Ready: `sandpit snapshot get "+name+"`")
	case s.Phase == sandbox.SnapshotFailed:
		return nil, withHint(errf(store.ErrConflict, "snapshot %s failed to be created: %s", name, firstLine(s.Message)), "create it again")
	case s.Type != d.Type || s.Version != d.Version:
		return nil, withHint(errf(ErrInvalid, "snapshot %s holds %s %s data, but dependency %s is %s %s", name, s.Type, s.Version, dep, d.Type, d.Version), "use a snapshot of the same type and major version")
	}
	return s, nil
}

func (m *Manager) supported() error {
	if m.cfg.Runtime == nil {
		return ErrUnsupported
	}
	return nil
}

func depChoices(t *template.Template) string {
	if len(t.DependencyOrder) == 0 {
		return "its template has no dependencies"
	}
	return "its dependencies: " + strings.Join(t.DependencyOrder, ", ")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist)
}

// humanBytes formats a size for messages.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
