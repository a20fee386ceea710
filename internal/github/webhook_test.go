package github_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/internal/github"
)

// hookFixtures are the recorded deliveries the API's webhook tests use.
const hookFixtures = "../api/testdata/hooks"

func TestParseEvent(t *testing.T) {
	pr, err := os.ReadFile(filepath.Join(hookFixtures, "pull_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := github.ParseEvent("pull_request", "application/json", pr)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Repository.FullName != "Codertocat/Hello-World" || ev.PullRequest == nil || ev.PullRequest.Number != 2 {
		t.Errorf("parsed %+v", ev)
	}
	// The same payload form-encoded, as a webhook with content type
	// application/x-www-form-urlencoded sends it.
	form := []byte(url.Values{"payload": {string(pr)}}.Encode())
	if ev2, err := github.ParseEvent("pull_request", "application/x-www-form-urlencoded", form); err != nil || !reflect.DeepEqual(ev, ev2) {
		t.Errorf("form-encoded: %+v, %v", ev2, err)
	}
	for _, c := range []struct{ name, event, body, want string }{
		{"not JSON", "push", "payload", "decode the delivery's JSON payload"},
		{"no repository", "ping", `{"zen":"hi"}`, "names no repository"},
		{"empty full name", "push", `{"repository":{"clone_url":"https://github.com/a/b.git"}}`, "names no repository"},
		{"pull request without number", "pull_request", `{"action":"opened","repository":{"full_name":"a/b"},"pull_request":{"state":"open"}}`, "no valid number"},
		{"negative number", "pull_request", `{"action":"opened","repository":{"full_name":"a/b"},"pull_request":{"number":-3}}`, "no valid number"},
		{"numbers differ", "pull_request", `{"action":"opened","number":4,"repository":{"full_name":"a/b"},"pull_request":{"number":3}}`, "is not its pull request's"},
	} {
		if _, err := github.ParseEvent(c.event, "application/json", []byte(c.body)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v; want one containing %q", c.name, err, c.want)
		}
	}
}

// FuzzWebhook checks that parsing a webhook delivery never panics, that
// what parses keeps ParseEvent's promises (a repository with a full name;
// for a pull_request event, a pull request numbered > 0 and agreeing with
// the event's number), that it survives re-encoding unchanged, and that
// signature checks never panic and accept exactly Sign's answer.
func FuzzWebhook(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(hookFixtures, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no recorded deliveries in %s (%v)", hookFixtures, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		event := strings.TrimSuffix(filepath.Base(file), ".json")
		f.Add(event, false, data, "")
		f.Add(event, true, []byte(url.Values{"payload": {string(data)}}.Encode()), "sha256=00")
	}
	f.Add("ping", false, []byte(`{"zen":"Keep it logically awesome.","hook_id":1,"repository":{"full_name":"Codertocat/Hello-World"}}`), "sha256=zz")
	f.Add("delete", false, []byte(`{"ref":"feature","ref_type":"branch","repository":{"full_name":"a/b"}}`), "")
	f.Add("pull_request", false, []byte(`{"action":"closed","number":7,"pull_request":{"number":7,"head":{"repo":null}},"repository":{"full_name":"a/b"}}`), "")
	f.Fuzz(func(t *testing.T, event string, form bool, body []byte, sig string) {
		// The fuzzer has no per-input time limit: crash the worker on a
		// slow input instead, so that the input is saved.
		tm := time.AfterFunc(5*time.Second, func() { panic(fmt.Sprintf("slow input %q %v %q %q", event, form, body, sig)) })
		defer tm.Stop()
		ctype := "application/json"
		if form {
			ctype = "application/x-www-form-urlencoded"
		}
		secret := []byte("It's a Secret to Everybody")
		// Hex digits may be either case; nothing else may differ.
		if github.ValidSignature(secret, body, sig) && !strings.EqualFold(strings.TrimSpace(sig), github.Sign(secret, body)) {
			t.Fatalf("signature %q validates but is not Sign's %q", sig, github.Sign(secret, body))
		}
		if !github.ValidSignature(secret, body, github.Sign(secret, body)) {
			t.Fatal("Sign's own signature does not validate")
		}
		ev, err := github.ParseEvent(event, ctype, body)
		if err != nil {
			if ev != nil {
				t.Fatal("an event with an error")
			}
			return
		}
		if ev == nil {
			t.Fatal("nil event without an error")
		}
		if ev.Repository == nil || ev.Repository.FullName == "" {
			t.Fatalf("parsed event without a repository name: %+v", ev)
		}
		if pr := ev.PullRequest; event == "pull_request" && pr != nil {
			if pr.Number <= 0 || (ev.Number != 0 && ev.Number != pr.Number) {
				t.Fatalf("parsed pull request numbered %d (event %d)", pr.Number, ev.Number)
			}
			_ = pr.Fork()
			_ = pr.HasLabel([]string{"e2e", ""})
		}
		// Re-encoding round-trips, in both content types.
		enc, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := github.ParseEvent(event, "application/json", enc)
		if err != nil {
			t.Fatalf("re-encoded event %s does not parse: %v", enc, err)
		}
		if !reflect.DeepEqual(ev, again) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, again)
		}
		formEnc := []byte(url.Values{"payload": {string(enc)}}.Encode())
		if again, err := github.ParseEvent(event, "application/x-www-form-urlencoded", formEnc); err != nil || !reflect.DeepEqual(ev, again) {
			t.Fatalf("form-encoded round trip: %+v, %v", again, err)
		}
	})
}
