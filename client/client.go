package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Client talks to one Sandpit server.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New returns a client of the server at baseURL (for example
// http://127.0.0.1:7700) authenticating with token.
func New(baseURL, token string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server address %q is not an http(s) URL: set SANDPIT_SERVER to something like http://127.0.0.1:7700", baseURL)
	}
	return &Client{base: u, token: token, http: &http.Client{Transport: http.DefaultTransport}}, nil
}

// TrustCAFile makes the client also trust the PEM certificates in path,
// such as the one `sandpit serve --tls-self-signed` writes to
// <data-dir>/tls/self-signed.crt (SANDPIT_CA_FILE in the CLI).
func (c *Client) TrustCAFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read the CA file (SANDPIT_CA_FILE): %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("%s holds no PEM certificate: point SANDPIT_CA_FILE at the server's certificate, e.g. <data-dir>/tls/self-signed.crt", path)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.http = &http.Client{Transport: t}
	return nil
}

// BaseURL returns the server's address.
func (c *Client) BaseURL() string { return c.base.String() }

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", "sandpit-client")
	return req, nil
}

// do sends a JSON request and decodes a JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return decodeJSON(resp, out)
}

func decodeJSON(resp *http.Response, out any) error {
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

// send performs req and turns error statuses into *Error.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && strings.Contains(err.Error(), "connection refused") {
			return nil, fmt.Errorf("cannot reach the Sandpit server at %s (connection refused): start it with `sandpit serve`, or point SANDPIT_SERVER at it", c.base)
		}
		return nil, err
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
		eb.Error.Status = resp.StatusCode
		return nil, eb.Error
	}
	return nil, &Error{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: fmt.Sprintf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(b)))}
}

// IsNotFound reports whether err is the API's not_found error.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Health checks the server.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	return &h, c.do(ctx, http.MethodGet, "/healthz", nil, nil, &h)
}

// ApplyTemplate validates and stores a template.
func (c *Client) ApplyTemplate(ctx context.Context, req ApplyTemplateRequest) (*ApplyTemplateResponse, error) {
	var out ApplyTemplateResponse
	return &out, c.do(ctx, http.MethodPost, "/api/v1/templates", nil, req, &out)
}

// ListTemplates lists the latest version of each template.
func (c *Client) ListTemplates(ctx context.Context) ([]TemplateInfo, error) {
	var out TemplateList
	err := c.do(ctx, http.MethodGet, "/api/v1/templates", nil, nil, &out)
	return out.Items, err
}

// GetTemplate returns one version (0 for the latest) with its source.
func (c *Client) GetTemplate(ctx context.Context, name string, version int) (*TemplateInfo, error) {
	var q url.Values
	if version > 0 {
		q = url.Values{"version": {strconv.Itoa(version)}}
	}
	var out TemplateInfo
	return &out, c.do(ctx, http.MethodGet, "/api/v1/templates/"+url.PathEscape(name), q, nil, &out)
}

// ListTemplateVersions lists every version of a template.
func (c *Client) ListTemplateVersions(ctx context.Context, name string) ([]TemplateInfo, error) {
	var out TemplateList
	err := c.do(ctx, http.MethodGet, "/api/v1/templates/"+url.PathEscape(name)+"/versions", nil, nil, &out)
	return out.Items, err
}

// CreateSandbox asks for a sandbox; it is launched in the background.
func (c *Client) CreateSandbox(ctx context.Context, req CreateSandboxRequest) (*Sandbox, error) {
	var out Sandbox
	return &out, c.do(ctx, http.MethodPost, "/api/v1/sandboxes", nil, req, &out)
}

// ListOptions filters ListSandboxes.
type ListOptions struct {
	Template string
	Phase    string
}

// ListSandboxes lists sandboxes, oldest first.
func (c *Client) ListSandboxes(ctx context.Context, opts ListOptions) ([]Sandbox, error) {
	q := url.Values{}
	if opts.Template != "" {
		q.Set("template", opts.Template)
	}
	if opts.Phase != "" {
		q.Set("phase", opts.Phase)
	}
	var out SandboxList
	err := c.do(ctx, http.MethodGet, "/api/v1/sandboxes", q, nil, &out)
	return out.Items, err
}

// GetSandbox returns one sandbox.
func (c *Client) GetSandbox(ctx context.Context, name string) (*Sandbox, error) {
	var out Sandbox
	return &out, c.do(ctx, http.MethodGet, "/api/v1/sandboxes/"+url.PathEscape(name), nil, nil, &out)
}

// DeleteSandbox asks for a sandbox to be deleted; it goes in the background.
func (c *Client) DeleteSandbox(ctx context.Context, name string) (*Sandbox, error) {
	var out Sandbox
	return &out, c.do(ctx, http.MethodDelete, "/api/v1/sandboxes/"+url.PathEscape(name), nil, nil, &out)
}

// Events returns a sandbox's events after seq, all of them: the server
// answers in pages, which Events reads until one is empty.
func (c *Client) Events(ctx context.Context, name string, after int64) ([]Event, error) {
	var all []Event
	for {
		var out EventList
		q := url.Values{"after": {strconv.FormatInt(after, 10)}}
		if err := c.do(ctx, http.MethodGet, "/api/v1/sandboxes/"+url.PathEscape(name)+"/events", q, nil, &out); err != nil {
			return all, err
		}
		if len(out.Items) == 0 {
			if all == nil {
				all = []Event{}
			}
			return all, nil
		}
		all = append(all, out.Items...)
		after = out.Items[len(out.Items)-1].Seq
	}
}

// WatchHandler receives a watch's messages. Returning ErrStopWatch ends the
// watch without error.
type WatchHandler struct {
	Event   func(Event) error
	Sandbox func(*Sandbox) error
	// Deleted is called when the sandbox is gone; the watch then ends.
	Deleted func() error
}

// ErrStopWatch ends a watch from a handler.
var ErrStopWatch = errors.New("stop watch")

// Watch follows a sandbox's events (after seq) and status changes over
// server-sent events until a handler stops it, the sandbox is deleted, or
// ctx ends.
func (c *Client) Watch(ctx context.Context, name string, after int64, h WatchHandler) error {
	q := url.Values{"follow": {"true"}, "after": {strconv.FormatInt(after, 10)}}
	req, err := c.newRequest(ctx, http.MethodGet, "/api/v1/sandboxes/"+url.PathEscape(name)+"/events", q, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if err := dispatch(event, data, h); err != nil {
				if errors.Is(err, ErrStopWatch) {
					return nil
				}
				return err
			}
			if event == "deleted" {
				return nil
			}
			event, data = "", data[:0]
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[len("data:"):], " ")...)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watch %s: %w", name, err)
	}
	return fmt.Errorf("watch %s: the server closed the stream", name)
}

func dispatch(event string, data []byte, h WatchHandler) error {
	switch event {
	case "event":
		if h.Event == nil {
			return nil
		}
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		return h.Event(ev)
	case "sandbox":
		if h.Sandbox == nil {
			return nil
		}
		var sb Sandbox
		if err := json.Unmarshal(data, &sb); err != nil {
			return fmt.Errorf("decode sandbox: %w", err)
		}
		return h.Sandbox(&sb)
	case "deleted":
		if h.Deleted != nil {
			return h.Deleted()
		}
	}
	return nil
}

// LogOptions selects log lines.
type LogOptions struct {
	Service string
	Tail    int
	Follow  bool
}

// Logs calls fn for each log line of a sandbox (all services, or one),
// following new lines with Follow until ctx ends or the sandbox is gone.
func (c *Client) Logs(ctx context.Context, name string, opts LogOptions, fn func(LogLine) error) error {
	q := url.Values{}
	if opts.Service != "" {
		q.Set("service", opts.Service)
	}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	if opts.Follow {
		q.Set("follow", "true")
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/api/v1/sandboxes/"+url.PathEscape(name)+"/logs", q, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var l LogLine
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read logs: %w", err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
}

// ExecIO wires an exec's streams. Stdin may be nil (no input).
type ExecIO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Exec runs a command in a service's environment and returns its exit
// code.
func (c *Client) Exec(ctx context.Context, name string, req ExecRequest, stdio ExecIO) (int, error) {
	start, err := json.Marshal(req)
	if err != nil {
		return -1, err
	}
	pr, pw := io.Pipe()
	go func() {
		err := WriteFrame(pw, FrameStart, start)
		if err == nil && stdio.Stdin != nil {
			buf := make([]byte, 32<<10)
			for {
				n, rerr := stdio.Stdin.Read(buf)
				if n > 0 {
					if err = WriteFrame(pw, FrameStdin, buf[:n]); err != nil {
						break
					}
				}
				if rerr != nil {
					break
				}
			}
		}
		if err == nil {
			err = WriteFrame(pw, FrameStdinEOF, nil)
		}
		pw.CloseWithError(err) // nil closes the body normally

	}()
	hreq, err := c.newRequest(ctx, http.MethodPost, "/api/v1/sandboxes/"+url.PathEscape(name)+"/exec", nil, pr)
	if err != nil {
		return -1, err
	}
	hreq.Header.Set("Content-Type", ExecContentType)
	resp, err := c.send(hreq)
	if err != nil {
		pr.Close()
		return -1, err
	}
	defer resp.Body.Close()
	defer pr.Close()
	for {
		typ, payload, err := ReadFrame(resp.Body)
		if err != nil {
			return -1, fmt.Errorf("exec stream ended early: %w", err)
		}
		switch typ {
		case FrameStdout:
			if stdio.Stdout != nil {
				_, _ = stdio.Stdout.Write(payload)
			}
		case FrameStderr:
			if stdio.Stderr != nil {
				_, _ = stdio.Stderr.Write(payload)
			}
		case FrameExit:
			var res ExecResult
			if err := json.Unmarshal(payload, &res); err != nil {
				return -1, fmt.Errorf("decode exec result: %w", err)
			}
			if res.Error != "" {
				return res.ExitCode, errors.New(res.Error)
			}
			return res.ExitCode, nil
		}
	}
}

// WaitFor polls until cond holds for the sandbox, ctx ends or the sandbox
// is gone (cond then sees nil). Prefer Watch for progress; WaitFor suits
// scripts and tests.
func (c *Client) WaitFor(ctx context.Context, name string, every time.Duration, cond func(*Sandbox) bool) (*Sandbox, error) {
	for {
		sb, err := c.GetSandbox(ctx, name)
		if IsNotFound(err) {
			if cond(nil) {
				return nil, nil
			}
		} else if err != nil {
			return nil, err
		} else if cond(sb) {
			return sb, nil
		}
		select {
		case <-ctx.Done():
			return sb, ctx.Err()
		case <-time.After(every):
		}
	}
}

// RenderSandbox returns the objects the sandbox is made of as multi-document
// YAML (runtimes that have such objects: kubernetes), secrets redacted.
func (c *Client) RenderSandbox(ctx context.Context, name string) ([]byte, error) {
	req, err := c.newRequest(ctx, "GET", "/api/v1/sandboxes/"+url.PathEscape(name)+"/render", nil, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/yaml")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
