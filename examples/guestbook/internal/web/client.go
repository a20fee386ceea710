package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"sandpit.dev/sandpit/examples/guestbook/internal/guestbook"
)

// Client talks to the guestbook API service.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client for the API at base (e.g. http://127.0.0.1:8080).
func NewClient(base string) *Client {
	return &Client{
		base: strings.TrimRight(base, "/"),
		http: &http.Client{Timeout: 5 * time.Second},
	}
}

// BaseURL is the API's base URL.
func (c *Client) BaseURL() string { return c.base }

// APIError is a non-2xx answer of the API, with the message it sent.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("api answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Info fetches GET /api/info.
func (c *Client) Info(ctx context.Context) (guestbook.Info, error) {
	var i guestbook.Info
	err := c.do(ctx, http.MethodGet, "/api/info", nil, &i)
	return i, err
}

// Entries fetches GET /api/entries?limit=limit.
func (c *Client) Entries(ctx context.Context, limit int) ([]guestbook.Entry, error) {
	var es []guestbook.Entry
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/api/entries?limit=%d", limit), nil, &es)
	return es, err
}

// Create sends POST /api/entries. A refused entry is an *APIError with
// status 400 and the API's explanation.
func (c *Client) Create(ctx context.Context, n guestbook.NewEntry) (guestbook.Entry, error) {
	var e guestbook.Entry
	err := c.do(ctx, http.MethodPost, "/api/entries", n, &e)
	return e, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// refused reports whether err is the API refusing the entry itself (a 4xx),
// as opposed to the API being down or failing.
func refused(err error) (*APIError, bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
		return ae, true
	}
	return nil, false
}
