package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/cgroup"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/runtime/runtimetest"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

func TestParseResourceClass(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want ResourceClass
	}{
		{"small=cpu:0.5,memory:512Mi", ResourceClass{"small", 500, 512 << 20}},
		{"big = cpu: 2 , memory: 4Gi", ResourceClass{"big", 2000, 4 << 30}},
		{"m=cpu:250m", ResourceClass{"m", 250, 0}},
		{"d=memory:100M", ResourceClass{"d", 0, 100_000_000}},
		{"k=memory:8192Ki,cpu:1.5", ResourceClass{"k", 1500, 8 << 20}},
	} {
		got, err := ParseResourceClass(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseResourceClass(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if back, err := ParseResourceClass(got.String()); err != nil || back != got {
			t.Errorf("%q → %q → %+v, %v: String does not round-trip", tc.in, got.String(), back, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"small", "no limits"},
		{"small=", "no limits"},
		{"=cpu:1", "class name"},
		{"a/b=cpu:1", "class name"},
		{"small=cpu:x", `cpu "x" is not an amount of CPU`},
		{"small=cpu:-1", "not an amount of CPU"},
		{"small=cpu:5m", "less than 10m"},
		{"small=memory:lots", `memory "lots" is not a size`},
		{"small=memory:512", "less than 4Mi"},
		{"small=memory:512mi", "not a size"},
		{"small=disk:1Gi", `unknown limit "disk"`},
		{"small=cpu", "is not KEY:VALUE"},
		{"small=cpu:1,cpu:2", "cpu is given twice"},
	} {
		if _, err := ParseResourceClass(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseResourceClass(%q) error %v, want it to mention %q", tc.in, err, tc.want)
		}
	}
}

func TestCheckTemplateRefusesAnUnknownClass(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	src := `apiVersion: sandpit/v1
name: rc
resources:
  class: huge
services:
  web:
    run: TESTSVC http
`
	err := r.CheckTemplate(runtimetest.ParseTemplate(t, testsvc, src, nil))
	var list *template.ErrorList
	if !errors.As(err, &list) || len(*list) != 1 {
		t.Fatalf("CheckTemplate: %v, want one template error", err)
	}
	if e := (*list)[0]; e.Pos.File != "sandpit.yaml" || e.Pos.Line != 4 || e.Path != "resources.class" {
		t.Errorf("error at %v (%s), want sandpit.yaml:4 (resources.class)", e.Pos, e.Path)
	}
	for _, want := range []string{"sandpit.yaml:4:", `resource class "huge" is not defined`, "large, small, standard"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CheckTemplate error %q does not mention %q", err, want)
		}
	}
	ok := runtimetest.ParseTemplate(t, testsvc, strings.Replace(src, "huge", "small", 1), nil)
	if err := r.CheckTemplate(ok); err != nil {
		t.Errorf("CheckTemplate with class small: %v", err)
	}

	// A server's own classes replace the defaults.
	e := newEnv(t)
	e.cfg.ResourceClasses = map[string]ResourceClass{"huge": {MilliCPU: 8000}}
	if err := e.runtime(t).CheckTemplate(ok); err == nil || !strings.Contains(err.Error(), "use one of huge") {
		t.Errorf("CheckTemplate of class small on a server with only huge: %v", err)
	}
}

// needCgroups skips a test where this host's cgroups cannot be used (not
// root, no controllers), or fails it under CI.
func needCgroups(t *testing.T) {
	t.Helper()
	if ok, why := cgroup.Open("").Supported(); !ok {
		if os.Getenv("CI") != "" {
			t.Fatalf("cgroups are unusable here and CI is set: %s", why)
		}
		t.Skipf("cgroups are unusable here (%s): run the tests as root on a host with cgroup v1 or v2", why)
	}
}

// groupFile reads a control file of sandbox id's group; for v1, file's
// prefix picks the hierarchy.
func groupFile(t *testing.T, r *Runtime, id, file string) string {
	t.Helper()
	dir := cgroup.DefaultRoot
	if r.cg.Version() == cgroup.V1 {
		dir = filepath.Join(dir, strings.SplitN(file, ".", 2)[0])
	}
	b, err := os.ReadFile(filepath.Join(dir, cgroup.Group(r.node, id), file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// inGroup reports whether process pid is in sandbox id's group in every
// hierarchy used (v1: memory and cpu; v2: the one).
func inGroup(r *Runtime, id string, pid int) (bool, string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false, err.Error()
	}
	want := 2
	if r.cg.Version() == cgroup.V2 {
		want = 1
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasSuffix(l, ":/"+cgroup.Group(r.node, id)) {
			n++
		}
	}
	return n == want, string(b)
}

func resourceEvents(p *runtimetest.Recorder) []string {
	var out []string
	for _, ev := range p.Events() {
		if ev.Type == sandbox.EventWarning && strings.Contains(ev.Message, "resource class") {
			out = append(out, ev.Message)
		}
	}
	return out
}

func TestResourceClassIsEnforced(t *testing.T) {
	t.Parallel()
	needCgroups(t)
	deps := ""
	if havePostgres() {
		deps = `dependencies:
  db: {type: postgres, version: "15"}
`
	}
	r := newRuntime(t)
	inst := instance(t, &r, `
apiVersion: sandpit/v1
name: rc
resources: {class: small}
`+deps+`services:
  web:
    run: TESTSVC http -port ${ports.http}
    ports: [{name: http}]
    ready: {http: {port: http, path: /healthz}}
`)
	p := &runtimetest.Recorder{}
	obs := up(t, r, inst, p)
	want := sandbox.ResourceStatus{Class: "small", MilliCPU: 500, MemoryBytes: 512 << 20, Enforced: true}
	if got := obs.Resources; got == nil || got.Class != want.Class || got.MilliCPU != want.MilliCPU || got.MemoryBytes != want.MemoryBytes || !got.Enforced || !strings.Contains(got.Message, cgroup.Group(r.node, inst.ID)) {
		t.Fatalf("Resources = %+v, want %+v with the group named", got, want)
	}
	if ev := resourceEvents(p); len(ev) > 0 {
		t.Errorf("warnings on a host that enforces limits: %v", ev)
	}
	// The service, its shim and the database are all in the group.
	st, err := shim.ReadStatus(r.statusPath(inst.ID, "web"))
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{"service": runtimetest.Service(t, obs, "web").PID, "shim": st.ShimPID}
	if havePostgres() {
		pg, err := shim.ReadStatus(r.statusPath(inst.ID, "db"))
		if err != nil {
			t.Fatal(err)
		}
		pids["postgres"] = pg.PID
	}
	for what, pid := range pids {
		if ok, lines := inGroup(r, inst.ID, pid); !ok {
			t.Errorf("%s (pid %d) is not in %s:\n%s", what, pid, cgroup.Group(r.node, inst.ID), lines)
		}
	}
	if r.cg.Version() == cgroup.V1 {
		for file, want := range map[string]string{
			"memory.limit_in_bytes": "536870912",
			"cpu.cfs_quota_us":      "50000",
			"cpu.cfs_period_us":     "100000",
		} {
			if got := groupFile(t, r, inst.ID, file); got != want {
				t.Errorf("%s = %s, want %s", file, got, want)
			}
		}
	} else {
		if got := groupFile(t, r, inst.ID, "memory.max"); got != "536870912" {
			t.Errorf("memory.max = %s", got)
		}
		if got := groupFile(t, r, inst.ID, "cpu.max"); got != "50000 100000" {
			t.Errorf("cpu.max = %s", got)
		}
	}
	// Observe (a restarted server, say) reports the same.
	o, err := New(context.Background(), r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if obs2, err := o.Observe(context.Background(), inst.ID); err != nil || obs2.Resources == nil || !obs2.Resources.Enforced || obs2.Resources.Class != "small" {
		t.Errorf("Observe: %+v, %v", obs2, err)
	}
	// A second Up adopts: same group, same processes.
	obs = up(t, r, inst, nil)
	if got := runtimetest.Service(t, obs, "web").PID; got != pids["service"] {
		t.Errorf("re-Up restarted web (%d → %d)", pids["service"], got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.UpTimeout)
	defer cancel()
	if err := r.Down(ctx, inst.ID, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"memory", "cpu", ""} {
		if dir := filepath.Join(cgroup.DefaultRoot, h, cgroup.Group(r.node, inst.ID)); fileExists(dir) {
			t.Errorf("Down left %s", dir)
		}
	}
}

func TestMemoryLimitOOMKillsTheSandbox(t *testing.T) {
	t.Parallel()
	needCgroups(t)
	e := newEnv(t)
	e.cfg.ResourceClasses = map[string]ResourceClass{"tiny": {MilliCPU: 1000, MemoryBytes: 48 << 20}}
	r := e.runtime(t)
	const yaml = `
apiVersion: sandpit/v1
name: hog
%s
services:
  hog:
    run: TESTSVC sleep -alloc-mb 256
`
	limited := instance(t, &r, fmt.Sprintf(yaml, "resources: {class: tiny}"))
	free := instance(t, &r, fmt.Sprintf(yaml, ""))
	up(t, r, limited, nil)
	obs := up(t, r, free, nil)
	if obs.Resources != nil {
		t.Errorf("a sandbox without a class reports resources %+v", obs.Resources)
	}

	// Over its limit, the hog is OOM-killed (SIGKILL: 137 from the shell
	// that runs it) and its shim restarts it, again and again.
	// The shim's own log line says how it ended: the status alone may
	// already show the restarted process when a loaded machine polls late.
	runtimetest.Eventually(t, runtimetest.WaitTimeout, "the limited hog to be OOM-killed and restarted", func() (bool, string) {
		st, _ := shim.ReadStatus(r.statusPath(limited.ID, "hog"))
		logText, _ := os.ReadFile(r.runLog(limited.ID, "hog"))
		killed := strings.Contains(string(logText), "exited with code 137") || strings.Contains(string(logText), "killed by signal SIGKILL")
		return st != nil && st.Restarts >= 1 && killed, fmt.Sprintf("%+v; log: %q", st, logText)
	})
	o, err := r.Observe(context.Background(), limited.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s := runtimetest.Service(t, o, "hog"); s.Restarts < 1 {
		t.Errorf("limited hog: %+v, want restarts", s)
	}
	if o.Resources == nil || !o.Resources.Enforced || o.Resources.MemoryBytes != 48<<20 {
		t.Errorf("limited Resources = %+v", o.Resources)
	}
	if lines := runtimetest.CollectLogs(t, r, limited.ID, runtime.LogOptions{Service: "hog"}); hasText(lines, "allocated 256 MiB") {
		t.Errorf("the limited hog got its 256 MiB: %v", lines)
	}

	// The same hog without a class holds its memory and keeps running.
	runtimetest.Eventually(t, runtimetest.WaitTimeout, "the free hog to allocate", func() (bool, string) {
		lines := runtimetest.CollectLogs(t, r, free.ID, runtime.LogOptions{Service: "hog"})
		return hasText(lines, "sleep allocated 256 MiB"), fmt.Sprintf("%v", lines)
	})
	o, err = r.Observe(context.Background(), free.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s := runtimetest.Service(t, o, "hog"); s.State != sandbox.ServiceRunning || s.Restarts != 0 {
		t.Errorf("free hog: %+v, want running with no restart", s)
	}
}

func hasText(lines []runtime.LogLine, text string) bool {
	for _, l := range lines {
		if strings.Contains(l.Text, text) {
			return true
		}
	}
	return false
}

func TestClassDroppedFromTemplateLeavesTheGroup(t *testing.T) {
	t.Parallel()
	needCgroups(t)
	r := newRuntime(t)
	const yaml = `
apiVersion: sandpit/v1
name: rc
%s
services:
  web:
    run: TESTSVC sleep
`
	inst := instance(t, &r, fmt.Sprintf(yaml, "resources: {class: small}"))
	before := runtimetest.Service(t, up(t, r, inst, nil), "web").PID
	if ok, lines := inGroup(r, inst.ID, before); !ok {
		t.Fatalf("web is not in its group:\n%s", lines)
	}
	inst.Template = runtimetest.ParseTemplate(t, testsvc, fmt.Sprintf(yaml, ""), nil)
	obs := up(t, r, inst, nil)
	after := runtimetest.Service(t, obs, "web").PID
	if after == before {
		t.Errorf("web was not restarted out of its group")
	}
	if obs.Resources != nil {
		t.Errorf("Resources = %+v after the class was dropped", obs.Resources)
	}
	if ids, _ := r.cg.List(r.node); len(ids) != 0 {
		t.Errorf("groups left after the class was dropped: %v", ids)
	}
}

func TestHostWithoutCgroupsRunsWithoutLimitsAndSaysWhy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.cfg.CgroupRoot = t.TempDir()
	r := e.runtime(t)
	inst := instance(t, &r, `
apiVersion: sandpit/v1
name: rc
resources: {class: small}
services:
  web:
    run: TESTSVC sleep
`)
	p := &runtimetest.Recorder{}
	obs := up(t, r, inst, p)
	res := obs.Resources
	if res == nil || res.Enforced || res.Class != "small" || res.MemoryBytes != 512<<20 || !strings.Contains(res.Message, "no cgroup file system") {
		t.Errorf("Resources = %+v, want small, not enforced, saying why", res)
	}
	if ev := resourceEvents(p); len(ev) != 1 || !strings.Contains(ev[0], "no cgroup file system") {
		t.Errorf("warning events %v, want one saying why", ev)
	}
	if s := runtimetest.Service(t, obs, "web"); s.State != sandbox.ServiceRunning {
		t.Errorf("web: %+v", s)
	}
	// Once per Up: a second Up warns once more, not twice.
	p = &runtimetest.Recorder{}
	up(t, r, inst, p)
	if ev := resourceEvents(p); len(ev) != 1 {
		t.Errorf("second Up: warning events %v, want one", ev)
	}

	// A class this server does not define runs without limits too.
	inst2 := instance(t, &r, `
apiVersion: sandpit/v1
name: rc2
resources: {class: galactic}
services:
  web:
    run: TESTSVC sleep
`)
	p = &runtimetest.Recorder{}
	obs = up(t, r, inst2, p)
	if res := obs.Resources; res == nil || res.Enforced || !strings.Contains(res.Message, `"galactic" is not defined`) {
		t.Errorf("Resources = %+v, want the undefined class reported", res)
	}
	if ev := resourceEvents(p); len(ev) != 1 {
		t.Errorf("warning events %v, want one", ev)
	}
}

func TestDownRemovesALeftoverGroup(t *testing.T) {
	t.Parallel()
	needCgroups(t)
	r := newRuntime(t)
	id := sandbox.NewID()
	// A server that crashed mid-Down leaves a group and nothing else.
	if _, err := r.cg.Ensure(r.node, id, cgroup.Limits{MilliCPU: 100}); err != nil {
		t.Fatal(err)
	}
	ids, err := r.Sandboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ids, id) {
		t.Errorf("Sandboxes() = %v, want the leftover group's %s", ids, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runtimetest.UpTimeout)
	defer cancel()
	if err := r.Down(ctx, id, &runtimetest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, r, id); len(left) > 0 {
		t.Errorf("Down left %v", left)
	}
}
