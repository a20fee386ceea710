package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/template"
)

func (s *Server) applyTemplate(w http.ResponseWriter, r *http.Request) {
	var req client.ApplyTemplateRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if len(req.Source) > maxTemplateSize {
		writeError(w, &client.Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf("template is %d bytes; the limit is %d", len(req.Source), maxTemplateSize)})
		return
	}
	if req.Filename == "" {
		req.Filename = "template.yaml"
	}
	if req.BaseDir != "" && !filepath.IsAbs(req.BaseDir) {
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("base_dir %q must be an absolute path", req.BaseDir)})
		return
	}
	t, err := template.Parse(req.Filename, []byte(req.Source))
	if err == nil {
		err = s.checkTemplate(t, req.BaseDir)
	}
	var warnings []string
	if err == nil && s.cfg.Snapshots != nil {
		warnings, err = s.cfg.Snapshots.CheckTemplate(r.Context(), t)
	}
	if err != nil {
		writeError(w, templateError(err))
		return
	}
	// The base directory matters only to a relative source path; kept for
	// any other template, it would make the same file applied from
	// another directory (or from stdin) a new version.
	if t.Source == nil || t.Source.Path == "" || filepath.IsAbs(t.Source.Path) {
		req.BaseDir = ""
	}
	sum := sha256.Sum256([]byte(req.Source + "\x00" + req.BaseDir))
	tv := store.TemplateVersion{
		Name: t.Name, Source: []byte(req.Source), Filename: req.Filename, BaseDir: req.BaseDir,
		Digest: hex.EncodeToString(sum[:]), CreatedBy: "admin",
	}
	if req.DryRun {
		// Say what applying would do: store a new version, or nothing.
		info := templateInfo(tv, t, false)
		created := true
		cur, err := s.cfg.Store.GetTemplate(r.Context(), t.Name, 0)
		switch {
		case err == nil && cur.Digest == tv.Digest:
			info = templateInfo(cur, t, false)
			created = false
		case err == nil:
			info.Version = cur.Version + 1
		case errors.Is(err, store.ErrNotFound):
			info.Version = 1
		default:
			writeError(w, storeError(err, ""))
			return
		}
		writeJSON(w, http.StatusOK, client.ApplyTemplateResponse{Template: info, DryRun: true, Created: created, Warnings: warnings})
		return
	}
	stored, created, err := s.cfg.Store.ApplyTemplate(r.Context(), tv)
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	if created {
		s.log.Info("template applied", "template", stored.Name, "version", stored.Version)
		if s.cfg.PoolChanged != nil {
			s.cfg.PoolChanged() // a pool may start, grow, shrink or move to this version
		}
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, client.ApplyTemplateResponse{Template: templateInfo(stored, t, false), Created: created, Warnings: warnings})
}

// checkTemplate runs the checks that need the server's host: that a local
// source path exists there, and whatever the runtime checks (installed
// dependency versions).
func (s *Server) checkTemplate(t *template.Template, baseDir string) error {
	var errs template.ErrorList
	if t.Source != nil && t.Source.Path != "" {
		p := t.Source.Path
		pos := t.Pos("source.path")
		switch {
		case !filepath.IsAbs(p) && baseDir == "":
			errs = append(errs, &template.Error{Pos: pos, Path: "source.path", Msg: fmt.Sprintf("relative source path %q needs the template file's directory: apply with `sandpit template apply -f FILE`, or write an absolute path", p)})
		default:
			if !filepath.IsAbs(p) {
				p = filepath.Join(baseDir, p)
			}
			if st, err := os.Stat(p); err != nil || !st.IsDir() {
				errs = append(errs, &template.Error{Pos: pos, Path: "source.path", Msg: fmt.Sprintf("source directory %s does not exist on the server host (paths are read where `sandpit serve` runs)", p)})
			}
		}
	}
	if c, ok := s.cfg.Runtime.(runtime.TemplateChecker); ok {
		if err := c.CheckTemplate(t); err != nil {
			var el *template.ErrorList
			if !errors.As(err, &el) {
				return err
			}
			errs = append(errs, *el...)
		}
	}
	if len(errs) > 0 {
		return &errs
	}
	return nil
}

func templateError(err error) *client.Error {
	var el *template.ErrorList
	if !errors.As(err, &el) {
		return &client.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_template", Message: err.Error()}
	}
	e := &client.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_template"}
	for _, te := range *el {
		d := client.ErrorDetail{Path: te.Path, Message: te.Msg}
		if te.Pos.File != "" || te.Pos.Line > 0 {
			d.Pos = te.Pos.String()
		}
		e.Details = append(e.Details, d)
	}
	n := len(e.Details)
	e.Message = fmt.Sprintf("the template has %d problem%s", n, plural(n))
	return e
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func templateInfo(tv store.TemplateVersion, t *template.Template, withSource bool) client.TemplateInfo {
	info := client.TemplateInfo{
		Name: tv.Name, Version: tv.Version, Digest: tv.Digest, Filename: tv.Filename, BaseDir: tv.BaseDir,
		CreatedAt: tv.CreatedAt, CreatedBy: tv.CreatedBy,
		Services: []string{}, Dependencies: []string{}, Endpoints: []string{},
	}
	if t != nil {
		info.Description = t.Description
		info.Services = append(info.Services, t.ServiceOrder...)
		info.Dependencies = append(info.Dependencies, t.DependencyOrder...)
		info.Endpoints = append(info.Endpoints, t.EndpointOrder...)
	}
	if withSource {
		info.Source = string(tv.Source)
	}
	return info
}

// parseStored parses a stored version; a version stored by an older sandpit
// that this one no longer accepts still lists, without details.
func parseStored(tv store.TemplateVersion) *template.Template {
	t, err := template.Parse(tv.Filename, tv.Source)
	if err != nil {
		return nil
	}
	return t
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) {
	tvs, err := s.cfg.Store.ListTemplates(r.Context())
	if err != nil {
		writeError(w, storeError(err, ""))
		return
	}
	out := client.TemplateList{Items: []client.TemplateInfo{}}
	for _, tv := range tvs {
		out.Items = append(out.Items, templateInfo(tv, parseStored(tv), false))
	}
	writeJSON(w, http.StatusOK, out)
}

const templateHint = "`sandpit template list` shows the templates; add one with `sandpit template apply -f FILE`"

// templateLookupError answers a failed lookup of template name (at
// version, 0 for the latest) in words for people: the store's own message
// names its operation and the sentinel.
func (s *Server) templateLookupError(r *http.Request, err error, name string, version int) *client.Error {
	if !errors.Is(err, store.ErrNotFound) {
		return storeError(err, "")
	}
	if version > 0 {
		if _, err := s.cfg.Store.GetTemplate(r.Context(), name, 0); err == nil {
			return &client.Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("template %s has no version %d", name, version),
				Hint: fmt.Sprintf("`sandpit template versions %s` lists its versions", name)}
		}
	}
	return &client.Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no template named %q", name), Hint: templateHint}
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) {
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("version %q is not a positive number", v)})
			return
		}
		version = n
	}
	tv, err := s.cfg.Store.GetTemplate(r.Context(), r.PathValue("name"), version)
	if err != nil {
		writeError(w, s.templateLookupError(r, err, r.PathValue("name"), version))
		return
	}
	writeJSON(w, http.StatusOK, templateInfo(tv, parseStored(tv), true))
}

func (s *Server) listTemplateVersions(w http.ResponseWriter, r *http.Request) {
	tvs, err := s.cfg.Store.ListTemplateVersions(r.Context(), r.PathValue("name"))
	if err != nil {
		writeError(w, s.templateLookupError(r, err, r.PathValue("name"), 0))
		return
	}
	out := client.TemplateList{Items: []client.TemplateInfo{}}
	for _, tv := range tvs {
		out.Items = append(out.Items, templateInfo(tv, parseStored(tv), false))
	}
	writeJSON(w, http.StatusOK, out)
}

// validRef refuses refs git could take for an option or that no ref can
// be (git check-ref-format's rules, roughly, plus plain commit ids).
func validRef(ref string) error {
	switch {
	case ref == "":
		return nil
	case strings.HasPrefix(ref, "-"):
		return fmt.Errorf("ref %q must not start with '-'", ref)
	case len(ref) > 255:
		return fmt.Errorf("ref is %d characters long; the limit is 255", len(ref))
	case strings.Contains(ref, ".."), strings.Contains(ref, "@{"), strings.HasSuffix(ref, ".lock"), strings.HasSuffix(ref, "/"):
		return fmt.Errorf("ref %q is not a valid git ref name", ref)
	}
	for _, c := range ref {
		if c <= ' ' || c == 0x7f || strings.ContainsRune("~^:?*[\\", c) {
			return fmt.Errorf("ref %q has %q, which git ref names cannot contain", ref, c)
		}
	}
	return nil
}
