package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sandpit.dev/sandpit/bench/internal/harness"
	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/sandbox"
)

// latency is one new branch: from the trigger until the client saw its
// sandbox exist, and until it saw it Provisioning (or past it).
type latency struct {
	answered, exists, provisioning time.Duration
	created                        time.Duration // trigger → the sandbox's created_at (server's clock)
	phase                          string        // the first phase after Pending the client saw
}

// hasWebhookRoute reports whether the server answers POST /hooks/github
// with something other than 404/405 (an unsigned, empty request: 400 or
// 401 when the route exists).
func hasWebhookRoute(ctx context.Context, srv *harness.Server) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.API+"/hooks/github", strings.NewReader("{}"))
	harness.Check(err)
	req.Header.Set("X-GitHub-Event", "ping")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed
}

// webhookSecret is every binding's webhook secret.
const webhookSecret = "sandpit-bench-gitsync-0123456789abcdef"

// Triggers of a pass in measureLatency.
const (
	viaWebhook = "webhook"
	viaSync    = "sync"
)

// measureLatency pushes n new branches to sr's repository one at a time
// and, after each push, triggers a pass: alternately a signed GitHub push
// webhook (when the server has POST /hooks/github) and POST
// /api/v1/repos/{name}/sync (the Enqueue the webhook does), n of each.
// It polls the branch's sandbox every -poll until it exists and until it
// is Provisioning. Between two, the branch is deleted again and its
// sandbox waited away, so that every pass sees the same repository.
func measureLatency(ctx context.Context, srv *harness.Server, sr *sizeRun, n int, webhookRoute bool) map[string][]latency {
	c := srv.Client
	vias := []string{viaSync}
	if webhookRoute {
		vias = []string{viaWebhook, viaSync}
	}
	push := loadPushPayload()
	out := map[string][]latency{}
	for i := range n * len(vias) {
		via := vias[i%len(vias)]
		branch := fmt.Sprintf("hook-%02d", i)
		name, _ := sandbox.BranchNames(sr.name, branch)
		sha := sr.bare.move([]string{branch}, true)[branch]
		var trigger func() error
		if via == viaWebhook {
			body := push(sr, branch, sha)
			trigger = func() error { return sendWebhook(ctx, srv, body, sr.name) }
		} else {
			trigger = func() error { _, err := c.SyncRepo(ctx, sr.name); return err }
		}
		var l latency
		t0 := time.Now()
		harness.Check(trigger())
		l.answered = time.Since(t0)
		deadline := t0.Add(2 * time.Minute)
		for {
			sb, err := c.GetSandbox(ctx, name)
			seen := time.Since(t0)
			if err != nil && !client.IsNotFound(err) {
				harness.Check(err)
			}
			if err == nil {
				if l.exists == 0 {
					l.exists = seen
					l.created = sb.CreatedAt.Sub(t0)
				}
				if sb.Status.Phase != "" && sb.Status.Phase != client.PhasePending {
					l.provisioning, l.phase = seen, string(sb.Status.Phase)
					break
				}
			}
			if time.Now().After(deadline) {
				harness.Fatalf("%s: branch %s's sandbox %s not Provisioning 2 min after the %s trigger", sr.name, branch, name, via)
			}
			time.Sleep(*poll)
		}
		out[via] = append(out[via], l)
		if *verbose {
			log.Printf("%s: %s by %s: exists %s, %s %s (answered %s)", sr.name, branch, via, harness.FmtDur(l.exists), l.phase, harness.FmtDur(l.provisioning), harness.FmtDur(l.answered))
		}
		// Back to the repository as it was.
		waitSettled(ctx, c, sr.name, sr.n+1)
		sr.bare.remove([]string{branch})
		_ = syncPass(ctx, c, sr.name, "remove "+branch)
		waitSettled(ctx, c, sr.name, sr.n)
		settle()
	}
	return out
}

// loadPushPayload reads GitHub's published example push payload (the one
// the API's webhook tests use) and returns a function that makes it the
// push of a new branch of sr's repository: full_name sandpit-bench/<name>,
// clone_url the binding's URL (how the server matches the binding), ref,
// before (zeros: a new branch), after, created.
func loadPushPayload() func(sr *sizeRun, branch, sha string) []byte {
	b, err := os.ReadFile(filepath.Join(repoDir, "internal", "api", "testdata", "hooks", "push.json"))
	harness.Check(err)
	return func(sr *sizeRun, branch, sha string) []byte {
		var m map[string]any
		harness.Check(json.Unmarshal(b, &m))
		repo, _ := m["repository"].(map[string]any)
		if repo == nil {
			harness.Fatalf("push.json has no repository object")
		}
		repo["name"], repo["full_name"], repo["clone_url"] = sr.name, "sandpit-bench/"+sr.name, sr.bare.gitURL
		m["ref"], m["before"], m["after"], m["created"] = "refs/heads/"+branch, strings.Repeat("0", 40), sha, true
		if hc, ok := m["head_commit"].(map[string]any); ok {
			hc["id"], hc["tree_id"] = sha, sha
		}
		out, err := json.Marshal(m)
		harness.Check(err)
		return out
	}
}

// sendWebhook posts body to /hooks/github as GitHub does a push event,
// signed with webhookSecret, and checks that it asked for a pass over
// binding repo.
func sendWebhook(ctx context.Context, srv *harness.Server, body []byte, repo string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.API+"/hooks/github", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/bench")
	req.Header.Set(github.EventHeader, "push")
	req.Header.Set("X-GitHub-Delivery", sandbox.NewID())
	req.Header.Set(github.SignatureHeader, github.Sign([]byte(webhookSecret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var hr client.HookResponse
	if err := json.NewDecoder(resp.Body).Decode(&hr); err != nil || resp.StatusCode != http.StatusAccepted || !slices.Contains(hr.Repos, repo) {
		return fmt.Errorf("webhook: %s, %+v, %v; want 202 and a sync of %s", resp.Status, hr, err, repo)
	}
	return nil
}
