package local

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/logfile"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/runtime/local/volume"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

// postgresUser is the superuser of every sandbox cluster. Sandboxes are
// development databases: the app connecting as the owner is what teams
// expect, and the cluster listens on loopback only, behind a password.
const postgresUser = "postgres"

// pgReadyTimeout bounds how long a freshly started cluster may take to
// accept connections (crash recovery of a big one can take a while).
const pgReadyTimeout = 2 * time.Minute

// passwordPath holds a dependency's generated password, readable by the
// server only.
func (r *Runtime) passwordPath(id, dep string) string {
	return filepath.Join(r.stateDir(id), dep+".password")
}

func (r *Runtime) ensurePassword(id, dep string) (string, error) {
	p := r.passwordPath(id, dep)
	if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
		return string(b), nil
	}
	pw, err := randomPassword()
	if err != nil {
		return "", err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(pw), 0o600); err != nil {
		return "", err
	}
	return pw, os.Rename(tmp, p)
}

func randomPassword() (string, error) {
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

func (r *Runtime) readPassword(id, dep string) string {
	b, _ := os.ReadFile(r.passwordPath(id, dep))
	return string(b)
}

// pgBinDir finds a version's binaries or says what is installed.
func (r *Runtime) pgBinDir(version string) (string, error) {
	dir := r.cfg.PostgresBinDir(version)
	if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
		return dir, nil
	}
	installed := installedPostgres()
	hint := "no PostgreSQL server is installed: apt-get install postgresql"
	if len(installed) > 0 {
		hint = fmt.Sprintf("installed here: %s; use one of those as the version, or apt-get install postgresql-%s", strings.Join(installed, ", "), version)
	}
	return "", fmt.Errorf("PostgreSQL %s is not installed on this host (no %s): %s", version, filepath.Join(dir, "postgres"), hint)
}

func installedPostgres() []string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	var out []string
	for _, m := range matches {
		out = append(out, filepath.Base(filepath.Dir(filepath.Dir(m))))
	}
	sort.Strings(out)
	return out
}

// CheckTemplate implements runtime.TemplateChecker: dependencies this host
// cannot run, and resource classes this server does not define, are
// reported when the template is applied.
func (r *Runtime) CheckTemplate(t *template.Template) error {
	var errs template.ErrorList
	for _, name := range t.ServiceOrder {
		if s := t.Services[name]; s != nil && strings.TrimSpace(s.Run) == "" {
			path := "services." + name
			errs = append(errs, &template.Error{Pos: t.Pos(path), Path: path + ".run", Msg: noRunMessage(name, s)})
		}
	}
	for _, name := range t.DependencyOrder {
		d := t.Dependencies[name]
		if d.Type != "postgres" {
			continue
		}
		if _, err := r.pgBinDir(d.Version); err != nil {
			path := "dependencies." + name + ".version"
			errs = append(errs, &template.Error{Pos: t.Pos(path), Path: path, Msg: fmt.Sprintf("dependency %q: %v", name, err)})
		}
	}
	if e := r.checkResources(t); e != nil {
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return &errs
	}
	return nil
}

// noRunMessage explains why the local runtime cannot start a service that
// has only an image.
func noRunMessage(name string, s *template.Service) string {
	msg := fmt.Sprintf("service %s has no run command: the local runtime runs commands; add run:", name)
	if s.Image != "" {
		msg += fmt.Sprintf(" (its image %s is only used by the kubernetes runtime)", s.Image)
	}
	return msg
}

// seedKey is the key of the seed marker: what the dependency's data was
// made from. A different key means new data: the old data is dropped.
func seedKey(d *template.Dependency, s runtime.Seed) string {
	if s.Key == "" {
		return "initdb " + d.Version
	}
	return s.Key
}

// dataVolume names a dependency's data volume in the volume store.
func dataVolume(id, dep string) string { return "deps/" + id + "/" + dep }

// dataDir is a dependency's PostgreSQL data directory.
func (r *Runtime) dataDir(id, dep string) string {
	p, _ := r.vols.Path(dataVolume(id, dep))
	return p
}

// ensurePostgres makes a sandbox's cluster exist, run and hold its
// databases. Each step is marked done only after it succeeded, so an
// interrupted call is simply made again.
func (r *Runtime) ensurePostgres(ctx context.Context, inst *runtime.Instance, h *handle, name string, d *template.Dependency, p runtime.Progress) error {
	id := inst.ID
	bin, err := r.pgBinDir(d.Version)
	if err != nil {
		return runtime.Permanent(err)
	}
	dir := r.depDir(id, name)
	port := h.Ports[name]["postgres"]
	pw, err := r.ensurePassword(id, name)
	if err != nil {
		return fmt.Errorf("generate password: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := r.cfg.User.Chown(dir); err != nil {
		return err
	}
	tl, err := logfile.Open(r.taskLog(id, name), r.cfg.LogMaxBytes)
	if err != nil {
		return err
	}
	defer tl.Close()

	seed := inst.Seeds[name]
	key := seedKey(d, seed)
	// oldPassword is the password the cluster's superuser has until it is
	// set to this sandbox's own (a cloned snapshot has its source's).
	var oldPassword string
	if !r.isDone(id, "seed-"+name, key) {
		oldPassword, err = r.seedPostgres(ctx, inst, name, d, seed, bin, pw, tl, p)
		if err != nil {
			return err
		}
		if err := r.markDone(id, "seed-"+name, key); err != nil {
			return err
		}
	} else if !r.isDone(id, "password-"+name, "set") {
		oldPassword = r.readSnapshotPassword(id, name)
	}

	adopted, err := r.ensureShim(ctx, id, name, r.postgresSpec(id, inst.Name, name, bin, port), "")
	if err != nil {
		return err
	}
	if adopted {
		p.Event(sandbox.EventNormal, sandbox.ReasonAdopted, fmt.Sprintf("dependency %s was already running (across a server restart, or while only something else changed); kept it", name))
	}
	done := p.External("postgres start")
	// A fresh clone still has its snapshot's password: try that first, so
	// the cluster does not log a failed login for every seeded sandbox.
	conn, err := r.waitPostgres(ctx, id, name, port, oldPassword, pw)
	done()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if !r.isDone(id, "password-"+name, "set") {
		// The cluster came from a snapshot: give it this sandbox's own
		// password, so sandboxes from one snapshot do not share one.
		if _, err := conn.Exec(ctx, "ALTER ROLE "+postgresUser+" PASSWORD "+quoteLiteral(pw)); err != nil {
			return fmt.Errorf("set the password of %s: %w", name, err)
		}
		if err := r.markDone(id, "password-"+name, "set"); err != nil {
			return err
		}
		os.Remove(r.snapshotPasswordPath(id, name))
	}
	dbKey := strings.Join(d.Databases, ",")
	if r.isDone(id, "databases-"+name, dbKey) {
		return nil
	}
	for _, db := range d.Databases {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
			return fmt.Errorf("check database %s: %w", db, err)
		}
		if exists {
			continue
		}
		// Database names were validated by the template decoder as plain
		// identifiers; quoting is still applied for safety.
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return fmt.Errorf("create database %s: %w", db, err)
		}
	}
	return r.markDone(id, "databases-"+name, dbKey)
}

// postgresSpec is how a dependency's cluster runs under its shim.
func (r *Runtime) postgresSpec(id, sandboxName, name, bin string, port int) *shim.Spec {
	return &shim.Spec{
		Name: name,
		Argv: []string{filepath.Join(bin, "postgres"), "-D", r.dataDir(id, name), "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1",
			// No Unix socket: sandbox paths can exceed the 107-byte socket
			// path limit, and TCP on loopback is all services use.
			"-c", "unix_socket_directories=",
			// Small footprint: many sandboxes share one host.
			"-c", "shared_buffers=16MB", "-c", "max_connections=50",
			"-c", "logging_collector=off"},
		Dir: r.depDir(id, name),
		// Without the sandbox's name: PostgreSQL does not need it, and a
		// sandbox renamed by a pool claim must not restart its database.
		Env:        mergeEnv(withoutVar(r.baseEnv(id, sandboxName), "SANDPIT_SANDBOX_NAME")),
		Restart:    string(template.RestartAlways),
		StopSignal: syscall.SIGINT, // fast shutdown: do not wait for clients
	}
}

// withoutVar drops one variable from an environment list.
func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// seedPostgres replaces a dependency's data: it stops the cluster, drops
// its volume and makes a new one, empty (initdb) or cloned from a
// snapshot. It returns the superuser password the new data has when that
// is not the sandbox's own.
func (r *Runtime) seedPostgres(ctx context.Context, inst *runtime.Instance, name string, d *template.Dependency, seed runtime.Seed, bin, pw string, tl *logfile.Writer, p runtime.Progress) (string, error) {
	id := inst.ID
	// Resolve first: a snapshot still being created must not cost the
	// sandbox its current data while it waits.
	var ref *runtime.SnapshotRef
	var sh snapshotHandle
	if seed.Snapshot != "" {
		if inst.ResolveSnapshot == nil {
			return "", runtime.Permanent(fmt.Errorf("dependency %s starts from snapshot %q, but this server has no snapshot store", name, seed.Snapshot))
		}
		var err error
		if ref, err = inst.ResolveSnapshot(ctx, seed.Snapshot); err != nil {
			return "", err
		}
		if ref.Type != d.Type || ref.Version != d.Version {
			return "", runtime.Permanent(fmt.Errorf("snapshot %s holds %s %s data, but dependency %s is %s %s: use a snapshot of the same type and major version", ref.Name, ref.Type, ref.Version, name, d.Type, d.Version))
		}
		if err := json.Unmarshal(ref.Handle, &sh); err != nil || sh.Volume == "" {
			return "", runtime.Permanent(fmt.Errorf("snapshot %s: its record is unreadable (%v); import or capture it again", ref.Name, err))
		}
	}
	for _, m := range []string{"seed-", "password-", "databases-", "snapshot-"} {
		if err := os.Remove(r.markerPath(id, m+name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	if err := r.stopUnits(ctx, id, name); err != nil {
		return "", err
	}
	vol := dataVolume(id, name)
	if err := r.vols.Delete(ctx, vol); err != nil {
		return "", fmt.Errorf("remove the old data of %s: %w", name, err)
	}
	data := r.dataDir(id, name)

	if ref != nil {
		// The snapshot's password goes to disk before the clone exists, so
		// a server killed in between can still log in to finish the job.
		if err := os.WriteFile(r.snapshotPasswordPath(id, name), []byte(sh.Password), 0o600); err != nil {
			return "", err
		}
		done := p.External("snapshot clone")
		start := time.Now()
		err := r.vols.Clone(ctx, sh.Volume, vol)
		took := time.Since(start)
		done()
		if err != nil {
			return "", fmt.Errorf("clone snapshot %s for %s: %w", ref.Name, name, err)
		}
		// A cluster that crashed mid-capture would leave a pid file that
		// makes postgres refuse to start; captures stop it cleanly, but
		// imports of other clusters' files may not have.
		_ = os.Remove(filepath.Join(data, "postmaster.pid"))
		if err := r.markDone(id, "snapshot-"+name, ref.Name); err != nil {
			return "", err
		}
		p.Event(sandbox.EventNormal, sandbox.ReasonSnapshotRestored, fmt.Sprintf("dependency %s: data from snapshot %s (%s %s) by %s in %s", name, ref.Name, ref.Type, ref.Version, describeMethod(r.vols.Method()), roundDuration(took)))
		return sh.Password, nil
	}

	if err := r.vols.Create(ctx, vol); err != nil {
		return "", fmt.Errorf("create the data volume of %s: %w", name, err)
	}
	if err := r.cfg.User.Chown(data); err != nil {
		return "", err
	}
	if err := r.initdb(ctx, id, inst.Name, name, bin, data, pw, tl, p); err != nil {
		return "", err
	}
	if err := r.markDone(id, "password-"+name, "set"); err != nil {
		return "", err
	}
	return "", nil
}

// initdb makes an empty cluster in data (an empty directory the service
// user owns) whose superuser has password pw.
func (r *Runtime) initdb(ctx context.Context, id, sandboxName, unit, bin, data, pw string, tl *logfile.Writer, p runtime.Progress) error {
	dir := filepath.Dir(data)
	// initdb runs as the service user: the file goes in a directory only
	// that user (and root) can enter.
	userPW := filepath.Join(dir, ".pwfile-"+unit)
	if err := os.WriteFile(userPW, []byte(pw+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(userPW)
	if err := r.cfg.User.Chown(userPW); err != nil {
		return err
	}
	done := p.External("initdb")
	err := r.runTask(ctx, id, task{
		unit: unit, what: "initdb of " + unit, stream: "init",
		argv: []string{filepath.Join(bin, "initdb"), "--pgdata=" + data, "--username=" + postgresUser,
			"--auth=scram-sha-256", "--pwfile=" + userPW, "--encoding=UTF8", "--locale=C.UTF-8",
			"--no-instructions"},
		dir: dir, env: r.baseEnv(id, sandboxName), log: tl,
	})
	done()
	var te *taskError
	if errors.As(err, &te) {
		return runtime.Permanent(err)
	}
	return err
}

// snapshotHandle is the local runtime's record of a snapshot.
type snapshotHandle struct {
	// Volume names the frozen data in the volume store.
	Volume string `json:"volume"`
	// Password is the superuser's password inside the data.
	Password string `json:"password"`
}

func (r *Runtime) snapshotPasswordPath(id, dep string) string {
	return filepath.Join(r.stateDir(id), dep+".snapshot-password")
}

func (r *Runtime) readSnapshotPassword(id, dep string) string {
	b, _ := os.ReadFile(r.snapshotPasswordPath(id, dep))
	return string(b)
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func describeMethod(m volume.Method) string {
	switch m {
	case volume.Btrfs:
		return "btrfs snapshot (no data copied)"
	case volume.Reflink:
		return "reflink copy (data blocks shared, not copied)"
	default:
		return "plain copy (no btrfs or reflink here: see the snapshot store line in `sandpit serve`'s log)"
	}
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(10 * time.Millisecond)
	}
}

// waitPostgres connects as the superuser, retrying fast at first, until the
// cluster accepts connections, it exits, or the timeout passes.
//
// Passwords are tried in turn when one is refused: a cluster cloned from a
// snapshot has its source's password until it is set to the sandbox's own.
func (r *Runtime) waitPostgres(ctx context.Context, id, name string, port int, passwords ...string) (*pgx.Conn, error) {
	start := time.Now()
	deadline := start.Add(pgReadyTimeout)
	var last error
	for {
		var conn *pgx.Conn
		var err error
		for _, pw := range passwords {
			if pw == "" {
				continue
			}
			conn, err = pgx.Connect(ctx, postgresURL("127.0.0.1", port, pw, "postgres")+"&connect_timeout=2")
			var pgErr *pgconn.PgError
			if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
				break
			}
		}
		if err == nil {
			return conn, nil
		}
		last = err
		if st, _ := shim.ReadStatus(r.statusPath(id, name)); st != nil && st.Final() {
			return nil, runtime.Permanent(fmt.Errorf("postgres of %s exited (%s) before accepting connections; see `sandpit logs <sandbox> %s`", name, st.Message, name))
		}
		if time.Now().After(deadline) {
			return nil, runtime.Permanent(fmt.Errorf("postgres of %s did not accept connections within %s: %v", name, pgReadyTimeout, last))
		}
		// A cluster normally starts within tens of milliseconds: poll
		// closely at first, so a seeded database is not kept waiting on
		// the poll; a long crash recovery is polled more gently.
		wait := 3 * time.Millisecond
		if time.Since(start) > 3*time.Second {
			wait = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func postgresURL(host string, port int, password, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(postgresUser, password),
		Host:     host + ":" + strconv.Itoa(port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}
