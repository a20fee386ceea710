package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// chattyLines is how many log lines a chatty sandbox writes: the init's
// command and output, two lines of api and one of worker.
const chattyLines = 5

func TestLogs(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, chattyTemplate)
	s.Create(t, "demo", "chatty")
	s.WaitPhase(t, "demo", sandbox.PhaseReady)
	// Output reaches the log files a moment after it is written.
	testenv.Eventually(t, "all log lines", func() bool {
		r := do(t, s, call{method: "GET", path: "/api/v1/sandboxes/demo/logs"})
		return bytes.Count(r.body, []byte("\n")) >= chattyLines
	})
	get := func(q string) call { return call{method: "GET", path: "/api/v1/sandboxes/demo/logs" + q} }
	runSteps(t, s, s.Scrubber(), "logs", []step{
		{"all", get(""), 200},
		{"service", get("?service=api"), 200},
		{"service_stderr", get("?service=worker"), 200},
		{"tail", get("?tail=2"), 200},
		{"service_tail", get("?service=api&tail=1"), 200},
		{"unknown_service", get("?service=nope"), 404},
		{"bad_tail", get("?tail=-1"), 400},
		{"unknown_sandbox", call{method: "GET", path: "/api/v1/sandboxes/nope/logs"}, 404},
	})

	t.Run("follow_ends_on_delete", func(t *testing.T) {
		followUntilDeleted(t, s, "demo", "", chattyLines)
	})
	t.Run("follow_from_create", func(t *testing.T) {
		// A follow started before the launch made any logs waits for them.
		s.Create(t, "late", "chatty")
		followUntilDeleted(t, s, "late", "&service=api", chattyLines-1)
	})
}

// followUntilDeleted follows a sandbox's logs, reads n lines, deletes the
// sandbox and expects the stream to end.
func followUntilDeleted(t *testing.T, s *testenv.Stack, name, query string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/v1/sandboxes/"+name+"/logs?follow=true"+query, nil)
	req.Header.Set("Authorization", "Bearer "+testenv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
		t.Fatalf("follow = %d %s", resp.StatusCode, ct)
	}
	br := bufio.NewReader(resp.Body)
	for i := 0; i < n; i++ {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		var l client.LogLine
		if err := json.Unmarshal(line, &l); err != nil || l.Service == "" || l.Time.IsZero() {
			t.Fatalf("line %q is not a log line: %v", line, err)
		}
	}
	if _, err := s.Client.DeleteSandbox(ctx, name); err != nil {
		t.Fatal(err)
	}
	// The stream ends by itself once the sandbox is gone (the shim may
	// log its stop first).
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("the stream did not end cleanly: %v (ctx: %v)", err, ctx.Err())
	}
	if ctx.Err() != nil {
		t.Fatal("the stream did not end after the sandbox was deleted")
	}
}

// execFrames sends an exec request made of frames and renders the answer.
func execFrames(t *testing.T, s *testenv.Stack, sandboxName, ctype string, frames ...[]byte) response {
	t.Helper()
	var body bytes.Buffer
	for _, f := range frames {
		body.Write(f)
	}
	if ctype == "" {
		ctype = client.ExecContentType
	}
	return do(t, s, call{method: "POST", path: "/api/v1/sandboxes/" + sandboxName + "/exec", body: body.Bytes(), ctype: ctype})
}

func frame(typ byte, payload []byte) []byte {
	var b bytes.Buffer
	if err := client.WriteFrame(&b, typ, payload); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func start(service string, command ...string) []byte {
	b, _ := json.Marshal(client.ExecRequest{Service: service, Command: command})
	return frame(client.FrameStart, b)
}

var eof = frame(client.FrameStdinEOF, nil)

// renderExec renders an exec answer: all stdout, all stderr (the two are
// written concurrently, so their frames interleave in any order), then
// the exit frame, which must be last.
func renderExec(t *testing.T, sc *testenv.Scrubber, r response) []byte {
	t.Helper()
	if r.status != 200 {
		return render(t, sc, r)
	}
	var stdout, stderr bytes.Buffer
	var exit []byte
	rd := bytes.NewReader(r.body)
	for {
		typ, payload, err := client.ReadFrame(rd)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("bad frame: %v", err)
		}
		if exit != nil {
			t.Errorf("frame %d after the exit frame", typ)
		}
		switch typ {
		case client.FrameStdout:
			stdout.Write(payload)
		case client.FrameStderr:
			stderr.Write(payload)
		case client.FrameExit:
			exit = payload
		default:
			t.Errorf("unknown frame type %d", typ)
		}
	}
	if exit == nil {
		t.Error("no exit frame")
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP %d %s\nContent-Type: %s\n\n", r.status, http.StatusText(r.status), r.header.Get("Content-Type"))
	fmt.Fprintf(&b, "stdout %q\nstderr %q\nexit %s\n", sc.String(stdout.String()), sc.String(stderr.String()), sc.String(string(exit)))
	return b.Bytes()
}

func TestExec(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, chattyTemplate)
	s.Create(t, "demo", "chatty")
	s.WaitPhase(t, "demo", sandbox.PhaseReady)
	sc := s.Scrubber()

	cases := []struct {
		name    string
		sandbox string
		ctype   string
		frames  [][]byte
		want    int
	}{
		{"exit_code", "demo", "", [][]byte{start("api", "sh", "-c", "echo out; echo err >&2; exit 3"), eof}, 200},
		{"stdin", "demo", "", [][]byte{start("api", "cat"), frame(client.FrameStdin, []byte("hello ")), frame(client.FrameStdin, []byte("world\n")), eof}, 200},
		{"no_stdin_eof", "demo", "", [][]byte{start("api", "echo", "no input needed")}, 200},
		// The command runs in the service's workdir with its env and user.
		{"environment", "demo", "", [][]byte{start("worker", "sh", "-c", `echo "$SANDPIT_SANDBOX_NAME $USER $(basename "$PWD")"; ls`), eof}, 200},
		{"unknown_service", "demo", "", [][]byte{start("nope", "true"), eof}, 404},
		{"command_not_found", "demo", "", [][]byte{start("api", "no-such-command"), eof}, 200},
		{"no_command", "demo", "", [][]byte{start("api"), eof}, 400},
		{"no_start_frame", "demo", "", [][]byte{frame(client.FrameStdin, []byte("x")), eof}, 400},
		{"empty_body", "demo", "", nil, 400},
		{"bad_start_frame", "demo", "", [][]byte{frame(client.FrameStart, []byte("{"))}, 400},
		{"wrong_content_type", "demo", "application/json", [][]byte{[]byte(`{"service":"api","command":["true"]}`)}, 415},
		{"unknown_sandbox", "nope", "", [][]byte{start("api", "true"), eof}, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := execFrames(t, s, c.sandbox, c.ctype, c.frames...)
			if r.status != c.want {
				t.Errorf("exec = %d, want %d\n%s", r.status, c.want, r.body)
			}
			testenv.Golden(t, filepath.Join("testdata", "exec", c.name+".golden"), renderExec(t, sc, r))
		})
	}
}

// TestExecClient runs commands through the typed client, with stdin
// streamed while the command runs.
func TestExecClient(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, soloTemplate)
	s.Create(t, "demo", "solo")
	s.WaitPhase(t, "demo", sandbox.PhaseReady)
	ctx := context.Background()

	var stdout, stderr bytes.Buffer
	in := strings.Repeat("0123456789abcdef", 10000) // several frames
	code, err := s.Client.Exec(ctx, "demo", client.ExecRequest{Service: "main", Command: []string{"sh", "-c", "wc -c; echo done >&2; exit 7"}},
		client.ExecIO{Stdin: strings.NewReader(in), Stdout: &stdout, Stderr: &stderr})
	if err != nil || code != 7 {
		t.Fatalf("exec = %d, %v; want 7", code, err)
	}
	if got := strings.TrimSpace(stdout.String()); got != fmt.Sprint(len(in)) {
		t.Errorf("the command read %s bytes, want %d", got, len(in))
	}
	if stderr.String() != "done\n" {
		t.Errorf("stderr = %q", stderr.String())
	}

	// A command that exits without reading its input still ends.
	pr, pw := io.Pipe()
	defer pw.Close()
	code, err = s.Client.Exec(ctx, "demo", client.ExecRequest{Service: "main", Command: []string{"true"}}, client.ExecIO{Stdin: pr})
	if err != nil || code != 0 {
		t.Errorf("exec true = %d, %v", code, err)
	}

	_, err = s.Client.Exec(ctx, "demo", client.ExecRequest{Service: "nope", Command: []string{"true"}}, client.ExecIO{})
	if err == nil || !strings.Contains(err.Error(), `no service or dependency "nope"`) {
		t.Errorf("exec in an unknown service: %v", err)
	}
	_, err = s.Client.Exec(ctx, "nope", client.ExecRequest{Service: "main", Command: []string{"true"}}, client.ExecIO{})
	if !client.IsNotFound(err) {
		t.Errorf("exec in an unknown sandbox: %v, want not found", err)
	}
}

// TestWatchSandboxes: a list watch sends the whole list at once, then again
// whenever a sandbox comes, changes phase or goes.
func TestWatchSandboxes(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, soloTemplate)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/api/v1/sandboxes?watch=true", nil)
	req.Header.Set("Authorization", "Bearer "+testenv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lists := make(chan client.SandboxList, 100)
	go func() {
		defer close(lists)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				event = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok && event == "sandboxes" {
				var l client.SandboxList
				if err := json.Unmarshal([]byte(v), &l); err != nil {
					t.Errorf("bad list %q: %v", v, err)
				}
				lists <- l
			}
		}
	}()
	next := func(what string, ok func(client.SandboxList) bool) {
		t.Helper()
		for {
			select {
			case l, open := <-lists:
				if !open {
					t.Fatalf("the watch ended before %s", what)
				}
				if ok(l) {
					return
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no list with %s after 30s", what)
			}
		}
	}
	phaseOf := func(l client.SandboxList, name string) sandbox.Phase {
		for _, sb := range l.Items {
			if sb.Name == name {
				return sb.Status.Phase
			}
		}
		return "gone"
	}
	next("the empty list at once", func(l client.SandboxList) bool { return len(l.Items) == 0 })
	s.Create(t, "demo", "solo")
	next("demo Ready", func(l client.SandboxList) bool { return phaseOf(l, "demo") == sandbox.PhaseReady })
	if _, err := s.Client.DeleteSandbox(t.Context(), "demo"); err != nil {
		t.Fatal(err)
	}
	next("demo gone", func(l client.SandboxList) bool { return phaseOf(l, "demo") == "gone" })

	bad := do(t, s, call{method: "GET", path: "/api/v1/sandboxes?watch=yes"})
	if bad.status != 400 || !strings.Contains(string(bad.body), "watch=true") {
		t.Errorf("watch=yes: %d %s", bad.status, bad.body)
	}
}
