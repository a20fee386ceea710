package cli_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// mustBeGone checks that a sandbox no longer exists.
func mustBeGone(t *testing.T, s *testenv.Stack, name string) {
	t.Helper()
	if sb, err := s.Client.GetSandbox(context.Background(), name); !client.IsNotFound(err) {
		t.Errorf("sandbox %s should be gone: %v %+v", name, err, sb)
	}
}

func checkCode(t *testing.T, r result, want int) {
	t.Helper()
	if r.code != want {
		t.Fatalf("sandpit %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, want, r.stdout, r.stderr)
	}
}

func TestCIRun(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	applyAll(t, s, "shop.yaml", "broken.yaml", "ci.yaml")
	e := stackEnv(s)
	ctx := context.Background()

	t.Run("pass", func(t *testing.T) {
		r := e.sandpit(t, "ci", "run", "-t", "shop", "--name", "ci-pass", "--", "sh", "-c", `echo "sandbox=$SANDPIT_SANDBOX url=$SANDPIT_URL_APP"`)
		checkCode(t, r, 0)
		if want := "sandbox=ci-pass url=" + testenv.EndpointURL("ci-pass", "app") + "\n"; r.stdout != want {
			t.Errorf("stdout %q, want %q", r.stdout, want)
		}
		for _, want := range []string{"Launching sandbox ci-pass", "Sandbox ci-pass is Ready", "Running on this machine: sh -c", "sandbox ci-pass deleted"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		mustBeGone(t, s, "ci-pass")
	})

	t.Run("fail_keeps", func(t *testing.T) {
		r := e.sandpit(t, "ci", "run", "-t", "shop", "--name", "ci-fail", "--keep-on-failure", "2h", "--", "sh", "-c", "echo testing; exit 3")
		checkCode(t, r, 3)
		if r.stdout != "testing\n" {
			t.Errorf("stdout %q", r.stdout)
		}
		for _, want := range []string{"COMMAND failed (exit 3)", "kept as Failed for debugging until ", "(2h from now)", "sandpit logs ci-fail", "sandpit exec ci-fail api -- sh", "sandpit delete ci-fail"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		sb, err := s.Client.GetSandbox(ctx, "ci-fail")
		if err != nil {
			t.Fatal(err)
		}
		if sb.Status.Phase != sandbox.PhaseFailed || sb.Status.Message != "ci command exited 3" {
			t.Errorf("phase %s (%s), want Failed (ci command exited 3)", sb.Status.Phase, sb.Status.Message)
		}
		if sb.Lifecycle == nil || sb.Lifecycle.KeepFailed.D() != 2*time.Hour || sb.Lifecycle.KeepFailedFrom != "sandbox" {
			t.Errorf("lifecycle %+v, want keep_failed 2h from the sandbox", sb.Lifecycle)
		}
		if sb.Deadlines == nil || sb.Deadlines.DeleteAt == nil || sb.Status.FailedAt == nil || !sb.Deadlines.DeleteAt.Equal(sb.Status.FailedAt.Add(2*time.Hour)) {
			t.Errorf("deadlines %+v, failed at %v: want delete_at 2h after failed_at", sb.Deadlines, sb.Status.FailedAt)
		}
		// Kept as it was: nothing stopped, nothing relaunched.
		for _, svc := range sb.Status.Services {
			if svc.State != sandbox.ServiceRunning {
				t.Errorf("service %s is %s, want running (kept for debugging)", svc.Name, svc.State)
			}
		}
		if sb.Status.ObservedGeneration != sb.Generation || sb.Spec.FailRequested == nil {
			t.Errorf("generation %d observed %d, fail request %+v", sb.Generation, sb.Status.ObservedGeneration, sb.Spec.FailRequested)
		}
		time.Sleep(300 * time.Millisecond)
		again, err := s.Client.GetSandbox(ctx, "ci-fail")
		if err != nil {
			t.Fatal(err)
		}
		if again.Status.Phase != sandbox.PhaseFailed || !again.Status.FailedAt.Equal(*sb.Status.FailedAt) {
			t.Errorf("the failed sandbox changed: %s, failed at %v", again.Status.Phase, again.Status.FailedAt)
		}
		// Exec into it works, as the hint says.
		r = e.sandpit(t, "exec", "ci-fail", "api", "--", "sh", "-c", "echo debug")
		checkCode(t, r, 0)
	})

	t.Run("fail_keep_zero_deletes", func(t *testing.T) {
		r := e.sandpit(t, "ci", "run", "-t", "shop", "--name", "ci-fail0", "--keep-on-failure", "0", "--", "false")
		checkCode(t, r, 1)
		if !strings.Contains(r.stderr, "sandbox ci-fail0 deleted") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
		mustBeGone(t, s, "ci-fail0")
	})

	t.Run("killed_by_signal", func(t *testing.T) {
		r := e.sandpit(t, "ci", "run", "-t", "shop", "--name", "ci-sig", "--keep-on-failure", "0", "--", "sh", "-c", "kill -TERM $$")
		checkCode(t, r, 128+int(syscall.SIGTERM))
		mustBeGone(t, s, "ci-sig")
	})

	t.Run("not_found", func(t *testing.T) {
		r := e.sandpit(t, "ci", "run", "-t", "shop", "--name", "ci-nf", "--keep-on-failure", "0", "--", "no-such-command-here")
		checkCode(t, r, 127)
		mustBeGone(t, s, "ci-nf")
	})

	t.Run("environment", func(t *testing.T) {
		r := e.sandpit(t, "ci", "run", "-t", "ci", "--name", "ci-env", "--", "sh", "-c", "env | grep -E '^SANDPIT_(DB_|SANDBOX|URL_)' | sort; echo where=$WHERE")
		checkCode(t, r, 0)
		out := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(out) != 6 || out[5] != "where=" {
			t.Fatalf("stdout:\n%s", r.stdout)
		}
		if !strings.HasPrefix(out[0], "SANDPIT_DB_DATABASE=app") || !strings.HasPrefix(out[1], "SANDPIT_DB_HOST=127.0.0.1") ||
			!strings.HasPrefix(out[2], "SANDPIT_DB_PORT=") || out[3] != "SANDPIT_SANDBOX=ci-env" || out[4] != "SANDPIT_URL_WEB_UI="+testenv.EndpointURL("ci-env", "web-ui") {
			t.Errorf("environment:\n%s", r.stdout)
		}
		mustBeGone(t, s, "ci-env")
	})

	t.Run("in_service", func(t *testing.T) {
		r := e.sandpit(t, "ci", "run", "-t", "ci", "--name", "ci-in", "--in", "web", "--", "sh", "-c", `echo "where=$WHERE sandbox=$SANDPIT_SANDBOX db=$SANDPIT_DB_DATABASE"; exit 4`)
		checkCode(t, r, 4)
		if r.stdout != "where=inside sandbox=ci-in db=app\n" {
			t.Errorf("stdout %q", r.stdout)
		}
		if !strings.Contains(r.stderr, "sandpit exec ci-in web -- sh") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
		if sb := s.WaitPhase(t, "ci-in", sandbox.PhaseFailed); sb.Status.Message != "ci command exited 4" {
			t.Errorf("message %q", sb.Status.Message)
		}
	})

	t.Run("in_unknown_service", func(t *testing.T) {
		r := e.sandpit(t, "ci", "run", "-t", "shop", "--name", "ci-in2", "--in", "nope", "--", "true")
		checkCode(t, r, 2)
		if !strings.Contains(r.stderr, `template shop has no service or dependency "nope" for --in: use one of api, worker`) {
			t.Errorf("stderr:\n%s", r.stderr)
		}
		mustBeGone(t, s, "ci-in2")
	})

	t.Run("launch_fails", func(t *testing.T) {
		r := e.sandpit(t, "ci", "run", "-t", "broken", "--name", "ci-broken", "--keep-on-failure", "3h", "--", "true")
		checkCode(t, r, 125)
		for _, want := range []string{"Sandbox ci-broken failed to launch", "COMMAND did not run", "(3h from now)", "sandpit logs ci-broken"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
		}
		sb := s.WaitPhase(t, "ci-broken", sandbox.PhaseFailed)
		if sb.Lifecycle == nil || sb.Lifecycle.KeepFailed.D() != 3*time.Hour {
			t.Errorf("lifecycle %+v", sb.Lifecycle)
		}
	})

	t.Run("default_name", func(t *testing.T) {
		r := e.sandpit(t, "ci", "run", "-t", "shop", "--", "sh", "-c", `echo $SANDPIT_SANDBOX`)
		checkCode(t, r, 0)
		name := strings.TrimSpace(r.stdout)
		if err := sandbox.ValidateSandboxName(name); err != nil || !strings.HasPrefix(name, "shop-") || len(name) != len("shop-")+5 {
			t.Errorf("name %q: %v", name, err)
		}
	})
}

// TestCIRunKeptUntilKeepFailed checks that a sandbox kept by a failed run
// is deleted by the lifecycle once its keep time is over.
func TestCIRunKeptUntilKeepFailed(t *testing.T) {
	t.Parallel()
	clock := testenv.NewClock(time.Now())
	s := testenv.StartWith(t, testenv.Options{Now: clock.Now})
	applyAll(t, s, "shop.yaml")
	e := stackEnv(s)
	r := e.sandpit(t, "ci", "run", "-t", "shop", "--name", "ci-kept", "--keep-on-failure", "1h", "--", "false")
	checkCode(t, r, 1)
	sb := s.WaitPhase(t, "ci-kept", sandbox.PhaseFailed)
	clock.Advance(59 * time.Minute)
	s.Reconciler.Enqueue(sb.ID)
	time.Sleep(200 * time.Millisecond)
	if _, err := s.Client.GetSandbox(context.Background(), "ci-kept"); err != nil {
		t.Fatalf("deleted before its keep time ended: %v", err)
	}
	clock.Advance(2 * time.Minute)
	s.Reconciler.Enqueue(sb.ID)
	s.WaitGone(t, "ci-kept")
}

// TestCIRunInterrupt sends SIGINT to a real `sandpit ci run` process while
// its command runs: the command gets SIGINT, the sandbox is deleted, and
// sandpit exits 130.
func TestCIRunInterrupt(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	applyAll(t, s, "shop.yaml")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "ci", "run", "-t", "shop", "--name", "ci-int", "--", "sh", "-c",
		`trap 'kill $pid; echo got-sigint; exit 42' INT; sleep 1000 & pid=$!; echo started; wait`)
	cmd.Env = append(os.Environ(), childEnv+"=1", "SANDPIT_SERVER="+s.URL, "SANDPIT_TOKEN="+testenv.Token)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		if l != "started" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(testenv.WaitTimeout):
		_ = cmd.Process.Kill()
		t.Fatalf("the command did not start; stderr:\n%s", stderr.String())
	}
	if _, err := s.Client.GetSandbox(context.Background(), "ci-int"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(testenv.WaitTimeout):
		_ = cmd.Process.Kill()
		t.Fatalf("sandpit did not exit after SIGINT; stderr:\n%s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit %d (%v), want 130; stderr:\n%s", code, err, stderr.String())
	}
	if strings.Join(rest, "\n") != "got-sigint" {
		t.Errorf("the command did not get SIGINT: stdout after start %q", rest)
	}
	if !strings.Contains(stderr.String(), "Interrupted; deleting sandbox ci-int") || !strings.Contains(stderr.String(), "sandbox ci-int deleted") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	mustBeGone(t, s, "ci-int")
}
