package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Spec is what the server asks a shim to run. It is written to a file the
// shim reads at start.
type Spec struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	Dir  string   `json:"dir"`
	Env  []string `json:"env"`
	// UID and GID are set when Switch is true (the shim runs as root and
	// the service must not).
	Switch bool `json:"switch,omitempty"`
	UID    int  `json:"uid,omitempty"`
	GID    int  `json:"gid,omitempty"`

	Log         string `json:"log"`
	LogMaxBytes int64  `json:"log_max_bytes,omitempty"`
	Status      string `json:"status"`
	// Restart is always, on-failure or never.
	Restart     string         `json:"restart"`
	StopSignal  syscall.Signal `json:"stop_signal,omitempty"`
	StopTimeout time.Duration  `json:"stop_timeout,omitempty"`
	// Cgroups are cgroup.procs files (one per cgroup hierarchy) of the
	// sandbox's resource group. The shim joins them at start, before it
	// starts the service, so the service and everything it forks count
	// against the group's limits; the shim itself (small) does too.
	Cgroups []string `json:"cgroups,omitempty"`
	// Hash identifies the spec's content so the server can tell whether a
	// running shim runs what is wanted now.
	Hash string `json:"hash"`
}

// States a shim reports.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateBackoff  = "backoff"
	StateExited   = "exited"  // ended and, by policy, not restarted
	StateStopped  = "stopped" // stopped on request
)

// Status is what a shim reports about its service.
type Status struct {
	ShimPID    int       `json:"shim_pid"`
	PID        int       `json:"pid,omitempty"`
	State      string    `json:"state"`
	Restarts   int       `json:"restarts"`
	StartedAt  time.Time `json:"started_at"`
	ExitCode   *int      `json:"exit_code,omitempty"`
	ExitSignal string    `json:"exit_signal,omitempty"`
	Message    string    `json:"message,omitempty"`
	Hash       string    `json:"hash"`
	UpdatedAt  time.Time `json:"updated_at"`

	// CgroupError says why the shim could not join the spec's cgroups;
	// the service then runs without resource limits.
	CgroupError string `json:"cgroup_error,omitempty"`
}

// Final reports whether the shim has ended or is about to (nothing will run
// again without a new shim).
func (s *Status) Final() bool { return s.State == StateExited || s.State == StateStopped }

// WriteJSON writes v to path atomically (temp file, fsync, rename), so a
// reader never sees half a file and a crash leaves the old or the new one.
func WriteJSON(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ReadStatus reads a shim's status file.
func ReadStatus(path string) (*Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read shim status %s: %w", path, err)
	}
	return &s, nil
}

// ReadSpec reads a spec file.
func ReadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read shim spec %s: %w", path, err)
	}
	if len(s.Argv) == 0 {
		return nil, fmt.Errorf("shim spec %s has no command", path)
	}
	return &s, nil
}
