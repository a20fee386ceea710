// Command seed measures how fast a sandbox's PostgreSQL database gets a
// realistic dataset: Sandpit's snapshot restore through a real `sandpit
// serve`, against, in the same run, `initdb` + `pg_restore -j 2` of the
// same dump and `CREATE DATABASE ... TEMPLATE` with both strategies. Each
// method is timed until one check query (a primary-key lookup in the
// largest table and a count of a small one) answers with the data. It
// prints a Markdown table with the targets and writes it to
// bench/out/seed-<date>.md.
//
//	go run ./bench/seed [-sizes 1,4] [-n 5]      (or bench/seed/run.sh)
//
// The datasets (a shop: customers, products, orders, order_items,
// payments, events, with primary keys, secondary indexes and foreign
// keys) are generated in a throwaway cluster and dumped with pg_dump -Fc;
// the dumps are cached (-cache) so that later runs skip that.
//
// It must run as root: PostgreSQL runs as the unprivileged user sandpit,
// as the server runs sandboxes, and the sandbox's database password is
// read from the server's data dir.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/client"
)

var (
	sizesFlag   = flag.String("sizes", "1,4", "dataset sizes in GiB on disk (pg_database_size), comma-separated")
	cacheDir    = flag.String("cache", "/var/tmp/sandpit-bench-seed-cache", "where generated dumps are kept between runs")
	regen       = flag.Bool("regen", false, "generate and dump the datasets again even if cached")
	nSandpit    = flag.Int("n", 5, "sandboxes launched from the snapshot per size (the first half before the baselines, the rest after)")
	nTemplate   = flag.Int("n-template", 3, "CREATE DATABASE ... TEMPLATE runs per strategy and size")
	nPgRestore  = flag.Int("n-pgrestore", 1, "initdb + pg_restore -j 2 runs per size")
	nInPlace    = flag.Int("n-inplace", 3, "restores in place of a running sandbox per size")
	baselines   = flag.Bool("baselines-only", false, "measure the baselines only (no sandpit server)")
	serveArgs   = flag.String("serve-args", "", "extra arguments for sandpit serve, space-separated")
	keep        = flag.Bool("keep", false, "keep the work directory (/var/tmp/sandpit-bench-seed-*)")
	outDirFlag  = flag.String("out", "", "directory for the Markdown result (default <repo>/bench/out)")
	noOutResult = flag.Bool("no-out", false, "do not write the result file")
	verbose     = flag.Bool("v", false, "log each sandbox's stages and events")
)

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime)
	if os.Geteuid() != 0 {
		log.Fatal("run as root: PostgreSQL runs as the unprivileged user sandpit, and the sandbox's password is read from the server's data dir")
	}
	var sizes []float64
	for _, f := range strings.Split(*sizesFlag, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			log.Fatalf("-sizes: %q is not a size in GiB", f)
		}
		sizes = append(sizes, v)
	}
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		log.Fatalf("PostgreSQL 15 is not installed (%v): apt-get install postgresql-15, or use bench/seed/run.sh", err)
	}
	harness.Check(ensureUser())
	repo, err := harness.RepoRoot()
	harness.Check(err)

	work, err := os.MkdirTemp("/var/tmp", "sandpit-bench-seed-")
	harness.Check(err)
	harness.Check(os.Chmod(work, 0o755))
	harness.AtExit(func() {
		killLeftovers(work)
		harness.UnmountUnder(work)
		if *keep {
			log.Printf("kept %s", work)
			return
		}
		_ = os.RemoveAll(work)
	})
	defer harness.RunCleanup()

	harness.HandleSignals(func(s os.Signal) {
		log.Printf("%s: stopping servers and clusters (Ctrl-C again to leave at once)", s)
	}, func() {
		// Anything the main goroutine started meanwhile goes too.
		killLeftovers(work)
		harness.UnmountUnder(work)
		if !*keep {
			_ = os.RemoveAll(work)
		}
	})
	ctx := context.Background()

	// The slow part first: generate (or find) every dump.
	var sets []*dataset
	for _, gib := range sizes {
		ds, err := loadOrGenerate(ctx, work, *cacheDir, gib, *regen)
		harness.Check(err)
		sets = append(sets, ds)
	}

	run := &runInfo{start: time.Now(), args: strings.TrimSpace("go run ./bench/seed " + strings.Join(os.Args[1:], " "))}
	var srv *server
	if !*baselines {
		srv, err = startServer(repo, work, strings.Fields(*serveArgs))
		harness.Check(err)
		run.method, run.store, err = srv.snapshotSupport(ctx)
		if err != nil {
			run.noSandpit = fmt.Sprintf("the server does not support snapshots yet (%v)", err)
			log.Printf("%s: measuring the baselines only; Sandpit's figures are not measured", run.noSandpit)
			srv.Stop()
			srv = nil
		} else {
			log.Printf("server snapshot store: method %q, %s", run.method, run.store)
		}
	} else {
		run.noSandpit = "run with -baselines-only"
	}

	for _, ds := range sets {
		run.results = append(run.results, measureSize(ctx, work, srv, ds))
	}
	md := report(run)
	fmt.Print("\n" + md)
	if !*noOutResult {
		p, err := harness.WriteResult(*outDirFlag, repo, "seed", run.start, md)
		harness.Check(err)
		log.Printf("wrote %s", p)
	}
	if srv != nil {
		srv.Stop()
	}
	harness.RunCleanup()
	out, _ := exec.Command("pgrep", "-u", "sandpit", "-a", "postgres").Output()
	others := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case line == "":
		case strings.Contains(line, work+"/"):
			log.Printf("LEFT BEHIND: %s", line)
		default:
			others++
		}
	}
	if others > 0 {
		log.Printf("no postgres process of this run is left; %d processes of user sandpit named postgres belong to other runs (their data dirs are elsewhere)", others)
	} else {
		log.Printf("no postgres process of this run is left")
	}
}

// sizeResult is everything measured for one dataset.
type sizeResult struct {
	ds            *dataset
	restoredBytes int64 // pg_database_size after pg_restore
	pgRestore     []restoreRun
	template      map[string][]time.Duration // by strategy
	sandpit       []launch
	firstLaunch   time.Duration
	inPlace       []inPlace
	importTime    time.Duration
	snapshot      *client.Snapshot
	sandpitErr    string
	// loadBefore and loadAfter are the 1-minute load averages around the
	// measurements: other work on the machine shows there.
	loadBefore, loadAfter string
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// measureSize measures every method for one dataset: Sandpit's import,
// half its launches, the baselines, the other half, restores in place.
func measureSize(ctx context.Context, work string, srv *server, ds *dataset) *sizeResult {
	r := &sizeResult{ds: ds, template: map[string][]time.Duration{}, loadBefore: loadAvg()}
	defer func() { r.loadAfter = loadAvg() }()
	snap, tmpl := "seed-"+ds.tag, "seed-"+ds.tag
	var kept *launch
	launches := func(from, to int) {
		for i := from; i < to && r.sandpitErr == ""; i++ {
			name := fmt.Sprintf("seed-%s-%d", ds.tag, i+1)
			l, err := srv.launchSandbox(ctx, tmpl, name, ds)
			if err != nil {
				r.sandpitErr = err.Error()
				log.Printf("%s: sandpit launch %d: %v", ds.tag, i+1, err)
				_ = srv.deleteSandbox(ctx, name)
				return
			}
			r.sandpit = append(r.sandpit, l)
			if i == 0 {
				r.firstLaunch = l.query
			}
			log.Printf("%s: sandpit launch %d: query answers after %s (port known %s, Ready %s, dependencies/db stage %s)", ds.tag, i+1, fmtDur(l.query), fmtDur(l.port), fmtDur(l.ready), fmtDur(l.stage))
			if i == *nSandpit-1 {
				kept = &l // for the restores in place
				continue
			}
			if err := srv.deleteSandbox(ctx, name); err != nil {
				r.sandpitErr = fmt.Sprintf("delete sandbox %s: %v", name, err)
			}
		}
	}
	if srv != nil {
		log.Printf("%s: importing %s into snapshot %s", ds.tag, filepath.Base(ds.dump), snap)
		d, sn, err := srv.importSnapshot(ctx, snap, ds)
		r.importTime, r.snapshot = d, sn
		if err == nil {
			log.Printf("%s: snapshot %s Ready after %s (%s, method %s)", ds.tag, snap, fmtDur(d), gibStr(sn.SizeBytes), sn.Method)
			err = srv.applyTemplate(ctx, tmpl, snap)
		}
		if err != nil {
			r.sandpitErr = err.Error()
			log.Printf("%s: %v", ds.tag, err)
		}
		launches(0, (*nSandpit+1)/2)
	}

	// Baselines: initdb + pg_restore (the last restored cluster then
	// serves the TEMPLATE copies).
	var base *cluster
	for i := 0; i < *nPgRestore; i++ {
		if base != nil {
			base.remove()
		}
		rr, c, err := pgRestore(ctx, filepath.Join(work, fmt.Sprintf("restore-%s-%d", ds.tag, i+1)), ds)
		base = c
		harness.Check(err)
		r.pgRestore = append(r.pgRestore, rr)
		r.restoredBytes = rr.dbBytes
		log.Printf("%s: initdb + pg_restore -j 2 run %d: %s (initdb %s, start %s, pg_restore %s, query %s); restored database %s",
			ds.tag, i+1, fmtDur(rr.total), fmtDur(rr.initdb), fmtDur(rr.start), fmtDur(rr.restore), fmtDur(rr.query), gibStr(rr.dbBytes))
	}
	if *nTemplate > 0 && base != nil {
		admin, err := pgx.Connect(ctx, base.dsn("postgres"))
		harness.Check(err)
		harness.Check(quiesce(ctx, admin))
		for i := 0; i < *nTemplate; i++ {
			for _, strategy := range []string{"wal_log", "file_copy"} {
				d, err := templateCopy(ctx, base, admin, strategy, i, ds)
				harness.Check(err)
				r.template[strategy] = append(r.template[strategy], d)
				log.Printf("%s: CREATE DATABASE ... TEMPLATE STRATEGY %s run %d: %s", ds.tag, strategy, i+1, fmtDur(d))
			}
		}
		admin.Close(context.Background())
	}
	if base != nil {
		base.remove()
	}

	if srv != nil {
		launches((*nSandpit+1)/2, *nSandpit)
		if kept != nil && r.sandpitErr == "" {
			for i := 0; i < *nInPlace; i++ {
				ip, err := srv.restoreInPlace(ctx, *kept, snap, ds)
				if err != nil {
					r.sandpitErr = err.Error()
					log.Printf("%s: restore in place %d: %v", ds.tag, i+1, err)
					break
				}
				r.inPlace = append(r.inPlace, ip)
				log.Printf("%s: restore in place %d: %s (generation observed %s, data back %s)", ds.tag, i+1, fmtDur(ip.done), fmtDur(ip.observed), fmtDur(ip.data))
			}
		}
		if kept != nil {
			_ = srv.deleteSandbox(ctx, kept.name)
		}
		if err := srv.Client.DeleteSnapshot(ctx, snap, true); err != nil && !client.IsNotFound(err) {
			log.Printf("%s: delete snapshot %s: %v", ds.tag, snap, err)
		}
	}
	return r
}
