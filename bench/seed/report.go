package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// runInfo is the whole run, for the report.
type runInfo struct {
	start     time.Time
	args      string
	method    string // the server's snapshot method
	store     string
	noSandpit string // why Sandpit was not measured
	results   []*sizeResult
}

// report renders the run as Markdown: the machine, a table per size, the
// issue's three targets.
func report(run *runInfo) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("### bench/seed, %s\n\n", run.start.Format("2006-01-02 15:04"))
	p("`%s`: %s\n\n", run.args, machine())
	if run.noSandpit != "" {
		p("**Sandpit not measured**: %s.\n\n", run.noSandpit)
	} else {
		p("Server's snapshot store: method `%s`, %s.\n\n", run.method, run.store)
	}
	p("Every time is from the start of the method to the moment the check query answers with the data, warm page cache.\n\n")

	sp := map[float64]time.Duration{}
	pgr := map[float64]time.Duration{}
	for _, r := range run.results {
		ds := r.ds
		p("#### %s GiB dataset\n\n", trimFloat(ds.SizeGiB))
		p("Database %s on disk after pg_restore (%s as generated), dump %s (`pg_dump -Fc`), scale %.2f.", gibStr(r.restoredBytes), gibStr(ds.DBBytes), gibStr(ds.DumpBytes), ds.Scale)
		if r.snapshot != nil && r.snapshot.SizeBytes > 0 {
			p(" Snapshot %s (method %s), imported in %s.", gibStr(r.snapshot.SizeBytes), r.snapshot.Method, fmtDur(r.importTime))
		}
		p("\n\n")
		p("| size | method | median | min–max | n | Sandpit is faster by |\n")
		p("|---|---|---:|---:|---:|---:|\n")
		size := gibStr(r.restoredBytes)
		var spMed time.Duration
		if len(r.sandpit) > 0 {
			q := durations(r.sandpit, func(l launch) time.Duration { return l.query })
			spMed = median(q)
			sp[ds.SizeGiB] = spMed
			row := func(name string, v []time.Duration, bold bool) {
				m := fmtDur(median(v))
				if bold {
					name, m = "**"+name+"**", "**"+m+"**"
				}
				p("| %s | %s | %s | %s | %d | |\n", size, name, m, rangeOf(v), len(v))
			}
			row("Sandpit: new sandbox from the snapshot (create → query answers)", q, true)
			row("  same, create → sandbox Ready", durations(r.sandpit, func(l launch) time.Duration { return l.ready }), false)
			row("  its `dependencies/db` stage (server's clock)", durations(r.sandpit, func(l launch) time.Duration { return l.stage }), false)
			if len(r.inPlace) > 0 {
				row("Sandpit: restore in place of a running sandbox (→ generation observed and data back)", durations(r.inPlace, func(i inPlace) time.Duration { return i.done }), false)
			}
		} else {
			why := r.sandpitErr
			if why == "" {
				why = run.noSandpit
			}
			p("| %s | Sandpit: not measured (%s) | | | | |\n", size, strings.ReplaceAll(why, "|", "/"))
		}
		base := func(name string, v []time.Duration) {
			if len(v) == 0 {
				return
			}
			m := median(v)
			speed := ""
			if spMed > 0 {
				speed = fmt.Sprintf("%.0f×", float64(m)/float64(spMed))
				if float64(m)/float64(spMed) < 10 {
					speed = fmt.Sprintf("%.1f×", float64(m)/float64(spMed))
				}
			}
			p("| %s | %s | %s | %s | %d | %s |\n", size, name, fmtDur(m), rangeOf(v), len(v), speed)
		}
		total := durations(r.pgRestore, func(x restoreRun) time.Duration { return x.total })
		base("`initdb` + start + `pg_restore -j 2` (→ query answers)", total)
		base("  of which `pg_restore -j 2` alone", durations(r.pgRestore, func(x restoreRun) time.Duration { return x.restore }))
		base("`CREATE DATABASE … TEMPLATE` `STRATEGY wal_log` (+ connect, query)", r.template["wal_log"])
		base("`CREATE DATABASE … TEMPLATE` `STRATEGY file_copy` (+ connect, query)", r.template["file_copy"])
		if len(total) > 0 {
			pgr[ds.SizeGiB] = median(total)
		}
		p("\n")
		if r.importTime > 0 {
			p("Import of the dump into the snapshot (once, not part of a sandbox's launch): %s.", fmtDur(r.importTime))
			if len(r.sandpit) > 0 {
				p(" First sandbox after the import: %s.", fmtDur(r.firstLaunch))
			}
			p("\n\n")
		}
		p("Load average (1 min) %s before these measurements, %s after (the benchmark itself uses up to 2 cores).\n\n", r.loadBefore, r.loadAfter)
		if r.sandpitErr != "" && len(r.sandpit) > 0 {
			p("Sandpit error: %s\n\n", r.sandpitErr)
		}
	}

	p("#### Targets\n\n")
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "**FAIL**"
	}
	if v, ok := sp[1]; ok {
		p("- Sandpit, 1 GiB, create → query answers under 0.5 s: %s (%s)\n", verdict(v < 500*time.Millisecond), fmtDur(v))
	} else {
		p("- Sandpit, 1 GiB, under 0.5 s: not measured\n")
	}
	if v, ok := sp[1]; ok && pgr[1] > 0 {
		x := float64(pgr[1]) / float64(v)
		p("- at least 50× faster than initdb + `pg_restore -j 2` at 1 GiB: %s (%.0f×: %s against %s)\n", verdict(x >= 50), x, fmtDur(v), fmtDur(pgr[1]))
	} else {
		p("- at least 50× faster than `pg_restore` at 1 GiB: not measured\n")
	}
	v1, ok1 := sp[1]
	v4, ok4 := sp[4]
	if ok1 && ok4 {
		x := float64(v4) / float64(v1)
		p("- 4 GiB within 1.2× of 1 GiB: %s (%.2f×: %s against %s)\n", verdict(x <= 1.2), x, fmtDur(v4), fmtDur(v1))
	} else {
		p("- 4 GiB within 1.2× of 1 GiB: not measured\n")
	}
	p("\n")
	return b.String()
}

// machine describes the host: CPU, kernel, OS, Go and PostgreSQL.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	osName := "Linux"
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				osName = strings.Trim(v, `"`)
			}
		}
	}
	rev, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	return fmt.Sprintf("%d vCPUs (%s)%s, Linux %s, %s, %s, PostgreSQL %s, sandpit at %s (with uncommitted changes, if any)",
		runtime.NumCPU(), cpu, mem, strings.TrimSpace(string(kernel)), osName, runtime.Version(), pgVersion(), strings.TrimSpace(string(rev)))
}

func durations[T any](xs []T, f func(T) time.Duration) []time.Duration {
	out := make([]time.Duration, 0, len(xs))
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}

func median(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func rangeOf(v []time.Duration) string {
	if len(v) < 2 {
		return ""
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmtDur(lo) + "–" + fmtDur(hi)
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000)
	case d < 100*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f s", d.Seconds())
}

func trimFloat(f float64) string {
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.2f", f), "0"), ".0")
}
