package render

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"sandpit.dev/sandpit/internal/template"
)

// load reads the objects of kubernetes.manifests, .kustomize or .helm.
func (r *renderer) load() error {
	k := r.t.Kubernetes
	if k == nil {
		return nil
	}
	var given []string
	for _, g := range []struct {
		name string
		set  bool
	}{{"manifests", k.Manifests != ""}, {"kustomize", k.Kustomize != ""}, {"helm", k.Helm != nil}} {
		if g.set {
			given = append(given, g.name)
		}
	}
	if len(given) > 1 {
		// template.Parse refuses this; a template built in code may not.
		return fmt.Errorf("%skubernetes has %s: keep one source of objects", at(r.t, "kubernetes"), strings.Join(given, " and "))
	}
	var err error
	switch {
	case k.Manifests != "":
		err = r.loadManifests(k.Manifests)
	case k.Kustomize != "":
		err = r.loadKustomize(k.Kustomize)
	case k.Helm != nil:
		err = r.loadHelm(k.Helm)
	}
	return err
}

// inCheckout resolves rel (slash separated, relative to the checkout) and
// checks that it exists and, symbolic links followed, stays inside the
// checkout: a template must not read the server's files.
func (r *renderer) inCheckout(rel string) (string, error) {
	if r.opts.SourceDir == "" {
		return "", errors.New("the sandbox has no checkout (the template has no source) to read it from")
	}
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", errors.New("the path must be relative to the checkout and stay inside it")
	}
	root, err := filepath.EvalSymlinks(r.opts.SourceDir)
	if err != nil {
		return "", fmt.Errorf("the checkout: %w", err)
	}
	p, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return "", errors.New("no such file or folder in the checkout")
	}
	if err != nil {
		return "", err
	}
	if !within(root, p) {
		return "", errors.New("it leads outside the checkout (through a symbolic link)")
	}
	return p, nil
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && filepath.IsLocal(rel)
}

// loadManifests reads every *.yaml and *.yml file under dir, in lexical
// order of their paths, each document an object.
func (r *renderer) loadManifests(dir string) error {
	wrap := func(err error) error { return fmt.Errorf("kubernetes.manifests: %s: %w", dir, err) }
	root, err := r.inCheckout(dir)
	if err != nil {
		return wrap(err)
	}
	checkout, _ := filepath.EvalSymlinks(r.opts.SourceDir)
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir // .git and friends
			}
			return nil
		}
		if ext := filepath.Ext(p); ext == ".yaml" || ext == ".yml" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return wrap(err)
	}
	if len(files) == 0 {
		return wrap(errors.New("no *.yaml or *.yml files in it"))
	}
	for _, f := range files {
		rel, _ := filepath.Rel(checkout, f)
		rel = filepath.ToSlash(rel)
		real, err := filepath.EvalSymlinks(f)
		if err != nil {
			return fmt.Errorf("kubernetes.manifests: %s: %w", rel, err)
		}
		if !within(checkout, real) {
			return fmt.Errorf("kubernetes.manifests: %s: it is a symbolic link to outside the checkout", rel)
		}
		data, err := os.ReadFile(real)
		if err != nil {
			return fmt.Errorf("kubernetes.manifests: %s: %w", rel, err)
		}
		objs, err := parseDocuments(data, rel, "")
		if err != nil {
			if errors.Is(err, errKustomization) {
				return fmt.Errorf("kubernetes.manifests: %s: this is a kustomization, not a manifest: use kubernetes.kustomize: %s instead", rel, path.Dir(rel))
			}
			return fmt.Errorf("kubernetes.manifests: %w", err)
		}
		r.objs = append(r.objs, objs...)
	}
	return nil
}

var errKustomization = errors.New("a kustomization")

// document is one YAML document of a stream and the line it starts on.
type document struct {
	text string
	line int
}

// splitDocuments splits a YAML stream at its "---" lines.
func splitDocuments(data []byte) []document {
	var docs []document
	var cur strings.Builder
	start, line := 1, 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), len(data)+1)
	flush := func(next int) {
		docs = append(docs, document{text: cur.String(), line: start})
		cur.Reset()
		start = next
	}
	for sc.Scan() {
		line++
		l := sc.Text()
		if l == "---" || strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "---\t") {
			flush(line + 1)
			if rest := strings.TrimSpace(strings.TrimPrefix(l, "---")); rest != "" && !strings.HasPrefix(rest, "#") {
				// "--- {inline: document}"
				cur.WriteString(rest + "\n")
				start = line
			}
			continue
		}
		if l == "..." {
			flush(line + 1)
			continue
		}
		cur.WriteString(l)
		cur.WriteByte('\n')
	}
	flush(line + 1)
	return docs
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// helmSourceRE finds the "# Source: chart/templates/x.yaml" comment Helm
// starts each rendered document with.
var helmSourceRE = regexp.MustCompile(`(?m)^# Source: (.+)$`)

// parseDocuments reads the objects of a YAML stream. name is the file for
// messages; prefix, when set, replaces it in sources (Helm names each
// document's template instead).
func parseDocuments(data []byte, name, prefix string) ([]*object, error) {
	docs := splitDocuments(data)
	var out []*object
	n := 0
	for _, d := range docs {
		j, err := yaml.YAMLToJSONStrict([]byte(d.text))
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
			msg = strings.TrimPrefix(msg, "yaml: ")
			if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
				l, _ := strconv.Atoi(m[1])
				return nil, fmt.Errorf("%s:%d: invalid YAML: %s", name, d.line+l-1, strings.Replace(msg, m[0]+": ", "", 1))
			}
			return nil, fmt.Errorf("%s:%d: invalid YAML: %s", name, d.line, msg)
		}
		j = bytes.TrimSpace(j)
		if string(j) == "null" || len(j) == 0 {
			continue // empty, or only comments
		}
		n++
		where := name
		if len(docs) > 1 {
			where = fmt.Sprintf("%s (document %d)", name, n)
		}
		source := where
		if prefix != "" {
			source = prefix
			if m := helmSourceRE.FindStringSubmatch(d.text); m != nil {
				source += ": " + strings.TrimSpace(m[1])
			}
		}
		if j[0] != '{' {
			return nil, fmt.Errorf("%s:%d: the document is not a Kubernetes object (a mapping with apiVersion, kind and metadata)", name, d.line)
		}
		var probe map[string]any
		if err := json.Unmarshal(j, &probe); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, d.line, err)
		}
		apiVersion, _ := probe["apiVersion"].(string)
		kind, _ := probe["kind"].(string)
		if kind == "Kustomization" || (kind == "" && (probe["resources"] != nil || probe["bases"] != nil || probe["patches"] != nil)) {
			return nil, errKustomization
		}
		if apiVersion == "" || kind == "" {
			return nil, fmt.Errorf("%s:%d: the object has no apiVersion or no kind: every document must be a Kubernetes object", name, d.line)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, d.line, err)
		}
		if u.IsList() {
			err := u.EachListItem(func(item runtime.Object) error {
				o := item.(*unstructured.Unstructured)
				if o.GetName() == "" {
					return fmt.Errorf("%s:%d: an item of the %s has no metadata.name", name, d.line, kind)
				}
				out = append(out, &object{u: o, source: source})
				return nil
			})
			if err != nil {
				return nil, err
			}
			continue
		}
		if u.GetName() == "" {
			return nil, fmt.Errorf("%s:%d: %s has no metadata.name", name, d.line, kind)
		}
		out = append(out, &object{u: u, source: source})
	}
	return out, nil
}

// loadKustomize builds the kustomization at dir in-process.
func (r *renderer) loadKustomize(dir string) error {
	wrap := func(err error) error { return fmt.Errorf("kubernetes.kustomize: %s: %w", dir, err) }
	root, err := r.inCheckout(dir)
	if err != nil {
		return wrap(err)
	}
	checkout, _ := filepath.EvalSymlinks(r.opts.SourceDir)
	if err := checkKustomization(checkout, root, map[string]bool{}); err != nil {
		return wrap(err)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), root)
	if err != nil {
		return wrap(err)
	}
	for _, res := range m.Resources() {
		j, err := res.MarshalJSON()
		if err != nil {
			return wrap(err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			return wrap(fmt.Errorf("%s %q: %w", res.GetKind(), res.GetName(), err))
		}
		r.objs = append(r.objs, &object{u: u, source: "kubernetes.kustomize " + dir})
	}
	return nil
}

// kustomizationFiles are the names kustomize looks for, in its order.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// kustomizationRefs are the fields of a kustomization that name other
// files or kustomizations.
type kustomizationRefs struct {
	Resources    []string `json:"resources"`
	Bases        []string `json:"bases"`
	Components   []string `json:"components"`
	Generators   []string `json:"generators"`
	Transformers []string `json:"transformers"`
	Validators   []string `json:"validators"`
	Crds         []string `json:"crds"`
}

// remoteRE matches what kustomize would fetch over the network: URLs, git
// remotes and host/path forms like github.com/org/repo.
var remoteRE = regexp.MustCompile(`^([a-z][a-z0-9+.-]*://|git@|[a-z0-9-]+(\.[a-z0-9-]+)+(:[0-9]+)?/)|\?ref=|//`)

// checkKustomization walks the kustomizations dir refers to and refuses
// remote ones and local ones outside the checkout, before kustomize would
// fetch or read them: rendering reads the checkout and nothing else.
func checkKustomization(checkout, dir string, seen map[string]bool) error {
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	var data []byte
	var file string
	for _, name := range kustomizationFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			data, file = b, name
			break
		}
	}
	if file == "" {
		rel, _ := filepath.Rel(checkout, dir)
		return fmt.Errorf("no kustomization.yaml in %s", filepath.ToSlash(rel))
	}
	var k kustomizationRefs
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil // kustomize says it better
	}
	rel, _ := filepath.Rel(checkout, filepath.Join(dir, file))
	rel = filepath.ToSlash(rel)
	for _, list := range [][]string{k.Resources, k.Bases, k.Components, k.Generators, k.Transformers, k.Validators, k.Crds} {
		for _, ref := range list {
			p := filepath.Join(dir, filepath.FromSlash(ref))
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				if remoteRE.MatchString(ref) {
					return fmt.Errorf("%s refers to %q, which is remote: sandpit renders from the checkout alone and fetches nothing; vendor it into the repository and refer to it by a relative path", rel, ref)
				}
				continue // kustomize reports the missing file
			}
			if !within(checkout, real) {
				return fmt.Errorf("%s refers to %q, which is outside the checkout: keep every base and component inside the repository", rel, ref)
			}
			if fi, err := os.Stat(real); err == nil && fi.IsDir() {
				if err := checkKustomization(checkout, real, seen); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// loadHelm renders the chart like `helm template`: in-process, client
// only, with the subcharts vendored in its charts/ folder.
func (r *renderer) loadHelm(h *template.Helm) error {
	wrap := func(err error) error { return fmt.Errorf("kubernetes.helm: chart %s: %w", h.Chart, err) }
	dir, err := r.inCheckout(h.Chart)
	if err != nil {
		return wrap(err)
	}
	checkout, _ := filepath.EvalSymlinks(r.opts.SourceDir)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() { // else a packaged chart (.tgz)
		if err := treeInCheckout(checkout, dir, map[string]bool{}); err != nil {
			return wrap(err)
		}
	}
	ch, err := loader.Load(dir)
	if err != nil {
		return wrap(err)
	}
	if err := action.CheckDependencies(ch, ch.Metadata.Dependencies); err != nil {
		return wrap(fmt.Errorf("%v: run `helm dependency build %s` and commit the charts/ folder; sandpit does not download charts", err, h.Chart))
	}
	vals := map[string]any{}
	for i, f := range h.ValuesFiles {
		p, err := r.inCheckout(f)
		if err != nil {
			return fmt.Errorf("kubernetes.helm.values_files[%d]: %s: %w", i, f, err)
		}
		v, err := chartutil.ReadValuesFile(p)
		if err != nil {
			return fmt.Errorf("kubernetes.helm.values_files[%d]: %s: %w", i, f, err)
		}
		vals = mergeValues(vals, v)
	}
	if len(h.Values) > 0 {
		inline, err := r.expandValues("kubernetes.helm.values", h.Values)
		if err != nil {
			return err
		}
		vals = mergeValues(vals, inline.(map[string]any))
	}
	kv := r.opts.KubeVersion
	if kv == "" {
		kv = DefaultKubeVersion
	}
	kubeVersion, err := chartutil.ParseKubeVersion(kv)
	if err != nil {
		return fmt.Errorf("render: kube version %q: %w", kv, err)
	}
	relName := h.Release
	if relName == "" {
		relName = r.t.Name
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...interface{}) {}})
	inst.DryRun = true
	inst.DryRunOption = "client"
	inst.ClientOnly = true
	inst.Replace = true
	inst.IncludeCRDs = false
	inst.Namespace = r.opts.Namespace
	inst.ReleaseName = relName
	inst.KubeVersion = kubeVersion
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return wrap(err)
	}
	prefix := "kubernetes.helm chart " + h.Chart
	objs, err := parseDocuments([]byte(rel.Manifest), "the rendered chart", prefix)
	if err != nil {
		return wrap(err)
	}
	r.objs = append(r.objs, objs...)
	// Hooks are applied like the rest (a pre-install Job runs once, when
	// the sandbox is first applied), keeping their helm.sh/hook
	// annotations for the runtime; test hooks are left out, as `helm
	// template` does.
	for _, hook := range rel.Hooks {
		if isTestHook(hook) {
			continue
		}
		objs, err := parseDocuments([]byte(hook.Manifest), hook.Path, prefix+": "+hook.Path)
		if err != nil {
			return wrap(err)
		}
		r.objs = append(r.objs, objs...)
	}
	return nil
}

func isTestHook(h *release.Hook) bool {
	for _, e := range h.Events {
		if e == release.HookTest {
			return true
		}
	}
	return false
}

// treeInCheckout refuses a folder (a chart) holding symbolic links that
// lead out of the checkout: Helm's loader follows them, and would read
// the server's files into the chart's .Files.
func treeInCheckout(checkout, dir string, seen map[string]bool) error {
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.Type()&fs.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				continue // a dangling link: the loader reports it
			}
			if !within(checkout, real) {
				rel, _ := filepath.Rel(checkout, p)
				return fmt.Errorf("%s is a symbolic link to outside the checkout", filepath.ToSlash(rel))
			}
			if fi, err := os.Stat(real); err == nil && fi.IsDir() {
				if err := treeInCheckout(checkout, real, seen); err != nil {
					return err
				}
			}
			continue
		}
		if e.IsDir() {
			if err := treeInCheckout(checkout, p, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// mergeValues merges src over dst like helm's -f and --set: mappings
// merge key by key, anything else replaces.
func mergeValues(dst, src map[string]any) map[string]any {
	out := make(map[string]any, len(dst)+len(src))
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(dm, sm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// expandValues expands ${...} in the strings of inline values, in the
// template's scope.
func (r *renderer) expandValues(path string, v any) (any, error) {
	switch x := v.(type) {
	case string:
		return r.expand(path, x, "")
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ev, err := r.expandValues(path+"."+k, e)
			if err != nil {
				return nil, err
			}
			out[k] = ev
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ev, err := r.expandValues(fmt.Sprintf("%s[%d]", path, i), e)
			if err != nil {
				return nil, err
			}
			out[i] = ev
		}
		return out, nil
	}
	return v, nil
}
