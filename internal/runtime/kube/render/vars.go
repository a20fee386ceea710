package render

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"sandpit.dev/sandpit/internal/template"
)

// Vars returns the values ${...} references expand to in a sandbox on
// Kubernetes: a service is reached at <service>.<namespace>.svc on the
// port numbers the template gives its ports (the container ports), a
// dependency at <dependency>.<namespace>.svc:5432 as user postgres with
// the password opts.DependencyPassword returns.
//
// Ports without a number are left out: a reference to one fails to
// expand, and Render says which port needs a number.
func Vars(t *template.Template, opts Options) (*template.Vars, error) {
	v := &template.Vars{
		SandboxName:  opts.SandboxName,
		SandboxID:    opts.SandboxID,
		GitRef:       opts.GitRef,
		GitSHA:       opts.GitSHA,
		Services:     map[string]template.ServiceVars{},
		Dependencies: map[string]template.DependencyVars{},
		Endpoints:    maps.Clone(opts.EndpointURLs),
	}
	if v.Endpoints == nil {
		v.Endpoints = map[string]string{}
	}
	for name, s := range t.Services {
		sv := template.ServiceVars{Host: name + "." + opts.Namespace + ".svc"}
		for _, p := range s.Ports {
			if p.Port != 0 {
				sv.Ports = append(sv.Ports, template.PortVar{Name: p.Name, Port: p.Port})
			}
		}
		v.Services[name] = sv
	}
	for name, d := range t.Dependencies {
		if opts.DependencyPassword == nil {
			return nil, fmt.Errorf("render: dependency %s needs a password, and Options.DependencyPassword is nil", name)
		}
		v.Dependencies[name] = template.DependencyVars{
			Host:     name + "." + opts.Namespace + ".svc",
			Port:     PostgresPort,
			User:     PostgresUser,
			Password: opts.DependencyPassword(name),
			Database: database(name, d),
		}
	}
	return v, nil
}

// database is the dependency's first database (Parse defaults it).
func database(name string, d *template.Dependency) string {
	if len(d.Databases) > 0 {
		return d.Databases[0]
	}
	return strings.ReplaceAll(name, "-", "_")
}

// manifestPorts points the references to a service that the loaded
// objects expose with a Service of its name at that Service's ports: a
// template port matches the Service port of the same name, or the one
// whose targetPort is the template port's name or number. The template's
// numbers are container ports; the manifests' Service may well listen on
// 80.
func (r *renderer) manifestPorts() {
	for name, s := range r.t.Services {
		svc := r.findLoaded("", "Service", name)
		if svc == nil {
			continue
		}
		ports, _, _ := unstructured.NestedSlice(svc.u.Object, "spec", "ports")
		sv := r.vars.Services[name]
		sv.Ports = nil
		for _, tp := range s.Ports {
			num := tp.Port
			for _, item := range ports {
				sp, _ := item.(map[string]any)
				port, _ := sp["port"].(int64)
				target := fmt.Sprint(sp["targetPort"])
				if port != 0 && (sp["name"] == tp.Name || target == tp.Name || tp.Port != 0 && target == strconv.Itoa(tp.Port)) {
					num = int(port)
					break
				}
			}
			if num != 0 {
				sv.Ports = append(sv.Ports, template.PortVar{Name: tp.Name, Port: num})
			}
		}
		r.vars.Services[name] = sv
	}
}

// expand expands s in the scope of service scope ("" for the template),
// for the field at path. A reference to a port without a number gets a
// message that says so, rather than "unknown reference".
func (r *renderer) expand(path, s, scope string) (string, error) {
	var missing string
	lookup := r.vars.Lookup(scope)
	out, err := template.Expand(s, func(ref string) (string, bool) {
		v, ok := lookup(ref)
		if !ok && missing == "" {
			missing = r.numberlessPort(ref, scope)
		}
		return v, ok
	})
	if err != nil {
		if missing != "" {
			return "", fmt.Errorf("%s%s: ${...}: %s", at(r.t, path), path, missing)
		}
		return "", fmt.Errorf("%s%s: %v", at(r.t, path), path, err)
	}
	return out, nil
}

// numberlessPort explains a reference that names a port without a
// number, or returns "".
func (r *renderer) numberlessPort(ref, scope string) string {
	parts := strings.Split(ref, ".")
	svc, port := "", ""
	switch {
	case len(parts) == 2 && parts[0] == "ports":
		svc, port = scope, parts[1]
	case len(parts) == 4 && parts[0] == "services" && parts[2] == "ports":
		svc, port = parts[1], parts[3]
	case len(parts) == 3 && parts[0] == "services" && (parts[2] == "port" || parts[2] == "url"):
		svc = parts[1]
		if s := r.t.Services[svc]; s != nil && len(s.Ports) > 0 {
			port = s.Ports[0].Name
		}
	}
	s := r.t.Services[svc]
	if s == nil {
		return ""
	}
	for i, p := range s.Ports {
		if p.Name == port && p.Port == 0 {
			return r.portNeedsNumber(svc, i)
		}
	}
	return ""
}

func (r *renderer) portNeedsNumber(svc string, i int) string {
	p := r.t.Services[svc].Ports[i]
	path := fmt.Sprintf("services.%s.ports[%d]", svc, i)
	return fmt.Sprintf("port %s of service %s has no number (%s%s): on kubernetes a service is reached on the port its container listens on; add it, like {name: %s, port: 8080}",
		p.Name, svc, at(r.t, path), path, p.Name)
}

// expandImages expands every service's image and indexes them by
// repository, for replacing the images of manifests' containers.
func (r *renderer) expandImages() error {
	r.images = map[string]string{}
	r.serviceImages = map[string]string{}
	for _, name := range r.t.ServiceOrder {
		s := r.t.Services[name]
		if s == nil || s.Image == "" {
			continue
		}
		img, err := r.expand("services."+name+".image", s.Image, name)
		if err != nil {
			return err
		}
		r.serviceImages[name] = img
		if repo := imageRepository(img); r.images[repo] == "" {
			r.images[repo] = img
		}
	}
	return nil
}

// imageRepository is an image reference without its tag and digest,
// normalised the way Docker reads it: "nginx" and
// "docker.io/library/nginx:1.27" are the same repository.
func imageRepository(image string) string {
	repo, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	first, rest, found := strings.Cut(repo, "/")
	switch {
	case !found:
		return "docker.io/library/" + repo
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		return "docker.io/" + repo
	case first == "index.docker.io":
		repo = "docker.io/" + rest
	}
	if after, ok := strings.CutPrefix(repo, "docker.io/"); ok && !strings.Contains(after, "/") {
		return "docker.io/library/" + after
	}
	return repo
}
