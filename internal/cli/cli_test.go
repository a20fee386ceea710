package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sandpit.dev/sandpit/internal/cli"
	"sandpit.dev/sandpit/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
	testenv.Main(m)
}

// childEnv makes the test binary run as the sandpit CLI (with the binary's
// signal handling), for tests that need a real process to signal.
const childEnv = "SANDPIT_CLI_TEST_CHILD"

func runChild() int {
	ctx, stop := cli.SignalContext()
	defer stop()
	root := cli.NewRoot(cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, "v0.0.0-test")
	root.SetArgs(os.Args[1:])
	return cli.Execute(ctx, root, os.Stderr)
}

// result is what one run of the CLI did.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

// env is the CLI's surroundings in a test: the variables it sees and its
// standard input.
type env struct {
	vars  map[string]string
	stdin string
	// tty makes stderr a terminal (progress is drawn in place).
	tty bool
}

func stackEnv(s *testenv.Stack) env {
	return env{vars: map[string]string{"SANDPIT_SERVER": s.URL, "SANDPIT_TOKEN": testenv.Token}}
}

// sandpit runs the CLI in-process, as the binary would (without its server
// commands).
func (e env) sandpit(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := cli.NewRoot(cli.Env{
		Stdin:      strings.NewReader(e.stdin),
		Stdout:     &stdout,
		Stderr:     &stderr,
		Getenv:     func(k string) string { return e.vars[k] },
		IsTerminal: func(w io.Writer) bool { return e.tty && w == &stderr },
	}, "v0.0.0-test")
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	code := cli.Execute(ctx, root, &stderr)
	return result{args: args, stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// render formats a result for a golden file.
func (r result) render(sc *testenv.Scrubber) []byte {
	var b bytes.Buffer
	clean := func(s string) string {
		if sc != nil {
			s = sc.String(s)
		}
		return s
	}
	args := make([]string, len(r.args))
	for i, a := range r.args {
		if a == "" || strings.ContainsAny(a, " \t'\"$;&|<>*?") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		args[i] = a
	}
	fmt.Fprintf(&b, "$ sandpit %s\n", clean(strings.Join(args, " ")))
	fmt.Fprintf(&b, "--- stdout\n%s", clean(r.stdout))
	if r.stdout != "" && !strings.HasSuffix(r.stdout, "\n") {
		b.WriteString("\n[no newline at the end]\n")
	}
	fmt.Fprintf(&b, "--- stderr\n%s", clean(r.stderr))
	if r.stderr != "" && !strings.HasSuffix(r.stderr, "\n") {
		b.WriteString("\n[no newline at the end]\n")
	}
	fmt.Fprintf(&b, "--- exit %d\n", r.code)
	return b.Bytes()
}

// golden checks a result against testdata/<name>.golden.
func golden(t *testing.T, name string, sc *testenv.Scrubber, r result) {
	t.Helper()
	testenv.Golden(t, filepath.Join("testdata", name+".golden"), r.render(sc))
}

// expect checks the exit code and the golden file of one run.
func expect(t *testing.T, name string, sc *testenv.Scrubber, want int, r result) {
	t.Helper()
	if r.code != want {
		t.Errorf("sandpit %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, want, r.stdout, r.stderr)
	}
	golden(t, name, sc, r)
}

// scrubber is the stack's scrubber with the CLI's own run-specific text:
// ages in tables (kept as wide, so columns stay aligned) and the elapsed
// times that start progress lines.
func scrubber(s *testenv.Stack) *testenv.Scrubber {
	abs, _ := filepath.Abs("testdata")
	return s.Scrubber().Literal(abs, "<testdata>").
		Pattern(`(?m)^ *\+[0-9.]+(ms|s|µs)`, "+<t>").
		Pattern(`(?m)(\s)\ds(\s|$)`, "${1}Ns${2}")
}

// collapse makes columns whose width depends on pids and durations
// stable: every run of two or more spaces becomes two.
func collapse(s string) string {
	s = regexp.MustCompile(`  +`).ReplaceAllString(s, "  ")
	// Pids of running services.
	return regexp.MustCompile(`(?m)^(  \S+  (running|starting|restarting)  \S+  \d+  \S+  )\d+`).ReplaceAllString(s, "${1}<pid>")
}

// sortSection sorts the lines of a section of the get command's output
// (stages that run at once are listed in the order they started, which
// varies).
func sortSection(s, header string) string {
	i := strings.Index(s, header+"\n")
	if i < 0 {
		return s
	}
	start := i + len(header) + 1
	end := strings.Index(s[start:], "\n\n")
	if end < 0 {
		end = len(s) - start
	}
	lines := strings.Split(strings.TrimSuffix(s[start:start+end], "\n"), "\n")
	sort.Strings(lines)
	return s[:start] + strings.Join(lines, "\n") + "\n" + strings.TrimPrefix(s[start+end:], "\n")
}
