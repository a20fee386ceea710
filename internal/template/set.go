package template

import (
	"fmt"
	"sort"
	"strings"
)

// setKey is a parsed --set key: NAME of the template's env (service "")
// or of one service's env.
type setKey struct {
	service string
	name    string
}

// parseSetKey reads "env.NAME" or "services.<svc>.env.NAME".
func (t *Template) parseSetKey(key string) (setKey, string) {
	forms := fmt.Sprintf("use env.<NAME> (every service) or services.<service>.env.<NAME> (one service); services: %s", quoteList(t.serviceOrder()))
	var k setKey
	switch {
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

// ValidateSet checks --set overrides against the template: the keys are
// env.<NAME> (every service) and services.<service>.env.<NAME> (one
// service), the values may hold ${...} references, checked as they would be
// in the template. The error is an *ErrorList, one entry per bad key.
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
		for _, name := range t.serviceOrder() {
			if (k.service == "" || k.service == name) && t.Services[name].Build != "" {
				return fmt.Sprintf("%s reaches the build of service %s", key, name)
			}
		}
	}
	return ""
}
