package client

import (
	"fmt"
	"strings"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Sandbox is a sandbox as the API returns it.
type Sandbox = sandbox.Sandbox

// Event is one entry of a sandbox's event log.
type Event = sandbox.Event

// Phase is a sandbox phase.
type Phase = sandbox.Phase

// TemplateInfo describes one version of a template.
type TemplateInfo struct {
	Name        string `json:"name"`
	Version     int    `json:"version"`
	Description string `json:"description,omitempty"`
	Digest      string `json:"digest"`
	Filename    string `json:"filename"`
	BaseDir     string `json:"base_dir,omitempty"`
	// CreatedAt is when the version was stored (absent from a dry run of
	// a new version).
	CreatedAt    time.Time `json:"created_at,omitzero"`
	CreatedBy    string    `json:"created_by,omitempty"`
	Services     []string  `json:"services"`
	Dependencies []string  `json:"dependencies"`
	Endpoints    []string  `json:"endpoints"`
	// Source is the YAML as applied (only from GetTemplate).
	Source string `json:"source,omitempty"`
}

// ApplyTemplateRequest applies a template file.
type ApplyTemplateRequest struct {
	// Filename is reported in errors.
	Filename string `json:"filename"`
	// BaseDir is the absolute directory relative source paths resolve
	// against on the server host (the CLI sends the file's directory).
	BaseDir string `json:"base_dir,omitempty"`
	Source  string `json:"source"`
	// DryRun validates without storing.
	DryRun bool `json:"dry_run,omitempty"`
}

// ApplyTemplateResponse says what applying did.
type ApplyTemplateResponse struct {
	Template TemplateInfo `json:"template"`
	// Created is false when the content equals the latest version.
	Created bool `json:"created"`
	DryRun  bool `json:"dry_run,omitempty"`
	// Warnings are things that are not errors but will matter at launch
	// (a snapshot that does not exist yet), each starting file:line:col.
	Warnings []string `json:"warnings,omitempty"`
}

// TemplateList is a list of templates.
type TemplateList struct {
	Items []TemplateInfo `json:"items"`
}

// CreateSandboxRequest asks for a new sandbox.
type CreateSandboxRequest struct {
	Name     string `json:"name"`
	Template string `json:"template"`
	// Version pins a template version; 0 means the latest.
	Version int               `json:"version,omitempty"`
	Ref     string            `json:"ref,omitempty"`
	Set     map[string]string `json:"set,omitempty"`
	// Lifecycle overrides the template's idle suspend, TTL and
	// keep_failed for this sandbox.
	Lifecycle *sandbox.LifecycleOverrides `json:"lifecycle,omitempty"`
	// NoPool launches a fresh sandbox even when the template's warm pool
	// has one ready to claim.
	NoPool bool `json:"no_pool,omitempty"`
}

// ExtendRequest moves a sandbox's TTL deadline to By from now.
type ExtendRequest struct {
	// By is a duration ("24h", "90m").
	By string `json:"by"`
}

// FailSandboxRequest marks a sandbox Failed as it is, for debugging (a CI
// run whose tests failed); nothing is stopped.
type FailSandboxRequest struct {
	// Reason becomes the sandbox's status message ("ci command exited 2").
	Reason string `json:"reason,omitempty"`
	// Keep, a duration ("24h"), becomes the sandbox's own keep_failed:
	// how long it is kept before it is deleted; "0" keeps it until
	// deleted. Empty leaves the keep_failed in force as it is.
	Keep string `json:"keep,omitempty"`
}

// SandboxList is a list of sandboxes.
type SandboxList struct {
	Items []Sandbox `json:"items"`
}

// EventList is a page of events.
type EventList struct {
	Items []Event `json:"items"`
}

// LogLine is one line of a service's output.
type LogLine struct {
	Time    time.Time `json:"time"`
	Service string    `json:"service"`
	Stream  string    `json:"stream"`
	Text    string    `json:"text"`
}

// ExecRequest starts a command in a service's environment.
type ExecRequest struct {
	Service string   `json:"service"`
	Command []string `json:"command"`
}

// ExecResult ends an exec stream.
type ExecResult struct {
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
}

// Health is the answer of /healthz.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	Runtime string `json:"runtime"`
}

// Error is the API's error body: {"error": {...}}. It implements error, so
// client methods return it as is.
type Error struct {
	// Status is the HTTP status (not sent on the wire).
	Status int `json:"-"`
	// Code is machine-readable: invalid_request, invalid_template,
	// unauthorized, not_found, conflict, too_large, internal, ...
	Code    string `json:"code"`
	Message string `json:"message"`
	// Hint says what to do next.
	Hint    string        `json:"hint,omitempty"`
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail is one problem of many (a template's errors, say).
type ErrorDetail struct {
	// Pos is file:line:column when known.
	Pos     string `json:"pos,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	for _, d := range e.Details {
		b.WriteString("\n  ")
		if d.Pos != "" {
			b.WriteString(d.Pos + ": ")
		}
		b.WriteString(d.Message)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, "\nhint: %s", e.Hint)
	}
	return b.String()
}

// ErrorBody is the envelope errors travel in.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Exec stream frame types. An exec is one HTTP request whose body and
// response are streams of frames: a type byte, a big-endian uint32 length
// and the payload. The request starts with FrameStart (an ExecRequest as
// JSON) and may carry FrameStdin frames and one FrameStdinEOF; the response
// carries FrameStdout and FrameStderr frames and ends with FrameExit (an
// ExecResult as JSON).
const (
	FrameStart    byte = 0
	FrameStdin    byte = 1
	FrameStdinEOF byte = 2
	FrameStdout   byte = 1
	FrameStderr   byte = 2
	FrameExit     byte = 3

	ExecContentType = "application/vnd.sandpit.exec-stream"
)

// Phases, re-exported for programs that only import the client.
const (
	PhasePending      = sandbox.PhasePending
	PhaseProvisioning = sandbox.PhaseProvisioning
	PhaseReady        = sandbox.PhaseReady
	PhaseSuspended    = sandbox.PhaseSuspended
	PhaseDeleting     = sandbox.PhaseDeleting
	PhaseFailed       = sandbox.PhaseFailed
)
