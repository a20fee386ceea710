package template

import (
	"encoding/binary"
	"fmt"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"unicode/utf16"

	"go.yaml.in/yaml/v3"
)

// Parse decodes and validates a sandpit/v1 template. filename is only used
// in positions. On failure the error is an *ErrorList holding every problem
// found, and the template is nil. A parsed template has its defaults
// applied.
func Parse(filename string, data []byte) (*Template, error) {
	fail := func(e *Error) (*Template, error) { return nil, &ErrorList{e} }
	data = utf16ToUTF8(data)
	docs, err := readDocuments(data)
	if err != nil {
		return fail(syntaxError(filename, data, err))
	}
	if len(docs) > 1 {
		return fail(&Error{
			Pos: Pos{File: filename, Line: docs[1].Line, Column: docs[1].Column},
			Msg: "a second YAML document starts here: a template file holds exactly one, so remove this \"---\" and what follows, or move it to its own file",
		})
	}
	if len(docs) == 0 || len(docs[0].Content) == 0 || isNull(resolve(docs[0].Content[0])) {
		return fail(&Error{
			Pos: Pos{File: filename},
			Msg: "the template is empty: it starts with \"apiVersion: sandpit/v1\", a name and services",
		})
	}
	root := docs[0].Content[0]
	d := newDecoder(filename)
	if r := resolve(root); r.Kind != yaml.MappingNode {
		return fail(&Error{
			Pos: d.pos(root),
			Msg: fmt.Sprintf("the template must be a mapping of fields (apiVersion, name, services, ...), not %s", describeNode(r)),
		})
	}
	if e := futureVersion(d, resolve(root)); e != nil {
		return fail(e)
	}
	t := &Template{File: filename}
	d.decode(root, reflect.ValueOf(t).Elem(), top, d.pos(root), "")
	t.ServiceOrder = d.orders["services"]
	t.DependencyOrder = d.orders["dependencies"]
	t.EndpointOrder = d.orders["endpoints"]
	t.positions = d.keyPos
	t.positions[""] = d.pos(root)

	v := &validator{t: t, d: d, errs: &d.errs, lines: splitLines(data)}
	v.validate()
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	t.applyDefaults()
	return t, nil
}

// futureVersion refuses a template written for a newer format before
// anything else is checked: its fields may mean things v1 does not know,
// and a list of "unknown field" errors would bury the one that matters. A
// misspelled apiVersion, by contrast, is one more mistake in the list.
func futureVersion(d *decoder, root *yaml.Node) *Error {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := resolve(root.Content[i]), resolve(root.Content[i+1])
		if k.Value != "apiVersion" || v.Kind != yaml.ScalarNode {
			continue
		}
		if v.Value != APIVersion && futureAPI.MatchString(v.Value) {
			return &Error{Pos: d.pos(v), Path: "apiVersion", Msg: fmt.Sprintf(
				"apiVersion %q is not supported: this build of sandpit reads only %s; upgrade sandpit, or write the template for %s",
				v.Value, APIVersion, APIVersion)}
		}
	}
	return nil
}

// utf16ToUTF8 transcodes UTF-16 text (which YAML allows, marked by a byte
// order mark) to UTF-8, so that the lines this package counts are the
// lines yaml.v3 counts. Anything else is returned as it is.
func utf16ToUTF8(data []byte) []byte {
	var order binary.ByteOrder
	switch {
	case len(data) < 2 || len(data)%2 != 0:
		return data
	case data[0] == 0xFF && data[1] == 0xFE:
		order = binary.LittleEndian
	case data[0] == 0xFE && data[1] == 0xFF:
		order = binary.BigEndian
	default:
		return data
	}
	units := make([]uint16, 0, len(data)/2-1)
	for i := 2; i < len(data); i += 2 {
		units = append(units, order.Uint16(data[i:]))
	}
	return []byte(string(utf16.Decode(units)))
}

// lineEnds returns the byte offset just past each line of data, the last
// line included even without a break. Lines end where yaml.v3 counts a new
// line: at \n, \r\n, a lone \r, and U+0085, U+2028 and U+2029.
func lineEnds(data []byte) []int {
	var ends []int
	for i := 0; i < len(data); i++ {
		switch {
		case data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n':
			i++
			ends = append(ends, i+1)
		case data[i] == '\n' || data[i] == '\r':
			ends = append(ends, i+1)
		case data[i] == 0xC2 && i+1 < len(data) && data[i+1] == 0x85:
			i++
			ends = append(ends, i+1)
		case data[i] == 0xE2 && i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9):
			i += 2
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	return ends
}

// splitLines splits data into lines as yaml.v3 numbers them, without their
// line breaks.
func splitLines(data []byte) []string {
	var lines []string
	start := 0
	for _, end := range lineEnds(data) {
		lines = append(lines, trimBreak(string(data[start:end])))
		start = end
	}
	return lines
}

func trimBreak(s string) string {
	for _, b := range []string{"\r\n", "\n", "\r", "\u0085", "\u2028", "\u2029"} {
		if t, ok := strings.CutSuffix(s, b); ok {
			return t
		}
	}
	return s
}

// Pos returns where path stands in the template's file: for a field or a
// mapping entry ("services.api", "services.api.run") the position of its
// key, for a list item ("services.api.ports[0]") the item's. The empty path
// is the top level. Unknown paths (and templates not made by Parse) give
// the file alone.
func (t *Template) Pos(path string) Pos {
	if p, ok := t.positions[path]; ok {
		return p
	}
	return Pos{File: t.File}
}

// ParseTarget splits a route target "service:port". It checks the form
// only; whether the service and port exist is the template's business.
func ParseTarget(to string) (service, port string, err error) {
	service, port, ok := strings.Cut(to, ":")
	if !ok || strings.TrimSpace(service) == "" || strings.TrimSpace(port) == "" || strings.Contains(port, ":") {
		return "", "", fmt.Errorf("%q is not of the form service:port; name a service and one of its ports, like web:http", to)
	}
	return service, port, nil
}

// StartOrder lists the services so that each comes after the services in
// its after list; where after leaves the order open, declaration order
// decides. Dependencies are not in the list: they wait for nothing, so a
// runtime starts each before the first service that names it.
func (t *Template) StartOrder() []string {
	order := t.serviceOrder()
	waits := map[string]int{}
	dependents := map[string][]string{}
	for _, n := range order {
		for _, a := range t.Services[n].After {
			if _, ok := t.Services[a]; ok && a != n {
				waits[n]++
				dependents[a] = append(dependents[a], n)
			}
		}
	}
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	var ready, out []string
	for _, n := range order {
		if waits[n] == 0 {
			ready = append(ready, n)
		}
	}
	for len(ready) > 0 {
		n := ready[0]
		ready = ready[1:]
		out = append(out, n)
		for _, m := range dependents[n] {
			if waits[m]--; waits[m] == 0 {
				ready = append(ready, m)
				sort.SliceStable(ready, func(i, j int) bool { return pos[ready[i]] < pos[ready[j]] })
			}
		}
	}
	// Parse refuses cycles; a hand-built template may still have one. Its
	// services go last rather than missing.
	for _, n := range order {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// serviceOrder is ServiceOrder, or the sorted names for a template built
// without Parse, so helpers work on either.
func (t *Template) serviceOrder() []string {
	if len(t.ServiceOrder) == len(t.Services) {
		return t.ServiceOrder
	}
	names := make([]string, 0, len(t.Services))
	for n := range t.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Clone returns a deep copy. Positions are shared: they never change after
// Parse.
func (t *Template) Clone() *Template {
	if t == nil {
		return nil
	}
	c := deepCopy(reflect.ValueOf(t)).Interface().(*Template)
	c.positions = t.positions
	return c
}

// deepCopy copies exported data through pointers, maps and slices, so
// fields added to types.go are copied without anyone remembering to.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(deepCopy(v.Elem()))
		return c
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			c.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return c
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			c.Index(i).Set(deepCopy(v.Index(i)))
		}
		return c
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		c := reflect.New(v.Type()).Elem()
		c.Set(deepCopy(v.Elem()))
		return c
	case reflect.Struct:
		c := reflect.New(v.Type()).Elem()
		for i := 0; i < v.NumField(); i++ {
			if c.Field(i).CanSet() {
				c.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return c
	}
	return v
}

// ServiceSpec is a service with every ${...} expanded, ready to run.
type ServiceSpec struct {
	Name    string
	Build   string
	Init    string
	Run     string
	Image   string
	Workdir string
	// Env is the template's env overlaid by the service's, then by the
	// --set overrides, each value expanded, as sorted "NAME=value".
	Env []string
	// Files have their paths and contents expanded and Mode defaulted.
	Files []File
	// Ready is a copy of the probe with an exec command expanded.
	Ready *Probe
}

// ExpandService expands everything a runtime needs to run service name,
// with set (validated --set overrides; may be nil) applied first. Vars
// supplies the values; a reference it cannot resolve is an error.
func (t *Template) ExpandService(name string, vars *Vars, set map[string]string) (*ServiceSpec, error) {
	if len(set) > 0 {
		var err error
		if t, err = t.WithSet(set); err != nil {
			return nil, err
		}
	}
	s := t.Services[name]
	if s == nil {
		return nil, fmt.Errorf("template %q has no service %q", t.Name, name)
	}
	if vars == nil {
		vars = &Vars{}
	}
	svc, tmpl := vars.Lookup(name), vars.Lookup("")
	var firstErr error
	expand := func(what, s string, lookup func(string) (string, bool)) string {
		out, err := Expand(s, lookup)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("service %q: %s: %w", name, what, err)
		}
		return out
	}
	spec := &ServiceSpec{
		Name:    name,
		Build:   expand("build", s.Build, svc),
		Init:    expand("init", s.Init, svc),
		Run:     expand("run", s.Run, svc),
		Image:   expand("image", s.Image, svc),
		Workdir: s.Workdir,
	}
	env := map[string]string{}
	for k, v := range t.Env {
		env[k] = expand("env."+k, v, tmpl)
	}
	for k, v := range s.Env {
		env[k] = expand("env."+k, v, svc)
	}
	for k, v := range env {
		spec.Env = append(spec.Env, k+"="+v)
	}
	sort.Strings(spec.Env)
	for i, f := range s.Files {
		f.Path = expand(fmt.Sprintf("files[%d].path", i), f.Path, svc)
		f.Content = expand(fmt.Sprintf("files[%d].content", i), f.Content, svc)
		if f.Mode == "" {
			f.Mode = DefaultFileMode
		}
		// A reference like ${git.ref} may hold "..": check the result too.
		if msg := checkRelPath(f.Path, "the workdir"); msg != "" && firstErr == nil {
			firstErr = fmt.Errorf("service %q: files[%d].path expands to %q, which %s", name, i, f.Path, msg)
		}
		f.Path = path.Clean(f.Path)
		spec.Files = append(spec.Files, f)
	}
	if s.Ready != nil {
		r := *s.Ready
		if r.Exec != nil {
			r.Exec = &ExecProbe{Command: expand("ready.exec.command", r.Exec.Command, svc)}
		}
		if r.HTTP != nil {
			h := *r.HTTP
			r.HTTP = &h
		}
		if r.TCP != nil {
			tcp := *r.TCP
			r.TCP = &tcp
		}
		spec.Ready = &r
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return spec, nil
}
