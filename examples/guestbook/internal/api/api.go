// Package api is the guestbook's HTTP JSON API over the store:
//
//	GET  /healthz       200 when the database answers, 503 otherwise
//	GET  /api/entries   entries, newest first (?limit=1..500, default 100)
//	POST /api/entries   {"author": "...", "message": "..."} → 201 and the entry
//	GET  /api/info      sandbox name, database name, server version, entry count
//
// Errors are JSON too: {"error": "what went wrong"}.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"sandpit.dev/sandpit/examples/guestbook/internal/guestbook"
)

// Store is what the API needs from the database; *store.Store has it.
type Store interface {
	Ping(ctx context.Context) error
	List(ctx context.Context, limit int) ([]guestbook.Entry, error)
	Create(ctx context.Context, n guestbook.NewEntry) (guestbook.Entry, error)
	Info(ctx context.Context) (guestbook.Info, error)
}

// MaxBody is the largest request body POST /api/entries reads.
const MaxBody = 8 << 10

// Limits of GET /api/entries?limit=.
const (
	DefaultLimit = 100
	MaxLimit     = 500
)

// Handler returns the API's routes. sandbox is reported by /api/info.
func Handler(st Store, sandbox string, log *slog.Logger) http.Handler {
	a := &server{st: st, sandbox: sandbox, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /api/entries", a.list)
	mux.HandleFunc("POST /api/entries", a.create)
	mux.HandleFunc("GET /api/info", a.info)
	// Known paths with another method: 405 and the methods that work.
	for path, allow := range map[string]string{
		"/healthz": "GET, HEAD", "/api/entries": "GET, HEAD, POST", "/api/info": "GET, HEAD",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here: use "+allow)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: try GET /api/entries, POST /api/entries or GET /api/info")
	})
	return mux
}

type server struct {
	st      Store
	sandbox string
	log     *slog.Logger
}

func (a *server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.st.Ping(ctx); err != nil {
		a.log.Warn("health check failed", "err", err.Error())
		writeError(w, http.StatusServiceUnavailable, "database unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *server) list(w http.ResponseWriter, r *http.Request) {
	limit := DefaultLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d", MaxLimit))
			return
		}
		limit = n
	}
	entries, err := a.st.List(r.Context(), limit)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	if entries == nil {
		entries = []guestbook.Entry{}
	}
	writeJSON(w, http.StatusOK, entries)
}

func (a *server) create(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "send the entry as JSON with Content-Type: application/json")
			return
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	var n guestbook.NewEntry
	err := dec.Decode(&n)
	if err == nil {
		// Read to the end, so that trailing data is an error too.
		var extra json.RawMessage
		var tooBig *http.MaxBytesError
		switch err = dec.Decode(&extra); {
		case errors.Is(err, io.EOF):
			err = nil
		case errors.As(err, &tooBig):
		default:
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", MaxBody))
			return
		}
		writeError(w, http.StatusBadRequest, `body must be one JSON object like {"author": "Ada", "message": "Hello"}: `+err.Error())
		return
	}
	n, err = n.Normalize()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	e, err := a.st.Create(r.Context(), n)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	a.log.Info("entry created", "id", e.ID, "author", e.Author)
	writeJSON(w, http.StatusCreated, e)
}

func (a *server) info(w http.ResponseWriter, r *http.Request) {
	i, err := a.st.Info(r.Context())
	if err != nil {
		a.internal(w, r, err)
		return
	}
	i.Sandbox = a.sandbox
	writeJSON(w, http.StatusOK, i)
}

func (a *server) internal(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err.Error())
	writeError(w, http.StatusInternalServerError, "internal error: see the api service's log")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
