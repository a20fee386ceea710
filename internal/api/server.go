package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/auth"
	"sandpit.dev/sandpit/internal/github"
	"sandpit.dev/sandpit/internal/lifecycle"
	"sandpit.dev/sandpit/internal/notify"
	"sandpit.dev/sandpit/internal/ratelimit"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/snapshot"
	"sandpit.dev/sandpit/internal/store"
)

// Limits on request bodies.
const (
	maxJSONBody     = 1 << 20 // templates are the largest JSON bodies
	maxTemplateSize = 512 << 10
)

// Config holds the API's dependencies.
type Config struct {
	Store   store.Store
	Runtime runtime.Runtime
	// Enqueue asks the reconciler to look at a sandbox (after a spec change).
	Enqueue func(id string)
	Broker  *notify.Broker
	Logger  *slog.Logger
	// Token is the admin bearer token every request but /healthz and the
	// OpenAPI document must carry.
	Token string
	// Sessions, when set, also admits requests from a signed-in console
	// session (its cookie), state-changing ones only with the session's
	// CSRF token.
	Sessions *auth.Sessions
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Registerer receives the API's own metrics (none when nil).
	Registerer prometheus.Registerer
	Version    string
	Now        func() time.Time
	// Heartbeat is how often idle streams send a keep-alive (default 15s).
	Heartbeat time.Duration
	// BaseContext ends streaming responses (event and log follows) when the
	// server shuts down.
	BaseContext context.Context
	// Snapshots manages data snapshots (nil: the API answers 501).
	Snapshots *snapshot.Manager
	// Policy holds the per-user limits (sandboxes, running ones, pins).
	Policy lifecycle.Policy
	// Activity records use of sandboxes (logs -f and exec sessions).
	Activity *lifecycle.Activity
	// Lifecycle computes a sandbox's lifecycle in force and its deadlines
	// for answers (nil: answers leave them out).
	Lifecycle func(ctx context.Context, sb *sandbox.Sandbox) (sandbox.Lifecycle, sandbox.Deadlines)
	// PoolChanged tells the reconciler that a warm pool may need a
	// refill (a claim, a new template version).
	PoolChanged func()
	// RepoChanged asks gitsync for a pass over a repository binding now
	// (it was added, removed, or a sync was requested).
	RepoChanged func(name string)
	// PullRequestEvent hands gitsync a pull request's state from a
	// webhook delivery of binding repo, and asks for a pass over it (nil:
	// RepoChanged).
	PullRequestEvent func(repo string, pr github.PullRequest)
	// GitHubAPIURL is the GitHub API's base URL; its host (and
	// github.com) is where repository URLs name OWNER/NAME.
	GitHubAPIURL string
	// AuthLimiter, when set, counts wrong bearer tokens per client address
	// and answers 429 to an address over its limit before looking at its
	// token (the console's sign-in shares it). Nil: no limit.
	AuthLimiter *ratelimit.Limiter
}

// Server is the API's http.Handler.
type Server struct {
	cfg       Config
	log       *slog.Logger
	mux       *http.ServeMux
	tokenHash [32]byte
	requests  *prometheus.CounterVec
	// paths matches a request's path against the routes whatever its
	// method, and allowed lists each route path's methods: together they
	// tell "wrong method" (405) from "no such path" (404).
	paths   *http.ServeMux
	allowed map[string][]string

	openapiOnce sync.Once
	openapiDoc  map[string]any

	// quotaMu makes "check the per-user limits, then create" atomic on
	// this server; wakeMu makes many requests to a sleeping sandbox wake
	// it once.
	quotaMu sync.Mutex
	wakeMu  sync.Mutex
}

// New returns the API handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.BaseContext == nil {
		cfg.BaseContext = context.Background()
	}
	if cfg.Broker == nil {
		cfg.Broker = notify.New()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), mux: http.NewServeMux(), paths: http.NewServeMux(), allowed: map[string][]string{}}
	s.tokenHash = sha256.Sum256([]byte(cfg.Token))
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sandpit_api_requests_total",
		Help: "API requests by route and status class.",
	}, []string{"route", "code"})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.requests)
	}
	s.routes()
	return s
}

// route is one API operation; the OpenAPI document is built from the same
// table, so it cannot drift from what is served.
type route struct {
	method, path  string
	public        bool
	summary       string
	status        []int // success statuses (default 200)
	query         []param
	request       any    // JSON request body
	requestBinary string // content type of a raw request body (an upload)
	response      any    // JSON answer
	stream        string // content type of a streaming answer
	streamItem    any    // what a streaming answer carries (NDJSON lines, the exec result frame)
	handler       http.HandlerFunc
}

func (s *Server) table() []route {
	follow := param{"follow", "boolean", "with true, keep the response open and stream what comes"}
	return []route{
		{method: "GET", path: "/healthz", public: true, summary: "Liveness and version", response: client.Health{}, handler: s.health},
		{method: "GET", path: "/api/v1/openapi.json", public: true, summary: "This document", handler: s.openapi},
		{method: "GET", path: "/metrics", summary: "Prometheus metrics", stream: "text/plain", handler: s.metrics},
		{method: "POST", path: "/api/v1/templates", summary: "Apply (validate and store) a template; a changed template becomes a new version (201), an unchanged one is not stored again (200)", status: []int{http.StatusCreated, http.StatusOK}, request: client.ApplyTemplateRequest{}, response: client.ApplyTemplateResponse{}, handler: s.applyTemplate},
		{method: "GET", path: "/api/v1/templates", summary: "List templates (latest versions)", response: client.TemplateList{}, handler: s.listTemplates},
		{method: "GET", path: "/api/v1/templates/{name}", summary: "Get a template version with its source", query: []param{{"version", "integer", "version to get (default: the latest)"}}, response: client.TemplateInfo{}, handler: s.getTemplate},
		{method: "GET", path: "/api/v1/templates/{name}/versions", summary: "List a template's versions", response: client.TemplateList{}, handler: s.listTemplateVersions},
		{method: "POST", path: "/api/v1/repos", summary: "Bind a repository: each of its branches that the template's git.branches selects gets a sandbox, kept at the branch's head commit and deleted with the branch; the first sync starts at once", status: []int{http.StatusCreated}, request: client.AddRepoRequest{}, response: client.Repo{}, handler: s.addRepo},
		{method: "GET", path: "/api/v1/repos", summary: "List repository bindings with their sync status", response: client.RepoList{}, handler: s.listRepos},
		{method: "GET", path: "/api/v1/repos/{name}", summary: "Get a repository binding with its sync status", response: client.Repo{}, handler: s.getRepo},
		{method: "POST", path: "/api/v1/repos/{name}/sync", summary: "Sync a repository binding now instead of at its next period", status: []int{http.StatusAccepted}, response: client.Repo{}, handler: s.syncRepo},
		{method: "DELETE", path: "/api/v1/repos/{name}", summary: "Remove a repository binding; its sandboxes are kept (no longer following their branches) unless delete_sandboxes=true", query: []param{{"delete_sandboxes", "boolean", "also delete the binding's sandboxes"}}, response: client.RemoveRepoResponse{}, handler: s.removeRepo},
		{method: "POST", path: "/api/v1/sandboxes", summary: "Create a sandbox; it launches in the background", status: []int{http.StatusCreated}, request: client.CreateSandboxRequest{}, response: client.Sandbox{}, handler: s.createSandbox},
		{method: "GET", path: "/api/v1/sandboxes", summary: "List sandboxes", query: []param{{"template", "string", "only sandboxes of this template"}, {"phase", "string", "only sandboxes in this phase"}, {"watch", "boolean", "with true, a text/event-stream of \"sandboxes\" messages, each the whole list, at once and whenever it changes"}}, response: client.SandboxList{}, stream: "text/event-stream", handler: s.listSandboxes},
		{method: "GET", path: "/api/v1/sandboxes/{name}", summary: "Get a sandbox", response: client.Sandbox{}, handler: s.getSandbox},
		{method: "DELETE", path: "/api/v1/sandboxes/{name}", summary: "Delete a sandbox; it goes in the background", status: []int{http.StatusAccepted}, response: client.Sandbox{}, handler: s.deleteSandbox},
		{method: "POST", path: "/api/v1/sandboxes/{name}/suspend", summary: "Suspend a sandbox: stop its services and dependencies and free their ports and memory, keeping files and data; a request to one of its endpoints or resume wakes it", status: []int{http.StatusAccepted}, response: client.Sandbox{}, handler: s.suspendSandbox},
		{method: "POST", path: "/api/v1/sandboxes/{name}/resume", summary: "Wake a suspended sandbox (counts as activity, so its idle countdown restarts)", status: []int{http.StatusAccepted}, response: client.Sandbox{}, handler: s.resumeSandbox},
		{method: "POST", path: "/api/v1/sandboxes/{name}/extend", summary: "Move a sandbox's TTL deadline to the given duration from now", request: client.ExtendRequest{}, response: client.Sandbox{}, handler: s.extendSandbox},
		{method: "POST", path: "/api/v1/sandboxes/{name}/fail", summary: "Mark a sandbox Failed as it is, stopping nothing, and keep it for debugging (keep becomes its own keep_failed); the reconciler does it in the background. sandpit ci run calls it when the tests fail", status: []int{http.StatusAccepted}, request: client.FailSandboxRequest{}, response: client.Sandbox{}, handler: s.failSandbox},
		{method: "PUT", path: "/api/v1/sandboxes/{name}/pin", summary: "Pin a sandbox: no idle suspend, TTL or retention (the server limits pins per user)", response: client.Sandbox{}, handler: s.pinSandbox},
		{method: "DELETE", path: "/api/v1/sandboxes/{name}/pin", summary: "Unpin a sandbox", response: client.Sandbox{}, handler: s.unpinSandbox},
		{method: "GET", path: "/api/v1/sandboxes/{name}/events", summary: "A sandbox's events; with follow=true a text/event-stream of event, sandbox and deleted messages", query: []param{{"after", "integer", "only events with a larger seq"}, follow}, response: client.EventList{}, stream: "text/event-stream", handler: s.events},
		{method: "GET", path: "/api/v1/sandboxes/{name}/logs", summary: "Service logs as NDJSON lines (LogLine)", query: []param{{"service", "string", "only this service or dependency"}, {"tail", "integer", "only the last N lines of history"}, follow}, stream: "application/x-ndjson", streamItem: client.LogLine{}, handler: s.logs},
		{method: "GET", path: "/api/v1/sandboxes/{name}/render", summary: "The objects the sandbox is made of, as the runtime applies them (kubernetes: the final manifests after overrides), with secret values redacted; 501 for runtimes without manifests", stream: "application/yaml", handler: s.render},
		{method: "POST", path: "/api/v1/sandboxes/{name}/dependencies/{dependency}/restore", summary: "Reset a dependency's data to a snapshot; the reconciler does it in the background (the returned generation is done when status.observed_generation reaches it)", status: []int{http.StatusAccepted}, request: client.RestoreSnapshotRequest{}, response: client.Sandbox{}, handler: s.restoreSnapshot},
		{method: "GET", path: "/api/v1/snapshots", summary: "List snapshots, with the sandboxes that use each and how the server stores them", response: client.SnapshotList{}, handler: s.listSnapshots},
		{method: "POST", path: "/api/v1/snapshots", summary: "Capture a running sandbox's dependency as a snapshot; it is made in the background (phase Creating, then Ready or Failed)", status: []int{http.StatusAccepted}, request: client.CreateSnapshotRequest{}, response: client.Snapshot{}, handler: s.createSnapshot},
		{method: "GET", path: "/api/v1/snapshots/{name}", summary: "Get a snapshot", response: client.Snapshot{}, handler: s.getSnapshot},
		{method: "DELETE", path: "/api/v1/snapshots/{name}", summary: "Delete a snapshot; refused (409) while sandboxes use it unless force=true (they keep their data)", status: []int{http.StatusNoContent}, query: []param{{"force", "boolean", "delete even while sandboxes use it"}}, handler: s.deleteSnapshot},
		{method: "PUT", path: "/api/v1/snapshots/{name}/import", summary: "Import a pg_dump file (custom, tar or plain SQL; the request body, application/octet-stream) as a new snapshot; it is restored in the background", status: []int{http.StatusAccepted}, query: []param{{"type", "string", "dependency type: postgres"}, {"version", "string", "major version (default: the dump's own when installed, else the newest installed)"}, {"database", "string", "database to restore into (default: the dump's own)"}, {"filename", "string", "the dump's file name, for the record"}}, requestBinary: "application/octet-stream", response: client.Snapshot{}, handler: s.importSnapshot},
		{method: "GET", path: "/api/v1/usage", summary: "Usage accounting: sandbox-hours per calendar day (running, by template and by owner; suspended; and what idle suspend saved), from the store's usage record, which outlives deleted sandboxes", query: []param{{"days", "integer", "how many calendar days, today included (default 14, 1 to 90)"}, {"tz", "string", "IANA time zone whose calendar days to count, such as Europe/Berlin (default UTC)"}}, response: client.Usage{}, handler: s.usage},
		{method: "POST", path: "/hooks/github", public: true, summary: "GitHub webhook (pull_request, push, delete, ping; application/json): authenticated by X-Hub-Signature-256 with the webhook secret of a binding of the payload's repository, not by the bearer token (401 when no binding's secret signs it); it asks for a sync of the bindings now, so branch and pull request sandboxes follow without waiting for the period", status: []int{http.StatusAccepted}, requestBinary: "application/json", response: client.HookResponse{}, handler: s.githubHook},
		{method: "GET", path: "/launch", summary: "Launch link: create the sandbox of template+ref+overrides, or open it when it exists (the default name derives from them, so the same link opens the same sandbox); a Ready one answers 303 to its first endpoint, a launching one a status page that reloads every 2 s (Accept: text/html) or the sandbox as JSON (201 when created). Needs the bearer token like the API", status: []int{http.StatusSeeOther, http.StatusCreated, http.StatusOK}, query: []param{{"template", "string", "template to launch (required)"}, {"ref", "string", "git ref to check out"}, {"name", "string", "sandbox name (default: derived from template, ref and overrides)"}, {"set.KEY", "string", "an override, as with create --set KEY=VALUE (repeatable with other keys)"}}, response: client.Sandbox{}, stream: "text/html", handler: s.launch},
		{method: "POST", path: "/api/v1/sandboxes/{name}/exec", summary: "Run a command in a service's environment; request and answer are " + client.ExecContentType + " frame streams (a start frame with an ExecRequest, stdin frames; stdout, stderr and an exit frame with an ExecResult)", request: client.ExecRequest{}, stream: client.ExecContentType, streamItem: client.ExecResult{}, handler: s.exec},
	}
}

// param is a query parameter of a route.
type param struct{ name, typ, desc string }

func (s *Server) routes() {
	for _, rt := range s.table() {
		h := rt.handler
		if !rt.public {
			h = s.auth(h)
		}
		if rt.stream == "" && rt.requestBinary == "" {
			h = withDeadlines(h)
		}
		s.mux.Handle(rt.method+" "+rt.path, s.count(rt.method+" "+rt.path, h))
		if s.allowed[rt.path] == nil {
			s.paths.Handle(rt.path, http.NotFoundHandler())
		}
		s.allowed[rt.path] = append(s.allowed[rt.path], rt.method)
		sort.Strings(s.allowed[rt.path])
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			writeJSON(w, http.StatusOK, map[string]string{"name": "sandpit", "version": s.cfg.Version, "api": "/api/v1", "openapi": "/api/v1/openapi.json"})
			return
		}
		// The catch-all pattern matches every method, so the mux never
		// answers 405 itself.
		allow := ""
		if r.URL.Path == "/" {
			allow = "GET"
		} else if _, pattern := s.paths.Handler(r); pattern != "" {
			allow = strings.Join(s.allowed[pattern], ", ")
		}
		if allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, &client.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path + "; use " + allow, Hint: "see /api/v1/openapi.json for the API"})
			return
		}
		writeError(w, &client.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such API path: " + r.Method + " " + r.URL.Path, Hint: "see /api/v1/openapi.json for the API"})
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// auth requires the bearer token, or a console session. The comparison is
// over digests, in constant time, so neither the token nor its length
// leaks through timing.
func (s *Server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" && s.cfg.Sessions != nil {
			if sess, ok := s.cfg.Sessions.Get(r); ok {
				// A browser sends the cookie with requests other sites
				// make it send; only the console's own pages know the
				// CSRF token.
				if !auth.Safe(r.Method) && !s.cfg.Sessions.CheckCSRF(sess, auth.RequestCSRF(r)) {
					writeError(w, &client.Error{Status: http.StatusForbidden, Code: "csrf", Message: "this request carries a console session but not its CSRF token",
						Hint: "send the " + auth.CSRFHeader + " header the console page holds, or use a bearer token instead of the session cookie"})
					return
				}
				next(w, r)
				return
			}
		}
		// The scheme is case-insensitive (RFC 9110, section 11.1).
		scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		tok = strings.TrimSpace(tok)
		if !strings.EqualFold(scheme, "Bearer") || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sandpit"`)
			writeError(w, &client.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "this API needs a bearer token",
				Hint: "set SANDPIT_TOKEN (the server wrote one to admin.token in its data dir on first start)"})
			return
		}
		key := ratelimit.Key(r)
		if l := s.cfg.AuthLimiter; l != nil {
			if wait, blocked := l.Blocked(key); blocked {
				ratelimit.RetryAfter(w, wait)
				writeError(w, &client.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
					Message: "too many wrong tokens from " + key + ": try again in " + wait.String(),
					Hint:    "check SANDPIT_TOKEN against admin.token in the server's data dir before retrying"})
				return
			}
		}
		if !s.ValidToken(tok) {
			if s.cfg.AuthLimiter != nil {
				s.cfg.AuthLimiter.Fail(key)
			}
			s.log.Warn("request with a wrong bearer token", "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="sandpit", error="invalid_token"`)
			writeError(w, &client.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "the bearer token is not valid",
				Hint: "use the token in the server's data dir (admin.token), e.g. export SANDPIT_TOKEN=$(cat /var/lib/sandpit/admin.token)"})
			return
		}
		next(w, r)
	}
}

// handlerTimeout bounds reading the request and writing the answer of
// every route that neither streams its answer nor takes an upload. The
// servers have no WriteTimeout or ReadTimeout, which would cut event and
// log follows, exec sessions and snapshot imports; the deadlines are set
// per request instead, and only here.
const handlerTimeout = 2 * time.Minute

// withDeadlines sets read and write deadlines of handlerTimeout on the
// request's connection (stream) for next, and clears the write deadline
// when it returns, so that the next request on a kept-alive connection,
// perhaps a stream, does not inherit it (the server resets the read
// deadline itself).
func withDeadlines(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		end := time.Now().Add(handlerTimeout)
		_ = rc.SetReadDeadline(end)
		_ = rc.SetWriteDeadline(end)
		defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
		next(w, r)
	}
}

// ValidToken reports whether tok is the server's bearer token (the console
// signs in with it).
func (s *Server) ValidToken(tok string) bool {
	sum := sha256.Sum256([]byte(tok))
	return tok != "" && subtle.ConstantTimeCompare(sum[:], s.tokenHash[:]) == 1
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *Server) count(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		s.requests.WithLabelValues(route, string(rune('0'+code/100))+"xx").Inc()
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if _, err := s.cfg.Store.ListTemplates(r.Context()); err != nil {
		writeError(w, &client.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "store unavailable: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, client.Health{Status: "ok", Version: s.cfg.Version, Runtime: s.cfg.Runtime.Name()})
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Gatherer == nil {
		writeError(w, &client.Error{Status: http.StatusNotFound, Code: "not_found", Message: "metrics are not enabled"})
		return
	}
	promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *client.Error) {
	if e.Status == 0 {
		e.Status = http.StatusInternalServerError
	}
	writeJSON(w, e.Status, client.ErrorBody{Error: e})
}

// decodeJSON reads a size-limited JSON body, refusing unknown fields so a
// typo in a client's request is an error rather than silently ignored.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *client.Error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &client.Error{Status: http.StatusUnsupportedMediaType, Code: "invalid_request", Message: "send JSON (Content-Type: application/json), not " + ct}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more data follows the JSON object")
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &client.Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "request body is larger than 1 MiB"}
		}
		if errors.Is(err, io.EOF) {
			return &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "request body is empty: send a JSON object"}
		}
		return &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "request body is not valid JSON for this operation: " + err.Error()}
	}
	return nil
}

// storeError maps store errors to API errors; what is wrapped in the
// message is the store's own description ("sandbox \"x\" not found").
func storeError(err error, hint string) *client.Error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &client.Error{Status: http.StatusNotFound, Code: "not_found", Message: err.Error(), Hint: hint}
	case errors.Is(err, store.ErrConflict):
		return &client.Error{Status: http.StatusConflict, Code: "conflict", Message: err.Error(), Hint: hint}
	case errors.Is(err, context.Canceled):
		return &client.Error{Status: 499, Code: "cancelled", Message: "request cancelled"}
	}
	return &client.Error{Status: http.StatusInternalServerError, Code: "internal", Message: err.Error()}
}
