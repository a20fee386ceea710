package proxy

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// pageError is a request the proxy answers itself, with a page that says
// what went wrong and what to do next. Error pages are off the hot path, so
// they favour clarity over allocation counts.
type pageError struct {
	status int
	result result
	// code is the stable, machine-readable name of the error in JSON.
	code    string
	title   string
	message string
	// The hint is hintPre, then the command hintCmd (code in HTML, in
	// backquotes in JSON), then hintPost.
	hintPre, hintCmd, hintPost string
	// items are the endpoints or routes the user could have meant.
	items      []pageItem
	itemsTitle string
	retryAfter int  // seconds; 0 for none
	refresh    bool // HTML page reloads itself every retryAfter seconds
}

type pageItem struct {
	Text string
	Href string // empty when the item is not a link
}

type jsonError struct {
	Error jsonErrorBody `json:"error"`
}

type jsonErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Deliberately plain: no external assets, so the page renders the same when
// the user is offline or behind a strict CSP, and it is small enough to read
// in a terminal with curl.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{- if .Refresh}}
<meta http-equiv="refresh" content="{{.RetryAfter}}">
{{- end}}
<title>{{.Status}} {{.Title}} · Sandpit</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:3rem 1rem;color:#1f2328;background:#f6f8fa}
main{max-width:40rem;margin:0 auto;background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1.5rem 2rem}
h1{font-size:1.4rem;margin:0 0 1rem}
.status{color:#656d76;font-weight:normal}
code{font:0.9em ui-monospace,monospace;background:#eff1f3;padding:0.1em 0.3em;border-radius:4px}
.hint{border-left:3px solid #0969da;padding-left:0.8rem}
footer{margin-top:1.5rem;color:#656d76;font-size:0.85rem}
</style>
</head>
<body>
<main>
<h1><span class="status">{{.Status}}</span> {{.Title}}</h1>
<p>{{.Message}}</p>
{{- if .Items}}
<p>{{.ItemsTitle}}</p>
<ul>
{{- range .Items}}
<li>{{if .Href}}<a href="{{.Href}}">{{.Text}}</a>{{else}}<code>{{.Text}}</code>{{end}}</li>
{{- end}}
</ul>
{{- end}}
{{- if or .HintPre .HintCmd}}
<p class="hint">{{.HintPre}}{{if .HintCmd}}<code>{{.HintCmd}}</code>{{end}}{{.HintPost}}</p>
{{- end}}
{{- if .Refresh}}
<p>This page reloads every {{if eq .RetryAfter 1}}second{{else}}{{.RetryAfter}} seconds{{end}}.</p>
{{- end}}
<footer>Sandpit endpoint proxy · {{.Code}}</footer>
</main>
</body>
</html>
`))

type pageData struct {
	Status     int
	Title      string
	Message    string
	HintPre    string
	HintCmd    string
	HintPost   string
	Items      []pageItem
	ItemsTitle string
	Refresh    bool
	RetryAfter int
	Code       string
}

// wantsHTML reports whether the client is a browser: browsers list
// text/html in Accept, API clients and curl do not.
func wantsHTML(r *http.Request) bool {
	for _, v := range r.Header["Accept"] {
		if strings.Contains(v, "text/html") {
			return true
		}
	}
	return false
}

func writePage(w http.ResponseWriter, r *http.Request, pe *pageError) {
	var buf bytes.Buffer
	h := w.Header()
	if wantsHTML(r) {
		err := pageTemplate.Execute(&buf, pageData{
			Status: pe.status, Title: pe.title, Message: pe.message,
			HintPre: pe.hintPre, HintCmd: pe.hintCmd, HintPost: pe.hintPost,
			Items: pe.items, ItemsTitle: pe.itemsTitle,
			Refresh: pe.refresh, RetryAfter: pe.retryAfter, Code: pe.code,
		})
		if err != nil { // only a bug in the template can get here
			http.Error(w, pe.message, pe.status)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
	} else {
		msg := pe.message
		if len(pe.items) > 0 {
			texts := make([]string, len(pe.items))
			for i, it := range pe.items {
				texts[i] = it.Text
			}
			msg += " " + pe.itemsTitle + " " + strings.Join(texts, ", ") + "."
		}
		hint := pe.hintPre
		if pe.hintCmd != "" {
			hint += "`" + pe.hintCmd + "`"
		}
		hint += pe.hintPost
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(jsonError{Error: jsonErrorBody{Code: pe.code, Message: msg, Hint: hint}})
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	// Error pages describe the proxy's view right now; a cached one would
	// outlive the sandbox becoming ready.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if pe.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(pe.retryAfter))
	}
	w.WriteHeader(pe.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}
