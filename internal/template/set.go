package template

import (
	"fmt"
	"sort"
	"strings"
)

// setKey is a parsed --set key: NAME of the template's env (service ""),
// of one service's env, or of kubernetes.env; or a key of a ConfigMap in
// kubernetes.config.
type setKey struct {
	kind    setKind
	service string
	name    string // the env name, or the ConfigMap's key
	config  string // the ConfigMap
}

type setKind int

const (
	setEnv        setKind = iota // env.NAME and services.<svc>.env.NAME
	setKubeEnv                   // kubernetes.env.NAME
	setKubeConfig                // kubernetes.config.<configmap>.<key>
)

// parseSetKey reads "env.NAME", "services.<svc>.env.NAME",
// "kubernetes.env.NAME" or "kubernetes.config.<configmap>.<key>".
func (t *Template) parseSetKey(key string) (setKey, string) {
	forms := fmt.Sprintf("use env.<NAME> (every service), services.<service>.env.<NAME> (one service), kubernetes.env.<NAME> (every container on kubernetes) or kubernetes.config.<configmap>.<key>; services: %s", quoteList(t.serviceOrder()))
	var k setKey
	switch {
	case strings.HasPrefix(key, "kubernetes.env."):
		k.kind = setKubeEnv
		k.name = strings.TrimPrefix(key, "kubernetes.env.")
	case strings.HasPrefix(key, "kubernetes.config."):
		k.kind = setKubeConfig
		var problem string
		k.config, k.name, problem = t.splitConfigKey(strings.TrimPrefix(key, "kubernetes.config."))
		return k, problem
	case strings.HasPrefix(key, "env."):
		k.name = strings.TrimPrefix(key, "env.")
	case strings.HasPrefix(key, "services."):
		rest := strings.TrimPrefix(key, "services.")
		svc, name, ok := strings.Cut(rest, ".env.")
		if !ok || svc == "" || strings.Contains(svc, ".") {
			return k, "unknown key: " + forms
		}
		if _, exists := t.Services[svc]; !exists {
			return k, fmt.Sprintf("template %q has no service %q (services: %s)%s", t.Name, svc, quoteList(t.serviceOrder()), didYouMean(svc, t.serviceOrder()))
		}
		k.service, k.name = svc, name
	default:
		return k, "unknown key: " + forms
	}
	if !envNameRE.MatchString(k.name) {
		return k, fmt.Sprintf("%q is not a valid environment variable name: use letters, digits and '_', not starting with a digit", k.name)
	}
	return k, ""
}

// splitConfigKey splits "<configmap>.<key>". Both ConfigMap names and keys
// may hold dots; a ConfigMap the template's kubernetes.config names is
// matched first (the longest such name), otherwise the ConfigMap name ends
// at the first dot, so "app-config.settings.yaml" is key "settings.yaml"
// of ConfigMap "app-config".
func (t *Template) splitConfigKey(rest string) (cm, key, problem string) {
	const form = "write kubernetes.config.<configmap>.<key>, like kubernetes.config.app-config.LOG_LEVEL"
	if t.Kubernetes != nil {
		for name := range t.Kubernetes.Config {
			if strings.HasPrefix(rest, name+".") && len(name) > len(cm) {
				cm = name
			}
		}
	}
	if cm != "" {
		key = strings.TrimPrefix(rest, cm+".")
	} else {
		var ok bool
		if cm, key, ok = strings.Cut(rest, "."); !ok {
			return "", "", "no key after the ConfigMap name: " + form
		}
	}
	switch {
	case cm == "" || key == "":
		return cm, key, "empty ConfigMap name or key: " + form
	case len(cm) > maxObjectNameLength || !dnsSubdomainRE.MatchString(cm):
		return cm, key, fmt.Sprintf("%q is not a ConfigMap name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit", cm)
	case len(key) > maxObjectNameLength || !configKeyRE.MatchString(key):
		return cm, key, fmt.Sprintf("%q is not a ConfigMap key: use letters, digits, '-', '_' and '.'", key)
	}
	return cm, key, ""
}

// ValidateSet checks --set overrides against the template: the keys are
// env.<NAME> (every service), services.<service>.env.<NAME> (one
// service), kubernetes.env.<NAME> (every container the kubernetes runtime
// renders) and kubernetes.config.<configmap>.<key> (a ConfigMap key on
// kubernetes); the values may hold ${...} references, checked as they
// would be in the template. The error is an *ErrorList, one entry per bad
// key.
func (t *Template) ValidateSet(set map[string]string) error {
	var errs ErrorList
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	skip := func(string) bool { return false }
	for _, key := range keys {
		k, problem := t.parseSetKey(key)
		if problem != "" {
			errs.add(Pos{}, key, "--set %s: %s", key, problem)
			continue
		}
		refs, err := References(set[key])
		for _, r := range refs {
			if msg := t.checkRef(r.Ref, k.service, skip); msg != "" {
				errs.add(Pos{}, key, "--set %s: %s", key, msg)
			}
		}
		if err != nil {
			errs.add(Pos{}, key, "--set %s: %v", key, err)
		}
	}
	return errs.err()
}

// WithSet returns a deep copy of t with the --set overrides applied, after
// checking them with ValidateSet. An env.<NAME> override wins over every
// service's own NAME too (it is removed from their env, so the value lives
// in one place); services.<svc>.env.<NAME> wins over both for that service.
// kubernetes.env.<NAME> and kubernetes.config.<configmap>.<key> set those
// entries of the kubernetes section, creating it if needed.
func (t *Template) WithSet(set map[string]string) (*Template, error) {
	if err := t.ValidateSet(set); err != nil {
		return nil, err
	}
	c := t.Clone()
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	// Template-wide keys sort before services.*, so per-service ones land
	// last and win.
	sort.Strings(keys)
	for _, key := range keys {
		k, _ := t.parseSetKey(key)
		switch k.kind {
		case setKubeEnv:
			kube := c.kube()
			if kube.Env == nil {
				kube.Env = map[string]string{}
			}
			kube.Env[k.name] = set[key]
			continue
		case setKubeConfig:
			kube := c.kube()
			if kube.Config == nil {
				kube.Config = map[string]map[string]string{}
			}
			if kube.Config[k.config] == nil {
				kube.Config[k.config] = map[string]string{}
			}
			kube.Config[k.config][k.name] = set[key]
			continue
		}
		if k.service == "" {
			if c.Env == nil {
				c.Env = map[string]string{}
			}
			c.Env[k.name] = set[key]
			for _, s := range c.Services {
				delete(s.Env, k.name)
			}
			continue
		}
		s := c.Services[k.service]
		if s.Env == nil {
			s.Env = map[string]string{}
		}
		s.Env[k.name] = set[key]
	}
	return c, nil
}

func (t *Template) kube() *Kubernetes {
	if t.Kubernetes == nil {
		t.Kubernetes = &Kubernetes{}
	}
	return t.Kubernetes
}

// SetAffectsBuild says why --set overrides would change what a service's
// build is given (its env), or "" when they would not: overrides that only
// reach services without a build command apply at start. A warm pool's
// sandbox, built without overrides, can be claimed only when this is "".
func (t *Template) SetAffectsBuild(set map[string]string) string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		k, problem := t.parseSetKey(key)
		if problem != "" {
			return key + ": " + problem
		}
		if k.kind != setEnv {
			continue // the kubernetes runtime's objects, not a build's env
		}
		for _, name := range t.serviceOrder() {
			if (k.service == "" || k.service == name) && t.Services[name].Build != "" {
				return fmt.Sprintf("%s reaches the build of service %s", key, name)
			}
		}
	}
	return ""
}
