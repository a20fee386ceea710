package template

import "testing"

func TestBranchMatcher(t *testing.T) {
	cases := []struct {
		patterns []string
		match    []string
		noMatch  []string
	}{
		{nil, []string{"main", "feature/a/b", "x-no-infra"}, nil},
		{[]string{}, nil, []string{"main", "feature"}},
		{[]string{"*", "!*-no-infra"}, []string{"main", "feature/login", "no-infra-later"}, []string{"feature-no-infra", "a/b-no-infra"}},
		// Order does not matter: an exclusion wins wherever it stands.
		{[]string{"!*-no-infra", "*"}, []string{"main"}, []string{"feature-no-infra"}},
		{[]string{"!wip/*"}, []string{"main", "feature/wip"}, []string{"wip/x", "wip/x/y"}},
		{[]string{"feature/*", "release-?"}, []string{"feature/a", "feature/a/b", "release-1"}, []string{"main", "feature", "release-10", "xfeature/a"}},
		{[]string{"v[0-9].*"}, []string{"v1.2", "v9."}, []string{"va.1", "v10.1"}},
		{[]string{"[!a-m]*"}, []string{"next", "z"}, []string{"alpha", "main"}},
		{[]string{`lit\*`, "a.b"}, []string{"lit*", "a.b"}, []string{"litx", "axb"}},
		{[]string{"[]x]y"}, []string{"]y", "xy"}, []string{"y"}},
	}
	for _, c := range cases {
		m, err := CompileBranches(c.patterns)
		if err != nil {
			t.Fatalf("%q: %v", c.patterns, err)
		}
		for _, b := range c.match {
			if !m.Match(b) {
				t.Errorf("%q: %q does not match; want a match", c.patterns, b)
			}
		}
		for _, b := range c.noMatch {
			if m.Match(b) {
				t.Errorf("%q: %q matches; want none", c.patterns, b)
			}
		}
	}
}

func TestBranchPatternErrors(t *testing.T) {
	for _, p := range []string{"", "!", "feature/[a-z", "[]", "[!]", `x\`} {
		if _, err := CompileBranches([]string{p}); err == nil {
			t.Errorf("%q compiled; want an error", p)
		}
	}
}

func TestTemplateBranches(t *testing.T) {
	tp, err := Parse("t.yaml", []byte("apiVersion: sandpit/v1\nname: t\nservices: {a: {run: x}}\ngit: {branches: [\"*\", \"!*-no-infra\"]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := tp.Branches(); !m.Match("main") || m.Match("feature-no-infra") {
		t.Errorf("branches of the template match wrongly")
	}
	tp, err = Parse("t.yaml", []byte("apiVersion: sandpit/v1\nname: t\nservices: {a: {run: x}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !tp.Branches().Match("anything/at-all") {
		t.Errorf("a template without git matches no branch; want every branch")
	}
}

// An empty list written out means no branch; no key means every branch.
func TestBranchesEmptyListMatchesNothing(t *testing.T) {
	base := "apiVersion: sandpit/v1\nname: x\nservices:\n  s: {run: sleep 1}\n"
	for _, tc := range []struct {
		git  string
		want bool
	}{
		{"", true},
		{"git: {}\n", true},
		{"git: {branches: []}\n", false},
		{"git: {branches: [\"main\"]}\n", true},
	} {
		tpl, err := Parse("t.yaml", []byte(base+tc.git))
		if err != nil {
			t.Fatalf("%q: %v", tc.git, err)
		}
		if got := tpl.Branches().Match("main"); got != tc.want {
			t.Errorf("%q: main matches = %v, want %v", tc.git, got, tc.want)
		}
	}
}
