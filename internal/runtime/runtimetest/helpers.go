package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

// Generous bounds: they only decide when a test gives up, never whether
// something was fast enough.
const (
	// WaitTimeout bounds a poll for a condition.
	WaitTimeout = 30 * time.Second
	// UpTimeout bounds one Up.
	UpTimeout = 90 * time.Second
	pollEvery = 10 * time.Millisecond
)

// SharedTempDir creates a directory under /var/tmp with mode 0755, so that
// an unprivileged service user can reach what is put in it (t.TempDir()
// and Go's build directories are 0700). The caller removes it.
func SharedTempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("/var/tmp", prefix)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// BuildTestsvc builds the testsvc program into dir (which must be
// reachable by the service user) and returns its path.
func BuildTestsvc(dir string) (string, error) {
	out := filepath.Join(dir, "testsvc")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", out, "sandpit.dev/sandpit/internal/runtime/runtimetest/testsvc")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build testsvc: %v: %s", err, b)
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return "", err
	}
	return out, nil
}

// Eventually polls cond until it reports true or timeout passes, then
// fails the test with cond's last description.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, desc)
		}
		time.Sleep(pollEvery)
	}
}

// Recorder is a runtime.Progress that records what it is told, safe for
// concurrent use.
type Recorder struct {
	// OnStageStarted, if set, is called (outside the lock) for every
	// StageStarted; interruption tests cancel an Up from it.
	OnStageStarted func(name string)

	mu      sync.Mutex
	entries []string
	open    map[string]int
	events  []RecordedEvent
}

// RecordedEvent is one Progress.Event call.
type RecordedEvent struct {
	Type    sandbox.EventType
	Reason  string
	Message string
}

// StageStarted implements runtime.Progress.
func (r *Recorder) StageStarted(name string) {
	r.mu.Lock()
	if r.open == nil {
		r.open = map[string]int{}
	}
	r.open[name]++
	r.entries = append(r.entries, "started "+name)
	fn := r.OnStageStarted
	r.mu.Unlock()
	if fn != nil {
		fn(name)
	}
}

// StageFinished implements runtime.Progress.
func (r *Recorder) StageFinished(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open == nil {
		r.open = map[string]int{}
	}
	r.open[name]--
	e := "finished " + name
	if err != nil {
		e += ": " + err.Error()
	}
	r.entries = append(r.entries, e)
}

// StageSkipped implements runtime.Progress.
func (r *Recorder) StageSkipped(name, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, "skipped "+name+": "+reason)
}

// Event implements runtime.Progress.
func (r *Recorder) Event(typ sandbox.EventType, reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, RecordedEvent{typ, reason, message})
	r.entries = append(r.entries, fmt.Sprintf("event %s %s: %s", typ, reason, message))
}

// External implements runtime.Progress.
func (r *Recorder) External(kind string) func() { return func() {} }

// Entries returns what was recorded, in order.
func (r *Recorder) Entries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.entries...)
}

// Events returns the recorded events.
func (r *Recorder) Events() []RecordedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RecordedEvent(nil), r.events...)
}

// Has reports whether an entry starts with prefix.
func (r *Recorder) Has(prefix string) bool {
	for _, e := range r.Entries() {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

// Unbalanced lists stages started a different number of times than they
// were finished.
func (r *Recorder) Unbalanced() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for name, n := range r.open {
		if n != 0 {
			out = append(out, fmt.Sprintf("%s (%+d)", name, n))
		}
	}
	return out
}

// ParseTemplate parses YAML as a template file would be, after replacing
// every TESTSVC with the testsvc path, and applies set like the reconciler
// does.
func ParseTemplate(t testing.TB, testsvc, yaml string, set map[string]string) *template.Template {
	t.Helper()
	src := strings.ReplaceAll(yaml, "TESTSVC", testsvc)
	tpl, err := template.Parse("sandpit.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse template: %v\n%s", err, src)
	}
	if len(set) > 0 {
		if tpl, err = tpl.WithSet(set); err != nil {
			t.Fatalf("apply set: %v", err)
		}
	}
	return tpl
}

// HTTPGet fetches http://addr+path and returns the status code and body.
func HTTPGet(addr, path string) (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// CollectLogs returns the selected history (no follow).
func CollectLogs(t testing.TB, lr runtime.LogReader, id string, opts runtime.LogOptions) []runtime.LogLine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	opts.Follow = false
	var out []runtime.LogLine
	if err := lr.Logs(ctx, id, opts, func(l runtime.LogLine) error { out = append(out, l); return nil }); err != nil {
		t.Fatalf("Logs(%s, %+v): %v", id, opts, err)
	}
	return out
}

// ExecOutput runs a command through Exec and returns its exit code and
// output.
func ExecOutput(t testing.TB, ex runtime.Execer, id, service, stdin string, argv ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	req := runtime.ExecRequest{Service: service, Command: argv, Stdout: &stdout, Stderr: &stderr}
	if stdin != "" {
		req.Stdin = strings.NewReader(stdin)
	}
	code, err := ex.Exec(ctx, id, req)
	if err != nil {
		t.Fatalf("Exec(%s, %s, %q): %v", id, service, argv, err)
	}
	return code, stdout.String(), stderr.String()
}

// Service returns the named service of an observation.
func Service(t testing.TB, obs *runtime.Observation, name string) sandbox.ServiceStatus {
	t.Helper()
	for _, s := range obs.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("observation has no service %q: %+v", name, obs.Services)
	return sandbox.ServiceStatus{}
}

func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
