package local

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/cgroup"
	"sandpit.dev/sandpit/internal/runtime/local/proc"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/template"
)

// ResourceClass is a named set of limits a template picks with
// `resources: {class: NAME}`. The limits hold for the whole sandbox: all
// its services and dependencies share one cgroup, so a class of 1 CPU and
// 1 GiB means 1 CPU and 1 GiB for everything the sandbox runs together.
// Zero means no limit on that resource.
type ResourceClass struct {
	Name string
	// MilliCPU is CPU time in thousandths of a CPU (500: half a CPU).
	MilliCPU int64
	// MemoryBytes caps the sandbox's memory, page cache included, with no
	// swap on top; past it the kernel OOM-kills one of its processes (the
	// largest), which its shim restarts by policy.
	MemoryBytes int64
}

// DefaultResourceClasses are the classes a server has when it is given
// none: small (0.5 CPU, 512 MiB), standard (1 CPU, 1 GiB) and large (2
// CPUs, 4 GiB).
func DefaultResourceClasses() map[string]ResourceClass {
	return map[string]ResourceClass{
		"small":    {Name: "small", MilliCPU: 500, MemoryBytes: 512 << 20},
		"standard": {Name: "standard", MilliCPU: 1000, MemoryBytes: 1 << 30},
		"large":    {Name: "large", MilliCPU: 2000, MemoryBytes: 4 << 30},
	}
}

// minClassMemory is the least memory a class may give: below it nothing
// useful starts, so a smaller value is surely a typo (512 for 512Mi).
const minClassMemory = 4 << 20

var className = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ParseResourceClass reads a class as `sandpit serve --resource-class`
// takes it: NAME=cpu:AMOUNT,memory:SIZE. CPU is in CPUs (0.5, 2) or
// millicpus (500m); memory is bytes with a Kubernetes-style suffix: Ki, Mi,
// Gi, Ti (powers of 1024) or k, M, G, T (powers of 1000). Either limit may
// be left out, which leaves that resource unlimited.
func ParseResourceClass(s string) (ResourceClass, error) {
	const example = "write it like small=cpu:0.5,memory:512Mi"
	name, limits, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || strings.TrimSpace(limits) == "" {
		return ResourceClass{}, fmt.Errorf("no limits: %s", example)
	}
	if !className.MatchString(name) {
		return ResourceClass{}, fmt.Errorf("class name %q: use letters, digits, '-', '_' and '.', starting with a letter or digit; %s", name, example)
	}
	c := ResourceClass{Name: name}
	seen := map[string]bool{}
	for _, part := range strings.Split(limits, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), ":")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || val == "" {
			return ResourceClass{}, fmt.Errorf("%q is not KEY:VALUE: %s", part, example)
		}
		if seen[key] {
			return ResourceClass{}, fmt.Errorf("%s is given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "cpu":
			c.MilliCPU, err = parseMilliCPU(val)
		case "memory":
			c.MemoryBytes, err = parseMemory(val)
		default:
			err = fmt.Errorf("unknown limit %q: the limits are cpu and memory; %s", key, example)
		}
		if err != nil {
			return ResourceClass{}, err
		}
	}
	return c, nil
}

func parseMilliCPU(s string) (int64, error) {
	milli, ok := strings.CutSuffix(s, "m")
	v, err := strconv.ParseFloat(milli, 64)
	if !ok {
		v *= 1000
	}
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 || v > 1e9 {
		return 0, fmt.Errorf("cpu %q is not an amount of CPU: write CPUs like 0.5 or 2, or millicpus like 500m", s)
	}
	if v < 10 {
		return 0, fmt.Errorf("cpu %q is less than 10m (1%% of a CPU), the least the kernel can enforce", s)
	}
	return int64(math.Round(v)), nil
}

func parseMemory(s string) (int64, error) {
	num, mult := s, 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	v *= mult
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 || v > 1<<60 {
		return 0, fmt.Errorf("memory %q is not a size: write it like 512Mi or 4Gi (Ki, Mi, Gi, Ti are powers of 1024; k, M, G, T of 1000)", s)
	}
	if v < minClassMemory {
		return 0, fmt.Errorf("memory %q is less than 4Mi, too little to run anything (a missing unit? 512 is bytes, 512Mi is MiB)", s)
	}
	return int64(v), nil
}

// String writes the class the way ParseResourceClass reads it.
func (c ResourceClass) String() string {
	var parts []string
	if c.MilliCPU > 0 {
		parts = append(parts, "cpu:"+strconv.FormatFloat(float64(c.MilliCPU)/1000, 'f', -1, 64))
	}
	if c.MemoryBytes > 0 {
		parts = append(parts, "memory:"+formatBytes(c.MemoryBytes))
	}
	return c.Name + "=" + strings.Join(parts, ",")
}

func formatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// resourceRecord is what Up recorded in the handle about the sandbox's
// class, so Observe can report it without redoing the work.
type resourceRecord struct {
	Class       string `json:"class"`
	MilliCPU    int64  `json:"millicpu,omitempty"`
	MemoryBytes int64  `json:"memory_bytes,omitempty"`
	Enforced    bool   `json:"enforced"`
	Message     string `json:"message,omitempty"`
}

func (r *Runtime) classNames() string {
	names := make([]string, 0, len(r.cfg.ResourceClasses))
	for n := range r.cfg.ResourceClasses {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none are defined (sandpit serve --resource-class NAME=cpu:0.5,memory:512Mi defines one)"
	}
	return strings.Join(names, ", ")
}

// checkResources reports a class the server does not define, at the
// template's resources.class.
func (r *Runtime) checkResources(t *template.Template) *template.Error {
	if t.Resources == nil || t.Resources.Class == "" {
		return nil
	}
	if _, ok := r.cfg.ResourceClasses[t.Resources.Class]; ok {
		return nil
	}
	path := "resources.class"
	return &template.Error{Pos: t.Pos(path), Path: path, Msg: fmt.Sprintf("resource class %q is not defined on this server: use one of %s", t.Resources.Class, r.classNames())}
}

// ensureResources puts the sandbox's class into effect before any of its
// processes starts: it creates (or updates) the sandbox's cgroup with the
// class's limits and tells ensureShim to make every shim of the sandbox
// join it. Build, init and exec commands run outside it: they are the
// server's work on the sandbox's behalf, not the sandbox running.
//
// A class that cannot be enforced (the host has no usable cgroups, the
// server does not define it, the kernel refused the limits) does not stop
// the sandbox: it runs without limits, and the Observation and a Warning
// event say why.
func (r *Runtime) ensureResources(ctx context.Context, inst *runtime.Instance, h *handle, p runtime.Progress) error {
	var rec *resourceRecord
	var files []string
	if t := inst.Template; t.Resources != nil && t.Resources.Class != "" {
		name := t.Resources.Class
		c, defined := r.cfg.ResourceClasses[name]
		rec = &resourceRecord{Class: name, MilliCPU: c.MilliCPU, MemoryBytes: c.MemoryBytes}
		ok, why := r.cg.Supported()
		switch {
		case !defined:
			rec.Message = fmt.Sprintf("resource class %q is not defined on this server (defined: %s)", name, r.classNames())
		case !ok:
			rec.Message = "this host cannot enforce limits: " + why
		default:
			var err error
			files, err = r.cg.Ensure(r.node, inst.ID, cgroup.Limits{MilliCPU: c.MilliCPU, MemoryBytes: c.MemoryBytes})
			if err != nil {
				rec.Message = fmt.Sprintf("the limits could not be set: %v", err)
				files = nil
			} else {
				rec.Enforced = true
				rec.Message = fmt.Sprintf("enforced with cgroup %s (%s)", r.cg.Version(), cgroup.Group(r.node, inst.ID))
			}
		}
		if !rec.Enforced {
			p.Event(sandbox.EventWarning, sandbox.ReasonInfo, fmt.Sprintf("resource class %s is not enforced, the sandbox runs without CPU and memory limits: %s", name, rec.Message))
			r.log.Warn("resource class not enforced", "sandbox", inst.ID, "class", name, "why", rec.Message)
		}
	}
	r.mu.Lock()
	if files != nil {
		r.cgroupJoin[inst.ID] = files
	} else {
		delete(r.cgroupJoin, inst.ID)
	}
	r.mu.Unlock()
	h.Resources = rec
	return r.saveHandle(ctx, inst.ID, h)
}

// cgroupFiles are the cgroup.procs files the shims of sandbox id join, as
// the last ensureResources decided (none when the sandbox has no group).
func (r *Runtime) cgroupFiles(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cgroupJoin[id]
}

// dropUnusedGroup removes the group of a sandbox that no longer uses one
// (its template lost its class, or the limits could no longer be set): by
// the end of Up its processes have been restarted outside it.
func (r *Runtime) dropUnusedGroup(id string) {
	if r.cgroupFiles(id) != nil {
		return
	}
	ids, err := r.cg.List(r.node)
	if err != nil || !slices.Contains(ids, id) {
		return
	}
	if err := r.cg.Remove(r.node, id); err != nil {
		r.log.Warn("cannot remove the unused resource group", "sandbox", id, "err", err)
	}
}

// removeGroup removes a sandbox's group, after its processes were stopped.
// Anything still in the group belongs to the sandbox (only its shims join
// it, and their children are born there) but escaped the marker scan, by
// clearing its environment say: it is killed, so nothing survives a
// delete.
func (r *Runtime) removeGroup(id string) error {
	r.mu.Lock()
	delete(r.cgroupJoin, id)
	r.mu.Unlock()
	pids, err := r.cg.Procs(r.node, id)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		r.log.Warn("process left in the sandbox's resource group: killing it", "sandbox", id, "pid", pid)
		_ = proc.Signal(pid, syscall.SIGKILL)
	}
	if len(pids) > 0 {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if left, _ := r.cg.Procs(r.node, id); len(left) == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return r.cg.Remove(r.node, id)
}

// resourceStatus is what Observe reports about the sandbox's class: what
// Up recorded, unless a shim could not join the group after all.
func (r *Runtime) resourceStatus(id string, h *handle) *sandbox.ResourceStatus {
	if h.Resources == nil {
		return nil
	}
	rec := h.Resources
	st := &sandbox.ResourceStatus{Class: rec.Class, MilliCPU: rec.MilliCPU, MemoryBytes: rec.MemoryBytes, Enforced: rec.Enforced, Message: rec.Message}
	if !st.Enforced {
		return st
	}
	for _, u := range h.Units {
		if s, _ := shim.ReadStatus(r.statusPath(id, u.Name)); s != nil && s.CgroupError != "" {
			st.Enforced = false
			st.Message = u.Name + " " + s.CgroupError
			break
		}
	}
	return st
}
