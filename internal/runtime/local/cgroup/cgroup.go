package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where cgroup file systems are mounted on every mainstream
// distribution.
const DefaultRoot = "/sys/fs/cgroup"

// Dir is the directory under each hierarchy's root that holds sandpit's
// groups.
const Dir = "sandpit"

// cpuPeriod is the CFS period in microseconds: the kernel's default. A
// quota of MilliCPU*100 µs per period is MilliCPU/1000 CPUs.
const cpuPeriod = 100000

// minQuota is the smallest CFS quota the kernel accepts (1 ms).
const minQuota = 1000

// removeWait bounds how long Remove waits for a group that has just lost
// its last process: the kernel may take a moment to notice.
const removeWait = 2 * time.Second

// Limits are what a group may use. Zero means no limit.
type Limits struct {
	// MilliCPU is CPU time in thousandths of a CPU (500 is half a CPU),
	// enforced as a CFS quota per 100 ms period.
	MilliCPU int64
	// MemoryBytes caps memory, page cache included; swap does not extend
	// it. Past it the kernel reclaims, then OOM-kills a process of the
	// group.
	MemoryBytes int64
}

// Version is the kind of cgroup hierarchy in use.
type Version string

// Versions.
const (
	Unsupported Version = ""
	V1          Version = "v1"
	V2          Version = "v2"
)

// Manager creates and removes sandbox groups under one root.
type Manager struct {
	root    string
	version Version
	reason  string
	// hierarchies are the directories groups are made in: the root for
	// v2; the memory and cpu mounts for v1.
	hierarchies []string
}

// Open detects what the cgroup file systems under root (DefaultRoot when
// empty) allow. It never fails: a host that cannot enforce limits gives a
// Manager whose Supported says why, and whose Ensure refuses.
func Open(root string) *Manager {
	if root == "" {
		root = DefaultRoot
	}
	m := &Manager{root: root}
	m.version, m.hierarchies, m.reason = detect(root)
	return m
}

func detect(root string) (Version, []string, string) {
	if isFS(root, unix.CGROUP2_SUPER_MAGIC) {
		b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
		if err != nil {
			return Unsupported, nil, fmt.Sprintf("cgroup v2 at %s: %v", root, err)
		}
		have := strings.Fields(string(b))
		for _, c := range []string{"memory", "cpu"} {
			if !slices.Contains(have, c) {
				list := strings.Join(have, " ")
				if list == "" {
					list = "none"
				}
				return Unsupported, nil, fmt.Sprintf("no %s controller in cgroup v2 at %s (available: %s)", c, root, list)
			}
		}
		if err := writable(root); err != nil {
			return Unsupported, nil, err.Error()
		}
		return V2, []string{root}, ""
	}
	mem, cpu := filepath.Join(root, "memory"), filepath.Join(root, "cpu")
	if !isFS(mem, unix.CGROUP_SUPER_MAGIC) && !isFS(cpu, unix.CGROUP_SUPER_MAGIC) {
		return Unsupported, nil, fmt.Sprintf("no cgroup file system at %s (neither v2 nor v1 memory and cpu hierarchies)", root)
	}
	if !isFS(mem, unix.CGROUP_SUPER_MAGIC) || !exists(filepath.Join(mem, "memory.limit_in_bytes")) {
		return Unsupported, nil, fmt.Sprintf("no memory controller: cgroup v1 has no memory hierarchy at %s", mem)
	}
	if !isFS(cpu, unix.CGROUP_SUPER_MAGIC) || !exists(filepath.Join(cpu, "cpu.cfs_quota_us")) {
		return Unsupported, nil, fmt.Sprintf("no cpu controller with CFS bandwidth control (cpu.cfs_quota_us) at %s", cpu)
	}
	for _, h := range []string{mem, cpu} {
		if err := writable(h); err != nil {
			return Unsupported, nil, err.Error()
		}
	}
	return V1, []string{mem, cpu}, ""
}

func isFS(path string, magic int64) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && int64(st.Type) == magic
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writable checks that groups can be made in hierarchy h (in its sandpit
// directory when that exists already).
func writable(h string) error {
	dir := h
	if exists(filepath.Join(h, Dir)) {
		dir = filepath.Join(h, Dir)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("cgroup filesystem not writable: %s: %v (run the server as root, with /sys/fs/cgroup mounted read-write)", dir, err)
	}
	return nil
}

// Supported reports whether limits can be enforced here and, when not,
// why.
func (m *Manager) Supported() (ok bool, reason string) {
	return m.version != Unsupported, m.reason
}

// Version says which cgroup version is in use (Unsupported when none).
func (m *Manager) Version() Version { return m.version }

// Group is the path of a sandbox's group below each hierarchy's root.
func Group(node, id string) string { return Dir + "/" + node + "/" + id }

func checkNames(node, id string) error {
	for _, s := range []string{node, id} {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
			return fmt.Errorf("cgroup: %q is not a valid group name", s)
		}
	}
	return nil
}

// Ensure creates the group of sandbox id (node is the server's node id) in
// every hierarchy and sets its limits; on an existing group it only sets
// the limits, so a changed class applies to running processes. It returns
// the cgroup.procs files a process writes its pid into (or "0": itself) to
// join the group: one per hierarchy. Children forked after that start in
// the group; processes already running stay where they are.
func (m *Manager) Ensure(node, id string, l Limits) (procsFiles []string, err error) {
	if m.version == Unsupported {
		return nil, fmt.Errorf("cgroup: %s", m.reason)
	}
	if err := checkNames(node, id); err != nil {
		return nil, err
	}
	// A concurrent Remove of another sandbox may remove the node directory
	// between our mkdirs (it removes it when it looks empty): try again.
	for attempt := 0; ; attempt++ {
		procsFiles, err = m.ensure(node, id, l)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 2 {
			return procsFiles, err
		}
	}
}

func (m *Manager) ensure(node, id string, l Limits) ([]string, error) {
	var files []string
	if m.version == V2 {
		root := m.hierarchies[0]
		// Controllers are handed down level by level: each parent enables
		// them for its children in cgroup.subtree_control. The groups
		// above the leaf hold no process, as v2 requires.
		dir := root
		for _, part := range []string{Dir, node, id} {
			if err := enableControllers(dir); err != nil {
				return nil, err
			}
			dir = filepath.Join(dir, part)
			if err := mkdir(dir); err != nil {
				return nil, err
			}
		}
		mem, swap := "max", "max"
		if l.MemoryBytes > 0 {
			// No swap at all: otherwise the group could page out past
			// its limit instead of being held to it.
			mem, swap = strconv.FormatInt(l.MemoryBytes, 10), "0"
		}
		if err := write(filepath.Join(dir, "memory.max"), mem); err != nil {
			return nil, err
		}
		// memory.swap.max is missing when the kernel does not account
		// swap, in which case there is nothing to cap.
		if err := write(filepath.Join(dir, "memory.swap.max"), swap); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		quota := "max"
		if l.MilliCPU > 0 {
			quota = strconv.FormatInt(cpuQuota(l.MilliCPU), 10)
		}
		if err := write(filepath.Join(dir, "cpu.max"), quota+" "+strconv.Itoa(cpuPeriod)); err != nil {
			return nil, err
		}
		return []string{filepath.Join(dir, "cgroup.procs")}, nil
	}
	mem := filepath.Join(m.hierarchies[0], Group(node, id))
	cpu := filepath.Join(m.hierarchies[1], Group(node, id))
	for _, dir := range []string{mem, cpu} {
		if err := mkdirAll(dir); err != nil {
			return nil, err
		}
		files = append(files, filepath.Join(dir, "cgroup.procs"))
	}
	if err := setMemoryV1(mem, l.MemoryBytes); err != nil {
		return nil, err
	}
	quota := "-1"
	if l.MilliCPU > 0 {
		quota = strconv.FormatInt(cpuQuota(l.MilliCPU), 10)
	}
	if err := write(filepath.Join(cpu, "cpu.cfs_period_us"), strconv.Itoa(cpuPeriod)); err != nil {
		return nil, err
	}
	if err := write(filepath.Join(cpu, "cpu.cfs_quota_us"), quota); err != nil {
		return nil, err
	}
	return files, nil
}

func cpuQuota(milli int64) int64 {
	return max(milli*cpuPeriod/1000, minQuota)
}

// setMemoryV1 sets memory.limit_in_bytes and, when the kernel accounts
// swap, memory.memsw.limit_in_bytes (memory plus swap) to the same value,
// so the group cannot swap around its limit. The kernel insists that memsw
// is never below the memory limit, so the order of the two writes depends
// on whether the limit goes up or down.
func setMemoryV1(dir string, limit int64) error {
	v := "-1"
	if limit > 0 {
		v = strconv.FormatInt(limit, 10)
	}
	mem := filepath.Join(dir, "memory.limit_in_bytes")
	memsw := filepath.Join(dir, "memory.memsw.limit_in_bytes")
	if !exists(memsw) {
		return write(mem, v)
	}
	if err := write(mem, v); err != nil {
		// Going up: memsw first.
		if write(memsw, v) != nil {
			return err
		}
		return write(mem, v)
	}
	return write(memsw, v)
}

// enableControllers makes memory and cpu available to dir's children.
func enableControllers(dir string) error {
	f := filepath.Join(dir, "cgroup.subtree_control")
	b, err := os.ReadFile(f)
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	have := strings.Fields(string(b))
	var add []string
	for _, c := range []string{"memory", "cpu"} {
		if !slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := write(f, strings.Join(add, " ")); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("%w (cgroup v2 lets a group with processes of its own hand no controller down)", err)
		}
		return err
	}
	return nil
}

func mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cgroup: %w", err)
	}
	return nil
}

func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	return nil
}

// write writes v to a cgroup control file. Control files exist already:
// they are never created (O_CREATE would make a stray file on a file
// system that is not cgroupfs).
func write(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cgroup: write %q to %s: %w", v, path, err)
	}
	return nil
}

// Procs lists the processes in sandbox id's group, in any hierarchy.
func (m *Manager) Procs(node, id string) ([]int, error) {
	if m.version == Unsupported {
		return nil, nil
	}
	if err := checkNames(node, id); err != nil {
		return nil, err
	}
	var out []int
	for _, h := range m.hierarchies {
		b, err := os.ReadFile(filepath.Join(h, Group(node, id), "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Remove deletes sandbox id's group from every hierarchy, and the node's
// directory when that was its last group. The kernel removes a group only
// once no process is in it: Remove kills nothing, so the caller stops the
// sandbox's processes first (Procs lists any left). A group that is gone
// already is no error.
func (m *Manager) Remove(node, id string) error {
	if m.version == Unsupported {
		return nil
	}
	if err := checkNames(node, id); err != nil {
		return err
	}
	for _, h := range m.hierarchies {
		dir := filepath.Join(h, Group(node, id))
		deadline := time.Now().Add(removeWait)
		for {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			// EBUSY: still populated, perhaps only until the kernel has
			// finished with a process that just exited.
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				return fmt.Errorf("cgroup: remove %s: %w", dir, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Fails while other sandboxes of the node have groups: fine.
		_ = unix.Rmdir(filepath.Dir(dir))
	}
	return nil
}

// List returns the sandbox ids that have a group of node, in any
// hierarchy: after a crash, the ones no sandbox owns are leftovers.
func (m *Manager) List(node string) ([]string, error) {
	if m.version == Unsupported {
		return nil, nil
	}
	if err := checkNames(node, "x"); err != nil {
		return nil, err
	}
	var out []string
	for _, h := range m.hierarchies {
		entries, err := os.ReadDir(filepath.Join(h, Dir, node))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(out, e.Name()) {
				out = append(out, e.Name())
			}
		}
	}
	slices.Sort(out)
	return out, nil
}
