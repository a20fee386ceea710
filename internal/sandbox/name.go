package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// MaxNameLength bounds sandbox names so that "<endpoint>--<sandbox>" stays a
// valid DNS label (63) with room for an endpoint name, and so that the name
// fits in a Kubernetes namespace with a prefix.
const MaxNameLength = 40

// ValidateName checks a sandbox, endpoint, service or dependency name: a DNS
// label of lowercase letters, digits and single hyphens. A double hyphen is
// refused because hosts are "<endpoint>--<sandbox>.<domain>".
func ValidateName(kind, name string, max int) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name is empty: use lowercase letters, digits and '-'", kind)
	case len(name) > max:
		return fmt.Errorf("%s name %q is %d characters long; the limit is %d", kind, name, len(name), max)
	case strings.Contains(name, "--"):
		return fmt.Errorf("%s name %q contains \"--\", which separates endpoint and sandbox in host names; use a single '-'", kind, name)
	case name[0] == '-' || name[len(name)-1] == '-':
		return fmt.Errorf("%s name %q must start and end with a letter or digit", kind, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("%s name %q has %q: use lowercase letters, digits and '-'", kind, name, r)
		}
	}
	if name[0] >= '0' && name[0] <= '9' {
		return fmt.Errorf("%s name %q must start with a letter", kind, name)
	}
	return nil
}

// ValidateSandboxName checks a sandbox name.
func ValidateSandboxName(name string) error { return ValidateName("sandbox", name, MaxNameLength) }

// SuffixedName makes a valid sandbox name from free text (a branch, a
// template and ref) and a suffix of lowercase letters and digits (a hash,
// a random tag): the text's Slug — behind prefix when it would not start
// with a letter — cut so that "-" and the suffix fit in MaxNameLength.
func SuffixedName(text, prefix, suffix string) string {
	base := Slug(text)
	if base == "" || base[0] < 'a' || base[0] > 'z' {
		base = Slug(prefix + "-" + base)
	}
	if room := MaxNameLength - len(suffix) - 1; len(base) > room {
		base = strings.TrimRight(base[:room], "-")
	}
	return base + "-" + suffix
}

// LaunchName names the sandbox of a launch link: the template and ref, cut
// to fit, and a hash of everything the link asks for, so the same link
// always opens the same sandbox and different links never share one.
func LaunchName(tmpl, ref string, set map[string]string) string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", tmpl, ref)
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\x00", k, set[k])
	}
	return SuffixedName(tmpl+"-"+ref, "l", hex.EncodeToString(h.Sum(nil))[:6])
}
