package template

import (
	"fmt"
	"regexp"
	"strings"
)

// BranchMatcher decides which branches of a bound repository get a
// sandbox, from a template's git.branches (see Git.Branches): a branch
// matches when some inclusion pattern matches it and no exclusion ('!')
// pattern does. Order does not matter, so a list reads as a set: "these,
// except those".
type BranchMatcher struct {
	include, exclude []*regexp.Regexp
	// all: no inclusion pattern was given (nil list, or only exclusions).
	all bool
}

// CompileBranches compiles git.branches patterns. A nil list matches every
// branch; an empty, non-nil list matches none; a list of only exclusions
// matches every branch they do not exclude.
func CompileBranches(patterns []string) (*BranchMatcher, error) {
	m := &BranchMatcher{all: patterns == nil}
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		re, err := compileGlob(strings.TrimPrefix(p, "!"))
		if err != nil {
			return nil, fmt.Errorf("branch pattern %q: %w", p, err)
		}
		if neg {
			m.exclude = append(m.exclude, re)
		} else {
			m.include = append(m.include, re)
		}
	}
	if patterns != nil && len(m.include) == 0 && len(m.exclude) > 0 {
		m.all = true
	}
	return m, nil
}

// Match reports whether branch (a name without "refs/heads/") gets a
// sandbox.
func (m *BranchMatcher) Match(branch string) bool {
	in := m.all
	for _, re := range m.include {
		if in {
			break
		}
		in = re.MatchString(branch)
	}
	if !in {
		return false
	}
	for _, re := range m.exclude {
		if re.MatchString(branch) {
			return false
		}
	}
	return true
}

// Branches returns the template's branch matcher: every branch when the
// template has no git section or no git.branches. The patterns were
// checked when the template was parsed.
func (t *Template) Branches() *BranchMatcher {
	var patterns []string
	if t.Git != nil {
		patterns = t.Git.Branches
		if _, given := t.positions["git.branches"]; given && patterns == nil {
			patterns = []string{} // "branches: []" decodes as nil but means none
		}
	}
	m, err := CompileBranches(patterns)
	if err != nil {
		// Parse refuses such templates; match nothing rather than
		// everything if one slipped through.
		return &BranchMatcher{}
	}
	return m
}

// compileGlob turns a branch glob into an anchored regular expression: '*'
// matches any run of characters (slashes included: "feature/*" matches
// "feature/a/b"), '?' one character, "[...]" a class ("[!...]" or "[^...]"
// negated), and '\' makes the next character literal.
func compileGlob(glob string) (*regexp.Regexp, error) {
	if glob == "" {
		return nil, fmt.Errorf("is empty: write a glob like feature/* (a leading '!' excludes)")
	}
	var b strings.Builder
	b.WriteString(`^`)
	for i := 0; i < len(glob); i++ {
		c := glob[i]
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '\\':
			if i+1 == len(glob) {
				return nil, fmt.Errorf("ends with '\\': escape a character, or drop the backslash")
			}
			i++
			b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
		case '[':
			end := strings.IndexByte(glob[i+1:], ']')
			if end >= 0 && end == 0 {
				// "[]...]": a leading ']' is part of the class.
				if e := strings.IndexByte(glob[i+2:], ']'); e >= 0 {
					end = e + 1
				} else {
					end = -1
				}
			}
			if end < 0 {
				return nil, fmt.Errorf("has '[' at offset %d without a closing ']': close the class, or write \\[ for a literal '['", i)
			}
			class := glob[i+1 : i+1+end]
			neg := strings.HasPrefix(class, "!") || strings.HasPrefix(class, "^")
			if neg {
				class = class[1:]
			}
			if class == "" {
				return nil, fmt.Errorf("has an empty class at offset %d", i)
			}
			b.WriteString("[")
			if neg {
				b.WriteString("^")
			}
			for _, r := range class {
				if strings.ContainsRune(`\]^[`, r) {
					b.WriteByte('\\')
				}
				b.WriteRune(r)
			}
			b.WriteString("]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("is not a valid glob: %v", err)
	}
	return re, nil
}
