// Package web is the guestbook's front end: it renders one HTML page from
// what the api service answers, and forwards a plain HTML form to it. It
// never touches the database, and works without JavaScript.
//
//	GET  /          the page: sandbox facts, the form, the entries
//	POST /entries   form fields author and message → 303 back to /
//	GET  /healthz   200 while the web service runs
package web

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"sandpit.dev/sandpit/examples/guestbook/internal/guestbook"
)

// Config is config.json, which Sandpit renders through the template's
// files: section.
type Config struct {
	Sandbox   string `json:"sandbox"`
	API       string `json:"api"`
	PublicURL string `json:"public_url"`
}

// LoadConfig reads a config.json file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("parse config %s: %w", path, err)
	}
	return c, nil
}

// Options configure the web handler.
type Options struct {
	Config     Config
	ConfigPath string // shown in the footer
	API        *Client
	Log        *slog.Logger
	GitRef     string
	GitSHA     string
}

// MaxForm is the largest form body POST /entries reads.
const MaxForm = 16 << 10

// PageEntries is how many entries the page shows.
const PageEntries = 50

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"when":    func(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") },
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	},
}).Parse(pageHTML))

// Handler returns the front end's routes.
func Handler(o Options) http.Handler {
	s := &server{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("POST /entries", s.create)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	for path, allow := range map[string]string{"/{$}": "GET, HEAD", "/entries": "POST", "/healthz": "GET, HEAD"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			http.Error(w, "405 method not allowed: use "+allow, http.StatusMethodNotAllowed)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 page not found: the guestbook is at /", http.StatusNotFound)
	})
	return mux
}

type server struct{ o Options }

type pageData struct {
	Title      string
	Sandbox    string
	APIURL     string
	APILinks   string
	PublicURL  string
	ConfigPath string
	GitRef     string
	GitSHA     string
	Info       *guestbook.Info
	Entries    []guestbook.Entry
	Err        string
	Form       guestbook.NewEntry
	FormErr    string
	MaxAuthor  int
	MaxMessage int
}

func (s *server) index(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, guestbook.NewEntry{}, "")
}

func (s *server) create(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxForm)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.render(w, r, http.StatusRequestEntityTooLarge, guestbook.NewEntry{}, "the form is too large")
			return
		}
		s.render(w, r, http.StatusBadRequest, guestbook.NewEntry{}, "the form could not be read: "+err.Error())
		return
	}
	n := guestbook.NewEntry{Author: r.PostForm.Get("author"), Message: r.PostForm.Get("message")}
	// The api validates; the page only shows what it says.
	e, err := s.o.API.Create(r.Context(), n)
	if err != nil {
		if ae, ok := refused(err); ok {
			s.render(w, r, ae.Status, n, ae.Message)
			return
		}
		s.o.Log.Error("forward entry to the api", "err", err.Error())
		s.render(w, r, http.StatusBadGateway, n, "the api service failed; try again in a moment")
		return
	}
	s.o.Log.Info("entry forwarded", "id", e.ID)
	http.Redirect(w, r, fmt.Sprintf("/#entry-%d", e.ID), http.StatusSeeOther)
}

// render fetches the facts and entries from the api, at the same time, and
// writes the page. If the api fails the page still renders, with the error
// and status 502.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, form guestbook.NewEntry, formErr string) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var (
		wg               sync.WaitGroup
		info             guestbook.Info
		entries          []guestbook.Entry
		infoErr, listErr error
	)
	wg.Go(func() { info, infoErr = s.o.API.Info(ctx) })
	wg.Go(func() { entries, listErr = s.o.API.Entries(ctx, PageEntries) })
	wg.Wait()

	d := pageData{
		Title:      "Guestbook · " + s.o.Config.Sandbox,
		Sandbox:    s.o.Config.Sandbox,
		APIURL:     s.o.API.BaseURL(),
		PublicURL:  s.o.Config.PublicURL,
		ConfigPath: s.o.ConfigPath,
		GitRef:     s.o.GitRef,
		GitSHA:     s.o.GitSHA,
		Form:       form,
		FormErr:    formErr,
		MaxAuthor:  guestbook.MaxAuthor,
		MaxMessage: guestbook.MaxMessage,
	}
	if d.PublicURL == "" {
		// Not behind a Sandpit endpoint, so /api/... is not routed to the
		// api service: link to it directly.
		d.APILinks = d.APIURL
	}
	if err := errors.Join(infoErr, listErr); err != nil {
		s.o.Log.Error("fetch from the api", "err", err.Error())
		d.Err = strings.ReplaceAll(err.Error(), "\n", "; ")
		if status < 500 {
			status = http.StatusBadGateway
		}
	} else {
		d.Info, d.Entries = &info, entries
	}

	var buf strings.Builder
	if err := page.Execute(&buf, d); err != nil {
		s.o.Log.Error("render page", "err", err.Error())
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}
