package sandbox

import (
	"strings"
	"testing"
)

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"main":                 "main",
		"Feature/Login_Page":   "feature-login-page",
		"--a//b__c--":          "a-b-c",
		"dependabot/npm/x@1.2": "dependabot-npm-x-1-2",
		"ÄÖÜ":                  "",
		"123-fix":              "123-fix",
	} {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBranchNames(t *testing.T) {
	long := "feature/" + strings.Repeat("very-long-branch-name-", 5)
	for _, br := range []string{"main", "Feature/X", "feature-x", "123-fix", "ÄÖÜ", long, long + "2", "a--b", "x-"} {
		plain, hashed := BranchNames("shop", br)
		if plain != "" {
			if err := ValidateSandboxName(plain); err != nil {
				t.Errorf("plain name of %q: %v", br, err)
			}
		}
		if err := ValidateSandboxName(hashed); err != nil {
			t.Errorf("hashed name of %q: %v", br, err)
		}
		p2, h2 := BranchNames("shop", br)
		if p2 != plain || h2 != hashed {
			t.Errorf("names of %q are not deterministic", br)
		}
	}
	if p, _ := BranchNames("shop", "Feature/X"); p != "feature-x" {
		t.Errorf("plain name of Feature/X = %q, want feature-x", p)
	}
	if p, _ := BranchNames("shop", "123-fix"); p != "" {
		t.Errorf("a slug starting with a digit has plain name %q; want none", p)
	}
	if p, _ := BranchNames("shop", long); p != "" {
		t.Errorf("a too long slug has plain name %q; want none", p)
	}
	// Branches that slugify alike, and one branch in two repositories,
	// get different hashed names.
	_, a := BranchNames("shop", "Feature/X")
	_, b := BranchNames("shop", "feature-x")
	_, c := BranchNames("web", "feature-x")
	_, d := BranchNames("shop", long)
	_, e := BranchNames("shop", long+"2")
	seen := map[string]bool{}
	for _, n := range []string{a, b, c, d, e} {
		if seen[n] {
			t.Errorf("hashed name %q given twice", n)
		}
		seen[n] = true
	}
	if !strings.HasPrefix(d, "feature-very-long") || len(d) > MaxNameLength {
		t.Errorf("hashed name of a long branch = %q", d)
	}
}

func TestPRNames(t *testing.T) {
	p, h := PRNames("shop", 123)
	if p != "pr-123" || !strings.HasPrefix(h, "pr-123-") {
		t.Errorf("PRNames = %q, %q", p, h)
	}
	if _, h2 := PRNames("web", 123); h2 == h {
		t.Errorf("two repositories' PR 123 share hashed name %q", h)
	}
}

func TestSuffixedName(t *testing.T) {
	long := strings.Repeat("abc-", 20)
	for _, tc := range []struct{ text, prefix, suffix, want string }{
		{"shop-main", "ci", "x1y2z", "shop-main-x1y2z"},
		{"Shop/Feature_Login", "ci", "abcde", "shop-feature-login-abcde"},
		{"", "b", "0123abcd", "b-0123abcd"},
		{"123-fix", "b", "0123abcd", "b-123-fix-0123abcd"},
		{"--", "l", "abcdef", "l-abcdef"},
		{long, "l", "abcdef", "abc-abc-abc-abc-abc-abc-abc-abc-a-abcdef"},
	} {
		got := SuffixedName(tc.text, tc.prefix, tc.suffix)
		if got != tc.want {
			t.Errorf("SuffixedName(%q, %q, %q) = %q, want %q", tc.text, tc.prefix, tc.suffix, got, tc.want)
		}
		if err := ValidateSandboxName(got); err != nil {
			t.Errorf("SuffixedName(%q) = %q: %v", tc.text, got, err)
		}
	}
}
