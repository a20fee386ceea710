package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
)

// launchTimeout is generous: the first launch on a fresh machine downloads
// pgx from the module proxy and compiles it as the service user.
const launchTimeout = 8 * time.Minute

func exampleTemplate() string {
	return filepath.Join(repoRoot, "examples", "guestbook", "sandpit.yaml")
}

// TestGuestbook is the README's tour: the example launches, its page
// through the endpoint proxy shows data from its own PostgreSQL, a second
// sandbox runs beside it with its own ports, files and database, and a
// deletion leaves nothing behind.
func TestGuestbook(t *testing.T) {
	s := newServer(t)
	out := s.mustCLI("template", "apply", "-f", exampleTemplate())
	if !strings.Contains(out, "template guestbook version 1 applied") {
		t.Fatalf("template apply said %q", out)
	}

	out, errOut, code := s.cli("create", "demo", "--template", "guestbook", "--wait", "--timeout", launchTimeout.String())
	if code != 0 {
		t.Fatalf("create --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	wantURL := fmt.Sprintf("http://app--demo.localhost:%s", strings.Split(s.proxy, ":")[1])
	if !strings.Contains(out, wantURL) {
		t.Errorf("create --wait printed %q on stdout, want the endpoint URL %s", out, wantURL)
	}
	for _, stage := range []string{"checkout", "build", "dependencies", "init", "start", "ready", "Provisioning → Ready"} {
		if !strings.Contains(errOut, stage) {
			t.Errorf("create --wait progress lacks %q:\n%s", stage, errOut)
		}
	}

	code, page := s.get("app--demo.localhost", "/")
	if code != 200 || !strings.Contains(page, "Welcome to sandbox demo!") || !strings.Contains(page, "guestbook") {
		t.Fatalf("page of demo: %d\n%s", code, page)
	}

	// A second sandbox of the same template, side by side.
	s.mustCLI("create", "demo-b", "--template", "guestbook", "--wait", "--timeout", launchTimeout.String())
	a, b := s.sandbox("demo"), s.sandbox("demo-b")
	if pa, pb := a.Status.Dependencies[0].Port, b.Status.Dependencies[0].Port; pa == pb {
		t.Errorf("both sandboxes' databases on port %d", pa)
	}
	for i := range a.Status.Services {
		if a.Status.Services[i].Ports["http"] == b.Status.Services[i].Ports["http"] {
			t.Errorf("service %s has the same port in both sandboxes", a.Status.Services[i].Name)
		}
	}
	// Each sandbox's PostgreSQL keeps its data in a volume of its own.
	for _, sb := range []*client.Sandbox{a, b} {
		dataDir := strings.TrimSpace(s.mustCLI("exec", sb.Name, "db", "--", "psql", "-Atc", "show data_directory"))
		want := filepath.Join(s.dataDir, "volumes", "deps", sb.ID)
		if !strings.HasPrefix(dataDir, want+"/") {
			t.Errorf("%s's database keeps its data in %s, want under %s", sb.Name, dataDir, want)
		}
	}
	// Files are the sandbox's own: each has its rendered config naming it.
	for _, sb := range []*client.Sandbox{a, b} {
		cfg := s.mustCLI("exec", sb.Name, "web", "--", "cat", "config.json")
		if !strings.Contains(cfg, `"sandbox": "`+sb.Name+`"`) {
			t.Errorf("%s's config.json: %s", sb.Name, cfg)
		}
	}

	// A write through one is invisible in the other.
	entry := `{"author":"e2e","message":"written through demo only"}`
	postThroughProxy(t, s, "app--demo.localhost", entry)
	_, pageA := s.get("app--demo.localhost", "/")
	_, pageB := s.get("app--demo-b.localhost", "/")
	if !strings.Contains(pageA, "written through demo only") {
		t.Errorf("the entry written through demo is not on demo's page")
	}
	if strings.Contains(pageB, "written through demo only") {
		t.Errorf("the entry written through demo shows in demo-b: sandboxes share data")
	}
	countA := strings.TrimSpace(s.mustCLI("exec", "demo", "db", "--", "psql", "-d", "guestbook", "-Atc", "select count(*) from entries"))
	countB := strings.TrimSpace(s.mustCLI("exec", "demo-b", "db", "--", "psql", "-d", "guestbook", "-Atc", "select count(*) from entries"))
	if countA == countB {
		t.Errorf("entry counts equal (%s) in both databases after writing to one", countA)
	}

	// delete --wait leaves no process, port, directory or database.
	out = s.mustCLI("delete", "demo", "--wait")
	if !strings.Contains(out, "sandbox demo deleted") {
		t.Errorf("delete --wait said %q", out)
	}
	s.assertGone(a)
	if _, err := s.client.GetSandbox(context.Background(), "demo"); !client.IsNotFound(err) {
		t.Errorf("demo still exists after delete --wait: %v", err)
	}
	// demo-b is untouched by demo's deletion.
	if code, page := s.get("app--demo-b.localhost", "/"); code != 200 || !strings.Contains(page, "Welcome to sandbox demo-b!") {
		t.Errorf("demo-b broke when demo was deleted: %d", code)
	}
	s.mustCLI("delete", "demo-b", "--wait")
	s.assertGone(b)
}

func postThroughProxy(t *testing.T, s *server, host, body string) {
	t.Helper()
	var sb strings.Builder
	sb.WriteString(body)
	req := mustRequest(t, "POST", "http://"+s.proxy+"/api/entries", sb.String())
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("POST through the proxy: %s", resp.Status)
	}
}

func (s *server) sandbox(name string) *client.Sandbox {
	s.t.Helper()
	sb, err := s.client.GetSandbox(context.Background(), name)
	if err != nil {
		s.t.Fatal(err)
	}
	return sb
}

// writeTemplate writes a template next to nothing in particular; its
// source is the guestbook example by absolute path.
func writeTemplate(t *testing.T, name, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
