package template

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Reference is one ${...} in a string.
type Reference struct {
	// Ref is the text between "${" and "}".
	Ref string
	// Offset is the byte offset of the "${" in the string.
	Offset int
}

// InterpolationError is a problem with one ${...}; Offset is the byte offset
// of its "${", so a caller can point at it.
type InterpolationError struct {
	Offset int
	Msg    string
}

func (e *InterpolationError) Error() string { return e.Msg }

// scan splits s into literal text and references. "$${" is a literal "${"
// so that shell code can keep its own ${VAR}; a lone "$" is left alone.
func scan(s string, lit func(string), ref func(Reference) error) error {
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			lit(b.String())
			b.Reset()
		}
	}
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		b.WriteString(s[i : i+j])
		i += j
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return &InterpolationError{Offset: i, Msg: `unterminated "${": close the reference with "}", or write "$${" for a literal "${"`}
			}
			flush()
			if err := ref(Reference{Ref: s[i+2 : i+2+end], Offset: i}); err != nil {
				return err
			}
			i += 2 + end + 1
		default:
			b.WriteByte('$')
			i++
		}
	}
	flush()
	return nil
}

// References lists the ${...} references in s in order. On a syntax error
// it returns the references before it and an *InterpolationError.
func References(s string) ([]Reference, error) {
	var refs []Reference
	err := scan(s, func(string) {}, func(r Reference) error {
		refs = append(refs, r)
		return nil
	})
	return refs, err
}

// Expand replaces every ${ref} in s with lookup(ref) and every "$${" with
// "${". A ref lookup does not know is an *InterpolationError naming it.
func Expand(s string, lookup func(ref string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	err := scan(s, func(l string) { b.WriteString(l) }, func(r Reference) error {
		v, ok := lookup(r.Ref)
		if !ok {
			return &InterpolationError{Offset: r.Offset, Msg: fmt.Sprintf("unknown reference ${%s}", r.Ref)}
		}
		b.WriteString(v)
		return nil
	})
	if err != nil {
		return "", err
	}
	return b.String(), nil
}

// refKind is what a reference names. The grammar lives in parseRef alone, so
// validation (Template.checkRef) and lookup (Vars.Lookup) cannot disagree on
// which references exist.
type refKind int

const (
	refSandboxName refKind = iota + 1
	refSandboxID
	refGitRef
	refGitSHA
	refOwnPort      // ports.<port>
	refServiceHost  // services.<svc>.host
	refServicePort  // services.<svc>.port: its first port
	refServiceURL   // services.<svc>.url
	refServiceNamed // services.<svc>.ports.<port>
	refDependency   // dependencies.<dep>.<attr>
	refEndpointURL  // endpoints.<ep>.url
)

type ref struct {
	kind refKind
	name string // service, dependency or endpoint
	port string
	attr string // dependency attribute
}

var namespaces = []string{"sandbox", "git", "ports", "services", "dependencies", "endpoints"}

var dependencyAttrs = []string{"host", "port", "user", "password", "database", "url"}

// parseRef checks a reference's form (not whether what it names exists)
// and returns a message without the "${...}" context on failure.
func parseRef(s string) (ref, string) {
	if s == "" {
		return ref{}, `"${}" is empty: write a reference like ${services.api.url}, or "$${}" for a literal "${}"`
	}
	parts := strings.Split(s, ".")
	for _, p := range parts {
		if p == "" {
			return ref{}, fmt.Sprintf("${%s} has an empty part between dots", s)
		}
	}
	n := len(parts)
	switch parts[0] {
	case "sandbox":
		if n == 2 && parts[1] == "name" {
			return ref{kind: refSandboxName}, ""
		}
		if n == 2 && parts[1] == "id" {
			return ref{kind: refSandboxID}, ""
		}
		return ref{}, fmt.Sprintf("unknown reference ${%s}: use ${sandbox.name} or ${sandbox.id}", s)
	case "git":
		if n == 2 && parts[1] == "ref" {
			return ref{kind: refGitRef}, ""
		}
		if n == 2 && parts[1] == "sha" {
			return ref{kind: refGitSHA}, ""
		}
		return ref{}, fmt.Sprintf("unknown reference ${%s}: use ${git.ref} or ${git.sha}", s)
	case "ports":
		if n == 2 {
			return ref{kind: refOwnPort, port: parts[1]}, ""
		}
		return ref{}, fmt.Sprintf("unknown reference ${%s}: use ${ports.<port name>}, like ${ports.http}", s)
	case "services":
		switch {
		case n == 3 && parts[2] == "host":
			return ref{kind: refServiceHost, name: parts[1]}, ""
		case n == 3 && parts[2] == "port":
			return ref{kind: refServicePort, name: parts[1]}, ""
		case n == 3 && parts[2] == "url":
			return ref{kind: refServiceURL, name: parts[1]}, ""
		case n == 4 && parts[2] == "ports":
			return ref{kind: refServiceNamed, name: parts[1], port: parts[3]}, ""
		}
		svc := "<service>"
		if n > 1 {
			svc = parts[1]
		}
		return ref{}, fmt.Sprintf("unknown reference ${%s}: use ${services.%s.host}, .port, .url or .ports.<port name>", s, svc)
	case "dependencies":
		if n == 3 {
			for _, a := range dependencyAttrs {
				if parts[2] == a {
					return ref{kind: refDependency, name: parts[1], attr: a}, ""
				}
			}
		}
		dep := "<dependency>"
		if n > 1 {
			dep = parts[1]
		}
		return ref{}, fmt.Sprintf("unknown reference ${%s}: use ${dependencies.%s.url}, or .host, .port, .user, .password or .database", s, dep)
	case "endpoints":
		if n == 3 && parts[2] == "url" {
			return ref{kind: refEndpointURL, name: parts[1]}, ""
		}
		ep := "<endpoint>"
		if n > 1 {
			ep = parts[1]
		}
		return ref{}, fmt.Sprintf("unknown reference ${%s}: use ${endpoints.%s.url}", s, ep)
	}
	if c := closest(parts[0], namespaces); c != "" && n > 1 {
		return ref{}, fmt.Sprintf("unknown reference ${%s}; did you mean ${%s}?", s, c+s[len(parts[0]):])
	}
	return ref{}, fmt.Sprintf("unknown reference ${%s}: references start with sandbox., git., ports., services., dependencies. or endpoints.; for the shell's own ${...} write $${%s}", s, s)
}

// Vars holds the values ${...} references expand to for one sandbox. A
// runtime fills it once it knows hosts and ports, and passes it to
// ExpandService (or uses Lookup with Expand).
type Vars struct {
	SandboxName string
	SandboxID   string
	GitRef      string
	GitSHA      string
	// Services by name.
	Services map[string]ServiceVars
	// Dependencies by name.
	Dependencies map[string]DependencyVars
	// Endpoints maps an endpoint name to its public URL.
	Endpoints map[string]string
}

// ServiceVars is where one service can be reached.
type ServiceVars struct {
	Host string
	// Ports in the template's declaration order: the first one is what
	// ${services.<name>.port} and .url use.
	Ports []PortVar
}

// PortVar is the port a named port of a service was given.
type PortVar struct {
	Name string
	Port int
}

// Port returns the number of the named port.
func (s ServiceVars) Port(name string) (int, bool) {
	for _, p := range s.Ports {
		if p.Name == name {
			return p.Port, true
		}
	}
	return 0, false
}

// URL is http://<host>:<first port>, or "" without ports.
func (s ServiceVars) URL() string {
	if len(s.Ports) == 0 {
		return ""
	}
	return "http://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Ports[0].Port))
}

// DependencyVars is how to reach and log in to one dependency.
type DependencyVars struct {
	Host     string
	Port     int
	User     string
	Password string
	// Database is the first of the dependency's databases.
	Database string
}

// URL is the connection URL ${dependencies.<name>.url} expands to, with the
// user and password escaped.
func (d DependencyVars) URL() string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(d.User, d.Password),
		Host:     net.JoinHostPort(d.Host, strconv.Itoa(d.Port)),
		Path:     "/" + d.Database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Lookup returns the lookup function for Expand in the scope of a service
// (its own ports are ${ports.<name>}), or of the template when service is
// "" (where ${ports.*} does not exist). References to things Vars does not
// hold report false.
func (v *Vars) Lookup(service string) func(string) (string, bool) {
	return func(s string) (string, bool) {
		r, problem := parseRef(s)
		if problem != "" {
			return "", false
		}
		return v.resolve(r, service)
	}
}

func (v *Vars) resolve(r ref, scope string) (string, bool) {
	switch r.kind {
	case refSandboxName:
		return v.SandboxName, true
	case refSandboxID:
		return v.SandboxID, true
	case refGitRef:
		return v.GitRef, true
	case refGitSHA:
		return v.GitSHA, true
	case refOwnPort:
		if scope == "" {
			return "", false
		}
		r.name = scope
		r.kind = refServiceNamed
	case refEndpointURL:
		u, ok := v.Endpoints[r.name]
		return u, ok
	case refDependency:
		d, ok := v.Dependencies[r.name]
		if !ok {
			return "", false
		}
		switch r.attr {
		case "host":
			return d.Host, true
		case "port":
			return strconv.Itoa(d.Port), true
		case "user":
			return d.User, true
		case "password":
			return d.Password, true
		case "database":
			return d.Database, true
		case "url":
			return d.URL(), true
		}
		return "", false
	}
	s, ok := v.Services[r.name]
	if !ok {
		return "", false
	}
	switch r.kind {
	case refServiceHost:
		return s.Host, true
	case refServicePort:
		if len(s.Ports) == 0 {
			return "", false
		}
		return strconv.Itoa(s.Ports[0].Port), true
	case refServiceURL:
		if len(s.Ports) == 0 {
			return "", false
		}
		return s.URL(), true
	case refServiceNamed:
		p, ok := s.Port(r.port)
		if !ok {
			return "", false
		}
		return strconv.Itoa(p), true
	}
	return "", false
}

// checkRef says what is wrong with reference s in the given scope ("" for
// the template, else a service name), or "" when it names something the
// template has. skipPorts reports services whose ports could not be read,
// about which nothing more should be said.
func (t *Template) checkRef(s, scope string, skipPorts func(svc string) bool) string {
	r, problem := parseRef(s)
	if problem != "" {
		return problem
	}
	switch r.kind {
	case refOwnPort:
		if scope == "" {
			return fmt.Sprintf("${ports.%s} is only available inside a service (it is that service's own port); here write ${services.<service>.ports.%s}", r.port, r.port)
		}
		return t.checkPort(s, scope, r.port, skipPorts)
	case refServiceHost, refServicePort, refServiceURL, refServiceNamed:
		svc, ok := t.Services[r.name]
		if !ok || svc == nil {
			return fmt.Sprintf("${%s} names service %q, which this template does not have (services: %s)%s", s, r.name, quoteList(t.ServiceOrder), didYouMean(r.name, t.ServiceOrder))
		}
		if skipPorts(r.name) {
			return ""
		}
		switch r.kind {
		case refServicePort, refServiceURL:
			if len(svc.Ports) == 0 {
				return fmt.Sprintf("${%s}: service %q has no ports", s, r.name)
			}
		case refServiceNamed:
			return t.checkPort(s, r.name, r.port, skipPorts)
		}
	case refDependency:
		if _, ok := t.Dependencies[r.name]; !ok {
			return fmt.Sprintf("${%s} names dependency %q, which this template does not have%s%s", s, r.name, listSuffix("dependencies", t.DependencyOrder), didYouMean(r.name, t.DependencyOrder))
		}
	case refEndpointURL:
		if _, ok := t.Endpoints[r.name]; !ok {
			return fmt.Sprintf("${%s} names endpoint %q, which this template does not have%s%s", s, r.name, listSuffix("endpoints", t.EndpointOrder), didYouMean(r.name, t.EndpointOrder))
		}
	}
	return ""
}

func (t *Template) checkPort(s, svc, port string, skipPorts func(string) bool) string {
	service := t.Services[svc]
	if service == nil || skipPorts(svc) {
		return ""
	}
	names := service.portNames()
	for _, n := range names {
		if n == port {
			return ""
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("${%s}: service %q has no ports; declare it under ports", s, svc)
	}
	return fmt.Sprintf("${%s}: service %q has no port %q (its ports: %s)%s", s, svc, port, quoteList(names), didYouMean(port, names))
}

func listSuffix(what string, names []string) string {
	if len(names) == 0 {
		return " (it has no " + what + ")"
	}
	return " (" + what + ": " + quoteList(names) + ")"
}

func (s *Service) portNames() []string {
	names := make([]string, len(s.Ports))
	for i, p := range s.Ports {
		names[i] = p.Name
	}
	return names
}
