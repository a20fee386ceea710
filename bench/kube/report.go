package main

import (
	"fmt"
	"strings"
	"time"

	"sandpit.dev/sandpit/bench/internal/harness"
)

// targetRate is issue 6's target: sandboxes created (applied) per second.
const targetRate = 20.0

// runInfo is everything one run measured.
type runInfo struct {
	start, end                   time.Time
	loadBefore, loadAfter        string
	machine                      string
	args                         []string
	kubectlFirst                 bool
	n, c, dc                     int
	sandpitCreate, sandpitDelete *row
	kubectlCreate, kubectlDelete *row
	upCreate, upDelete           *row
	floorCreate                  *row
}

func (r *runInfo) rows() []*row {
	var out []*row
	for _, x := range []*row{r.sandpitCreate, r.kubectlCreate, r.floorCreate, r.upCreate, r.sandpitDelete, r.kubectlDelete, r.upDelete} {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

// report renders the run as Markdown.
func report(r *runInfo) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	cmd := "go run ./bench/kube"
	if len(r.args) > 0 {
		cmd += " " + strings.Join(r.args, " ")
	}
	p("## Kubernetes runtime: %d sandboxes created (%d at a time) and deleted (%d at a time)\n\n", r.n, r.c, r.dc)
	p("%s, `%s`, %s; load average %s before, %s after (the benchmark's own); %s.\n\n",
		r.start.Format("2006-01-02 15:04 MST"), cmd, r.end.Sub(r.start).Round(time.Second), r.loadBefore, r.loadAfter, r.machine)
	order := "sandpit, then the kubectl baseline"
	if r.kubectlFirst {
		order = "the kubectl baseline, then sandpit"
	}
	if r.floorCreate != nil {
		order += ", then the floor"
	}
	if r.upCreate != nil {
		order += ", then sandpit with `Up`"
	}
	p("Order: %s; each create is followed by its delete. The kubectl baseline's files are rendered before its clock starts; sandpit renders inside `Apply`.\n\n", order)
	p("Each sandbox: a namespace with 2 Deployments (3 replicas in the manifests, 1 in the sandbox), 2 Services, a ConfigMap and an Ingress. ")
	p("Rate = sandboxes done / wall time from the first call to the last return; p50/p99 per sandbox (nearest rank). ")
	p("\"complete\" = namespaces holding every object after the create; \"orphans\" = the run's namespaces still present plus objects of any kind labelled with the run's instance, after the delete.\n\n")

	p("| operation | sandboxes/s | p50 | p99 | wall | failed | complete | orphans |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range r.rows() {
		name := x.name
		if x == r.sandpitCreate || x == r.sandpitDelete {
			name = "**" + name + "**"
		}
		comp, orph := "", ""
		if x.complete >= 0 {
			comp = fmt.Sprintf("%d/%d", x.complete, x.n)
		}
		if x.orphans >= 0 {
			orph = fmt.Sprint(x.orphans)
		}
		p("| %s | %.1f | %s | %s | %s | %d | %s | %s |\n", name, x.rate(), harness.FmtDur(harness.Pct(x.took, 50)), harness.FmtDur(harness.Pct(x.took, 99)),
			harness.FmtDur(x.wall), x.failed, comp, orph)
	}
	p("\n")
	if s := r.sandpitCreate; s != nil {
		verdict := "**MET**"
		if s.rate() < targetRate || s.failed > 0 {
			verdict = "**MISSED**"
		}
		p("Target (at least %.0f sandboxes/s created to applied): %s, %.1f/s", targetRate, verdict, s.rate())
		if k := r.kubectlCreate; k != nil && k.rate() > 0 {
			p(", %.1f× the kubectl baseline (%.1f/s)", s.rate()/k.rate(), k.rate())
		}
		p(". Orphans after delete: sandpit %d, kubectl %d.\n\n", orphanCount(r.sandpitDelete), orphanCount(r.kubectlDelete))
	}
	for _, x := range r.rows() {
		for _, e := range x.errs {
			p("- error in %s: `%.300s`\n", x.name, e)
		}
		if len(x.orphanExamples) > 0 {
			p("- orphans after %s: %s\n", x.name, strings.Join(x.orphanExamples, ", "))
		}
	}

	p("\nCPU during each operation (cores, averaged over its wall time; \"benchmark\" is this process, i.e. sandpit's client side, \"kubectl\" its kubectl children; the machine has the cores above):\n\n")
	p("| operation |")
	for _, c := range cpuParts {
		p(" %s |", c)
	}
	p(" other | host | cluster CPU per sandbox | client CPU per sandbox |\n|---|")
	for range cpuParts {
		p("---:|")
	}
	p("---:|---:|---:|---:|\n")
	for _, x := range r.rows() {
		p("| %s |", x.name)
		var cluster, client float64
		for _, c := range cpuParts {
			p(" %.2f |", x.cpu.cores[c])
			if c == "benchmark" || c == "kubectl" {
				client += x.cpu.cores[c]
			} else {
				cluster += x.cpu.cores[c]
			}
		}
		per := func(cores float64) string {
			return harness.FmtDur(time.Duration(cores * x.cpu.wall.Seconds() / float64(x.n) * float64(time.Second)))
		}
		p(" %.2f | %.2f | %s | %s |\n", x.cpu.other, x.cpu.total, per(cluster), per(client))
	}
	apiTable(&b, r)
	return b.String()
}

// apiTable breaks each create down by API request, per sandbox: what the
// client sent and what the controllers, the scheduler and kwok did in
// reaction, during the operation's wall time.
func apiTable(b *strings.Builder, r *runInfo) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var cols []*row
	for _, x := range []*row{r.sandpitCreate, r.kubectlCreate, r.floorCreate, r.upCreate, r.sandpitDelete, r.kubectlDelete} {
		if x != nil && len(x.api) > 0 {
			cols = append(cols, x)
		}
	}
	if len(cols) == 0 {
		return
	}
	p("\nAPI requests per sandbox during each operation, by verb and resource (apiserver_request_total; everyone's requests, the clients' and the controllers'), with the API server's time on them (sum of latencies):\n\n| request |")
	for _, x := range cols {
		p(" %s |", x.name)
	}
	p("\n|---|")
	for range cols {
		p("---:|")
	}
	p("\n")
	// Keys: every one above 0.5 per sandbox in some column, in the order
	// of the first column that has it.
	var keys []string
	seen := map[string]bool{}
	for _, x := range cols {
		for _, u := range x.api {
			if !seen[u.key] && (u.requests >= 0.5 || u.key == "all") {
				seen[u.key] = true
				keys = append(keys, u.key)
			}
		}
	}
	for _, k := range keys {
		name := "`" + k + "`"
		if k == "all" {
			name = "**all**"
		}
		p("| %s |", name)
		for _, x := range cols {
			cell := ""
			for _, u := range x.api {
				if u.key == k {
					cell = fmt.Sprintf("%.1f (%.0f ms)", u.requests, u.ms)
				}
			}
			p(" %s |", cell)
		}
		p("\n")
	}
}

func orphanCount(x *row) int {
	if x == nil {
		return -1
	}
	return x.orphans
}
