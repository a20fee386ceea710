package web

import (
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"sandpit.dev/sandpit/internal/auth"
	"sandpit.dev/sandpit/internal/ratelimit"
	"sandpit.dev/sandpit/internal/sandbox"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config holds the console's dependencies.
type Config struct {
	// API serves every request that is not a console page.
	API http.Handler
	// Sessions issues and checks the console's session cookies.
	Sessions *auth.Sessions
	// CheckToken reports whether a token given at sign-in is valid, and
	// for whom.
	CheckToken func(token string) (subject string, ok bool)
	Logger     *slog.Logger
	Version    string
	// Limiter, when set, counts wrong tokens at sign-in per client address
	// and refuses (429) an address over its limit before looking at its
	// token; the server shares it with the API's bearer tokens.
	Limiter *ratelimit.Limiter
}

// Handler serves the console and hands everything else to the API.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	pages  map[string]*template.Template
	static http.Handler
}

// page is one console page: its template and what the layout shows.
type page struct {
	name, title string
	// nav is the navigation entry it belongs to.
	nav string
}

var pages = []page{
	{"sandboxes", "Sandboxes", "sandboxes"},
	{"sandbox", "Sandbox", "sandboxes"},
	{"new", "New sandbox", "new"},
	{"templates", "Templates", "templates"},
	{"template", "Template", "templates"},
	{"snapshots", "Snapshots", "snapshots"},
	{"usage", "Usage", "usage"},
	{"signin", "Sign in", ""},
}

// New returns the console handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, log: cfg.Logger.With("component", "web"), mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	base := template.Must(template.New("layout.html").Funcs(template.FuncMap{}).ParseFS(templateFS, "templates/layout.html", "templates/partials.html"))
	for _, p := range pages {
		h.pages[p.name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+p.name+".html"))
	}
	sub, _ := fs.Sub(staticFS, "static")
	h.static = http.StripPrefix("/static/", http.FileServerFS(sub))

	h.mux.HandleFunc("GET /static/", h.serveStatic)
	h.mux.HandleFunc("GET /sign-in", h.signInPage)
	h.mux.HandleFunc("POST /sign-in", h.signIn)
	h.mux.HandleFunc("POST /sign-out", h.signOut)
	h.mux.HandleFunc("GET /{$}", h.root)
	h.mux.HandleFunc("GET /sandboxes/{name}", h.page("sandbox"))
	h.mux.HandleFunc("GET /new", h.page("new"))
	h.mux.HandleFunc("GET /templates", h.page("templates"))
	h.mux.HandleFunc("GET /templates/{name}", h.page("template"))
	h.mux.HandleFunc("GET /snapshots", h.page("snapshots"))
	h.mux.HandleFunc("GET /usage", h.page("usage"))
	h.mux.HandleFunc("GET /launch", h.launch)
	h.mux.HandleFunc("GET /new/name", h.launchName)
	h.mux.Handle("/", cfg.API)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// wantsHTML tells a browser's navigation from an API client: only
// browsers ask for text/html.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// root is the sandboxes list for browsers and the API's index for others.
func (h *Handler) root(w http.ResponseWriter, r *http.Request) {
	if !wantsHTML(r) {
		h.cfg.API.ServeHTTP(w, r)
		return
	}
	h.page("sandboxes")(w, r)
}

// launch turns a launch link opened in a signed-in browser into the create
// page filled in from it: a link must not create anything by being
// followed (another site could make the browser follow it), so the
// engineer confirms with the page's button. Requests with a bearer token
// get the API's launch, which creates at once.
func (h *Handler) launch(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" || !wantsHTML(r) {
		h.cfg.API.ServeHTTP(w, r)
		return
	}
	if _, ok := h.cfg.Sessions.Get(r); !ok {
		h.toSignIn(w, r)
		return
	}
	http.Redirect(w, r, "/new?"+r.URL.RawQuery, http.StatusSeeOther)
}

// launchName answers the name a launch link's sandbox gets (the create
// page shows it, and uses it when the name is left empty), so the page and
// /launch never disagree.
func (h *Handler) launchName(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.cfg.Sessions.Get(r); !ok {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	f := launchFromQuery(r.URL.Query())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]string{"name": f.DefaultName})
}

func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	// Assets change only with the binary; a short cache keeps pages quick
	// without serving an old script after an upgrade for long.
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.static.ServeHTTP(w, r)
}

// layoutData is what every page's template gets.
type layoutData struct {
	Page, Title, Nav string
	CSRF             string
	Subject          string
	Version          string
	// Name is the path's {name} (a sandbox or template).
	Name string
	// Launch fills the create page from a launch link.
	Launch *launchForm
	// Error and Next are for the sign-in page.
	Error, Next string
}

type launchForm struct {
	Template, Ref, Name string
	Set                 string // KEY=VALUE lines
	DefaultName         string
}

func (h *Handler) page(name string) http.HandlerFunc {
	var p page
	for _, q := range pages {
		if q.name == name {
			p = q
		}
	}
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := h.cfg.Sessions.Get(r)
		if !ok {
			h.toSignIn(w, r)
			return
		}
		d := layoutData{Page: p.name, Title: p.title, Nav: p.nav, CSRF: h.cfg.Sessions.CSRF(sess), Subject: sess.Subject, Version: h.cfg.Version, Name: r.PathValue("name")}
		if d.Name != "" {
			d.Title = d.Name + " · " + p.title
		}
		if p.name == "new" {
			d.Launch = launchFromQuery(r.URL.Query())
		}
		h.render(w, http.StatusOK, p.name, d)
	}
}

// launchFromQuery reads a launch link's parameters (template, ref, name,
// set.KEY=VALUE), as /launch takes them.
func launchFromQuery(q url.Values) *launchForm {
	f := &launchForm{Template: q.Get("template"), Ref: q.Get("ref"), Name: q.Get("name")}
	set := map[string]string{}
	var lines []string
	for k, vs := range q {
		if key, ok := strings.CutPrefix(k, "set."); ok && key != "" && len(vs) > 0 {
			set[key] = vs[len(vs)-1]
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		lines = append(lines, k+"="+set[k])
	}
	f.Set = strings.Join(lines, "\n")
	if f.Template != "" {
		if len(set) == 0 {
			set = nil
		}
		f.DefaultName = sandbox.LaunchName(f.Template, f.Ref, set)
	}
	return f
}

func (h *Handler) render(w http.ResponseWriter, code int, name string, d layoutData) {
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := h.pages[name].ExecuteTemplate(w, "layout.html", d); err != nil {
		h.log.Error("render page", "page", name, "err", err)
	}
}

// securityHeaders keeps pages from running other origins' scripts, being
// framed, or being cached with their CSRF token.
func securityHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
}

// toSignIn redirects a browser without a session to the sign-in page,
// which comes back here after.
func (h *Handler) toSignIn(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/sign-in?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	h.renderSignIn(w, r, http.StatusOK, "")
}

// renderSignIn shows the sign-in form with a fresh double-submit token.
func (h *Handler) renderSignIn(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := auth.RandomToken()
	http.SetCookie(w, &http.Cookie{Name: auth.SignInCookie, Value: tok, Path: "/sign-in", MaxAge: 3600,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	h.render(w, code, "signin", layoutData{Page: "signin", Title: "Sign in", CSRF: tok, Version: h.cfg.Version,
		Error: msg, Next: safeNext(r.FormValue("next"))})
}

// safeNext keeps a post-sign-in redirect on this site: a path, never a URL
// another site could use to bounce a signed-in user elsewhere.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.HasPrefix(next, "/sign-") {
		return "/"
	}
	return next
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	key := ratelimit.Key(r)
	if h.cfg.Limiter != nil {
		if wait, blocked := h.cfg.Limiter.Blocked(key); blocked {
			h.log.Warn("sign-in refused: too many wrong tokens", "remote", r.RemoteAddr)
			ratelimit.RetryAfter(w, wait)
			h.renderSignIn(w, r, http.StatusTooManyRequests, "Too many wrong tokens from your address. Wait "+wait.String()+", then sign in with the server's admin token (admin.token in its data dir).")
			return
		}
	}
	if err := r.ParseForm(); err != nil {
		h.renderSignIn(w, r, http.StatusBadRequest, "The form could not be read; try again.")
		return
	}
	c, err := r.Cookie(auth.SignInCookie)
	if err != nil || c.Value == "" || r.PostFormValue(auth.CSRFField) != c.Value {
		h.log.Warn("sign-in without its CSRF token", "remote", r.RemoteAddr)
		h.renderSignIn(w, r, http.StatusForbidden, "This form expired or came from another site. Sign in again from this page.")
		return
	}
	subject, ok := h.cfg.CheckToken(strings.TrimSpace(r.PostFormValue("token")))
	if !ok {
		if h.cfg.Limiter != nil {
			h.cfg.Limiter.Fail(key)
		}
		h.log.Warn("sign-in with a wrong token", "remote", r.RemoteAddr)
		h.renderSignIn(w, r, http.StatusUnauthorized, "That token is not valid. Use the server's admin token (admin.token in its data dir).")
		return
	}
	h.cfg.Sessions.Issue(w, r, subject)
	http.SetCookie(w, &http.Cookie{Name: auth.SignInCookie, Value: "", Path: "/sign-in", MaxAge: -1})
	h.log.Info("signed in", "subject", subject, "remote", r.RemoteAddr)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	sess, ok := h.cfg.Sessions.Get(r)
	if !ok {
		http.Redirect(w, r, "/sign-in", http.StatusSeeOther)
		return
	}
	if !h.cfg.Sessions.CheckCSRF(sess, auth.RequestCSRF(r)) {
		securityHeaders(w)
		http.Error(w, "sign-out needs the page's CSRF token: sign out from a console page", http.StatusForbidden)
		return
	}
	h.cfg.Sessions.Clear(w, r)
	http.Redirect(w, r, "/sign-in", http.StatusSeeOther)
}
