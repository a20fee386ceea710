package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

// TestLaunch covers launch links: the first visit creates the sandbox,
// later ones open the same one, and a Ready one redirects to its endpoint.
func TestLaunch(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, idleTemplate)
	s.Apply(t, soloTemplate)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	open := func(t *testing.T, query, accept string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", s.URL+"/launch?"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testenv.Token)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	link := "template=idle&ref=&set.env.LOG_LEVEL=debug"

	resp, body := open(t, link, "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("first visit = %d, want 201\n%s", resp.StatusCode, body)
	}
	var first client.Sandbox
	if err := json.Unmarshal(body, &first); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.ValidateSandboxName(first.Name); err != nil || !strings.HasPrefix(first.Name, "idle-") {
		t.Errorf("name %q: %v", first.Name, err)
	}
	if first.Spec.Set["env.LOG_LEVEL"] != "debug" {
		t.Errorf("set %v", first.Spec.Set)
	}

	// The same link, while it launches or once it is Ready: the same
	// sandbox. A browser gets a page that reloads, or the redirect.
	resp, body = open(t, link, "text/html,application/xhtml+xml;q=0.9")
	switch resp.StatusCode {
	case http.StatusOK:
		if !strings.Contains(string(body), `<meta http-equiv="refresh" content="2">`) || !strings.Contains(string(body), first.Name) {
			t.Errorf("status page:\n%s", body)
		}
	case http.StatusSeeOther:
	default:
		t.Fatalf("second visit = %d\n%s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	s.WaitPhase(t, first.Name, sandbox.PhaseReady)
	resp, body = open(t, link, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != testenv.EndpointURL(first.Name, "app") {
		t.Fatalf("visit of a Ready sandbox = %d, Location %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	var again client.Sandbox
	if err := json.Unmarshal(body, &again); err != nil || again.ID != first.ID {
		t.Errorf("opened %s (%v), want the sandbox the first visit made, %s", again.ID, err, first.ID)
	}
	resp, body = open(t, link, "text/html")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(string(body), `<a href="`+testenv.EndpointURL(first.Name, "app")+`">`) {
		t.Errorf("browser visit of a Ready sandbox = %d\n%s", resp.StatusCode, body)
	}
	// Parameters in another order are the same link.
	resp, _ = open(t, "set.env.LOG_LEVEL=debug&template=idle", "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("reordered link = %d, want 303 to the same sandbox", resp.StatusCode)
	}
	// Another override is another sandbox.
	resp, body = open(t, "template=idle&set.env.LOG_LEVEL=info", "")
	var other client.Sandbox
	if err := json.Unmarshal(body, &other); resp.StatusCode != http.StatusCreated || err != nil || other.Name == first.Name {
		t.Errorf("another link = %d, name %q (first %q)\n%s", resp.StatusCode, other.Name, first.Name, body)
	}
	// A name of the link's own; a template without endpoints answers the
	// sandbox once Ready.
	resp, _ = open(t, "template=solo&name=mine", "")
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("named link = %d", resp.StatusCode)
	}
	s.WaitPhase(t, "mine", sandbox.PhaseReady)
	resp, _ = open(t, "template=solo&name=mine", "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("named link of a Ready sandbox without endpoints = %d, want 200", resp.StatusCode)
	}

	get := func(q string) call { return call{method: "GET", path: "/launch?" + q} }
	runSteps(t, s, s.Scrubber(), "launch", []step{
		{"unknown_template", get("template=nope"), 404},
		{"no_template", get("ref=main"), 400},
		{"bad_set", get("template=idle&set.envv.A=1"), 400},
		{"ref_without_source", get("template=idle&ref=main"), 400},
		{"unknown_parameter", get("template=idle&sett.env.A=1"), 400},
		{"twice", get("template=idle&template=solo"), 400},
		{"bad_name", get("template=idle&name=" + url.QueryEscape("Not A Name")), 400},
		{"other_template", get("template=idle&name=mine"), 409},
		{"no_token", call{method: "GET", path: "/launch?template=idle", auth: "-"}, 401},
		{"wrong_method", call{method: "POST", path: "/launch?template=idle"}, 405},
	})
}
