// Package api serves Sandpit's HTTP JSON API under /api/v1 (templates,
// sandboxes, events and logs as streams, exec), plus /healthz, /metrics and
// the OpenAPI document.
//
// Handlers write specs (through the store) and ask the reconciler to act;
// they never write status and never call a runtime's lifecycle methods. They
// use a runtime only for its read/debug capabilities (logs, exec) and for
// apply-time template checks. Wire types live in the public client package.
package api
