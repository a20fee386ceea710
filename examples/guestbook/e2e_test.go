// End-to-end test of the two binaries, wired the way sandpit.yaml wires
// them: build, `api migrate` (the init step), run api and web as processes
// configured only by environment and config.json, use them over HTTP, then
// stop them with SIGTERM.
package guestbook_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sandpit.dev/sandpit/examples/guestbook/internal/pgtest"
)

func TestBinariesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to build the binaries with")
	}
	pg := pgtest.Start(t)
	db := pg.CreateDatabase(t)

	// The checkout: binaries in bin/, config.json rendered beside them.
	work := t.TempDir()
	for _, name := range []string{"api", "web"} {
		cmd := exec.Command(goBin, "build", "-o", filepath.Join(work, "bin", name), "./cmd/"+name)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, out)
		}
	}
	apiPort, webPort := freePort(t), freePort(t)
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	webURL := fmt.Sprintf("http://127.0.0.1:%d", webPort)
	config := fmt.Sprintf(`{"sandbox": "e2e", "api": %q, "public_url": "http://app--e2e.localhost:7701"}`, apiURL)
	if err := os.WriteFile(filepath.Join(work, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	apiEnv := []string{
		"DATABASE_URL=" + pg.URL(db),
		fmt.Sprintf("LISTEN=127.0.0.1:%d", apiPort),
		"SANDBOX_NAME=e2e",
	}

	// init: twice, as an interrupted init would be.
	for i, wantSeeded := range []bool{true, false} {
		out := runOnce(t, work, apiEnv, "./bin/api", "migrate")
		var line struct {
			Msg    string `json:"msg"`
			Seeded bool   `json:"seeded"`
		}
		if err := json.Unmarshal(lastLine(out), &line); err != nil || line.Msg != "migrated" || line.Seeded != wantSeeded {
			t.Fatalf("migrate #%d logged %q (%v); want msg=migrated seeded=%v", i+1, out, err, wantSeeded)
		}
	}

	api := startProc(t, work, apiEnv, "./bin/api")
	waitHealthy(t, apiURL+"/healthz", api)
	web := startProc(t, work, []string{fmt.Sprintf("LISTEN=127.0.0.1:%d", webPort), "API_URL=" + apiURL}, "./bin/web")
	waitHealthy(t, webURL+"/healthz", web)

	resp, err := http.Get(webURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"<title>Guestbook · e2e</title>", "Welcome to sandbox e2e!", `<code id="database">` + db + `</code>`, "PostgreSQL 15"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("page does not contain %q", want)
		}
	}
	if resp.StatusCode != 200 || t.Failed() {
		t.Fatalf("GET / = %d\n%s", resp.StatusCode, page)
	}

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noRedirect.PostForm(webURL+"/entries", url.Values{"author": {"e2e"}, "message": {"posted through the form"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /entries = %d, want 303", resp.StatusCode)
	}
	resp, err = http.Get(apiURL + "/api/info")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Sandbox  string `json:"sandbox"`
		Database string `json:"database"`
		Entries  int    `json:"entries"`
	}
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info.Sandbox != "e2e" || info.Database != db || info.Entries != 3 {
		t.Fatalf("/api/info = %+v, want sandbox e2e, database %s, 3 entries", info, db)
	}

	// SIGTERM: both stop cleanly, and every log line is JSON.
	for _, p := range []*proc{web, api} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("%s after SIGTERM: %v\n%s", p.name, err, p.out.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not stop within 15s of SIGTERM", p.name)
		}
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		var msgs []string
		for sc.Scan() {
			var line struct{ Msg, Service string }
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Errorf("%s logged a line that is not JSON: %q", p.name, sc.Text())
			}
			msgs = append(msgs, line.Msg)
		}
		if len(msgs) == 0 || msgs[len(msgs)-1] != "stopped" {
			t.Errorf("%s log messages = %q, want them to end with stopped", p.name, msgs)
		}
	}
}

type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func startProc(t *testing.T, dir string, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(name, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func runOnce(t *testing.T, dir string, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

func waitHealthy(t *testing.T, u string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("%s exited before it was healthy: %v\n%s", p.name, err, p.out.String())
		default:
		}
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not healthy at %s after 20s\n%s", p.name, u, p.out.String())
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
