package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/notify"
	"sandpit.dev/sandpit/internal/runtime"
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
}

// Server is the API's http.Handler.
type Server struct {
	cfg       Config
	log       *slog.Logger
	mux       *http.ServeMux
	tokenHash [32]byte
	requests  *prometheus.CounterVec
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
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), mux: http.NewServeMux()}
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
	method, path string
	public       bool
	summary      string
	request      any
	response     any
	stream       string // content type of a streaming answer
	handler      http.HandlerFunc
}

func (s *Server) table() []route {
	return []route{
		{method: "GET", path: "/healthz", public: true, summary: "Liveness and version", response: client.Health{}, handler: s.health},
		{method: "GET", path: "/api/v1/openapi.json", public: true, summary: "This document", handler: s.openapi},
		{method: "GET", path: "/metrics", summary: "Prometheus metrics", stream: "text/plain", handler: s.metrics},
		{method: "POST", path: "/api/v1/templates", summary: "Apply (validate and store) a template; a changed template becomes a new version", request: client.ApplyTemplateRequest{}, response: client.ApplyTemplateResponse{}, handler: s.applyTemplate},
		{method: "GET", path: "/api/v1/templates", summary: "List templates (latest versions)", response: client.TemplateList{}, handler: s.listTemplates},
		{method: "GET", path: "/api/v1/templates/{name}", summary: "Get a template version with its source (?version=N, default latest)", response: client.TemplateInfo{}, handler: s.getTemplate},
		{method: "GET", path: "/api/v1/templates/{name}/versions", summary: "List a template's versions", response: client.TemplateList{}, handler: s.listTemplateVersions},
		{method: "POST", path: "/api/v1/sandboxes", summary: "Create a sandbox; it launches in the background", request: client.CreateSandboxRequest{}, response: client.Sandbox{}, handler: s.createSandbox},
		{method: "GET", path: "/api/v1/sandboxes", summary: "List sandboxes (?template=, ?phase=)", response: client.SandboxList{}, handler: s.listSandboxes},
		{method: "GET", path: "/api/v1/sandboxes/{name}", summary: "Get a sandbox", response: client.Sandbox{}, handler: s.getSandbox},
		{method: "DELETE", path: "/api/v1/sandboxes/{name}", summary: "Delete a sandbox; it goes in the background", response: client.Sandbox{}, handler: s.deleteSandbox},
		{method: "GET", path: "/api/v1/sandboxes/{name}/events", summary: "A sandbox's events (?after=SEQ); with ?follow=true a text/event-stream of event, sandbox and deleted messages", response: client.EventList{}, stream: "text/event-stream", handler: s.events},
		{method: "GET", path: "/api/v1/sandboxes/{name}/logs", summary: "Service logs as NDJSON lines (?service=, ?tail=N, ?follow=true)", response: client.LogLine{}, stream: "application/x-ndjson", handler: s.logs},
		{method: "POST", path: "/api/v1/sandboxes/{name}/exec", summary: "Run a command in a service's environment; request and answer are " + client.ExecContentType + " frame streams", request: client.ExecRequest{}, response: client.ExecResult{}, stream: client.ExecContentType, handler: s.exec},
	}
}

func (s *Server) routes() {
	for _, rt := range s.table() {
		h := rt.handler
		if !rt.public {
			h = s.auth(h)
		}
		s.mux.Handle(rt.method+" "+rt.path, s.count(rt.method+" "+rt.path, h))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			writeJSON(w, http.StatusOK, map[string]string{"name": "sandpit", "version": s.cfg.Version, "api": "/api/v1", "openapi": "/api/v1/openapi.json"})
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

// auth requires the bearer token. The comparison is over digests, in
// constant time, so neither the token nor its length leaks through timing.
func (s *Server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sandpit"`)
			writeError(w, &client.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "this API needs a bearer token",
				Hint: "set SANDPIT_TOKEN (the server wrote one to admin.token in its data dir on first start)"})
			return
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(sum[:], s.tokenHash[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sandpit", error="invalid_token"`)
			writeError(w, &client.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "the bearer token is not valid",
				Hint: "use the token in the server's data dir (admin.token), e.g. export SANDPIT_TOKEN=$(cat /var/lib/sandpit/admin.token)"})
			return
		}
		next(w, r)
	}
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
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &client.Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "request body is larger than 1 MiB"}
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
