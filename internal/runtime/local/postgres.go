package local

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/logfile"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
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
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(raw[:])
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(pw), 0o600); err != nil {
		return "", err
	}
	return pw, os.Rename(tmp, p)
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
// cannot run are reported when the template is applied.
func (r *Runtime) CheckTemplate(t *template.Template) error {
	var errs template.ErrorList
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
	if len(errs) > 0 {
		return &errs
	}
	return nil
}

// ensurePostgres makes a sandbox's cluster exist, run and hold its
// databases. Each step is marked done only after it succeeded.
func (r *Runtime) ensurePostgres(ctx context.Context, inst *runtime.Instance, h *handle, name string, d *template.Dependency, p runtime.Progress) error {
	id := inst.ID
	bin, err := r.pgBinDir(d.Version)
	if err != nil {
		return runtime.Permanent(err)
	}
	dir := r.depDir(id, name)
	data := filepath.Join(dir, "data")
	port := h.Ports[name]["postgres"]
	pw, err := r.ensurePassword(id, name)
	if err != nil {
		return fmt.Errorf("generate password: %w", err)
	}
	tl, err := logfile.Open(r.taskLog(id, name), r.cfg.LogMaxBytes)
	if err != nil {
		return err
	}
	defer tl.Close()

	initKey := "initdb " + d.Version
	if !r.isDone(id, "initdb-"+name, initKey) {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove half-initialised cluster: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := r.cfg.User.Chown(dir); err != nil {
			return err
		}
		pwfile := filepath.Join(dir, ".pwfile")
		if err := os.WriteFile(pwfile, []byte(pw+"\n"), 0o600); err != nil {
			return err
		}
		if err := r.cfg.User.Chown(pwfile); err != nil {
			return err
		}
		done := p.External("initdb")
		err := r.runTask(ctx, id, task{
			unit: name, what: "initdb of " + name, stream: "init",
			argv: []string{filepath.Join(bin, "initdb"), "--pgdata=" + data, "--username=" + postgresUser,
				"--auth=scram-sha-256", "--pwfile=" + pwfile, "--encoding=UTF8", "--locale=C.UTF-8",
				"--no-instructions"},
			dir: dir, env: r.baseEnv(id, inst.Name), log: tl,
		})
		done()
		os.Remove(pwfile)
		if err != nil {
			var te *taskError
			if errors.As(err, &te) {
				return runtime.Permanent(err)
			}
			return err
		}
		if err := r.markDone(id, "initdb-"+name, initKey); err != nil {
			return err
		}
	}

	spec := &shim.Spec{
		Name: name,
		Argv: []string{filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1",
			// No Unix socket: sandbox paths can exceed the 107-byte socket
			// path limit, and TCP on loopback is all services use.
			"-c", "unix_socket_directories=",
			// Small footprint: many sandboxes share one host.
			"-c", "shared_buffers=16MB", "-c", "max_connections=50",
			"-c", "logging_collector=off"},
		Dir:        dir,
		Env:        mergeEnv(r.baseEnv(id, inst.Name)),
		Restart:    string(template.RestartAlways),
		StopSignal: syscall.SIGINT, // fast shutdown: do not wait for clients
	}
	adopted, err := r.ensureShim(ctx, id, name, spec, "")
	if err != nil {
		return err
	}
	if adopted {
		p.Event("Normal", "Adopted", fmt.Sprintf("dependency %s kept running across a server restart; adopted", name))
	}
	done := p.External("postgres start")
	conn, err := r.waitPostgres(ctx, id, name, port, pw)
	done()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
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

// waitPostgres connects as the superuser, retrying fast at first, until the
// cluster accepts connections, it exits, or the timeout passes.
func (r *Runtime) waitPostgres(ctx context.Context, id, name string, port int, pw string) (*pgx.Conn, error) {
	dsn := postgresURL("127.0.0.1", port, pw, "postgres") + "&connect_timeout=2"
	deadline := time.Now().Add(pgReadyTimeout)
	wait := 5 * time.Millisecond
	var last error
	for {
		conn, err := pgx.Connect(ctx, dsn)
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
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 200*time.Millisecond)
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
