package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Marker environment variables. Every process the local runtime starts
// carries them, and children inherit them, so a scan of /proc finds a
// sandbox's processes even if the server died before recording their pids.
const (
	// EnvNode identifies the server instance (derived from its data
	// directory), so servers with different data directories on one host
	// (tests running in parallel, say) never touch each other's processes.
	EnvNode = "SANDPIT_NODE"
	// EnvSandbox is the sandbox id.
	EnvSandbox = "SANDPIT_SANDBOX_ID"
	// EnvRole is shim, service, task (build, init) or exec.
	EnvRole = "SANDPIT_ROLE"
	// EnvUnit is the service or dependency name.
	EnvUnit = "SANDPIT_UNIT"
)

// Roles.
const (
	RoleShim    = "shim"
	RoleService = "service" // a service or dependency process, below its shim
	RoleTask    = "task"
	RoleExec    = "exec"
)

// Process is one running process found by Scan.
type Process struct {
	PID     int
	PGID    int
	Sandbox string
	Role    string
	Unit    string
}

// MarkerEnv returns the marker variables for a process.
func MarkerEnv(node, sandbox, role, unit string) []string {
	return []string{
		EnvNode + "=" + node,
		EnvSandbox + "=" + sandbox,
		EnvRole + "=" + role,
		EnvUnit + "=" + unit,
	}
}

// Scan returns every live process whose environment carries node's marker.
// Processes whose environment cannot be read (exited meanwhile, or owned by
// another user when not root) are passed over. Zombies are skipped: they
// hold no resources and their parent reaps them.
func Scan(node string) ([]Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("scan processes: %w", err)
	}
	want := []byte(EnvNode + "=" + node + "\x00")
	self := os.Getpid()
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			continue
		}
		if zombie(pid) {
			continue
		}
		out = append(out, parse(pid, env))
	}
	return out, nil
}

func parse(pid int, env []byte) Process {
	p := Process{PID: pid}
	for _, kv := range bytes.Split(env, []byte{0}) {
		k, v, _ := strings.Cut(string(kv), "=")
		switch k {
		case EnvSandbox:
			p.Sandbox = v
		case EnvRole:
			p.Role = v
		case EnvUnit:
			p.Unit = v
		}
	}
	p.PGID, _ = syscall.Getpgid(pid)
	return p
}

// Inspect returns the markers of pid when it runs and carries node's
// marker. Unlike Alive it tells which process of a sandbox it is, so a pid
// recycled by another process of the same sandbox is not mistaken for the
// one recorded.
func Inspect(pid int, node string) (Process, bool) {
	if pid <= 0 {
		return Process{}, false
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil || !bytes.Contains(append([]byte{0}, env...), []byte("\x00"+EnvNode+"="+node+"\x00")) || zombie(pid) {
		return Process{}, false
	}
	return parse(pid, env), true
}

// Alive reports whether pid runs and carries node's marker for sandbox (so a
// recycled pid is never mistaken for ours).
func Alive(pid int, node, sandbox string) bool {
	if pid <= 0 {
		return false
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	env = append([]byte{0}, env...)
	return bytes.Contains(env, []byte("\x00"+EnvNode+"="+node+"\x00")) &&
		bytes.Contains(env, []byte("\x00"+EnvSandbox+"="+sandbox+"\x00")) && !zombie(pid)
}

// zombie reports whether pid has exited but not been reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	// The state follows the parenthesised command name, which may itself
	// contain parentheses; take the last one.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
}
