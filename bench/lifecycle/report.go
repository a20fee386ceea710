package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"sandpit.dev/sandpit/bench/internal/harness"
)

// report renders the run as Markdown.
func report(r *runInfo) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Lifecycle: wake, pool claim, memory (guestbook example)\n\n")
	p("%s, `go run ./bench/lifecycle`, %s; load average %s before, %s after (the benchmark's own); %s.\n\n",
		r.start.Format("2006-01-02 15:04 MST"), r.end.Sub(r.start).Round(time.Second), r.loadBefore, r.loadAfter, r.machine)
	p("CPU: this run (the server, its services and builds, and the benchmark) used %.2f cores on average; the rest of the host %.2f cores (per phase: ", r.ours, r.others)
	for i, ph := range r.phases {
		if i > 0 {
			p("; ")
		}
		p("%s %s, %.2f / %.2f", ph.name, ph.took.Round(time.Second), ph.ours, ph.others)
	}
	p(").\n\n")
	p("p95 is the nearest rank: with 20 values the 19th smallest, with 5 or 10 the largest but one or the largest.\n\n")

	p("| measure | p50 | p95 | n | target | result |\n|---|---:|---:|---:|---|---|\n")
	row := func(name string, v []time.Duration, target time.Duration) {
		if len(v) == 0 {
			return
		}
		t, verdict := "", ""
		if target > 0 {
			t = "p50 < " + harness.FmtDur(target)
			if harness.Pct(v, 50) < target {
				verdict = "**PASS**"
			} else {
				verdict = "**MISSED**"
			}
		}
		p("| %s | %s | %s | %d | %s | %s |\n", name, harness.FmtDur(harness.Pct(v, 50)), harness.FmtDur(harness.Pct(v, 95)), len(v), t, verdict)
	}
	wakes := func(get func(wakeResult) time.Duration) []time.Duration {
		var v []time.Duration
		for _, w := range r.wakes {
			v = append(v, get(w))
		}
		return v
	}
	launches := func(ls []launchResult, get func(launchResult) time.Duration) []time.Duration {
		var v []time.Duration
		for _, l := range ls {
			v = append(v, get(l))
		}
		return v
	}
	claims := func(cs []claimResult, get func(claimResult) time.Duration) []time.Duration {
		var v []time.Duration
		for _, c := range cs {
			v = append(v, get(c))
		}
		return v
	}
	answered := func(l launchResult) time.Duration { return l.answered }
	ready := func(l launchResult) time.Duration { return l.ready }
	firstByte := func(l launchResult) time.Duration { return l.firstByte }

	row("**wake: request to a suspended sandbox → first byte** (client, through the proxy)", wakes(func(w wakeResult) time.Duration { return w.ttfb }), time.Second)
	row("  wake: server's resume (`status.resume.took_ms`)", wakes(func(w wakeResult) time.Duration { return w.took }), 0)
	row("  suspend before each wake (`Suspended` event)", wakes(func(w wakeResult) time.Duration { return w.suspendTook }), 0)
	row("baseline: cold create → Ready (client)", launches(r.cold, ready), 0)
	row("baseline: cold create → first byte (GET once Ready)", launches(r.cold, firstByte), 0)
	row("**pool claim: POST → Ready seen** (client; running pool)", claims(r.claims, func(c claimResult) time.Duration { return c.ready }), 100*time.Millisecond)
	row("  pool claim: POST → 201 answer", claims(r.claims, func(c claimResult) time.Duration { return c.answered }), 0)
	row("  pool claim: POST → first byte under the new name", claims(r.claims, func(c claimResult) time.Duration { return c.firstByte }), 0)
	row("  pool refill: claim → next pool sandbox Ready", claims(r.claims, func(c claimResult) time.Duration { return c.refill }), 0)
	row("baseline: fresh create (`no_pool`) → Ready (client)", launches(r.fresh, ready), 0)
	row("baseline: fresh create (`no_pool`) → first byte", launches(r.fresh, firstByte), 0)
	row("  fresh create: POST → 201 answer", launches(r.fresh, answered), 0)
	row("suspended-pool claim: POST → Ready seen (`pool.suspend: true`)", claims(r.sclaims, func(c claimResult) time.Duration { return c.ready }), 0)
	row("  suspended-pool claim: POST → first byte under the new name", claims(r.sclaims, func(c claimResult) time.Duration { return c.firstByte }), 0)
	row("  suspended-pool refill: claim → next pool sandbox Suspended", claims(r.sclaims, func(c claimResult) time.Duration { return c.refill }), 0)
	p("\n")

	var notes []string
	bad := 0
	for _, w := range r.wakes {
		if w.status != 200 || !w.nameOK {
			bad++
		}
	}
	if bad > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d wakes did not answer 200 with the sandbox's page", bad, len(r.wakes)))
	}
	for _, set := range [][]claimResult{r.claims, r.sclaims} {
		for _, c := range set {
			if !c.claimed {
				notes = append(notes, c.name+" was not claimed from the pool (launched afresh)")
			}
			if c.status != 200 || !c.nameOK {
				notes = append(notes, fmt.Sprintf("%s answered %d (page names it: %v)", c.name, c.status, c.nameOK))
			}
		}
	}
	for _, l := range append(append([]launchResult(nil), r.cold...), r.fresh...) {
		if l.status != 200 || !l.nameOK {
			notes = append(notes, fmt.Sprintf("%s answered %d (page names it: %v)", l.name, l.status, l.nameOK))
		}
	}
	if len(notes) == 0 {
		p("Every request above answered 200 with the page naming the sandbox it was sent to.\n\n")
	} else {
		p("Problems:\n\n")
		for _, n := range notes {
			p("- %s\n", n)
		}
		p("\n")
	}

	if m := r.mem; m != nil {
		p("Memory of %d guestbook sandboxes: all their processes (those carrying the local runtime's marker environment, found with `proc.Scan`, and their descendants), RSS from `/proc/PID/status`, PSS from `/proc/PID/smaps_rollup`:\n\n", m.n)
		p("| %d sandboxes | processes (marked) | listening TCP ports | RSS (sum) | PSS (sum) | PSS per sandbox | server RSS |\n|---|---:|---:|---:|---:|---:|---:|\n", m.n)
		for _, s := range []struct {
			name string
			s    memSample
		}{{"running (each served its page once)", m.running}, {"suspended", m.suspended}} {
			pss := "n/a"
			per := "n/a"
			if s.s.pssOK {
				pss = mib(s.s.pss)
				per = mib(s.s.pss / int64(max(1, m.n)))
			}
			p("| %s | %d (%d) | %d | %s | %s | %s | %s |\n", s.name, s.s.processes, s.s.marked, s.s.listening, mib(s.s.rss), pss, per, mib(s.s.serverRSS))
		}
		p("\n")
		var units []string
		for u := range m.running.perUnitProc {
			units = append(units, u)
		}
		sort.Slice(units, func(i, j int) bool { return m.running.perUnitPSS[units[i]] > m.running.perUnitPSS[units[j]] })
		var parts []string
		for _, u := range units {
			parts = append(parts, fmt.Sprintf("%s %s in %d", u, mib(m.running.perUnitPSS[u]), m.running.perUnitProc[u]))
		}
		p("Running, PSS by unit (command) and process count: %s. All %d became Ready %s after being created at once; suspending one took %s (p50, `Suspended` event).\n\n",
			strings.Join(parts, "; "), m.n, harness.FmtDur(m.readyAll), harness.FmtDur(harness.Pct(m.suspendTook, 50)))
	}

	if len(r.wakes) > 0 {
		var tls []timeline
		for _, w := range r.wakes {
			tls = append(tls, w.tl)
		}
		p("Where a wake's time goes (median over %d wakes; 0 = the client sent its request; server timestamps from events and `status.stages`, same host clock; each column is a median of its own):\n\n", len(tls))
		p("%s\n", timelineTable(tls))
	}
	if len(r.claims) > 0 {
		var tls []timeline
		for _, c := range r.claims {
			tls = append(tls, c.tl)
		}
		p("Where a claim's time goes (running pool, median over %d claims; 0 = POST sent):\n\n", len(tls))
		p("%s\n", timelineTable(tls))
	}
	if len(r.sclaims) > 0 {
		var tls []timeline
		for _, c := range r.sclaims {
			tls = append(tls, c.tl)
		}
		p("Where a claim's time goes (suspended pool, median over %d claims; 0 = POST sent):\n\n", len(tls))
		p("%s\n", timelineTable(tls))
	}
	return b.String()
}

// timelineTable aggregates timelines: per stage the median start, end and
// duration (each a median of its own, so they need not add up) and how
// many runs had it; per mark its median moment; in time order.
func timelineTable(tls []timeline) string {
	type row struct {
		name     string
		from, to []time.Duration
		states   map[string]int
		isMark   bool
		sortAt   time.Duration
		count    int
	}
	rows := map[string]*row{}
	get := func(name string, mark bool) *row {
		key := name
		if mark {
			key = "mark:" + name
		}
		if rows[key] == nil {
			rows[key] = &row{name: name, isMark: mark, states: map[string]int{}}
		}
		return rows[key]
	}
	for _, tl := range tls {
		for _, s := range tl.spans {
			r := get(s.name, false)
			r.from = append(r.from, s.from)
			r.to = append(r.to, s.to)
			r.states[string(s.state)]++
			r.count++
		}
		for name, at := range tl.marks {
			r := get(name, true)
			r.to = append(r.to, at)
			r.count++
		}
	}
	// A stage with sub-stages ("start" and "start/api") is shown by its
	// sub-stages only.
	parents := map[string]bool{}
	for _, r := range rows {
		if i := strings.LastIndexByte(r.name, '/'); i > 0 && !r.isMark {
			parents[r.name[:i]] = true
		}
	}
	var list []*row
	for _, r := range rows {
		if !r.isMark && parents[r.name] {
			continue
		}
		if r.isMark {
			r.sortAt = harness.Pct(r.to, 50)
		} else {
			r.sortAt = harness.Pct(r.from, 50)
		}
		list = append(list, r)
	}
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].sortAt != list[j].sortAt {
			return list[i].sortAt < list[j].sortAt
		}
		return list[i].name < list[j].name
	})
	var b strings.Builder
	b.WriteString("| step | starts | ends | duration | in runs |\n|---|---:|---:|---:|---:|\n")
	for _, r := range list {
		if r.isMark {
			fmt.Fprintf(&b, "| %s |  | %s |  | %d |\n", r.name, fmtSigned(harness.Pct(r.to, 50)), r.count)
			continue
		}
		var d []time.Duration
		for i := range r.from {
			d = append(d, r.to[i]-r.from[i])
		}
		var st []string
		for s, n := range r.states {
			if s != "succeeded" {
				st = append(st, fmt.Sprintf("%s ×%d", s, n))
			}
		}
		name := "stage `" + r.name + "`"
		if len(st) > 0 {
			sort.Strings(st)
			name += " (" + strings.Join(st, ", ") + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d |\n", name, fmtSigned(harness.Pct(r.from, 50)), fmtSigned(harness.Pct(r.to, 50)), harness.FmtDur(harness.Pct(d, 50)), r.count)
	}
	return b.String()
}

// fmtSigned is fmtDur that keeps a sign (a stage can start before the
// client's request when the server's clock is read earlier).
func fmtSigned(d time.Duration) string {
	if d < 0 {
		return "−" + harness.FmtDur(-d)
	}
	return harness.FmtDur(d)
}
