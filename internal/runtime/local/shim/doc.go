// Package shim is the supervisor that runs one service of the local
// runtime, the way conmon or Nomad's executor do: the server starts
// `sandpit shim SPEC` in a session of its own; the shim starts the service
// in a new process group, writes its stdout and stderr to a size-capped log,
// restarts it by policy with backoff, and records its state in a status file.
// When the spec names cgroups (the sandbox's resource limits), the shim
// joins them before it starts the service, so the service is born there.
//
// Because the shim, not the server, is the service's parent and log reader,
// services keep running (and logging) while the server restarts, and the new
// server re-adopts them from the status files. The shim stops its service on
// SIGTERM/SIGINT with the service's stop signal, a grace period and SIGKILL
// to the whole group. It imports only the logfile and proc packages.
package shim
