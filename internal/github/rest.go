package github

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultAPIURL is github.com's REST API.
const DefaultAPIURL = "https://api.github.com"

// Client calls GitHub's REST API at BaseURL with a token.
type Client struct {
	baseURL *url.URL
	token   string
	http    *http.Client
}

// NewClient returns a client of the REST API at baseURL (DefaultAPIURL
// when empty; GitHub Enterprise Server's is https://HOST/api/v3) that
// authenticates with token. hc may be nil.
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	if baseURL == "" {
		baseURL = DefaultAPIURL
	}
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("GitHub API URL %q: want http(s)://HOST[/PATH], like %s", baseURL, DefaultAPIURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{baseURL: u, token: token, http: hc}, nil
}

// BaseURL is the API's base URL.
func (c *Client) BaseURL() string { return c.baseURL.String() }

// HasToken reports whether the client has a token to call the API with.
func (c *Client) HasToken() bool { return c != nil && c.token != "" }

// APIError is a non-2xx answer.
type APIError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("GitHub API %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// repoPath is "/repos/OWNER/NAME" for "OWNER/NAME".
func repoPath(fullName string) (string, error) {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("GitHub repository %q: want OWNER/NAME", fullName)
	}
	return "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name), nil
}

// do sends one request to the API; path is relative to the base URL, or
// an absolute URL on the base URL's host (a Link header's next page).
// It returns the answer's Link next URL.
func (c *Client) do(ctx context.Context, method, path string, in, out any) (next string, err error) {
	target := c.baseURL.String() + path
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		u, err := url.Parse(path)
		if err != nil || u.Host != c.baseURL.Host || u.Scheme != c.baseURL.Scheme {
			// The token goes to the configured API and nowhere else.
			return "", fmt.Errorf("GitHub API %s: a next page on another host (%s); not following", method, path)
		}
		target = path
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return "", err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "sandpit")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error names the URL (never the token, which is a header).
		return "", fmt.Errorf("GitHub API %s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return "", fmt.Errorf("GitHub API %s %s: read the answer: %w", method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
		return "", &APIError{Method: method, Path: req.URL.Path, Status: resp.StatusCode, Message: e.Message}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return "", fmt.Errorf("GitHub API %s %s: unexpected answer: %w", method, req.URL.Path, err)
		}
	}
	return nextLink(resp.Header.Values("Link")), nil
}

// nextLink returns the rel="next" URL of Link headers (RFC 8288), or "".
func nextLink(links []string) string {
	for _, h := range links {
		for _, part := range strings.Split(h, ",") {
			u, params, ok := strings.Cut(strings.TrimSpace(part), ";")
			if !ok || !strings.HasPrefix(u, "<") || !strings.HasSuffix(u, ">") {
				continue
			}
			for _, p := range strings.Split(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.TrimSpace(k) == "rel" && strings.Contains(" "+strings.Trim(v, `"`)+" ", " next ") {
					return u[1 : len(u)-1]
				}
			}
		}
	}
	return ""
}

// maxPages bounds a paginated listing (100 items a page).
const maxPages = 50

// OpenPullRequests lists the open pull requests of repository fullName
// ("OWNER/NAME"), following the Link header's next pages.
func (c *Client) OpenPullRequests(ctx context.Context, fullName string) ([]PullRequest, error) {
	rp, err := repoPath(fullName)
	if err != nil {
		return nil, err
	}
	var all []PullRequest
	next := rp + "/pulls?state=open&per_page=100"
	for page := 0; next != ""; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("GitHub API: %s has more than %d open pull requests", fullName, maxPages*100)
		}
		var prs []PullRequest
		if next, err = c.do(ctx, http.MethodGet, next, nil, &prs); err != nil {
			return nil, err
		}
		all = append(all, prs...)
	}
	return all, nil
}

// Comment is an issue (or pull request) comment.
type Comment struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
}

// UpsertComment makes sure pull request n has one comment containing
// marker, with body (which must contain marker): it edits the first
// comment that contains marker, or posts one. It returns the comment's id.
func (c *Client) UpsertComment(ctx context.Context, fullName string, n int, marker, body string) (int64, error) {
	rp, err := repoPath(fullName)
	if err != nil {
		return 0, err
	}
	if !strings.Contains(body, marker) {
		return 0, fmt.Errorf("comment body does not contain its marker %q", marker)
	}
	issue := rp + "/issues/" + strconv.Itoa(n)
	next := issue + "/comments?per_page=100"
	for page := 0; next != "" && page < maxPages; page++ {
		var cs []Comment
		if next, err = c.do(ctx, http.MethodGet, next, nil, &cs); err != nil {
			return 0, err
		}
		for _, cm := range cs {
			if strings.Contains(cm.Body, marker) {
				if cm.Body == body {
					return cm.ID, nil
				}
				var out Comment
				_, err := c.do(ctx, http.MethodPatch, rp+"/issues/comments/"+strconv.FormatInt(cm.ID, 10), map[string]string{"body": body}, &out)
				return cm.ID, err
			}
		}
	}
	var out Comment
	_, err = c.do(ctx, http.MethodPost, issue+"/comments", map[string]string{"body": body}, &out)
	return out.ID, err
}

// Status is a commit status.
type Status struct {
	State       string `json:"state"` // error, failure, pending or success
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
	Context     string `json:"context"`
}

// SetStatus sets a commit status on sha.
func (c *Client) SetStatus(ctx context.Context, fullName, sha string, st Status) error {
	rp, err := repoPath(fullName)
	if err != nil {
		return err
	}
	if len(st.Description) > 140 { // GitHub's limit
		st.Description = st.Description[:137] + "..."
	}
	_, err = c.do(ctx, http.MethodPost, rp+"/statuses/"+url.PathEscape(sha), st, nil)
	return err
}

// RepoName returns "OWNER/NAME" of a GitHub repository URL (https, ssh,
// scp-like git@HOST:OWNER/NAME, git://), or "" when rawURL is not one on
// github.com or on the host of apiURL (GitHub Enterprise Server).
func RepoName(rawURL, apiURL string) string {
	hosts := map[string]bool{"github.com": true, "www.github.com": true}
	if u, err := url.Parse(apiURL); err == nil && u.Hostname() != "" {
		h := strings.ToLower(u.Hostname())
		hosts[h] = true
		hosts[strings.TrimPrefix(h, "api.")] = true
	}
	var host, path string
	if u, err := url.Parse(rawURL); err == nil && u.Scheme != "" && u.Host != "" {
		host, path = u.Hostname(), u.Path
	} else if at, rest, ok := strings.Cut(rawURL, ":"); ok && !strings.Contains(at, "/") {
		// scp-like: [user@]host:owner/name.git
		_, h, found := strings.Cut(at, "@")
		if !found {
			h = at
		}
		host, path = h, rest
	} else {
		return ""
	}
	if !hosts[strings.ToLower(host)] {
		return ""
	}
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	owner, name, ok := strings.Cut(path, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return ""
	}
	return owner + "/" + name
}
