package template

import (
	"cmp"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Name limits. Endpoint names are the tightest: "<endpoint>--<sandbox>"
// must stay one DNS label (63) with the longest sandbox name. Port names
// become Kubernetes container port names, which allow 15 characters.
const (
	MaxTemplateNameLength   = 63
	MaxServiceNameLength    = 30
	MaxDependencyNameLength = 30
	MaxEndpointNameLength   = 63 - len("--") - sandbox.MaxNameLength
	MaxPortNameLength       = 15
	maxDatabaseNameLength   = 63 // PostgreSQL's NAMEDATALEN - 1
)

// Defaults applied by Parse to what a template leaves out.
const (
	DefaultProbeTimeout  = 2 * time.Minute
	DefaultProbeInterval = time.Second
	DefaultFileMode      = "0644"
)

var (
	envNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	databaseRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	versionRE  = regexp.MustCompile(`^[0-9]+$`)
	modeRE     = regexp.MustCompile(`^0?[0-7]{3}$`)
	futureAPI  = regexp.MustCompile(`^sandpit/v[0-9]+$`)
	// dnsSubdomainRE is Kubernetes' rule for most object names
	// (ConfigMaps among them); helm release names follow it too.
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// configKeyRE is what a ConfigMap's data keys may be.
	configKeyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
)

// Kubernetes name limits.
const (
	maxObjectNameLength  = 253
	maxReleaseNameLength = 53 // helm's limit
)

type validator struct {
	t     *Template
	d     *decoder
	errs  *ErrorList
	lines []string
}

var top fieldPath

func servicePath(name string) fieldPath { return top.field("services").entity("service", name) }

// at is where a message about the value at p should point: the value
// itself when it was read, else its key, else the file.
func (v *validator) at(p fieldPath) Pos {
	if n := v.d.nodes[p.full]; n != nil {
		return v.d.pos(n)
	}
	return v.key(p)
}

// key is where p's key stands: for messages about a whole entry.
func (v *validator) key(p fieldPath) Pos {
	if pos, ok := v.d.keyPos[p.full]; ok {
		return pos
	}
	return Pos{File: v.t.File}
}

func (v *validator) has(p fieldPath) bool {
	_, ok := v.d.keyPos[p.full]
	return ok && !v.d.bad[p.full]
}

func (v *validator) errorf(pos Pos, p fieldPath, format string, args ...any) {
	v.errs.add(pos, p.full, format, args...)
}

func (v *validator) validate() {
	t := v.t
	apiVersion := top.field("apiVersion")
	if v.has(apiVersion) && t.APIVersion != APIVersion {
		v.errorf(v.at(apiVersion), apiVersion, "apiVersion %q is not supported: the only supported version is %s", t.APIVersion, APIVersion)
	}
	if name := top.field("name"); v.has(name) {
		if err := sandbox.ValidateName("template", t.Name, MaxTemplateNameLength); err != nil {
			v.errorf(v.at(name), name, "%v", err)
		}
	}
	v.source()
	v.env(top.field("env"), t.Env)

	services := top.field("services")
	if v.has(services) && len(t.Services) == 0 {
		v.errorf(v.key(services), services, "services is empty: a template needs at least one service, with the run command that starts it")
	}
	for _, name := range v.d.orders["services"] {
		p := servicePath(name)
		if err := sandbox.ValidateName("service", name, MaxServiceNameLength); err != nil {
			v.errorf(v.key(p), p, "%v", err)
		}
		if s := t.Services[name]; s != nil && !v.d.bad[p.full] {
			v.service(p, name, s)
		}
	}
	for _, name := range v.d.orders["dependencies"] {
		p := top.field("dependencies").entity("dependency", name)
		if err := sandbox.ValidateName("dependency", name, MaxDependencyNameLength); err != nil {
			v.errorf(v.key(p), p, "%v", err)
		}
		if _, clash := t.Services[name]; clash {
			v.errorf(v.key(p), p, "dependency %q has the same name as a service: after, logs and exec name both kinds alike, so rename one of them", name)
		}
		if dep := t.Dependencies[name]; dep != nil && !v.d.bad[p.full] {
			v.dependency(p, dep)
		}
	}
	for _, name := range v.d.orders["endpoints"] {
		p := top.field("endpoints").entity("endpoint", name)
		if err := sandbox.ValidateName("endpoint", name, MaxEndpointNameLength); err != nil {
			v.errorf(v.key(p), p, "%v", err)
		}
		if ep := t.Endpoints[name]; ep != nil && !v.d.bad[p.full] {
			v.endpoint(p, ep)
		}
	}
	v.cycles()
	if l := t.Lifecycle; l != nil && l.Pool != nil {
		p := top.field("lifecycle").field("pool").field("min")
		if v.has(p) && l.Pool.Min < 0 {
			v.errorf(v.at(p), p, "lifecycle.pool.min is %d: it counts sandboxes kept ready, so it must be 0 or more", l.Pool.Min)
		}
	}
	v.kubernetes()
	v.git()
	v.references()
}

// kubernetes checks the kubernetes section: one source of objects at most,
// paths that stay inside the checkout, and names Kubernetes accepts.
func (v *validator) kubernetes() {
	k := v.t.Kubernetes
	p := top.field("kubernetes")
	if k == nil || v.d.bad[p.full] {
		return
	}
	var given []string
	for _, src := range []string{"manifests", "kustomize", "helm"} {
		if _, ok := v.d.keyPos[p.field(src).full]; ok {
			given = append(given, src)
		}
	}
	// Blame the second in the file, whichever it is.
	slices.SortFunc(given, func(a, b string) int {
		pa, pb := v.key(p.field(a)), v.key(p.field(b))
		return cmp.Or(cmp.Compare(pa.Line, pb.Line), cmp.Compare(pa.Column, pb.Column))
	})
	if len(given) > 1 {
		v.errorf(v.key(p.field(given[1])), p, "kubernetes has both %s and %s: keep one (manifests is a folder of YAML files, kustomize a kustomization directory, helm a chart)", given[0], given[1])
	}
	v.checkoutPath(p.field("manifests"), k.Manifests, "a folder of YAML files", "deploy/k8s")
	v.checkoutPath(p.field("kustomize"), k.Kustomize, "a kustomization directory", "deploy/overlays/preview")
	if h, hp := k.Helm, p.field("helm"); h != nil && !v.d.bad[hp.full] {
		v.checkoutPath(hp.field("chart"), h.Chart, "the chart's directory", "deploy/chart")
		if rp := hp.field("release"); v.has(rp) && (len(h.Release) > maxReleaseNameLength || !dnsSubdomainRE.MatchString(h.Release)) {
			v.errorf(v.at(rp), rp, "%s is %q: a helm release name uses lowercase letters, digits, '-' and '.', starts and ends with a letter or digit and has at most %d characters", rp, h.Release, maxReleaseNameLength)
		}
		for i, f := range h.ValuesFiles {
			v.checkoutPath(hp.field("values_files").index(i), f, "a values file", "deploy/values-preview.yaml")
		}
	}
	v.env(p.field("env"), k.Env)
	cp := p.field("config")
	for _, cm := range v.d.orders[cp.full] {
		mp := cp.field(cm)
		if len(cm) > maxObjectNameLength || !dnsSubdomainRE.MatchString(cm) {
			v.errorf(v.key(mp), mp, "%s: %q is not a ConfigMap name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit", cp, cm)
		}
		for _, key := range v.d.orders[mp.full] {
			if len(key) > maxObjectNameLength || !configKeyRE.MatchString(key) {
				kp := mp.field(key)
				v.errorf(v.key(kp), kp, "%s: %q is not a ConfigMap key: use letters, digits, '-', '_' and '.'", mp, key)
			}
		}
	}
}

// checkoutPath checks a path of the kubernetes section: relative to the
// checkout and inside it.
func (v *validator) checkoutPath(p fieldPath, val, what, example string) {
	if !v.has(p) {
		return
	}
	if strings.TrimSpace(val) == "" {
		v.errorf(v.at(p), p, "%s is empty: write %s relative to the checkout, like %s", p, what, example)
	} else if msg := checkRelPath(val, "the checkout"); msg != "" {
		v.errorf(v.at(p), p, "%s is %q: %s", p, val, msg)
	}
}

// git checks git.branches patterns and git.pull_requests.labels.
func (v *validator) git() {
	g := v.t.Git
	p := top.field("git")
	if g == nil || v.d.bad[p.full] {
		return
	}
	bp := p.field("branches")
	seen := map[string]bool{}
	for i, pat := range g.Branches {
		ip := bp.index(i)
		if !v.has(ip) {
			continue
		}
		if _, err := CompileBranches([]string{pat}); err != nil {
			v.errorf(v.at(ip), ip, "git.branches: %v", err)
		} else if seen[pat] {
			v.errorf(v.at(ip), ip, "git.branches lists %q twice", pat)
		}
		seen[pat] = true
	}
	if g.PullRequests == nil {
		return
	}
	lp := p.field("pull_requests").field("labels")
	seen = map[string]bool{}
	for i, l := range g.PullRequests.Labels {
		ip := lp.index(i)
		if !v.has(ip) {
			continue
		}
		switch {
		case strings.TrimSpace(l) == "":
			v.errorf(v.at(ip), ip, "git.pull_requests.labels has an empty label: write the label's name as GitHub shows it")
		case seen[l]:
			v.errorf(v.at(ip), ip, "git.pull_requests.labels lists %q twice", l)
		}
		seen[l] = true
	}
}

func (v *validator) source() {
	s := v.t.Source
	p := top.field("source")
	if s == nil || v.d.bad[p.full] {
		return
	}
	git, dir := p.field("git"), p.field("path")
	switch {
	case v.has(git) && v.has(dir):
		v.errorf(v.key(dir), p, "source has both git and path: keep one (git clones a repository, path uses a directory on the server)")
	case !v.has(git) && !v.has(dir) && !v.d.bad[git.full] && !v.d.bad[dir.full]:
		v.errorf(v.key(p), p, "source needs git (a repository URL) or path (a directory on the server)")
	case v.has(git) && strings.TrimSpace(s.Git) == "":
		v.errorf(v.at(git), git, "source.git is empty: write a repository URL, or remove source")
	case v.has(dir) && strings.TrimSpace(s.Path) == "":
		v.errorf(v.at(dir), dir, "source.path is empty: write a directory, or remove source")
	}
	if ref := p.field("ref"); v.has(ref) {
		if msg := checkGitRef(s.Ref); msg != "" {
			v.errorf(v.at(ref), ref, "source.ref %q %s", s.Ref, msg)
		}
	}
}

// checkGitRef refuses refs git would refuse, and any that could pass for a
// command-line option when handed to git.
func checkGitRef(ref string) string {
	switch {
	case ref == "":
		return "is empty: write a branch, tag or commit, or remove ref"
	case strings.HasPrefix(ref, "-"):
		return "starts with '-': a git ref cannot"
	case strings.Contains(ref, ".."), strings.Contains(ref, "@{"), strings.HasSuffix(ref, ".lock"),
		strings.HasSuffix(ref, "/"), strings.HasSuffix(ref, "."), strings.Contains(ref, "//"):
		return "is not a valid git ref"
	}
	for _, r := range ref {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`~^:?*[\`, r) {
			return fmt.Sprintf("has %q, which git refs cannot contain", r)
		}
	}
	return ""
}

func (v *validator) env(p fieldPath, env map[string]string) {
	for _, name := range v.d.orders[p.full] {
		if !envNameRE.MatchString(name) {
			ep := p.field(name)
			v.errorf(v.key(ep), ep, "%s: %q is not a valid environment variable name: use letters, digits and '_', not starting with a digit", p, name)
		}
	}
}

func (v *validator) service(p fieldPath, name string, s *Service) {
	run, image := p.field("run"), p.field("image")
	_, hasRun := v.d.keyPos[run.full]
	_, hasImage := v.d.keyPos[image.full]
	switch {
	case v.has(run) && strings.TrimSpace(s.Run) == "":
		v.errorf(v.at(run), run, "%s is empty: write the shell command that starts the service", run)
	case !hasRun && !hasImage && !v.d.suggested[run.full] && !v.d.suggested[image.full]:
		v.errorf(v.key(p), run, "%s has no \"run\": %s (or, for the kubernetes runtime only, an image whose entrypoint starts it)", p, fieldHints["Service.run"])
	}
	if v.has(image) && strings.TrimSpace(s.Image) == "" {
		v.errorf(v.at(image), image, "%s is empty: write a container image, like registry.example.com/%s:${git.sha}, or remove it", image, name)
	}
	if wd := p.field("workdir"); v.has(wd) {
		if msg := checkRelPath(s.Workdir, "the checkout"); msg != "" {
			v.errorf(v.at(wd), wd, "%s is %q: %s", wd, s.Workdir, msg)
		}
	}
	v.env(p.field("env"), s.Env)
	v.ports(p, s)
	v.probe(p, name, s)
	v.after(p, name, s)
	if r := p.field("restart"); v.has(r) {
		switch s.Restart {
		case RestartAlways, RestartOnFailure, RestartNever:
		default:
			v.errorf(v.at(r), r, "%s is %q: use always, on-failure or never%s", r, s.Restart, didYouMean(string(s.Restart), []string{"always", "on-failure", "never"}))
		}
	}
	v.files(p, s)
}

func (v *validator) ports(p fieldPath, s *Service) {
	first := map[string]fieldPath{}
	for i, port := range s.Ports {
		pp := p.field("ports").index(i)
		if v.d.bad[pp.full] {
			continue
		}
		if np := pp.field("name"); v.has(np) {
			if err := sandbox.ValidateName("port", port.Name, MaxPortNameLength); err != nil {
				v.errorf(v.at(np), np, "%s: %v", pp, err)
			} else if prev, dup := first[port.Name]; dup {
				v.errorf(v.at(np), np, "%s: port name %q is already used by %s (line %d): port names must differ within a service", pp, port.Name, prev.rel, v.key(prev).Line)
			} else {
				first[port.Name] = pp
			}
		}
		if num := pp.field("port"); v.has(num) && (port.Port < 1 || port.Port > 65535) {
			v.errorf(v.at(num), num, "%s is %d: a port number is between 1 and 65535", num, port.Port)
		}
		if proto := pp.field("protocol"); v.has(proto) && port.Protocol != "http" && port.Protocol != "tcp" {
			v.errorf(v.at(proto), proto, "%s is %q: use http (the default; can be routed and probed over HTTP) or tcp", proto, port.Protocol)
		}
	}
}

// portsKnown says whether a service's ports were read well enough to say a
// port is missing.
func (v *validator) portsKnown(svc string) bool {
	pp := "services." + svc + ".ports"
	if v.d.bad["services."+svc] || v.d.bad[pp] {
		return false
	}
	s := v.t.Services[svc]
	if s == nil {
		return false
	}
	for i := range s.Ports {
		ip := fmt.Sprintf("%s[%d]", pp, i)
		if v.d.bad[ip] || v.d.bad[ip+".name"] {
			return false
		}
	}
	return true
}

func (v *validator) portRef(p fieldPath, svc string, s *Service, port string) {
	if !v.has(p) || !v.portsKnown(svc) {
		return
	}
	names := s.portNames()
	for _, n := range names {
		if n == port {
			return
		}
	}
	if versionRE.MatchString(port) {
		if named := s.portNamed(port); named != "" {
			v.errorf(v.at(p), p, "%s is %s, but probes name a port by its name, not its number: write port: %s", p, port, named)
		} else {
			v.errorf(v.at(p), p, "%s is %s, but probes name a port by its name, not its number: declare it under ports, like ports: [{name: http, port: %s}], and write port: http", p, port, port)
		}
		return
	}
	if len(names) == 0 {
		v.errorf(v.at(p), p, "%s names port %q, but service %q has no ports: declare it under ports, like ports: [{name: %s}]", p, port, svc, port)
		return
	}
	v.errorf(v.at(p), p, "%s names port %q, but service %q has no such port (its ports: %s)%s", p, port, svc, quoteList(names), didYouMean(port, names))
}

func (v *validator) probe(p fieldPath, name string, s *Service) {
	r := s.Ready
	rp := p.field("ready")
	if r == nil || v.d.bad[rp.full] {
		return
	}
	var kinds []string
	if r.HTTP != nil {
		kinds = append(kinds, "http")
	}
	if r.TCP != nil {
		kinds = append(kinds, "tcp")
	}
	if r.Exec != nil {
		kinds = append(kinds, "exec")
	}
	switch {
	case len(kinds) == 0 && !v.d.bad[rp.field("http").full] && !v.d.bad[rp.field("tcp").full] && !v.d.bad[rp.field("exec").full]:
		v.errorf(v.key(rp), rp, "%s needs one of http, tcp or exec, like ready: {http: {port: http, path: /healthz}}", rp)
	case len(kinds) > 1:
		v.errorf(v.key(rp.field(kinds[1])), rp, "%s has both %s and %s: a probe uses exactly one of http, tcp or exec", rp, kinds[0], kinds[1])
	}
	if r.HTTP != nil {
		hp := rp.field("http")
		v.portRef(hp.field("port"), name, s, r.HTTP.Port)
		if pp := hp.field("path"); v.has(pp) && !strings.HasPrefix(r.HTTP.Path, "/") {
			v.errorf(v.at(pp), pp, "%s is %q: it must start with \"/\", like \"/%s\"", pp, r.HTTP.Path, strings.TrimLeft(r.HTTP.Path, " "))
		}
	}
	if r.TCP != nil {
		v.portRef(rp.field("tcp").field("port"), name, s, r.TCP.Port)
	}
	if r.Exec != nil {
		if cp := rp.field("exec").field("command"); v.has(cp) && strings.TrimSpace(r.Exec.Command) == "" {
			v.errorf(v.at(cp), cp, "%s is empty: write a shell command that exits 0 once the service is ready", cp)
		}
	}
	for _, f := range []struct {
		key string
		d   Duration
	}{{"timeout", r.Timeout}, {"interval", r.Interval}} {
		if fp := rp.field(f.key); v.has(fp) && f.d == 0 {
			v.errorf(v.at(fp), fp, "%s is 0: it must be more than zero (leave it out for the default)", fp)
		}
	}
}

func (v *validator) after(p fieldPath, name string, s *Service) {
	ap := p.field("after")
	if v.d.bad[ap.full] {
		return
	}
	var known []string
	known = append(known, v.t.ServiceOrder...)
	known = append(known, v.t.DependencyOrder...)
	seen := map[string]bool{}
	for i, target := range s.After {
		ip := ap.index(i)
		if !v.has(ip) {
			continue
		}
		_, isSvc := v.t.Services[target]
		_, isDep := v.t.Dependencies[target]
		switch {
		case target == name:
			v.errorf(v.at(ip), ip, "service %q lists itself in after: a service cannot wait for itself", name)
		case seen[target]:
			v.errorf(v.at(ip), ip, "%s lists %q twice", ap, target)
		case !isSvc && !isDep && !v.d.bad["services"] && !v.d.bad["dependencies"]:
			v.errorf(v.at(ip), ip, "%s names %q, which is neither a service nor a dependency of this template%s", ap, target, didYouMean(target, known))
		}
		seen[target] = true
	}
}

func (v *validator) files(p fieldPath, s *Service) {
	first := map[string]fieldPath{}
	for i, f := range s.Files {
		fp := p.field("files").index(i)
		if v.d.bad[fp.full] {
			continue
		}
		if pp := fp.field("path"); v.has(pp) {
			if msg := checkRelPath(f.Path, "the workdir"); msg != "" {
				v.errorf(v.at(pp), pp, "%s is %q: %s", pp, f.Path, msg)
			} else if f.Path == "" || path.Clean(f.Path) == "." {
				v.errorf(v.at(pp), pp, "%s is empty: write the file's path, relative to the workdir", pp)
			} else if prev, dup := first[path.Clean(f.Path)]; dup {
				v.errorf(v.at(pp), pp, "%s is %q, the same file as %s (line %d): write each file once", pp, f.Path, prev.rel, v.at(prev.field("path")).Line)
			} else {
				first[path.Clean(f.Path)] = fp
			}
		}
		if mp := fp.field("mode"); v.has(mp) && !modeRE.MatchString(f.Mode) {
			v.errorf(v.at(mp), mp, "%s is %q: write an octal permission like 0644 or 0755", mp, f.Mode)
		}
	}
}

// checkRelPath accepts paths that stay inside base. Paths are slash
// separated on every platform, like the template itself.
func checkRelPath(p, base string) string {
	switch {
	case strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || (len(p) > 1 && p[1] == ':'):
		return "it is absolute; write a path relative to " + base
	case p == ".." || strings.HasPrefix(path.Clean(p), "../"):
		return "it points outside " + base + "; the path must stay inside it"
	case strings.ContainsRune(p, 0):
		return "it contains a NUL byte"
	}
	return ""
}

func (v *validator) dependency(p fieldPath, d *Dependency) {
	if tp := p.field("type"); v.has(tp) && d.Type != "postgres" {
		v.errorf(v.at(tp), tp, "%s is %q: the only supported type is postgres", tp, d.Type)
	}
	if vp := p.field("version"); v.has(vp) && !versionRE.MatchString(d.Version) {
		v.errorf(v.at(vp), vp, "%s is %q: write the major version only, digits like \"15\"", vp, d.Version)
	}
	if sp := p.field("snapshot"); v.has(sp) {
		if err := sandbox.ValidateSnapshotName(d.Snapshot); err != nil {
			v.errorf(v.at(sp), sp, "%s: %v", sp, err)
		}
	}
	first := map[string]fieldPath{}
	for i, db := range d.Databases {
		dp := p.field("databases").index(i)
		if !v.has(dp) {
			continue
		}
		switch {
		case len(db) > maxDatabaseNameLength || !databaseRE.MatchString(db):
			v.errorf(v.at(dp), dp, "%s is %q: a database name uses lowercase letters, digits and '_', starts with a letter and has at most %d characters", dp, db, maxDatabaseNameLength)
		case first[db].full != "":
			v.errorf(v.at(dp), dp, "%s: database %q is already listed as %s", dp, db, first[db].rel)
		default:
			first[db] = dp
		}
	}
}

func (v *validator) endpoint(p fieldPath, e *Endpoint) {
	rp := p.field("routes")
	if v.has(rp) && len(e.Routes) == 0 {
		v.errorf(v.key(rp), rp, "%s is empty: add at least one route, like routes: [{path: /, to: web:http}]", rp)
	}
	first := map[string]fieldPath{}
	for i, r := range e.Routes {
		ip := rp.index(i)
		if v.d.bad[ip.full] {
			continue
		}
		if pp := ip.field("path"); v.has(pp) {
			if !strings.HasPrefix(r.Path, "/") {
				v.errorf(v.at(pp), pp, "%s is %q: a route path must start with \"/\", like \"/%s\"", pp, r.Path, r.Path)
			} else if prev, dup := first[r.Path]; dup {
				v.errorf(v.at(pp), pp, "%s: path %q is already routed by %s (line %d)", pp, r.Path, prev.rel, v.at(prev.field("path")).Line)
			} else {
				first[r.Path] = ip
			}
		}
		if tp := ip.field("to"); v.has(tp) {
			v.routeTarget(tp, r.To)
		}
	}
	if ap := p.field("access"); v.has(ap) {
		switch e.Access {
		case "private", "org", "public":
		default:
			v.errorf(v.at(ap), ap, "%s is %q: use private (the default), org or public", ap, e.Access)
		}
	}
}

func (v *validator) routeTarget(p fieldPath, to string) {
	svc, port, err := ParseTarget(to)
	if err != nil {
		v.errorf(v.at(p), p, "%s: %v", p, err)
		return
	}
	s := v.t.Services[svc]
	if s == nil {
		if !v.d.bad["services"] {
			v.errorf(v.at(p), p, "%s is %q, but the template has no service %q (services: %s)%s", p, to, svc, quoteList(v.t.ServiceOrder), didYouMean(svc, v.t.ServiceOrder))
		}
		return
	}
	if !v.portsKnown(svc) {
		return
	}
	names := s.portNames()
	for _, pt := range s.Ports {
		if pt.Name != port {
			continue
		}
		if pt.Protocol == "tcp" {
			v.errorf(v.at(p), p, "%s is %q, a tcp port: only http ports can be routed", p, to)
		}
		return
	}
	if versionRE.MatchString(port) {
		if named := s.portNamed(port); named != "" {
			v.errorf(v.at(p), p, "%s is %q, but routes name a port by its name, not its number: write %s:%s", p, to, svc, named)
		} else {
			v.errorf(v.at(p), p, "%s is %q, but routes name a port by its name, not its number: declare it under the service's ports, like ports: [{name: http, port: %s}], and write %s:http", p, to, port, svc)
		}
		return
	}
	if len(names) == 0 {
		v.errorf(v.at(p), p, "%s is %q, but service %q has no ports: declare %q under its ports", p, to, svc, port)
		return
	}
	v.errorf(v.at(p), p, "%s is %q, but service %q has no port %q (its ports: %s)%s", p, to, svc, port, quoteList(names), didYouMean(port, names))
}

// cycles reports each group of services that wait for each other once,
// with one cycle through it spelled out.
func (v *validator) cycles() {
	order := v.t.ServiceOrder
	index := map[string]int{}
	for i, n := range order {
		index[n] = i
	}
	edges := func(n string) []string {
		s := v.t.Services[n]
		if s == nil {
			return nil
		}
		var out []string
		for _, a := range s.After {
			if _, ok := index[a]; ok && a != n {
				out = append(out, a)
			}
		}
		return out
	}
	// Tarjan's strongly connected components.
	var (
		counter int
		stack   []string
		onStack = map[string]bool{}
		low     = map[string]int{}
		num     = map[string]int{}
		sccs    [][]string
	)
	var strong func(string)
	strong = func(n string) {
		counter++
		num[n], low[n] = counter, counter
		stack = append(stack, n)
		onStack[n] = true
		for _, m := range edges(n) {
			if num[m] == 0 {
				strong(m)
				low[n] = min(low[n], low[m])
			} else if onStack[m] {
				low[n] = min(low[n], num[m])
			}
		}
		if low[n] == num[n] {
			var scc []string
			for {
				m := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[m] = false
				scc = append(scc, m)
				if m == n {
					break
				}
			}
			if len(scc) > 1 {
				sccs = append(sccs, scc)
			}
		}
	}
	for _, n := range order {
		if num[n] == 0 {
			strong(n)
		}
	}
	for _, scc := range sccs {
		in := map[string]bool{}
		start := scc[0]
		for _, n := range scc {
			in[n] = true
			if index[n] < index[start] {
				start = n
			}
		}
		// Shortest way back to start inside the component, by BFS.
		prev := map[string]string{}
		queue := []string{start}
		var last string
	bfs:
		for len(queue) > 0 {
			n := queue[0]
			queue = queue[1:]
			for _, m := range edges(n) {
				if m == start {
					last = n
					break bfs
				}
				if _, seen := prev[m]; !seen && in[m] {
					prev[m] = n
					queue = append(queue, m)
				}
			}
		}
		cyc := []string{start}
		for n := last; n != start; n = prev[n] {
			cyc = append(cyc, n)
		}
		// cyc is start followed by the path backwards; reverse the tail.
		for i, j := 1, len(cyc)-1; i < j; i, j = i+1, j-1 {
			cyc[i], cyc[j] = cyc[j], cyc[i]
		}
		cyc = append(cyc, start)
		next := cyc[1]
		var at fieldPath
		for i, a := range v.t.Services[start].After {
			if a == next {
				at = servicePath(start).field("after").index(i)
				break
			}
		}
		v.errorf(v.at(at), at, "services wait for each other in a cycle: %s; remove one of these after entries", strings.Join(cyc, " -> "))
	}
}

// references checks every ${...} in the fields that are interpolated.
func (v *validator) references() {
	t := v.t
	for _, k := range v.d.orders["env"] {
		v.refs(top.field("env").field(k), t.Env[k], "")
	}
	for _, name := range t.ServiceOrder {
		s := t.Services[name]
		p := servicePath(name)
		if s == nil || v.d.bad[p.full] {
			continue
		}
		for _, f := range []struct {
			key, val string
		}{{"build", s.Build}, {"init", s.Init}, {"run", s.Run}, {"image", s.Image}} {
			v.refs(p.field(f.key), f.val, name)
		}
		for _, k := range v.d.orders[p.field("env").full] {
			v.refs(p.field("env").field(k), s.Env[k], name)
		}
		for i, f := range s.Files {
			fp := p.field("files").index(i)
			v.refs(fp.field("path"), f.Path, name)
			v.refs(fp.field("content"), f.Content, name)
		}
		if s.Ready != nil && s.Ready.Exec != nil {
			v.refs(p.field("ready").field("exec").field("command"), s.Ready.Exec.Command, name)
		}
	}
	if k := t.Kubernetes; k != nil {
		kp := top.field("kubernetes")
		for _, name := range v.d.orders[kp.field("env").full] {
			v.refs(kp.field("env").field(name), k.Env[name], "")
		}
		cp := kp.field("config")
		for _, cm := range v.d.orders[cp.full] {
			for _, key := range v.d.orders[cp.field(cm).full] {
				v.refs(cp.field(cm).field(key), k.Config[cm][key], "")
			}
		}
		if k.Helm != nil {
			v.valueRefs(kp.field("helm").field("values"), k.Helm.Values)
		}
	}
}

// valueRefs checks the references in the strings of free-form values.
func (v *validator) valueRefs(p fieldPath, val any) {
	switch x := val.(type) {
	case string:
		v.refs(p, x, "")
	case map[string]any:
		for k, e := range x {
			v.valueRefs(p.field(k), e)
		}
	case []any:
		for i, e := range x {
			v.valueRefs(p.index(i), e)
		}
	}
}

func (v *validator) refs(p fieldPath, s, scope string) {
	if !v.has(p) || !strings.Contains(s, "${") {
		return
	}
	refs, err := References(s)
	for _, r := range refs {
		if msg := v.t.checkRef(r.Ref, scope, func(svc string) bool { return !v.portsKnown(svc) }); msg != "" {
			v.errorf(v.offsetPos(p, r.Offset), p, "%s: %s", p, msg)
		}
	}
	if ie, ok := err.(*InterpolationError); ok {
		v.errorf(v.offsetPos(p, ie.Offset), p, "%s: %s", p, ie.Msg)
	}
}

// offsetPos finds where byte off of the value at p stands in the file. That
// is only certain when the scalar's text can be matched against its source
// line (plain and simply quoted scalars on one line, and literal blocks);
// otherwise the scalar's own position has to do.
func (v *validator) offsetPos(p fieldPath, off int) Pos {
	n := v.d.nodes[p.full]
	if n == nil {
		return v.at(p)
	}
	base := v.d.pos(n)
	s := n.Value
	if off < 0 || off > len(s) || n.Line < 1 || n.Line > len(v.lines) {
		return base
	}
	if n.Style&yaml.LiteralStyle != 0 {
		lineStart := strings.LastIndexByte(s[:off], '\n') + 1
		lineEnd := strings.IndexByte(s[off:], '\n')
		if lineEnd < 0 {
			lineEnd = len(s)
		} else {
			lineEnd += off
		}
		content := s[lineStart:lineEnd]
		src := n.Line + 1 + strings.Count(s[:off], "\n")
		if src > len(v.lines) {
			return base
		}
		raw := v.lines[src-1]
		indent, ok := strings.CutSuffix(raw, content)
		if !ok || strings.Trim(indent, " ") != "" {
			return base
		}
		return Pos{File: base.File, Line: src, Column: utf8.RuneCountInString(indent) + 1 + utf8.RuneCountInString(s[lineStart:off])}
	}
	if strings.Contains(s, "\n") {
		return base
	}
	line := v.lines[n.Line-1]
	// Skip to the scalar's column; columns count characters.
	i, col := 0, 1
	for i < len(line) && col < n.Column {
		_, size := utf8.DecodeRuneInString(line[i:])
		i += size
		col++
	}
	rest := line[i:]
	var prefix string
	switch {
	case n.Style == 0 || n.Style == yaml.FlowStyle:
		if !strings.HasPrefix(rest, s) {
			return base
		}
		prefix = s[:off]
	case n.Style&yaml.SingleQuotedStyle != 0:
		if !strings.HasPrefix(rest, "'"+strings.ReplaceAll(s, "'", "''")+"'") {
			return base
		}
		prefix = "'" + strings.ReplaceAll(s[:off], "'", "''")
	case n.Style&yaml.DoubleQuotedStyle != 0:
		// Escapes change lengths; only quote-for-quote text maps exactly.
		if strings.ContainsAny(s, `"\`) || !strings.HasPrefix(rest, `"`+s+`"`) {
			return base
		}
		prefix = `"` + s[:off]
	default:
		return base
	}
	return Pos{File: base.File, Line: base.Line, Column: base.Column + utf8.RuneCountInString(prefix)}
}

// applyDefaults fills in what the format defines as the default, so the
// runtimes never have to.
func (t *Template) applyDefaults() {
	for _, s := range t.Services {
		if s.Restart == "" {
			s.Restart = RestartAlways
		}
		for i := range s.Ports {
			if s.Ports[i].Protocol == "" {
				s.Ports[i].Protocol = "http"
			}
		}
		if r := s.Ready; r != nil {
			if r.Timeout == 0 {
				r.Timeout = Duration(DefaultProbeTimeout)
			}
			if r.Interval == 0 {
				r.Interval = Duration(DefaultProbeInterval)
			}
			if r.HTTP != nil && r.HTTP.Path == "" {
				r.HTTP.Path = "/"
			}
		}
		for i := range s.Files {
			if s.Files[i].Mode == "" {
				s.Files[i].Mode = DefaultFileMode
			}
		}
	}
	for name, d := range t.Dependencies {
		if len(d.Databases) == 0 {
			d.Databases = []string{strings.ReplaceAll(name, "-", "_")}
		}
	}
	for _, e := range t.Endpoints {
		if e.Access == "" {
			e.Access = "private"
		}
	}
}

// portNamed returns the name of the port whose number is num, for users
// who wrote the number where the name belongs.
func (s *Service) portNamed(num string) string {
	for _, p := range s.Ports {
		if p.Port != 0 && fmt.Sprint(p.Port) == num {
			return p.Name
		}
	}
	return ""
}
