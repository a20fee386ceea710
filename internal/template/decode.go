package template

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// The decoder walks yaml.Node trees by hand rather than calling
// yaml.Unmarshal into the structs: Unmarshal stops at the first type error,
// reports no columns, accepts unknown keys unless told otherwise (and then
// names none of the allowed ones) and forgets where each value stood. Here
// every value keeps its position, every mistake in the file is reported in
// one pass, and messages speak the template's vocabulary.

// maxValues bounds how many values a template may expand to. Aliases let a
// small file stand for a huge tree ("billion laughs"); no real template comes
// near this.
const maxValues = 100_000

// fieldPath is a field path plus what a message should call it. owner is the
// service, dependency or endpoint the path is inside (`service "api"`), rel
// the rest ("ports[0].name"), so messages read `ports[0].name of service
// "api"` instead of a bare dotted path.
type fieldPath struct {
	full  string
	owner string
	rel   string
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func (p fieldPath) field(name string) fieldPath {
	return fieldPath{full: joinPath(p.full, name), owner: p.owner, rel: joinPath(p.rel, name)}
}

func (p fieldPath) index(i int) fieldPath {
	s := "[" + strconv.Itoa(i) + "]"
	return fieldPath{full: p.full + s, owner: p.owner, rel: p.rel + s}
}

// entity starts a new owner: the entry name of the services, dependencies
// or endpoints mapping.
func (p fieldPath) entity(kind, name string) fieldPath {
	return fieldPath{full: joinPath(p.full, name), owner: fmt.Sprintf("%s %q", kind, name)}
}

func (p fieldPath) String() string {
	switch {
	case p.owner == "" && p.rel == "":
		return "the template"
	case p.owner == "":
		return p.rel
	case p.rel == "":
		return p.owner
	}
	return p.rel + " of " + p.owner
}

// fieldInfo is one decodable struct field.
type fieldInfo struct {
	name     string // the YAML key
	index    int
	required bool // no omitempty: the key must be present (the schema agrees)
}

type structInfo struct {
	fields []fieldInfo
	byName map[string]*fieldInfo
	names  []string
}

var structInfos sync.Map // reflect.Type → *structInfo

// structFields reads the yaml tags of t. The JSON Schema is generated from
// the json tags of the same fields; a test checks the two agree.
func structFields(t reflect.Type) *structInfo {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo)
	}
	info := &structInfo{byName: map[string]*fieldInfo{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		info.fields = append(info.fields, fieldInfo{name: name, index: i, required: !strings.Contains(opts, "omitempty")})
	}
	for i := range info.fields {
		info.byName[info.fields[i].name] = &info.fields[i]
		info.names = append(info.names, info.fields[i].name)
	}
	v, _ := structInfos.LoadOrStore(t, info)
	return v.(*structInfo)
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	serviceType         = reflect.TypeFor[Service]()
)

// entityKinds names the entries of the mappings whose keys are names of
// things; their entries become owners in messages.
var entityKinds = map[reflect.Type]string{
	reflect.TypeFor[*Service]():    "service",
	reflect.TypeFor[*Dependency](): "dependency",
	reflect.TypeFor[*Endpoint]():   "endpoint",
}

// typeNames say in messages what a struct is ("a field of a service").
var typeNames = map[reflect.Type]string{
	reflect.TypeFor[Template]():     "the template's top level",
	reflect.TypeFor[Source]():       "source",
	reflect.TypeFor[Service]():      "a service",
	reflect.TypeFor[Port]():         "a port",
	reflect.TypeFor[Probe]():        "a ready probe",
	reflect.TypeFor[HTTPProbe]():    "an http probe",
	reflect.TypeFor[TCPProbe]():     "a tcp probe",
	reflect.TypeFor[ExecProbe]():    "an exec probe",
	reflect.TypeFor[File]():         "a file",
	reflect.TypeFor[Dependency]():   "a dependency",
	reflect.TypeFor[Endpoint]():     "an endpoint",
	reflect.TypeFor[Route]():        "a route",
	reflect.TypeFor[Lifecycle]():    "lifecycle",
	reflect.TypeFor[Pool]():         "lifecycle.pool",
	reflect.TypeFor[Resources]():    "resources",
	reflect.TypeFor[Kubernetes]():   "kubernetes",
	reflect.TypeFor[Helm]():         "kubernetes.helm",
	reflect.TypeFor[Git]():          "git",
	reflect.TypeFor[PullRequests](): "git.pull_requests",
}

// synonyms map keys people bring from other tools (docker compose,
// Kubernetes, Procfiles) to ours, for "did you mean".
var synonyms = map[reflect.Type]map[string]string{
	reflect.TypeFor[Template](): {
		"version": "apiVersion", "api_version": "apiVersion", "api-version": "apiVersion",
		"environment": "env", "service": "services", "dependency": "dependencies",
		"endpoint": "endpoints", "databases": "dependencies",
	},
	reflect.TypeFor[Service](): {
		"command": "run", "cmd": "run", "start": "run", "script": "run", "entrypoint": "run",
		"environment": "env", "depends_on": "after", "dependsOn": "after", "depends-on": "after",
		"healthcheck": "ready", "readiness": "ready", "readinessProbe": "ready", "health": "ready",
		"working_dir": "workdir", "workingDir": "workdir", "working-dir": "workdir", "cwd": "workdir", "dir": "workdir",
		"port": "ports", "restart_policy": "restart", "restartPolicy": "restart",
	},
	reflect.TypeFor[Probe](): {
		"httpGet": "http", "http_get": "http", "tcpSocket": "tcp", "tcp_socket": "tcp",
		"command": "exec", "cmd": "exec",
	},
	reflect.TypeFor[Endpoint](): {"route": "routes"},
	reflect.TypeFor[Route]():    {"target": "to", "service": "to", "prefix": "path"},
	reflect.TypeFor[Dependency](): {
		"image": "type", "kind": "type", "database": "databases", "db": "databases",
	},
	reflect.TypeFor[Kubernetes](): {
		"manifest": "manifests", "kustomization": "kustomize", "chart": "helm",
		"environment": "env", "configmaps": "config", "configMaps": "config", "config_maps": "config",
	},
	reflect.TypeFor[Helm](): {
		"path": "chart", "name": "release", "releaseName": "release", "release_name": "release",
		"valuesFiles": "values_files", "values-files": "values_files", "valueFiles": "values_files", "files": "values_files",
		"set": "values",
	},
}

// fieldHints finish "X has no Y" messages, keyed by type name and key.
var fieldHints = map[string]string{
	"Template.apiVersion": `add "apiVersion: sandpit/v1" at the top`,
	"Template.name":       `add "name: <template name>" (lowercase letters, digits and '-')`,
	"Template.services":   `add "services:" with at least one service and its run command`,
	"Service.run":         `add "run: <the shell command that starts it>"`,
	"Port.name":           `add "name: http"; routes, probes and ${ports.<name>} refer to ports by name`,
	"HTTPProbe.port":      "name the port to probe, one of the service's ports",
	"TCPProbe.port":       "name the port to probe, one of the service's ports",
	"ExecProbe.command":   "add the shell command that exits 0 once the service is ready",
	"File.path":           "add the file's path, relative to the workdir",
	"File.content":        `add the file's text (content: "" for an empty file)`,
	"Dependency.type":     `add "type: postgres"`,
	"Dependency.version":  `add the major version, like version: "15"`,
	"Endpoint.routes":     "add at least one route, like routes: [{path: /, to: web:http}]",
	"Route.path":          `add the path prefix to route, like path: /`,
	"Route.to":            `add the target as service:port, like to: web:http`,
	"Pool.min":            "add how many ready sandboxes to keep, like min: 1",
	"Helm.chart":          "add the chart's directory, relative to the checkout, like chart: deploy/chart",
}

// valueHints describe what a field expects beyond its Go kind.
var valueHints = map[string]string{
	"Service.build":     "a shell command (one string)",
	"Service.init":      "a shell command (one string)",
	"Service.run":       "a shell command (one string)",
	"ExecProbe.command": "a shell command (one string)",
	"Service.after":     "a list of service and dependency names, like [db]",
	"Service.env":       "a mapping of NAME: value",
	"Template.env":      "a mapping of NAME: value",
	"Template.services": "a mapping of service names to services",
	"Kubernetes.env":    "a mapping of NAME: value",
	"Kubernetes.config": "a mapping of ConfigMap names to mappings of key: value",
	"Helm.values":       "a mapping of chart values",
}

type decoder struct {
	file string
	errs ErrorList

	// keyPos maps a path to where its key stands (or, for a list item,
	// where the item starts): what Template.Pos reports.
	keyPos map[string]Pos
	// nodes maps a path to its value node, aliases resolved, for messages
	// about the value and for finding a ${ inside a scalar.
	nodes map[string]*yaml.Node
	// orders holds the keys of every mapping in declaration order.
	orders map[string][]string
	// bad marks paths whose value had the wrong shape: later checks that
	// depend on them stay quiet instead of piling on.
	bad map[string]bool
	// suggested marks fields an unknown key was taken for ("did you mean
	// run?"): their absence is no news.
	suggested map[string]bool
	// active holds the aliases being expanded, to stop an alias that
	// contains itself.
	active map[*yaml.Node]bool
	budget int
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:   file,
		keyPos: map[string]Pos{},
		nodes:  map[string]*yaml.Node{},
		orders: map[string][]string{},
		bad:    map[string]bool{},
		active: map[*yaml.Node]bool{},
		budget: maxValues,

		suggested: map[string]bool{},
	}
}

func (d *decoder) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Column: n.Column} }

func (d *decoder) errorf(at Pos, p fieldPath, format string, args ...any) {
	d.errs.add(at, p.full, format, args...)
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// describeNode says what the user wrote, for "must be X, not Y".
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	switch n.ShortTag() {
	case "!!null":
		return "empty (null)"
	case "!!int", "!!float":
		return "the number " + v
	case "!!bool":
		return "the boolean " + v
	}
	return fmt.Sprintf("the string %q", v)
}

var knownTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!timestamp": true, "!!map": true, "!!seq": true, "!!binary": true,
}

// decode stores n into v. at is where the value's key stands: the place to
// blame when something the value lacks is missing.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, p fieldPath, at Pos, hintKey string) {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || d.active[n] {
			d.errorf(d.pos(n), p, "%s: the alias *%s is used inside the value it names, which would never end", p, n.Value)
			d.bad[p.full] = true
			return
		}
		d.active[n] = true
		defer delete(d.active, n)
		d.decode(n.Alias, v, p, at, hintKey)
		return
	}
	d.budget--
	if d.budget < 0 {
		if d.budget == -1 {
			d.errorf(d.pos(n), p, "the template expands to more than %d values (through aliases?); it is too large", maxValues)
		}
		d.bad[p.full] = true
		return
	}
	if tag := n.ShortTag(); !knownTags[tag] {
		d.errorf(d.pos(n), p, "%s: the YAML tag %s is not supported; write a plain value", p, tag)
		d.bad[p.full] = true
		return
	}
	d.nodes[p.full] = n

	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	t := v.Type()
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		s, ok := d.scalar(n, p, "a duration like 30s, 10m or 72h")
		if !ok {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.errorf(d.pos(n), p, "%s: %v", p, err)
			d.bad[p.full] = true
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, p, at)
	case reflect.Map:
		d.decodeMap(n, v, p, hintKey)
	case reflect.Slice:
		d.decodeSlice(n, v, p, hintKey)
	case reflect.String:
		expect := "a string"
		if h := valueHints[hintKey]; h != "" {
			expect = h
		}
		if s, ok := d.scalar(n, p, expect); ok {
			v.SetString(s)
		}
	case reflect.Int:
		d.decodeInt(n, v, p)
	case reflect.Bool:
		d.decodeBool(n, v, p)
	case reflect.Interface:
		d.decodeAny(n, v, p)
	default:
		// Only reachable if someone adds a field of a new kind to types.go;
		// TestDecoderCoversTypes catches that first.
		d.errorf(d.pos(n), p, "internal error: %s has unsupported Go type %s", p, t)
		d.bad[p.full] = true
	}
}

// decodeAny reads free-form YAML (Helm values) into maps, lists, strings,
// numbers, booleans and nil, keeping positions, merge keys and the checks
// for duplicate keys and unsupported tags.
func (d *decoder) decodeAny(n *yaml.Node, v reflect.Value, p fieldPath) {
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for _, e := range d.entries(n, p) {
			ep := p.field(e.name)
			kpos := d.pos(e.key)
			d.keyPos[ep.full] = kpos
			var x any
			d.decode(e.value, reflect.ValueOf(&x).Elem(), ep, kpos, "")
			m[e.name] = x
		}
		v.Set(reflect.ValueOf(m))
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, el := range n.Content {
			ip := p.index(i)
			d.keyPos[ip.full] = d.pos(el)
			d.decode(el, reflect.ValueOf(&s[i]).Elem(), ip, d.pos(el), "")
		}
		v.Set(reflect.ValueOf(s))
	case yaml.ScalarNode:
		var x any
		switch n.ShortTag() {
		case "!!null":
			return
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				d.wrongKind(n, p, "true or false")
				return
			}
			x = b
		case "!!int":
			var i int
			if err := n.Decode(&i); err != nil {
				d.errorf(d.pos(n), p, "%s: %s is too large", p, n.Value)
				d.bad[p.full] = true
				return
			}
			x = i
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				d.errorf(d.pos(n), p, "%s: %s is not a finite number; quote it to pass it as a string", p, n.Value)
				d.bad[p.full] = true
				return
			}
			x = f
			if f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
				// 1.0 is 1: YAML writes both alike, so a template written
				// back reads the same.
				x = int(f)
			}
		default:
			x = n.Value
		}
		v.Set(reflect.ValueOf(x))
	default:
		d.wrongKind(n, p, "a value")
	}
}

// scalar returns the literal text of a scalar. Any scalar is accepted, so
// `version: 15` and `DEBUG: true` mean "15" and "true".
func (d *decoder) scalar(n *yaml.Node, p fieldPath, expect string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		msg := fmt.Sprintf("%s must be %s, not %s", p, expect, describeNode(n))
		if n.Kind == yaml.SequenceNode && strings.HasPrefix(expect, "a shell command") {
			msg += "; write the whole command as one string"
		}
		d.errorf(d.pos(n), p, "%s", msg)
		d.bad[p.full] = true
		return "", false
	}
	if isNull(n) {
		d.errorf(d.pos(n), p, "%s has no value: write %s, or remove the key", p, expect)
		d.bad[p.full] = true
		return "", false
	}
	return n.Value, true
}

// decodeBool reads true or false, nothing else: YAML 1.1's yes/no/on/off
// are refused rather than guessed at.
func (d *decoder) decodeBool(n *yaml.Node, v reflect.Value, p fieldPath) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		switch n.Value {
		case "true":
			v.SetBool(true)
			return
		case "false":
			v.SetBool(false)
			return
		}
	}
	d.errorf(d.pos(n), p, "%s must be true or false, not %s", p, describeNode(n))
	d.bad[p.full] = true
}

func (d *decoder) decodeInt(n *yaml.Node, v reflect.Value, p fieldPath) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(d.pos(n), p, "%s must be a number, not %s", p, describeNode(n))
		d.bad[p.full] = true
		return
	}
	var i int64
	switch tag := n.ShortTag(); {
	case tag == "!!null":
		d.errorf(d.pos(n), p, "%s has no value: write a number, or remove the key", p)
	case tag == "!!int":
		if err := n.Decode(&i); err != nil || int64(int(i)) != i {
			d.errorf(d.pos(n), p, "%s: %s is too large", p, n.Value)
			break
		}
		v.SetInt(i)
		return
	case tag == "!!float" && strings.Trim(n.Value, "+-0123456789") == "":
		d.errorf(d.pos(n), p, "%s: %s is too large", p, n.Value)
	case tag == "!!float":
		d.errorf(d.pos(n), p, "%s must be a whole number, not %s", p, n.Value)
	case tag == "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		if _, err := strconv.Atoi(n.Value); err == nil {
			d.errorf(d.pos(n), p, "%s must be a number, not the string %q: remove the quotes", p, n.Value)
			break
		}
		fallthrough
	default:
		d.errorf(d.pos(n), p, "%s must be a number, not %s", p, describeNode(n))
	}
	d.bad[p.full] = true
}

func (d *decoder) wrongKind(n *yaml.Node, p fieldPath, expect string) {
	d.errorf(d.pos(n), p, "%s must be %s, not %s", p, expect, describeNode(n))
	d.bad[p.full] = true
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, p fieldPath, at Pos) {
	t := v.Type()
	info := structFields(t)
	var entries []entry
	switch {
	case isNull(n):
		// `source:` with nothing after it: check it as an empty mapping, so
		// the message says what it lacks rather than that it is null.
	case n.Kind != yaml.MappingNode:
		d.wrongKind(n, p, "a mapping with the fields "+strings.Join(info.names, ", "))
		return
	default:
		entries = d.entries(n, p)
	}
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		f := info.byName[e.name]
		if f == nil {
			if s := d.unknownField(e, p, t, info); s != "" {
				seen[s] = true
				d.suggested[p.field(s).full] = true
			}
			continue
		}
		seen[e.name] = true
		fp := p.field(e.name)
		kpos := d.pos(e.key)
		d.keyPos[fp.full] = kpos
		d.decode(e.value, v.Field(f.index), fp, kpos, t.Name()+"."+e.name)
	}
	for _, f := range info.fields {
		if f.required && !seen[f.name] {
			msg := fmt.Sprintf("%s has no %q", p, f.name)
			if h := fieldHints[t.Name()+"."+f.name]; h != "" {
				msg += ": " + h
			}
			d.errorf(at, p.field(f.name), "%s", msg)
		}
	}
}

// unknownField reports a key t does not have and returns the field it
// suggested instead, if any: that field's absence is then no news.
func (d *decoder) unknownField(e entry, p fieldPath, t reflect.Type, info *structInfo) string {
	where := "in " + p.String()
	if p.owner == "" && p.rel == "" {
		where = "at the top level"
	}
	msg := fmt.Sprintf("unknown field %q %s", e.name, where)
	suggest := synonyms[t][e.name]
	if suggest == "" {
		suggest = closest(e.name, info.names)
	}
	if suggest != "" {
		msg += fmt.Sprintf("; did you mean %q?", suggest)
	} else if owner := uniqueOwner(e.name, t); owner != "" {
		msg += fmt.Sprintf("; %q is a field of %s: check its indentation", e.name, owner)
	}
	msg += " (allowed here: " + strings.Join(info.names, ", ") + ")"
	d.errorf(d.pos(e.key), p.field(e.name), "%s", msg)
	return suggest
}

// uniqueOwner names the one struct type, other than t, that has a field
// key: a likely indentation mistake.
func uniqueOwner(key string, t reflect.Type) string {
	owner := ""
	for typ, name := range typeNames {
		if typ == t || structFields(typ).byName[key] == nil {
			continue
		}
		if owner != "" {
			return ""
		}
		owner = name
	}
	return owner
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, p fieldPath, hintKey string) {
	if isNull(n) {
		d.orders[p.full] = []string{}
		return
	}
	elem := v.Type().Elem()
	if n.Kind != yaml.MappingNode {
		expect := "a mapping"
		if h := valueHints[hintKey]; h != "" {
			expect = h
		} else if kind := entityKinds[elem]; kind != "" {
			expect = "a mapping of " + kind + " names to their settings"
		}
		d.wrongKind(n, p, expect)
		if n.Kind == yaml.SequenceNode && len(n.Content) > 0 && strings.HasSuffix(hintKey, ".env") {
			if k, val, ok := strings.Cut(resolve(n.Content[0]).Value, "="); ok {
				d.errs[len(d.errs)-1].Msg += fmt.Sprintf("; write %s: %q instead of - %s=%s", k, val, k, val)
			}
		}
		return
	}
	kind := entityKinds[elem]
	m := reflect.MakeMap(v.Type())
	order := []string{}
	for _, e := range d.entries(n, p) {
		ep := p.field(e.name)
		if kind != "" {
			ep = p.entity(kind, e.name)
		}
		kpos := d.pos(e.key)
		d.keyPos[ep.full] = kpos
		order = append(order, e.name)
		ev := reflect.New(elem).Elem()
		before := len(d.errs)
		d.decode(e.value, ev, ep, kpos, "")
		if kind == "service" && len(d.errs) > before {
			d.misindentHint(e, ep, before)
		}
		m.SetMapIndex(reflect.ValueOf(e.name), ev)
	}
	if m.Len() > 0 {
		// An empty mapping stays nil, like an absent one, so that both mean
		// the same to every reader of the template.
		v.Set(m)
	}
	d.orders[p.full] = order
}

// misindentHint helps with the commonest YAML slip: a service's field
// indented one level too little, so it reads as a service of its own. When
// the entry named like a field failed to decode, its first error says so.
func (d *decoder) misindentHint(e entry, p fieldPath, from int) {
	if structFields(serviceType).byName[e.name] == nil {
		return
	}
	first := d.errs[from]
	if d.bad[p.full] {
		first.Msg = fmt.Sprintf("%q here is read as a service named %q, but its value is %s, not a mapping of service fields; if %q belongs to the service above, indent it under that service",
			e.name, e.name, describeNode(resolve(e.value)), e.name)
		return
	}
	// A mapping none of whose keys is a service field is the service's own
	// env (or similar) slipped left: one message says it better than an
	// "unknown field" per key and a missing run.
	v := resolve(e.value)
	if v.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i < len(v.Content); i += 2 {
		if structFields(serviceType).byName[resolve(v.Content[i]).Value] != nil {
			return
		}
	}
	d.errs = d.errs[:from]
	d.bad[p.full] = true
	d.errorf(d.pos(e.key), p, "%q here is read as a service named %q, but none of its keys are service fields; if %q belongs to the service above, indent it under that service",
		e.name, e.name, e.name)
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, p fieldPath, hintKey string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		expect := "a list"
		if h := valueHints[hintKey]; h != "" {
			expect = h
		}
		if n.Kind == yaml.ScalarNode && v.Type().Elem().Kind() == reflect.String {
			d.errorf(d.pos(n), p, "%s must be %s, not %s; write [%s]", p, expect, describeNode(n), n.Value)
			d.bad[p.full] = true
			return
		}
		d.wrongKind(n, p, expect)
		return
	}
	if len(n.Content) == 0 {
		return // nil, like an absent list
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, el := range n.Content {
		ip := p.index(i)
		epos := d.pos(el)
		d.keyPos[ip.full] = epos
		d.decode(el, s.Index(i), ip, epos, "")
	}
	v.Set(s)
}

// entry is one key of a mapping after merge keys are applied.
type entry struct {
	key   *yaml.Node // for its position
	name  string
	value *yaml.Node
}

// entries lists a mapping's keys, reporting duplicates (yaml.v3 keeps both
// in Node form) and applying YAML merge keys ("<<: *defaults"), whose keys
// lose to the mapping's own.
func (d *decoder) entries(n *yaml.Node, p fieldPath) []entry {
	var out, merged []entry
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		rk := resolve(k)
		if rk.Kind == yaml.ScalarNode && rk.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeSource(val, p, 0)...)
			continue
		}
		if rk.Kind != yaml.ScalarNode || isNull(rk) {
			d.errorf(d.pos(k), p, "keys in %s must be names, not %s", p, describeNode(rk))
			continue
		}
		if prev, dup := first[rk.Value]; dup {
			d.errorf(d.pos(k), p.field(rk.Value), "duplicate key %q in %s: it is already at line %d; keep one of the two", rk.Value, p, prev.Line)
			continue
		}
		first[rk.Value] = k
		out = append(out, entry{key: k, name: rk.Value, value: val})
	}
	for _, e := range merged {
		if _, ok := first[e.name]; ok {
			continue
		}
		first[e.name] = e.key
		out = append(out, e)
	}
	return out
}

// mergeSource returns the entries a merge key brings in: a mapping, or a
// list of mappings of which earlier ones win.
func (d *decoder) mergeSource(n *yaml.Node, p fieldPath, depth int) []entry {
	if depth > 20 {
		d.errorf(d.pos(n), p, "merge keys (<<) in %s nest too deeply (an alias that merges itself?)", p)
		return nil
	}
	d.budget--
	if d.budget < 0 {
		return nil
	}
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		var out, merged []entry
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			rk := resolve(k)
			if rk.Kind == yaml.ScalarNode && rk.ShortTag() == "!!merge" {
				merged = append(merged, d.mergeSource(val, p, depth+1)...)
				continue
			}
			if rk.Kind != yaml.ScalarNode || isNull(rk) || seen[rk.Value] {
				// Reported where the merged mapping itself is decoded.
				continue
			}
			seen[rk.Value] = true
			out = append(out, entry{key: k, name: rk.Value, value: val})
		}
		for _, e := range merged {
			if !seen[e.name] {
				seen[e.name] = true
				out = append(out, e)
			}
		}
		return out
	case yaml.SequenceNode:
		var out []entry
		seen := map[string]bool{}
		for _, el := range n.Content {
			if resolve(el).Kind != yaml.MappingNode {
				d.errorf(d.pos(el), p, "a merge key (<<) in %s takes mappings, like <<: *defaults, not %s", p, describeNode(resolve(el)))
				continue
			}
			for _, e := range d.mergeSource(el, p, depth+1) {
				if !seen[e.name] {
					seen[e.name] = true
					out = append(out, e)
				}
			}
		}
		return out
	}
	d.errorf(d.pos(n), p, "a merge key (<<) in %s takes a mapping, like <<: *defaults, not %s", p, describeNode(n))
	return nil
}

// readDocuments parses data into its YAML documents.
func readDocuments(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		docs = append(docs, &n)
	}
}

// maxProbeSize bounds the input on which syntaxError searches for the
// place of a YAML error; past it, the parser's own line has to do.
const maxProbeSize = 1 << 20

// syntaxError turns a yaml.v3 parse error into an Error with a position.
// yaml.v3 reports no column, and its line is the start of the enclosing
// construct (off by one for parser errors, missing on line 1), so the
// position is found again by parsing prefixes of the file: the shortest
// prefix that fails with the same message ends where the parser gave up.
func syntaxError(file string, data []byte, err error) *Error {
	msg, line := splitYAMLError(err)
	pos := Pos{File: file, Line: line}
	if len(data) <= maxProbeSize {
		if l, c, ok := locate(data, msg); ok {
			pos.Line, pos.Column = l, c
		}
	}
	text := "invalid YAML: " + msg
	if hint := syntaxHint(msg, data, pos); hint != "" {
		text += " (" + hint + ")"
	}
	return &Error{Pos: pos, Msg: text}
}

func splitYAMLError(err error) (msg string, line int) {
	msg = strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				return after, n
			}
		}
	}
	return msg, 0
}

func failsWith(data []byte, msg string) bool {
	_, err := readDocuments(data)
	if err == nil {
		return false
	}
	m, _ := splitYAMLError(err)
	return m == msg
}

// locate finds the 1-based line and column where parsing data fails with
// msg. It assumes that once a prefix fails that way, longer prefixes do
// too, which holds for a streaming parser that stops at its first error.
func locate(data []byte, msg string) (line, col int, ok bool) {
	if !failsWith(data, msg) {
		return 0, 0, false
	}
	ends := lineEnds(data)
	lo, hi := 0, len(ends)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if failsWith(data[:ends[mid]], msg) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	line = lo + 1
	start := 0
	if lo > 0 {
		start = ends[lo-1]
	}
	// Rune boundaries within the line, so columns count characters the way
	// yaml.v3 positions do.
	var bounds []int
	text := string(data[start:ends[lo]])
	for i := range text {
		if i > 0 {
			bounds = append(bounds, start+i)
		}
	}
	bounds = append(bounds, ends[lo])
	clo, chi := 0, len(bounds)-1
	if !failsWith(data[:bounds[chi]], msg) {
		return line, 0, true
	}
	for clo < chi {
		mid := (clo + chi) / 2
		if failsWith(data[:bounds[mid]], msg) {
			chi = mid
		} else {
			clo = mid + 1
		}
	}
	col = clo + 1
	// A failure only at the line's end (its break) points past the text;
	// the line alone says enough then.
	if body := trimBreak(text); body != text && col > len([]rune(body)) {
		col = 0
	}
	return line, col, true
}

func syntaxHint(msg string, data []byte, pos Pos) string {
	lineText := ""
	if pos.Line > 0 {
		lines := splitLines(data)
		if pos.Line <= len(lines) {
			lineText = lines[pos.Line-1]
		}
	}
	indent := lineText[:len(lineText)-len(strings.TrimLeft(lineText, " \t"))]
	var at rune // the character the parser stopped at, when known
	if r := []rune(lineText); pos.Column > 0 && pos.Column <= len(r) {
		at = r[pos.Column-1]
	}
	switch {
	case strings.Contains(lineText, "${") && strings.ContainsAny(lineText, "{[") &&
		(strings.HasPrefix(msg, "did not find expected ',' or") || strings.HasPrefix(msg, "did not find expected node content")):
		return `inside [...] or {...}, quote values that hold ${...}, like "${ports.http}", because their braces end the collection`
	case strings.Contains(indent, "\t"):
		return "this line is indented with a tab; YAML indentation must use spaces"
	case strings.HasPrefix(msg, "mapping values are not allowed"):
		return `a value containing ": " must be quoted, or this line is indented wrongly`
	case strings.HasPrefix(msg, "found character that cannot start any token") && at != 0:
		return fmt.Sprintf("a value starting with %q must be quoted", at)
	case strings.HasPrefix(msg, "did not find expected key"), strings.HasPrefix(msg, "did not find expected '-' indicator"):
		return "check the indentation: keys of one mapping, and items of one list, must start in the same column"
	case strings.HasPrefix(msg, "found unexpected end of stream") && (at == '"' || at == '\''):
		return "the quoted string started here is never closed"
	case strings.HasPrefix(msg, "did not find expected ',' or ']'"):
		return "a list started with [ here is never closed with ]"
	case strings.HasPrefix(msg, "did not find expected ',' or '}'"):
		return "a mapping started with { here is never closed with }"
	case strings.HasPrefix(msg, "could not find expected ':'"):
		return `a key must be followed by ": "`
	case strings.HasPrefix(msg, "unknown anchor"):
		return "define an anchor with &name before using it as *name"
	case strings.HasPrefix(msg, "found a tab character"):
		return "YAML indentation must use spaces"
	}
	return ""
}
