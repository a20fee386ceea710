package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	rt "sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/logfile"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/sandbox"
)

// Snapshot data lives in the volume store: "snapshots/<id>" once complete
// (frozen, read-only where the store can), "tmp/<id>" while it is being
// made. An import also needs a cluster of its own while it restores the
// dump: it runs in a workspace laid out like a sandbox's, named by the
// snapshot's id, so the supervision, logging and clean-up code is shared
// (and Sandboxes never mistakes it for a sandbox: ids start with "snap-").

func snapshotVolume(id string) string { return "snapshots/" + id }
func snapshotTmp(id string) string    { return "tmp/" + id }

// SnapshotStore implements runtime.Snapshotter.
func (r *Runtime) SnapshotStore() (method, description string) {
	return string(r.vols.Method()), r.vols.Describe()
}

// CaptureSnapshot implements runtime.Snapshotter. The dependency is stopped
// (PostgreSQL's fast shutdown writes a checkpoint, so the copy is clean and
// starts without recovery), copied, and started again; with btrfs it is
// down for well under a second.
func (r *Runtime) CaptureSnapshot(ctx context.Context, id, dep, snapID string) (*rt.SnapshotData, error) {
	unlock, err := r.lockSandbox(ctx, id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	h, err := r.loadHandle(ctx, id)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, rt.Permanent(fmt.Errorf("sandbox %s has not started anything yet: wait until it is Ready", id))
	}
	u, ok := h.unit(dep)
	if !ok || u.Kind == "service" {
		return nil, rt.Permanent(fmt.Errorf("sandbox %s has no dependency %q: choose one of %s: %w", h.Name, dep, depNames(h), rt.ErrNotFound))
	}
	spec, err := shim.ReadSpec(r.specPath(id, dep))
	if err != nil || !fileExists(r.markerPath(id, "seed-"+dep)) {
		return nil, rt.Permanent(fmt.Errorf("dependency %s of sandbox %s has no data yet: wait until the sandbox is Ready", dep, h.Name))
	}
	pw := r.readPassword(id, dep)
	if !r.isDone(id, "password-"+dep, "set") {
		pw = r.readSnapshotPassword(id, dep)
	}
	version, err := pgVersion(r.dataDir(id, dep))
	if err != nil {
		return nil, err
	}
	tmp := snapshotTmp(snapID)
	if err := r.vols.Delete(ctx, tmp); err != nil {
		return nil, err
	}

	stopped := time.Now()
	if err := r.stopUnits(ctx, id, dep); err != nil {
		return nil, fmt.Errorf("stop %s: %w", dep, err)
	}
	cloneErr := r.vols.Clone(ctx, dataVolume(id, dep), tmp)
	// Start it again whatever happened, even if the caller gave up: the
	// sandbox must not be left without its database.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pgReadyTimeout)
	defer cancel()
	_, startErr := r.ensureShim(rctx, id, dep, spec, "")
	if startErr == nil {
		var conn *pgx.Conn
		if conn, startErr = r.waitPostgres(rctx, id, dep, h.Ports[dep]["postgres"], pw); startErr == nil {
			conn.Close(rctx)
		}
	}
	down := time.Since(stopped)
	if cloneErr != nil {
		_ = r.vols.Delete(rctx, tmp)
		return nil, fmt.Errorf("copy the data of %s: %w", dep, cloneErr)
	}
	if startErr != nil {
		_ = r.vols.Delete(rctx, tmp)
		return nil, fmt.Errorf("start %s again after copying its data: %w", dep, startErr)
	}
	r.log.Info("captured dependency data", "sandbox", h.Name, "dependency", dep, "snapshot", snapID, "down", down.Round(time.Millisecond), "method", r.vols.Method())
	return r.freezeSnapshot(ctx, snapID, version, pw)
}

// freezeSnapshot makes tmp/<id> the complete snapshot.
func (r *Runtime) freezeSnapshot(ctx context.Context, snapID, version, pw string) (*rt.SnapshotData, error) {
	final := snapshotVolume(snapID)
	// A previous attempt that got this far and then lost its record is
	// replaced: the record is what makes a snapshot exist.
	if err := r.vols.Delete(ctx, final); err != nil {
		return nil, err
	}
	if err := r.vols.Freeze(ctx, snapshotTmp(snapID), final); err != nil {
		return nil, err
	}
	// Only the server reads snapshots (it clones them as root): the
	// service user, who owns the files inside, must not reach them, so a
	// snapshot stays immutable where the store has no read-only flag.
	if p, err := r.vols.Path(final); err == nil {
		if err := os.Chmod(filepath.Dir(p), 0o700); err != nil {
			return nil, fmt.Errorf("protect the snapshots directory: %w", err)
		}
	}
	size, err := r.vols.Size(ctx, final)
	if err != nil {
		return nil, err
	}
	handle, _ := json.Marshal(snapshotHandle{Volume: final, Password: pw})
	return &rt.SnapshotData{Version: version, SizeBytes: size, Method: string(r.vols.Method()), Handle: handle}, nil
}

// DeleteSnapshot implements runtime.Snapshotter.
func (r *Runtime) DeleteSnapshot(ctx context.Context, snapID string) error {
	if !strings.HasPrefix(snapID, "snap-") {
		return fmt.Errorf("%q is not a snapshot id", snapID)
	}
	if err := r.stopUnits(ctx, snapID); err != nil {
		return err
	}
	if err := os.RemoveAll(r.SandboxDir(snapID)); err != nil {
		return err
	}
	r.ports.release(snapID)
	for _, v := range []string{snapshotTmp(snapID), snapshotVolume(snapID)} {
		if err := r.vols.Delete(ctx, v); err != nil {
			return fmt.Errorf("remove snapshot data %s: %w", v, err)
		}
	}
	return nil
}

// SnapshotIDs implements runtime.Snapshotter.
func (r *Runtime) SnapshotIDs(ctx context.Context) ([]string, error) {
	ids := map[string]bool{}
	for _, dir := range []string{"snapshots", "tmp"} {
		names, err := r.vols.List(ctx, dir)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			ids[n] = true
		}
	}
	entries, err := os.ReadDir(r.sandboxesDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "snap-") {
			ids[e.Name()] = true
		}
	}
	out := make([]string, 0, len(ids))
	for id := range ids {
		if strings.HasPrefix(id, "snap-") {
			out = append(out, id)
		}
	}
	return out, nil
}

// dumpInfo is what a dump says about itself.
type dumpInfo struct {
	format   string // custom, tar or plain
	database string // the database it was dumped from ("" if unknown)
	version  string // major version of the server it was dumped from
	creates  bool   // plain: it creates and connects to its database itself
}

var (
	reDBName   = regexp.MustCompile(`(?m)^;\s+dbname:\s+(.+?)\s*$`)
	reDumpedV  = regexp.MustCompile(`(?m)^[-;]+\s+Dumped from database version:?\s+(\d+)`)
	reCreateDB = regexp.MustCompile(`(?m)^CREATE DATABASE\s+("?)([^"\s;]+)"?`)
)

// inspectDump tells a pg_dump archive (custom or tar, restored with
// pg_restore) from a plain SQL script (run with psql), and refuses what is
// neither with what to do about it.
func (r *Runtime) inspectDump(ctx context.Context, path, bin string) (dumpInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return dumpInfo{}, err
	}
	defer f.Close()
	head := make([]byte, 1<<20)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return dumpInfo{}, err
	}
	head = head[:n]
	switch {
	case n == 0:
		return dumpInfo{}, errors.New("the dump is empty")
	case bytes.HasPrefix(head, []byte("PGDMP")):
		return r.inspectArchive(ctx, path, bin, "custom")
	case n > 262 && bytes.Equal(head[257:262], []byte("ustar")):
		return r.inspectArchive(ctx, path, bin, "tar")
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return dumpInfo{}, errors.New("the dump is gzip-compressed: decompress it first (gunzip -k FILE), or dump with pg_dump -Fc, which compresses by itself")
	case bytes.IndexByte(head, 0) >= 0:
		return dumpInfo{}, errors.New("the file is neither a pg_dump archive (custom or tar format) nor a plain SQL script: make it with pg_dump -Fc DATABASE > FILE")
	}
	info := dumpInfo{format: "plain"}
	if m := reDumpedV.FindSubmatch(head); m != nil {
		info.version = string(m[1])
	}
	if m := reCreateDB.FindSubmatch(head); m != nil && bytes.Contains(head, []byte("\n\\connect ")) {
		info.creates, info.database = true, string(m[2])
	}
	return info, nil
}

func (r *Runtime) inspectArchive(ctx context.Context, path, bin, format string) (dumpInfo, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "pg_restore"), "--list", path)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return dumpInfo{}, fmt.Errorf("pg_restore cannot read the dump: %s", strings.TrimSpace(errb.String()))
	}
	info := dumpInfo{format: format}
	if m := reDBName.FindSubmatch(out.Bytes()); m != nil {
		info.database = string(m[1])
	}
	if m := reDumpedV.FindSubmatch(out.Bytes()); m != nil {
		info.version = string(m[1])
	}
	return info, nil
}

// importUnit names the import's cluster in its workspace.
const importUnit = "import"

// ImportSnapshot implements runtime.Snapshotter: initdb, start, restore
// the dump, VACUUM ANALYZE (so the snapshot's pages carry their hint bits
// and statistics and clones do not each write them on first read), stop
// cleanly, freeze. Restore errors are permanent: the same dump fails the
// same way.
func (r *Runtime) ImportSnapshot(ctx context.Context, req rt.ImportRequest) (*rt.SnapshotData, error) {
	if req.Type != "postgres" {
		return nil, rt.Permanent(fmt.Errorf("cannot import dependency type %q: only postgres is supported", req.Type))
	}
	installed := installedPostgres()
	if len(installed) == 0 {
		return nil, rt.Permanent(errors.New("no PostgreSQL server is installed on this host: apt-get install postgresql"))
	}
	newest := installed[len(installed)-1]
	info, err := r.inspectDump(ctx, req.DumpPath, r.cfg.PostgresBinDir(newest))
	if err != nil {
		return nil, rt.Permanent(err)
	}
	version := req.Version
	if version == "" {
		version = newest
		if info.version != "" && fileExists(filepath.Join(r.cfg.PostgresBinDir(info.version), "postgres")) {
			version = info.version
		}
	}
	bin, err := r.pgBinDir(version)
	if err != nil {
		return nil, rt.Permanent(err)
	}
	db := req.Database
	if db == "" && !info.creates {
		db = info.database
	}
	if db == "" && !info.creates {
		return nil, rt.Permanent(errors.New("the plain SQL dump does not say which database it holds: pass --database NAME (the name your template's databases list uses)"))
	}
	if info.creates && req.Database != "" {
		return nil, rt.Permanent(fmt.Errorf("the dump creates its own database %q (pg_dump --create): drop --database, or dump without --create", info.database))
	}
	if info.creates {
		db = info.database
	}

	id := req.SnapshotID
	// Whatever an interrupted attempt left goes first.
	if err := r.DeleteSnapshot(ctx, id); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		// The workspace goes either way; the data too when it failed.
		_ = r.stopUnits(context.WithoutCancel(ctx), id)
		_ = os.RemoveAll(r.SandboxDir(id))
		r.ports.release(id)
		if !ok {
			_ = r.vols.Delete(context.WithoutCancel(ctx), snapshotTmp(id))
		}
	}()
	ws := r.depDir(id, importUnit)
	for _, d := range []struct {
		path  string
		mode  fs.FileMode
		owned bool
	}{
		{r.SandboxDir(id), 0o755, false}, {r.runDir(id), 0o700, false}, {r.logDir(id), 0o750, false},
		{r.stateDir(id), 0o700, false}, {filepath.Dir(ws), 0o755, false}, {ws, 0o700, true},
		{filepath.Join(r.SandboxDir(id), "tmp"), 0o700, true},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return nil, err
		}
		if d.owned {
			if err := r.cfg.User.Chown(d.path); err != nil {
				return nil, err
			}
		}
	}
	// The restore runs as the service user, who cannot read the server's
	// upload directory: a hard link in the workspace shares the file.
	dump := filepath.Join(ws, "dump")
	if err := os.Link(req.DumpPath, dump); err != nil {
		if err := copyFile(req.DumpPath, dump, 0o600); err != nil {
			return nil, fmt.Errorf("stage the dump: %w", err)
		}
	}
	if err := r.cfg.User.Chown(dump); err != nil {
		return nil, err
	}
	tl, err := logfile.Open(r.taskLog(id, importUnit), r.cfg.LogMaxBytes)
	if err != nil {
		return nil, err
	}
	defer tl.Close()

	tmp := snapshotTmp(id)
	if err := r.vols.Create(ctx, tmp); err != nil {
		return nil, err
	}
	data, _ := r.vols.Path(tmp)
	if err := r.cfg.User.Chown(data); err != nil {
		return nil, err
	}
	pw, err := randomPassword()
	if err != nil {
		return nil, err
	}
	if err := r.initdb(ctx, id, id, importUnit, bin, data, pw, tl, discardProgress{}); err != nil {
		return nil, err
	}
	port, err := r.ports.allocate(id)
	if err != nil {
		return nil, err
	}
	spec := &shim.Spec{
		Name: importUnit,
		Argv: []string{filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
			// A restore that dies is redone from scratch, so durability
			// while it runs buys nothing; the data is synced at the end.
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			// wal_level=minimal writes no WAL for data loaded into
			// tables created in the same transaction and keeps pg_wal
			// small, so the snapshot is not half WAL (measured: 1.1 GiB
			// instead of 1.9 GiB for a 1 GiB database).
			"-c", "wal_level=minimal", "-c", "max_wal_senders=0",
			"-c", "maintenance_work_mem=256MB", "-c", "max_wal_size=8GB", "-c", "checkpoint_timeout=1h",
			"-c", "logging_collector=off"},
		Dir: ws, Env: mergeEnv(r.baseEnv(id, id)), Restart: "never", StopSignal: syscall.SIGINT,
	}
	if _, err := r.ensureShim(ctx, id, importUnit, spec, ""); err != nil {
		return nil, err
	}
	conn, err := r.waitPostgres(ctx, id, importUnit, port, pw)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if !info.creates {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return nil, fmt.Errorf("create database %s: %w", db, err)
		}
	}

	env := mergeEnv(r.baseEnv(id, id), []string{"PGHOST=127.0.0.1", "PGPORT=" + strconv.Itoa(port), "PGUSER=" + postgresUser, "PGPASSWORD=" + pw})
	var argv []string
	if info.format == "plain" {
		target := db
		if info.creates {
			target = "postgres"
		}
		argv = []string{filepath.Join(bin, "psql"), "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "--dbname=" + target, "--file=" + dump}
	} else {
		// No owners or grants: the roles of the cluster the dump came from
		// do not exist here, and a sandbox connects as the superuser.
		argv = []string{filepath.Join(bin, "pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
			"--jobs=" + strconv.Itoa(max(1, runtime.NumCPU())), "--dbname=" + db, dump}
	}
	_ = tl.WriteLine(nowUTC(), "system", "$ "+strings.Join(argv, " "))
	if err := r.runTask(ctx, id, task{unit: importUnit, what: "restore of the dump", stream: "restore", argv: argv, dir: ws, env: env, log: tl}); err != nil {
		var te *taskError
		if errors.As(err, &te) {
			msg := err.Error()
			if strings.Contains(msg, "role") && strings.Contains(msg, "does not exist") {
				msg += "\nhint: the dump sets owners or grants for roles this cluster does not have: dump with pg_dump --no-owner --no-privileges, or use the custom format (pg_dump -Fc), which sandpit restores without owners"
			}
			return nil, rt.Permanent(errors.New(msg))
		}
		return nil, err
	}
	dconn, err := pgx.Connect(ctx, postgresURL("127.0.0.1", port, pw, db)+"&connect_timeout=5")
	if err != nil {
		return nil, fmt.Errorf("connect to the restored database %s: %w", db, err)
	}
	_, err = dconn.Exec(ctx, "VACUUM (ANALYZE)")
	dconn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("vacuum the restored database: %w", err)
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	conn.Close(ctx)
	if err := r.stopUnits(ctx, id, importUnit); err != nil {
		return nil, err
	}
	if err := syncDir(data); err != nil {
		return nil, fmt.Errorf("sync the restored data: %w", err)
	}
	out, err := r.freezeSnapshot(ctx, id, version, pw)
	if err != nil {
		return nil, err
	}
	ok = true
	out.Database, out.Format = db, info.format
	return out, nil
}

// syncDir flushes the filesystem holding dir (the restore ran with
// fsync=off).
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// pgVersion reads a data directory's major version.
func pgVersion(data string) (string, error) {
	f, err := os.Open(filepath.Join(data, "PG_VERSION"))
	if err != nil {
		return "", fmt.Errorf("read the data's PostgreSQL version: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Scan()
	return strings.TrimSpace(s.Text()), nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func depNames(h *handle) string {
	var names []string
	for _, u := range h.Units {
		if u.Kind != "service" {
			names = append(names, u.Name)
		}
	}
	if len(names) == 0 {
		return "(none: the sandbox has no dependencies)"
	}
	return strings.Join(names, ", ")
}

// discardProgress is for work outside any sandbox's launch.
type discardProgress struct{}

func (discardProgress) StageStarted(string)                     {}
func (discardProgress) StageFinished(string, error)             {}
func (discardProgress) StageSkipped(string, string)             {}
func (discardProgress) Event(sandbox.EventType, string, string) {}
func (discardProgress) External(string) func()                  { return func() {} }
