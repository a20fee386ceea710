package client

import (
	"context"
	"net/http"
	"net/url"
)

// SuspendSandbox asks for a sandbox to be suspended (its processes
// stopped, files and data kept); a request to one of its endpoints or
// ResumeSandbox wakes it.
func (c *Client) SuspendSandbox(ctx context.Context, name string) (*Sandbox, error) {
	var out Sandbox
	return &out, c.do(ctx, http.MethodPost, "/api/v1/sandboxes/"+url.PathEscape(name)+"/suspend", nil, struct{}{}, &out)
}

// ResumeSandbox wakes a suspended sandbox (and counts as activity, so its
// idle countdown starts again).
func (c *Client) ResumeSandbox(ctx context.Context, name string) (*Sandbox, error) {
	var out Sandbox
	return &out, c.do(ctx, http.MethodPost, "/api/v1/sandboxes/"+url.PathEscape(name)+"/resume", nil, struct{}{}, &out)
}

// ExtendSandbox moves a sandbox's TTL deadline to by (a duration such as
// "24h") from now.
func (c *Client) ExtendSandbox(ctx context.Context, name, by string) (*Sandbox, error) {
	var out Sandbox
	return &out, c.do(ctx, http.MethodPost, "/api/v1/sandboxes/"+url.PathEscape(name)+"/extend", nil, ExtendRequest{By: by}, &out)
}

// PinSandbox exempts a sandbox from idle suspend, TTL and retention.
func (c *Client) PinSandbox(ctx context.Context, name string) (*Sandbox, error) {
	var out Sandbox
	return &out, c.do(ctx, http.MethodPut, "/api/v1/sandboxes/"+url.PathEscape(name)+"/pin", nil, struct{}{}, &out)
}

// UnpinSandbox removes a pin.
func (c *Client) UnpinSandbox(ctx context.Context, name string) (*Sandbox, error) {
	var out Sandbox
	return &out, c.do(ctx, http.MethodDelete, "/api/v1/sandboxes/"+url.PathEscape(name)+"/pin", nil, nil, &out)
}

// FailSandbox marks a sandbox Failed with a reason, keeping it (processes
// and all) for debugging for keep ("24h"; "0": until deleted; "": the
// keep_failed in force). The reconciler acts in the background: the
// answer's spec carries the request, and status.phase becomes Failed.
func (c *Client) FailSandbox(ctx context.Context, name, reason, keep string) (*Sandbox, error) {
	var out Sandbox
	return &out, c.do(ctx, http.MethodPost, "/api/v1/sandboxes/"+url.PathEscape(name)+"/fail", nil, FailSandboxRequest{Reason: reason, Keep: keep}, &out)
}
