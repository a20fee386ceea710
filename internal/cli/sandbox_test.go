package cli_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/cli"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// racyLine is the one progress line whose place varies: with no
// dependencies, "dependencies skipped" is reported while the build stage
// runs, so it lands anywhere among the build's lines.
const racyLine = "dependencies skipped: no dependencies"

// dropRacy removes the racy line from output and checks it was there once.
func dropRacy(t *testing.T, s string) string {
	t.Helper()
	var keep []string
	n := 0
	for _, l := range strings.SplitAfter(s, "\n") {
		if strings.Contains(l, racyLine) {
			n++
			continue
		}
		keep = append(keep, l)
	}
	if n != 1 {
		t.Errorf("%q appears %d times, want once:\n%s", racyLine, n, s)
	}
	return strings.Join(keep, "")
}

func applyAll(t *testing.T, s *testenv.Stack, files ...string) {
	t.Helper()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Client.ApplyTemplate(context.Background(), client.ApplyTemplateRequest{Filename: f, Source: string(b)}); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
	}
}

func TestSandboxCommands(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	applyAll(t, s, "shop.yaml", "chatty.yaml", "broken.yaml")
	e := stackEnv(s)
	sc := scrubber(s)
	run := func(name string, want int, args ...string) result {
		t.Helper()
		var r result
		t.Run(name, func(t *testing.T) {
			r = e.sandpit(t, args...)
			expect(t, "sandbox/"+name, sc, want, r)
		})
		return r
	}
	// runWith runs a command whose output needs more than scrubbing.
	runWith := func(name string, want int, fix func(t *testing.T, r *result), args ...string) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			r := e.sandpit(t, args...)
			fix(t, &r)
			expect(t, "sandbox/"+name, sc, want, r)
		})
	}
	dropRacyStderr := func(t *testing.T, r *result) { r.stderr = dropRacy(t, r.stderr) }
	dropRacyStdout := func(t *testing.T, r *result) { r.stdout = dropRacy(t, r.stdout) }
	normalizeJSON := func(t *testing.T, r *result) {
		out, err := sc.JSON([]byte(r.stdout))
		if err != nil {
			t.Fatal(err)
		}
		r.stdout = string(out)
	}
	normalizeYAML := func(t *testing.T, r *result) {
		out, err := sc.YAML([]byte(r.stdout))
		if err != nil {
			t.Fatal(err)
		}
		r.stdout = string(out)
	}
	// Collapsed before it is scrubbed: a pid can look like a port.
	describe := func(t *testing.T, r *result) { r.stdout = sortSection(sc.String(collapse(r.stdout)), "Stages:") }

	run("list_empty", 0, "list")
	run("create", 0, "create", "demo", "--template", "shop")
	s.WaitPhase(t, "demo", sandbox.PhaseReady)
	runWith("create_wait", 0, dropRacyStderr, "create", "web", "-t", "chatty", "--wait")
	runWith("create_wait_json", 0, func(t *testing.T, r *result) { normalizeJSON(t, r); dropRacyStderr(t, r) },
		"create", "tuned", "-t", "shop", "--set", "env.LOG_LEVEL=debug", "--wait", "-o", "json")
	t.Run("create_wait_tty", func(t *testing.T) {
		// On a terminal the stages are redrawn in place; the result is the
		// same. (Not golden: what is drawn depends on timing.)
		tty := e
		tty.tty = true
		r := tty.sandpit(t, "create", "drawn", "-t", "shop", "--wait")
		if r.code != 0 || r.stdout != "app\thttp://app--drawn.sandpit.test\n" {
			t.Errorf("create --wait on a terminal: exit %d\n%s", r.code, r.stdout)
		}
		for _, want := range []string{"\x1b[", "✓", "checkout", "Ready", "Sandbox drawn is Ready"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("the progress has no %q:\n%s", want, r.stderr)
			}
		}
		if _, err := s.Client.DeleteSandbox(context.Background(), "drawn"); err != nil {
			t.Fatal(err)
		}
		s.WaitGone(t, "drawn")
	})
	runWith("create_failing_build", 1, dropRacyStderr, "create", "broken", "-t", "broken", "--wait")
	run("create_conflict", 1, "create", "demo", "--template", "shop")
	run("create_unknown_template", 1, "create", "x", "--template", "nope")
	run("create_invalid_name", 1, "create", "My_Box", "--template", "shop")
	run("create_bad_set", 1, "create", "x", "--template", "shop", "--set", "envv.A=1", "--set", "services.db.env.B=2")

	run("list", 0, "list")
	run("list_name", 0, "list", "-o", "name")
	run("list_failed", 0, "list", "--phase", "failed")
	run("list_template", 0, "list", "--template", "shop")
	run("list_bad_phase", 1, "list", "--phase", "Running")
	runWith("list_json", 0, normalizeJSON, "list", "-t", "chatty", "-o", "json")
	runWith("list_yaml", 0, normalizeYAML, "list", "-t", "chatty", "-o", "yaml")

	runWith("get", 0, describe, "get", "web")
	runWith("get_failed", 0, describe, "get", "broken")
	runWith("get_json", 0, normalizeJSON, "get", "web", "-o", "json")
	runWith("get_yaml", 0, normalizeYAML, "get", "web", "-o", "yaml")
	run("get_near_name", 1, "get", "dem")

	run("logs", 0, "logs", "web")
	run("logs_service", 0, "logs", "web", "api")
	run("logs_tail", 0, "logs", "web", "--tail", "2")
	run("logs_json", 0, "logs", "web", "worker", "-o", "json")
	run("logs_timestamps", 0, "logs", "web", "api", "-T", "--tail", "1")
	run("logs_unknown_service", 1, "logs", "web", "nope")
	run("logs_failed_build", 0, "logs", "broken")

	run("exec_exit_code", 3, "exec", "web", "api", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	t.Run("exec_stdin", func(t *testing.T) {
		in := e
		in.stdin = "hello\nworld\n"
		expect(t, "sandbox/exec_stdin", sc, 0, in.sandpit(t, "exec", "-i", "web", "api", "--", "sort", "-r"))
	})
	t.Run("exec_without_stdin", func(t *testing.T) {
		// Without -i the command reads nothing, even when there is input.
		in := e
		in.stdin = "ignored\n"
		expect(t, "sandbox/exec_without_stdin", sc, 0, in.sandpit(t, "exec", "web", "api", "--", "wc", "-c"))
	})
	run("exec_command_not_found", 127, "exec", "web", "api", "--", "no-such-command")
	run("exec_unknown_service", 1, "exec", "web", "nope", "--", "true")
	run("exec_unknown_sandbox", 1, "exec", "nope", "api", "--", "true")

	runWith("events", 0, dropRacyStdout, "events", "demo")
	t.Run("events_json", func(t *testing.T) {
		r := e.sandpit(t, "events", "demo", "-o", "json")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) < 5 || !strings.Contains(lines[0], `"reason":"Created"`) {
			t.Errorf("events -o json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	run("delete", 0, "delete", "demo")
	runWith("delete_wait", 0, func(t *testing.T, r *result) {}, "delete", "web", "broken", "--wait")
	run("delete_unknown", 1, "delete", "nope")
	s.WaitGone(t, "demo")
	run("list_after_delete", 0, "list")
}

// TestEventsFollow follows a sandbox's events until it is deleted.
func TestEventsFollow(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	applyAll(t, s, "shop.yaml")
	s.Create(t, "demo", "shop")
	s.WaitPhase(t, "demo", sandbox.PhaseReady)

	stdout := &signalWriter{first: make(chan struct{})}
	var stderr strings.Builder
	root := cli.NewRoot(cli.Env{
		Stdout: stdout, Stderr: &stderr,
		Getenv: func(k string) string { return stackEnv(s).vars[k] },
	}, "test")
	root.SetArgs([]string{"events", "demo", "-f"})
	done := make(chan int)
	go func() { done <- cli.Execute(context.Background(), root, &stderr) }()
	// Delete once the follow has begun (it prints the history first).
	<-stdout.first
	if _, err := s.Client.DeleteSandbox(context.Background(), "demo"); err != nil {
		t.Fatal(err)
	}
	code := <-done
	out := stdout.String()
	if code != 0 || !strings.Contains(out, "Created") || !strings.Contains(out, "Provisioning → Ready") {
		t.Errorf("events -f: exit %d\n%s%s", code, out, stderr.String())
	}
}

// signalWriter is a buffer safe for concurrent use that closes first on
// the first write.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() == 0 && len(p) > 0 {
		close(w.first)
	}
	return w.buf.Write(p)
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestConnection covers finding the server and the token.
func TestConnection(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	sc := scrubber(s)

	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	sc.Literal(down, "<down>")

	tokenDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(tokenDir, "admin.token"), []byte(testenv.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyDir := t.TempDir()
	sc.Literal(tokenDir, "<token-dir>").Literal(emptyDir, "<empty-dir>")

	cases := []struct {
		name string
		vars map[string]string
		args []string
		want int
	}{
		{"server_down", map[string]string{"SANDPIT_SERVER": down, "SANDPIT_TOKEN": testenv.Token}, []string{"list"}, 1},
		{"wrong_token", map[string]string{"SANDPIT_SERVER": s.URL, "SANDPIT_TOKEN": "spt_wrong"}, []string{"list"}, 1},
		{"no_token", map[string]string{"SANDPIT_SERVER": s.URL, "SANDPIT_DATA_DIR": emptyDir}, []string{"list"}, 1},
		{"token_from_data_dir", map[string]string{"SANDPIT_SERVER": s.URL, "SANDPIT_DATA_DIR": tokenDir}, []string{"template", "list"}, 0},
		{"token_from_data_dir_flag", map[string]string{"SANDPIT_SERVER": s.URL}, []string{"template", "list", "--data-dir", tokenDir}, 0},
		{"server_flag", map[string]string{"SANDPIT_SERVER": down, "SANDPIT_TOKEN": testenv.Token}, []string{"template", "list", "--server", s.URL}, 0},
		{"server_not_url", map[string]string{"SANDPIT_SERVER": "localhost:7700", "SANDPIT_TOKEN": testenv.Token}, []string{"list"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expect(t, "connection/"+c.name, sc, c.want, env{vars: c.vars}.sandpit(t, c.args...))
		})
	}
}
