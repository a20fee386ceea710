package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/testenv"
)

func TestSandboxes(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, idleTemplate)
	s.Apply(t, soloTemplate)
	post := func(body any) call { return call{method: "POST", path: "/api/v1/sandboxes", body: body} }
	get := func(path string) call { return call{method: "GET", path: path} }
	create := func(name, tmpl string) map[string]any { return map[string]any{"name": name, "template": tmpl} }
	with := func(m map[string]any, k string, v any) map[string]any { m[k] = v; return m }
	sc := s.Scrubber()

	runSteps(t, s, sc, "sandboxes", []step{
		{"create", post(create("demo", "idle")), 201},
		{"create_with_set", post(with(create("tuned", "solo"), "set", map[string]string{"env.LOG_LEVEL": "debug", "services.main.env.WORKERS": "4"})), 201},
		{"create_conflict", post(create("demo", "solo")), 409},
		{"create_invalid_name", post(create("Demo_1", "idle")), 400},
		{"create_double_hyphen", post(create("my--demo", "idle")), 400},
		{"create_long_name", post(create(strings.Repeat("a", 41), "idle")), 400},
		{"create_no_name", post(map[string]any{"template": "idle"}), 400},
		{"create_no_template", post(map[string]any{"name": "x"}), 400},
		{"create_unknown_template", post(create("x", "nope")), 404},
		{"create_unknown_version", post(with(create("x", "idle"), "version", 7)), 404},
		{"create_negative_version", post(with(create("x", "idle"), "version", -1)), 400},
		{"create_bad_set", post(with(create("x", "idle"), "set", map[string]string{
			"envv.A": "1", "env.1X": "y", "services.web.env.A": "b", "env.OK": "${services.nope.url}", "env.FINE": "ok",
		})), 400},
		{"create_ref_option", post(with(create("x", "idle"), "ref", "-x")), 400},
		{"create_ref_dots", post(with(create("x", "idle"), "ref", "a..b")), 400},
		{"create_ref_space", post(with(create("x", "idle"), "ref", "my branch")), 400},
		{"create_ref_without_source", post(with(create("x", "idle"), "ref", "main")), 400},
		{"create_unknown_field", post(map[string]any{"name": "x", "templat": "idle"}), 400},
	})
	s.WaitPhase(t, "demo", sandbox.PhaseReady)
	s.WaitPhase(t, "tuned", sandbox.PhaseReady)
	runSteps(t, s, sc, "sandboxes", []step{
		{"get", get("/api/v1/sandboxes/demo"), 200},
		{"get_unknown_near", get("/api/v1/sandboxes/dem"), 404},
		{"get_unknown", get("/api/v1/sandboxes/zzz"), 404},
		{"list_by_template", get("/api/v1/sandboxes?template=solo"), 200},
		{"list_by_unknown_template", get("/api/v1/sandboxes?template=other"), 200},
		{"list_by_phase_none", get("/api/v1/sandboxes?phase=Failed"), 200},
		{"list_bad_phase", get("/api/v1/sandboxes?phase=Running"), 400},
		// The local runtime has no manifests: render says where it works.
		{"render_local", get("/api/v1/sandboxes/demo/render"), 501},
		{"render_unknown", get("/api/v1/sandboxes/zzz/render"), 404},
	})
	t.Run("list", func(t *testing.T) {
		for _, q := range []string{"", "?phase=ready", "?phase=Ready&template=idle"} {
			l := decode[client.SandboxList](t, do(t, s, get("/api/v1/sandboxes"+q)))
			var names []string
			for _, sb := range l.Items {
				names = append(names, sb.Name)
			}
			want := "demo tuned"
			if strings.Contains(q, "idle") {
				want = "demo"
			}
			if got := strings.Join(names, " "); got != want {
				t.Errorf("list%s = %q, want %q (oldest first)", q, got, want)
			}
		}
	})

	var requested *time.Time
	runSteps(t, s, sc, "sandboxes", []step{
		{"delete", call{method: "DELETE", path: "/api/v1/sandboxes/demo"}, 202},
	})
	t.Run("delete_again", func(t *testing.T) {
		// Idempotent: the deletion keeps its first request time.
		first, err := s.Client.GetSandbox(context.Background(), "demo")
		if err == nil {
			requested = first.Spec.DeletionRequestedAt
		}
		r := do(t, s, call{method: "DELETE", path: "/api/v1/sandboxes/demo"})
		if r.status == http.StatusNotFound {
			return // already gone
		}
		if r.status != http.StatusAccepted {
			t.Fatalf("second DELETE = %d\n%s", r.status, r.body)
		}
		sb := decode[client.Sandbox](t, r)
		if requested != nil && (sb.Spec.DeletionRequestedAt == nil || !sb.Spec.DeletionRequestedAt.Equal(*requested)) {
			t.Errorf("second DELETE moved deletion_requested_at from %v to %v", requested, sb.Spec.DeletionRequestedAt)
		}
	})
	s.WaitGone(t, "demo")
	runSteps(t, s, sc, "sandboxes", []step{
		{"get_deleted", get("/api/v1/sandboxes/demo"), 404},
		{"delete_deleted", call{method: "DELETE", path: "/api/v1/sandboxes/demo"}, 404},
	})
	t.Run("name_reusable", func(t *testing.T) {
		s.Create(t, "demo", "solo")
	})
}

func TestEvents(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, soloTemplate)
	s.Create(t, "demo", "solo")
	s.WaitPhase(t, "demo", sandbox.PhaseReady)

	r := do(t, s, call{method: "GET", path: "/api/v1/sandboxes/demo/events"})
	evs := decode[client.EventList](t, r).Items
	if len(evs) < 3 {
		t.Fatalf("got %d events: %+v", len(evs), evs)
	}
	if evs[0].Reason != sandbox.ReasonCreated || evs[0].Message != "created from template solo version 1" {
		t.Errorf("first event = %+v, want Created", evs[0])
	}
	if last := evs[len(evs)-1]; last.Reason != sandbox.ReasonPhaseChanged || last.Message != "Provisioning → Ready" {
		t.Errorf("last event = %+v, want the change to Ready", last)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Errorf("events out of order: %d after %d", evs[i].Seq, evs[i-1].Seq)
		}
	}
	after := evs[len(evs)-2].Seq
	r = do(t, s, call{method: "GET", path: "/api/v1/sandboxes/demo/events?after=" + itoa(after)})
	if rest := decode[client.EventList](t, r).Items; len(rest) != 1 || rest[0].Seq != evs[len(evs)-1].Seq {
		t.Errorf("events after %d = %+v, want only the last one", after, rest)
	}
	runSteps(t, s, s.Scrubber(), "events", []step{
		{"bad_after", call{method: "GET", path: "/api/v1/sandboxes/demo/events?after=last"}, 400},
		{"negative_after", call{method: "GET", path: "/api/v1/sandboxes/demo/events?after=-1"}, 400},
		{"unknown_sandbox", call{method: "GET", path: "/api/v1/sandboxes/nope/events"}, 404},
		{"none_after_last", call{method: "GET", path: "/api/v1/sandboxes/demo/events?after=" + itoa(evs[len(evs)-1].Seq)}, 200},
	})
	t.Run("pages", func(t *testing.T) {
		// The API answers at most 1000 events at a time; the client reads
		// every page.
		sb, err := s.Client.GetSandbox(context.Background(), "demo")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1100; i++ {
			if _, err := s.Store.AppendEvent(context.Background(), sandbox.Event{SandboxID: sb.ID, Type: sandbox.EventNormal, Reason: sandbox.ReasonInfo, Message: fmt.Sprint("filler ", i)}); err != nil {
				t.Fatal(err)
			}
		}
		page := decode[client.EventList](t, do(t, s, call{method: "GET", path: "/api/v1/sandboxes/demo/events"})).Items
		if len(page) != 1000 {
			t.Errorf("one page has %d events, want 1000", len(page))
		}
		all, err := s.Client.Events(context.Background(), "demo", 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := len(evs) + 1100; len(all) < want || all[len(all)-1].Message != "filler 1099" {
			t.Errorf("the client read %d events, want at least %d ending with the last filler", len(all), want)
		}
	})
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// sse is one server-sent event.
type sse struct {
	id, event string
	data      []byte
}

// readSSE parses a text/event-stream into messages until it ends.
func readSSE(body *bufio.Reader, out chan<- sse) {
	defer close(out)
	var m sse
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if m.event != "" {
				out <- m
			}
			m = sse{}
		case strings.HasPrefix(line, ":"): // a comment: keep-alive
		case strings.HasPrefix(line, "id: "):
			m.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			m.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			m.data = append(m.data, line[6:]...)
		default:
			panic("unexpected event-stream line " + line)
		}
	}
}

// TestEventsFollow follows a sandbox from creation to deletion over
// server-sent events.
func TestEventsFollow(t *testing.T) {
	t.Parallel()
	s := testenv.Start(t)
	s.Apply(t, soloTemplate)
	sb := s.Create(t, "demo", "solo")

	ctx, cancel := context.WithTimeout(context.Background(), testenv.WaitTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/api/v1/sandboxes/demo/events?follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+testenv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("follow = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	msgs := make(chan sse)
	go readSSE(bufio.NewReader(resp.Body), msgs)

	var reasons []string
	phases := map[sandbox.Phase]bool{}
	deleteSent, deleted := false, false
	lastSeq := int64(0)
	for m := range msgs {
		switch m.event {
		case "event":
			var ev client.Event
			if err := json.Unmarshal(m.data, &ev); err != nil {
				t.Fatal(err)
			}
			if m.id != itoa(ev.Seq) {
				t.Errorf("event id %q, seq %d", m.id, ev.Seq)
			}
			if ev.Seq <= lastSeq || ev.SandboxID != sb.ID {
				t.Errorf("event %+v out of order (after %d) or of another sandbox", ev, lastSeq)
			}
			lastSeq = ev.Seq
			reasons = append(reasons, ev.Reason)
		case "sandbox":
			var cur client.Sandbox
			if err := json.Unmarshal(m.data, &cur); err != nil {
				t.Fatal(err)
			}
			phases[cur.Status.Phase] = true
			if cur.Status.Phase == sandbox.PhaseReady && !deleteSent {
				deleteSent = true
				if _, err := s.Client.DeleteSandbox(ctx, "demo"); err != nil {
					t.Fatal(err)
				}
			}
		case "deleted":
			if deleted {
				t.Error("two deleted messages")
			}
			deleted = true
			var d map[string]string
			if err := json.Unmarshal(m.data, &d); err != nil || d["name"] != "demo" || d["id"] != sb.ID {
				t.Errorf("deleted message %s", m.data)
			}
		default:
			t.Errorf("unexpected message %q", m.event)
		}
	}
	// The stream ended by itself after "deleted".
	if !deleted {
		t.Fatalf("the stream ended without a deleted message (ctx: %v)", ctx.Err())
	}
	got := strings.Join(reasons, " ")
	// What happens between the last read and the removal goes with the
	// sandbox, so only events before Ready are certain.
	for _, want := range []string{"Created", "PhaseChanged", "StageStarted", "StageSucceeded"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s event among %s", want, got)
		}
	}
	if !strings.HasPrefix(got, "Created ") {
		t.Errorf("events start with %s, want Created", got)
	}
	if !phases[sandbox.PhaseReady] {
		t.Errorf("no sandbox message in phase Ready (saw %v)", phases)
	}
}
