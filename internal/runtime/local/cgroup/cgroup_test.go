package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// node keeps this run's groups apart from other runs' and servers'.
var node = "cgtest-" + strconv.Itoa(os.Getpid())

// needCgroups returns a manager for the host's cgroups, or skips the test
// when they cannot be used here (not root, no controllers); under CI it
// fails instead, so a misconfigured runner cannot pass by skipping.
func needCgroups(t *testing.T) *Manager {
	t.Helper()
	m := Open("")
	if ok, why := m.Supported(); !ok {
		if os.Getenv("CI") != "" {
			t.Fatalf("cgroups are unusable here and CI is set: %s", why)
		}
		t.Skipf("cgroups are unusable here (%s): run the tests as root on a host with cgroup v1 or v2", why)
	}
	t.Cleanup(func() {
		ids, _ := m.List(node)
		for _, id := range ids {
			if err := m.Remove(node, id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return m
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// checkLimits reads the limits back from the group's files.
func checkLimits(t *testing.T, m *Manager, id string, l Limits) {
	t.Helper()
	quota := strconv.FormatInt(l.MilliCPU*100, 10)
	mem := strconv.FormatInt(l.MemoryBytes, 10)
	if m.Version() == V2 {
		dir := filepath.Join(m.hierarchies[0], Group(node, id))
		if got := read(t, filepath.Join(dir, "memory.max")); got != mem {
			t.Errorf("memory.max = %s, want %s", got, mem)
		}
		if p := filepath.Join(dir, "memory.swap.max"); exists(p) {
			if got := read(t, p); got != "0" {
				t.Errorf("memory.swap.max = %s, want 0", got)
			}
		}
		if got := read(t, filepath.Join(dir, "cpu.max")); got != quota+" 100000" {
			t.Errorf("cpu.max = %q, want %q", got, quota+" 100000")
		}
		return
	}
	memDir := filepath.Join(m.hierarchies[0], Group(node, id))
	cpuDir := filepath.Join(m.hierarchies[1], Group(node, id))
	if got := read(t, filepath.Join(memDir, "memory.limit_in_bytes")); got != mem {
		t.Errorf("memory.limit_in_bytes = %s, want %s", got, mem)
	}
	if p := filepath.Join(memDir, "memory.memsw.limit_in_bytes"); exists(p) {
		if got := read(t, p); got != mem {
			t.Errorf("memory.memsw.limit_in_bytes = %s, want %s (no swapping around the limit)", got, mem)
		}
	}
	if got := read(t, filepath.Join(cpuDir, "cpu.cfs_quota_us")); got != quota {
		t.Errorf("cpu.cfs_quota_us = %s, want %s", got, quota)
	}
	if got := read(t, filepath.Join(cpuDir, "cpu.cfs_period_us")); got != "100000" {
		t.Errorf("cpu.cfs_period_us = %s, want 100000", got)
	}
}

func TestUnsupportedRootSaysWhy(t *testing.T) {
	m := Open(t.TempDir())
	ok, why := m.Supported()
	if ok || !strings.Contains(why, "no cgroup file system") {
		t.Errorf("Supported() = %v, %q; want false and a reason naming the missing cgroup file system", ok, why)
	}
	if m.Version() != Unsupported {
		t.Errorf("Version() = %q", m.Version())
	}
	if _, err := m.Ensure(node, "sb-x", Limits{MilliCPU: 500}); err == nil || !strings.Contains(err.Error(), why) {
		t.Errorf("Ensure on an unsupported host: %v, want the reason %q", err, why)
	}
	if ids, err := m.List(node); err != nil || len(ids) != 0 {
		t.Errorf("List = %v, %v", ids, err)
	}
	if err := m.Remove(node, "sb-x"); err != nil {
		t.Errorf("Remove on an unsupported host: %v", err)
	}
}

// Detection checks file system types, not names: directories that look
// like v1 hierarchies are no cgroups.
func TestLookAlikeDirectoriesAreNotCgroups(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"memory", "cpu"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "memory", "memory.limit_in_bytes"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, why := Open(dir).Supported(); ok || !strings.Contains(why, "no cgroup file system") {
		t.Errorf("look-alike directories: Supported() = %v, %q", ok, why)
	}
}

func TestEnsureSetsLimitsAndAProcessJoins(t *testing.T) {
	m := needCgroups(t)
	t.Logf("cgroup %s", m.Version())
	const id = "sb-limits"
	small := Limits{MilliCPU: 500, MemoryBytes: 64 << 20}
	files, err := m.Ensure(node, id, small)
	if err != nil {
		t.Fatal(err)
	}
	want := 1
	if m.Version() == V1 {
		want = 2
	}
	if len(files) != want {
		t.Fatalf("Ensure returned %v, want %d cgroup.procs files", files, want)
	}
	checkLimits(t, m, id, small)
	// Raising and lowering both work (v1 orders the memsw write).
	for _, l := range []Limits{{MilliCPU: 2000, MemoryBytes: 1 << 30}, {MilliCPU: 250, MemoryBytes: 32 << 20}} {
		if _, err := m.Ensure(node, id, l); err != nil {
			t.Fatalf("Ensure %+v on an existing group: %v", l, err)
		}
		checkLimits(t, m, id, l)
	}
	if ids, err := m.List(node); err != nil || !slices.Equal(ids, []string{id}) {
		t.Errorf("List = %v, %v; want [%s]", ids, err, id)
	}

	// A process joins the way the shim does: it writes "0" (itself) into
	// each file, then runs its program, which stays in the group.
	cmd := exec.Command("/bin/sh", "-c", `for f; do echo 0 > "$f" || exit 1; done; exec sleep 60`, "sh")
	cmd.Args = append(cmd.Args, files...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	group := "/" + Group(node, id)
	var lines string
	for range 500 {
		lines = read(t, fmt.Sprintf("/proc/%d/cgroup", pid))
		if inGroup(lines, m.Version(), group) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !inGroup(lines, m.Version(), group) {
		t.Fatalf("process %d is not in %s:\n%s", pid, group, lines)
	}
	if procs, err := m.Procs(node, id); err != nil || !slices.Contains(procs, pid) {
		t.Errorf("Procs = %v, %v; want it to hold %d", procs, err, pid)
	}
	if err := m.Remove(node, id); err == nil {
		t.Errorf("Remove of a group with a process in it succeeded")
	}

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := m.Remove(node, id); err != nil {
		t.Fatalf("Remove of the emptied group: %v", err)
	}
	for _, h := range m.hierarchies {
		if exists(filepath.Join(h, Group(node, id))) {
			t.Errorf("%s still exists", filepath.Join(h, Group(node, id)))
		}
		if exists(filepath.Join(h, Dir, node)) {
			t.Errorf("the node directory %s outlived its last group", filepath.Join(h, Dir, node))
		}
	}
	if ids, err := m.List(node); err != nil || len(ids) != 0 {
		t.Errorf("List after Remove = %v, %v", ids, err)
	}
	if err := m.Remove(node, id); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func TestNoLimitMeansUnlimited(t *testing.T) {
	m := needCgroups(t)
	const id = "sb-unlimited"
	if _, err := m.Ensure(node, id, Limits{MilliCPU: 500, MemoryBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Ensure(node, id, Limits{}); err != nil {
		t.Fatalf("lifting the limits: %v", err)
	}
	if m.Version() == V2 {
		dir := filepath.Join(m.hierarchies[0], Group(node, id))
		if got := read(t, filepath.Join(dir, "memory.max")); got != "max" {
			t.Errorf("memory.max = %s, want max", got)
		}
		if got := read(t, filepath.Join(dir, "cpu.max")); got != "max 100000" {
			t.Errorf("cpu.max = %s, want max 100000", got)
		}
	} else {
		if got := read(t, filepath.Join(m.hierarchies[1], Group(node, id), "cpu.cfs_quota_us")); got != "-1" {
			t.Errorf("cpu.cfs_quota_us = %s, want -1", got)
		}
		if got, _ := strconv.ParseInt(read(t, filepath.Join(m.hierarchies[0], Group(node, id), "memory.limit_in_bytes")), 10, 64); got < 1<<50 {
			t.Errorf("memory.limit_in_bytes = %d, want unlimited", got)
		}
	}
	if err := m.Remove(node, id); err != nil {
		t.Fatal(err)
	}
}

func TestBadNamesAreRefused(t *testing.T) {
	m := needCgroups(t)
	for _, id := range []string{"", "..", "a/b"} {
		if _, err := m.Ensure(node, id, Limits{}); err == nil {
			t.Errorf("Ensure(%q) succeeded", id)
		}
	}
}

// inGroup reports whether /proc/<pid>/cgroup lines put the process in
// group for memory and cpu (v1), or in the unified hierarchy (v2).
func inGroup(lines string, v Version, group string) bool {
	mem, cpu := false, false
	for _, l := range strings.Split(lines, "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 || parts[2] != group {
			continue
		}
		if v == V2 && parts[0] == "0" {
			return true
		}
		for _, c := range strings.Split(parts[1], ",") {
			mem = mem || c == "memory"
			cpu = cpu || c == "cpu"
		}
	}
	return mem && cpu
}

// A hybrid host's cgroup2 mount has no controllers (v1 holds them):
// opened as the root, it is v2 without memory, and says so.
func TestV2WithoutControllersSaysWhich(t *testing.T) {
	const unified = DefaultRoot + "/unified"
	if !isFS(unified, unix.CGROUP2_SUPER_MAGIC) {
		t.Skipf("no cgroup2 mount at %s (this host is not hybrid)", unified)
	}
	m := Open(unified)
	b, err := os.ReadFile(filepath.Join(unified, "cgroup.controllers"))
	if err != nil {
		t.Fatal(err)
	}
	have := strings.Fields(string(b))
	ok, why := m.Supported()
	t.Logf("%s: controllers %v: supported %v %q", unified, have, ok, why)
	if slices.Contains(have, "memory") && slices.Contains(have, "cpu") {
		if !ok || m.Version() != V2 {
			t.Errorf("v2 with memory and cpu: Supported() = %v, %q", ok, why)
		}
		return
	}
	if ok || !strings.Contains(why, "controller in cgroup v2") {
		t.Errorf("v2 without controllers: Supported() = %v, %q; want the missing controller named", ok, why)
	}
}
