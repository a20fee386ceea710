package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Snapshot is a data snapshot as the API returns it.
type Snapshot = sandbox.Snapshot

// SnapshotList is a list of snapshots.
type SnapshotList struct {
	Items []Snapshot `json:"items"`
	// Method is how this server's snapshot store keeps and clones data
	// ("btrfs", "reflink" or "copy") and Store describes it.
	Method string `json:"method,omitempty"`
	Store  string `json:"store,omitempty"`
}

// CreateSnapshotRequest captures a running sandbox's dependency.
type CreateSnapshotRequest struct {
	Name       string `json:"name"`
	Sandbox    string `json:"sandbox"`
	Dependency string `json:"dependency"`
}

// ImportSnapshotRequest describes a dump to import; the dump itself is the
// request body.
type ImportSnapshotRequest struct {
	Name string
	// Type is the dependency type ("postgres").
	Type string
	// Version is the major version to import into; empty lets the server
	// choose (the dump's own version when installed, else the newest
	// installed).
	Version string
	// Database is the database the dump is restored into; empty means the
	// name recorded in a custom-format dump. Plain SQL dumps made without
	// --create need it.
	Database string
	// Filename is the dump's base name, for the record.
	Filename string
}

// RestoreSnapshotRequest resets a sandbox's dependency to a snapshot.
type RestoreSnapshotRequest struct {
	Snapshot   string `json:"snapshot"`
	Sandbox    string `json:"-"`
	Dependency string `json:"-"`
}

// CreateSnapshot starts capturing a sandbox's dependency; the snapshot is
// returned in phase Creating (use WaitSnapshot).
func (c *Client) CreateSnapshot(ctx context.Context, req CreateSnapshotRequest) (*Snapshot, error) {
	var out Snapshot
	return &out, c.do(ctx, http.MethodPost, "/api/v1/snapshots", nil, req, &out)
}

// ImportSnapshot uploads a dump and starts restoring it into a new
// snapshot, returned in phase Creating (use WaitSnapshot).
func (c *Client) ImportSnapshot(ctx context.Context, req ImportSnapshotRequest, dump io.Reader) (*Snapshot, error) {
	q := url.Values{"type": {req.Type}}
	for k, v := range map[string]string{"version": req.Version, "database": req.Database, "filename": req.Filename} {
		if v != "" {
			q.Set(k, v)
		}
	}
	hr, err := c.newRequest(ctx, http.MethodPut, "/api/v1/snapshots/"+url.PathEscape(req.Name)+"/import", q, dump)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/octet-stream")
	hr.Header.Set("Accept", "application/json")
	resp, err := c.send(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out Snapshot
	return &out, decodeJSON(resp, &out)
}

// GetSnapshot returns one snapshot by name.
func (c *Client) GetSnapshot(ctx context.Context, name string) (*Snapshot, error) {
	var out Snapshot
	return &out, c.do(ctx, http.MethodGet, "/api/v1/snapshots/"+url.PathEscape(name), nil, nil, &out)
}

// ListSnapshots returns every snapshot, by name, and how the server stores
// them.
func (c *Client) ListSnapshots(ctx context.Context) (*SnapshotList, error) {
	var out SnapshotList
	return &out, c.do(ctx, http.MethodGet, "/api/v1/snapshots", nil, nil, &out)
}

// DeleteSnapshot deletes a snapshot. It is refused (409) while sandboxes
// use it unless force is set; sandboxes already started from it keep their
// data either way.
func (c *Client) DeleteSnapshot(ctx context.Context, name string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	return c.do(ctx, http.MethodDelete, "/api/v1/snapshots/"+url.PathEscape(name), q, nil, nil)
}

// RestoreSnapshot asks for a sandbox's dependency to be reset to a
// snapshot's data. It returns the sandbox with its new generation; the
// restore is done when Status.ObservedGeneration reaches it (see
// WaitFor).
func (c *Client) RestoreSnapshot(ctx context.Context, req RestoreSnapshotRequest) (*Sandbox, error) {
	var out Sandbox
	p := "/api/v1/sandboxes/" + url.PathEscape(req.Sandbox) + "/dependencies/" + url.PathEscape(req.Dependency) + "/restore"
	return &out, c.do(ctx, http.MethodPost, p, nil, req, &out)
}

// WaitSnapshot polls until the snapshot is Ready or Failed (or gone, which
// is an error), calling fn (if not nil) with each state seen.
func (c *Client) WaitSnapshot(ctx context.Context, name string, every time.Duration, fn func(*Snapshot)) (*Snapshot, error) {
	for {
		s, err := c.GetSnapshot(ctx, name)
		if err != nil {
			return nil, err
		}
		if fn != nil {
			fn(s)
		}
		if s.Phase != sandbox.SnapshotCreating {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(every):
		}
	}
}
