package local

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/runtime/local/shim"
	"sandpit.dev/sandpit/internal/sandbox"
)

func nowUTC() time.Time { return time.Now().UTC() }

// Observe implements runtime.Runtime. It reads the shims' status files and
// checks that each shim still runs; it never probes or starts anything.
func (r *Runtime) Observe(ctx context.Context, id string) (*runtime.Observation, error) {
	h, err := r.loadHandle(ctx, id)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("sandbox %s: %w", id, runtime.ErrNotFound)
	}
	return r.observe(id, h)
}

func (r *Runtime) observe(id string, h *handle) (*runtime.Observation, error) {
	obs := &runtime.Observation{Ref: h.Ref, SHA: h.SHA, Upstreams: map[string]map[string]string{}, Healthy: true, Resources: r.resourceStatus(id, h)}
	for _, u := range h.Units {
		if h.Suspended {
			// Stopped on purpose, ports given back: nothing to route to.
			if u.Kind == "service" {
				obs.Services = append(obs.Services, sandbox.ServiceStatus{Name: u.Name, State: sandbox.ServiceStopped, Message: "suspended"})
			} else {
				obs.Dependencies = append(obs.Dependencies, sandbox.DependencyStatus{Name: u.Name, Type: u.Kind, State: sandbox.ServiceStopped, Message: "suspended"})
			}
			continue
		}
		state, ready, restarts, pid, code, msg, healthy := r.unitState(id, u.Name)
		obs.Healthy = obs.Healthy && healthy
		if u.Kind == "service" {
			ups := map[string]string{}
			for pn, port := range h.Ports[u.Name] {
				ups[pn] = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			}
			obs.Upstreams[u.Name] = ups
			obs.Services = append(obs.Services, sandbox.ServiceStatus{
				Name: u.Name, State: state, Ready: ready, Restarts: restarts, PID: pid,
				Ports: h.Ports[u.Name], ExitCode: code, Message: msg,
			})
			continue
		}
		snap, _ := os.ReadFile(r.markerPath(id, "snapshot-"+u.Name))
		obs.Dependencies = append(obs.Dependencies, sandbox.DependencyStatus{
			Name: u.Name, Type: u.Kind, State: state, Ready: ready,
			Host: "127.0.0.1", Port: h.Ports[u.Name]["postgres"], Message: msg,
			Snapshot: string(snap),
		})
	}
	return obs, nil
}

// unitState maps a shim's status to a service state. A shim that is gone
// while its status says it should run (the host rebooted, someone killed
// it) makes the sandbox unhealthy, so the reconciler brings it back.
func (r *Runtime) unitState(id, unit string) (state sandbox.ServiceState, ready bool, restarts, pid int, code *int, msg string, healthy bool) {
	st, err := shim.ReadStatus(r.statusPath(id, unit))
	if err != nil {
		return sandbox.ServicePending, false, 0, 0, nil, "not started", true
	}
	alive := r.shimAlive(id, unit, st.ShimPID)
	switch {
	case alive && st.State == shim.StateRunning:
		return sandbox.ServiceRunning, true, st.Restarts, st.PID, nil, "", true
	case alive && st.State == shim.StateBackoff:
		return sandbox.ServiceRestarting, false, st.Restarts, 0, st.ExitCode, st.Message, true
	case alive:
		return sandbox.ServiceStarting, false, st.Restarts, 0, nil, st.Message, true
	case st.State == shim.StateExited:
		return sandbox.ServiceExited, false, st.Restarts, 0, st.ExitCode, st.Message, true
	case st.State == shim.StateStopped:
		return sandbox.ServiceStopped, false, st.Restarts, 0, st.ExitCode, st.Message, true
	default:
		return sandbox.ServiceFailed, false, st.Restarts, 0, nil, "its supervisor is gone", false
	}
}
