package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"sandpit.dev/sandpit/bench/internal/harness"
)

// runInfo is everything one run measured.
type runInfo struct {
	start, end            time.Time
	loadBefore, loadAfter string
	machine               string
	webhook               bool // the server has POST /hooks/github
	sizes                 []*sizeRun
	hooks                 map[string][]latency
	hookRepo              *sizeRun
	file                  *fileRun
}

func report(r *runInfo) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# bench/gitsync, %s\n\n", r.start.Format("2006-01-02 15:04"))
	w("`go run ./bench/gitsync %s` — %s; load average %s before, %s after; %s.\n\n",
		strings.Join(os.Args[1:], " "), r.machine, r.loadBefore, r.loadAfter, r.end.Sub(r.start).Round(time.Second))
	w("Passes over a bare repository served by `git daemon` (git://), triggered with `POST /api/v1/repos/{name}/sync` (the first one by `POST /api/v1/repos`). ")
	w("\"trigger → done\" is the client's clock, from the request until it saw the binding's status written by the pass; \"pass\" is the server's own, from the pass's start (`status.last_sync_at`) to the same moment (both include up to one %s poll).\n\n", *poll)
	w("| repository | pass | changes | trigger → done p50 | p95 | pass p50 | p95 | n |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, sr := range r.sizes {
		row := func(what string, changes int, ps []passResult) {
			if len(ps) == 0 {
				return
			}
			c, s := clientTimes(ps), serverTimes(ps)
			w("| %d branches | %s | %d | %s | %s | %s | %s | %d |\n", sr.n, what, changes,
				harness.FmtDur(harness.Pct(c, 50)), harness.FmtDur(harness.Pct(c, 95)), harness.FmtDur(harness.Pct(s, 50)), harness.FmtDur(harness.Pct(s, 95)), len(ps))
		}
		row("**first: creates a sandbox per branch**", sr.n, sr.first)
		row("idle (nothing changed)", 0, sr.idle)
		row(fmt.Sprintf("%d branches moved", *nChanged), *nChanged, sr.moves)
		row(fmt.Sprintf("%d branches deleted", *nChanged), *nChanged, sr.deletes)
		row(fmt.Sprintf("%d branches created again", *nChanged), *nChanged, sr.recreates)
		if len(sr.idleCrowded) > 0 {
			row(fmt.Sprintf("idle, with %d sandboxes on the server", sr.crowd), 0, sr.idleCrowded)
		}
	}
	if f := r.file; f != nil {
		row := func(what string, changes int, ps []passResult) {
			c, s := clientTimes(ps), serverTimes(ps)
			w("| %d branches, **file://** binding | %s | %d | %s | %s | %s | %s | %d |\n", f.n, what, changes,
				harness.FmtDur(harness.Pct(c, 50)), harness.FmtDur(harness.Pct(c, 95)), harness.FmtDur(harness.Pct(s, 50)), harness.FmtDur(harness.Pct(s, 95)), len(ps))
		}
		row("**first: creates a sandbox per branch**", f.n, f.first)
		row(fmt.Sprintf("idle, with %d sandboxes on the server", f.crowd), 0, f.idle)
		row(fmt.Sprintf("%d branches moved", *nChanged), *nChanged, f.moves)
	}
	w("\n| remote | `git ls-remote --heads` git:// p50 | p95 | git:// protocol v0 p50 | p95 | file:// p50 | p95 | n | `git log -1` per branch (file:// bindings), all branches |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sr := range r.sizes {
		w("| %d branches | %s | %s | %s | %s | %s | %s | %d | %s (%s each) |\n", sr.n,
			harness.FmtDur(harness.Pct(sr.lsGit, 50)), harness.FmtDur(harness.Pct(sr.lsGit, 95)), harness.FmtDur(harness.Pct(sr.lsGitV0, 50)), harness.FmtDur(harness.Pct(sr.lsGitV0, 95)),
			harness.FmtDur(harness.Pct(sr.lsFile, 50)), harness.FmtDur(harness.Pct(sr.lsFile, 95)), len(sr.lsGit),
			harness.FmtDur(sr.authors), harness.FmtDur(sr.authors/time.Duration(max(1, sr.n))))
	}
	w("\n")
	for _, sr := range r.sizes {
		w("- %d branches: binding added → all %d sandboxes Ready: %s (launches of `sleep`, not part of the pass); then, nothing triggered, the server used %.2f cores over %s.\n",
			sr.n, sr.n, harness.FmtDur(sr.settleFirst), sr.quietCPU, *quiet)
	}
	if len(r.hooks) > 0 {
		w("\nA new branch pushed to the %d-branch repository, then a trigger; the client polls the branch's sandbox every %s. ", r.hookRepo.n, *poll)
		if r.webhook {
			w("`webhook`: a GitHub `push` delivery (the published example payload, with `repository.clone_url` the binding's URL and `ref`/`after` the new branch) signed with the binding's secret (`X-Hub-Signature-256`), to `POST /hooks/github`; `sync`: `POST /api/v1/repos/{name}/sync`, the same enqueue without the signature check and parsing. The two alternate.\n\n")
		} else {
			w("The server has no `POST /hooks/github`: the trigger is `POST /api/v1/repos/{name}/sync`, the enqueue a webhook does, so the webhook's own signature check and parsing are not included.\n\n")
		}
		w("| trigger | measure | p50 | p95 | n |\n|---|---|---:|---:|---:|\n")
		for _, via := range []string{viaWebhook, viaSync} {
			ls := r.hooks[via]
			if len(ls) == 0 {
				continue
			}
			var ans, ex, cr, pr []time.Duration
			phases := map[string]int{}
			for _, l := range ls {
				ans, ex, cr, pr = append(ans, l.answered), append(ex, l.exists), append(cr, l.created), append(pr, l.provisioning)
				phases[l.phase]++
			}
			row := func(what string, v []time.Duration) {
				w("| %s | %s | %s | %s | %d |\n", via, what, harness.FmtDur(harness.Pct(v, 50)), harness.FmtDur(harness.Pct(v, 95)), len(v))
			}
			row("request → 202 answer", ans)
			row("request → sandbox's `created_at` (server's clock)", cr)
			row("request → sandbox seen (client)", ex)
			row(fmt.Sprintf("**request → seen Provisioning** (first phase seen after Pending: %s)", fmtPhases(phases)), pr)
		}
		w("| periodic pass only (default every 1 min) | push → pass starts: expected | 30 s | 57 s | not measured: half and 95%% of the period |\n")
	}
	return b.String()
}

func fmtPhases(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func clientTimes(ps []passResult) []time.Duration {
	var out []time.Duration
	for _, p := range ps {
		out = append(out, p.client)
	}
	return out
}

func serverTimes(ps []passResult) []time.Duration {
	var out []time.Duration
	for _, p := range ps {
		out = append(out, p.server)
	}
	return out
}
