package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
	"sandpit.dev/sandpit/internal/template"
)

// streamContext ends when the client goes away or the server shuts down.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.cfg.BaseContext, cancel)
	return ctx, func() { stop(); cancel() }
}

// boolParam reads a boolean query parameter: true, false or left out
// (false). Anything else is refused rather than read as false, so that a
// typo such as follow=yes does not silently do the other thing.
func boolParam(q url.Values, name string) (bool, *client.Error) {
	switch v := q.Get(name); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("%s=%q: use %s=true or leave it out", name, v, name)}
	}
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	var after int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("after=%q is not a sequence number", v)})
			return
		}
		after = n
	}
	follow, e := boolParam(q, "follow")
	if e != nil {
		writeError(w, e)
		return
	}
	if !follow {
		evs, err := s.cfg.Store.ListEvents(r.Context(), sb.ID, after, 1000)
		if err != nil {
			writeError(w, storeError(err, ""))
			return
		}
		writeJSON(w, http.StatusOK, client.EventList{Items: evs})
		return
	}
	s.followEvents(w, r, sb, after)
}

// followEvents streams server-sent events: "sandbox" with the sandbox's
// state whenever it changes, "event" per new event, and "deleted" once the
// sandbox is gone (then the stream ends). Notifications only wake the loop;
// everything sent is re-read from the store, so nothing is missed.
func (s *Server) followEvents(w http.ResponseWriter, r *http.Request, sb *sandbox.Sandbox, after int64) {
	ctx, cancel := s.streamContext(r)
	defer cancel()
	sub := s.cfg.Broker.Subscribe(sb.ID)
	defer s.cfg.Broker.Unsubscribe(sub)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	send := func(event string, id int64, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if id > 0 {
			fmt.Fprintf(bw, "id: %d\n", id)
		}
		fmt.Fprintf(bw, "event: %s\ndata: %s\n\n", event, b)
		return nil
	}
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	var lastUpdate time.Time
	lastSeq := after
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		cur, err := s.cfg.Store.GetSandbox(ctx, sb.ID)
		gone := errors.Is(err, store.ErrNotFound)
		if err != nil && !gone {
			return
		}
		// Events first, then state: a client that stops at a phase has
		// seen the events that led there.
		evs, err := s.cfg.Store.ListEvents(ctx, sb.ID, lastSeq, 0)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return
		}
		for _, ev := range evs {
			_ = send("event", ev.Seq, ev)
			lastSeq = ev.Seq
		}
		if gone {
			_ = send("deleted", 0, map[string]string{"name": sb.Name, "id": sb.ID})
			_ = flush()
			return
		}
		if !cur.UpdatedAt.Equal(lastUpdate) {
			lastUpdate = cur.UpdatedAt
			_ = send("sandbox", 0, s.decorate(ctx, cur))
		}
		if err := flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-sub.C:
		case <-heartbeat.C:
			fmt.Fprint(bw, ": keep-alive\n\n")
		}
	}
}

// watchSandboxes streams server-sent "sandboxes" events, each the whole
// list (as GET without watch answers it), at once and whenever it changed.
// Notifications that come in a burst are taken together, so a busy server
// sends at most a few lists a second.
func (s *Server) watchSandboxes(w http.ResponseWriter, r *http.Request, opts store.ListOptions) {
	ctx, cancel := s.streamContext(r)
	defer cancel()
	sub := s.cfg.Broker.Subscribe("")
	defer s.cfg.Broker.Unsubscribe(sub)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	var last []byte
	for {
		list, err := s.sandboxList(ctx, opts)
		if err != nil {
			return
		}
		b, _ := json.Marshal(list)
		if !bytes.Equal(b, last) {
			last = b
			if _, err := fmt.Fprintf(w, "event: sandboxes\ndata: %s\n\n", b); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-sub.C:
			select {
			case <-ctx.Done():
				return
			case <-time.After(watchCoalesce):
			}
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		}
	}
}

// watchCoalesce is how long a list watch waits after a change for more.
const watchCoalesce = 150 * time.Millisecond

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	lr, ok := s.cfg.Runtime.(runtime.LogReader)
	if !ok {
		writeError(w, &client.Error{Status: http.StatusNotImplemented, Code: "unsupported", Message: "the " + s.cfg.Runtime.Name() + " runtime cannot read logs"})
		return
	}
	q := r.URL.Query()
	follow, e := boolParam(q, "follow")
	if e != nil {
		writeError(w, e)
		return
	}
	opts := runtime.LogOptions{Service: q.Get("service"), Follow: follow}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("tail=%q is not a line count", v)})
			return
		}
		opts.Tail = n
	}
	if opts.Service != "" && !s.checkUnit(w, r, sb, opts.Service) {
		return
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
	// An open follow counts as use of a running sandbox (it does not
	// wake a suspended one: its logs are readable as they are).
	if opts.Follow && s.cfg.Activity != nil && sb.Status.Phase != sandbox.PhaseSuspended {
		defer s.cfg.Activity.Begin(sb.Name)()
	}
	// changed wakes a follow that waits for the sandbox to launch.
	changed := make(chan struct{}, 1)
	if opts.Follow {
		// A follow ends when the sandbox is deleted.
		sub := s.cfg.Broker.Subscribe(sb.ID)
		defer s.cfg.Broker.Unsubscribe(sub)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-sub.C:
					if _, err := s.cfg.Store.GetSandbox(ctx, sb.ID); errors.Is(err, store.ErrNotFound) {
						cancel()
						return
					}
					select {
					case changed <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	started := false
	begin := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
	}
	if opts.Follow {
		// A follow answers at once, so the client knows it is connected
		// even when nothing is written for a while.
		begin()
		_ = rc.Flush()
	}
	var mu sync.Mutex
	var err error
	for {
		err = lr.Logs(ctx, sb.ID, opts, func(l runtime.LogLine) error {
			mu.Lock()
			defer mu.Unlock()
			begin()
			if err := enc.Encode(client.LogLine(l)); err != nil {
				return err
			}
			// Followed lines go out at once; history goes in large writes.
			if opts.Follow {
				if err := bw.Flush(); err != nil {
					return err
				}
				return rc.Flush()
			}
			return nil
		})
		// Not found here means not launched yet (the service was checked
		// above): no logs so far, and a follow waits for the launch.
		if !opts.Follow || !errors.Is(err, runtime.ErrNotFound) {
			break
		}
		select {
		case <-ctx.Done():
		case <-changed:
			continue
		}
		break
	}
	if !started {
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, runtime.ErrNotFound) {
			writeError(w, &client.Error{Status: http.StatusInternalServerError, Code: "internal", Message: runtimeMessage(err, sb)})
			return
		}
		begin()
	}
	_ = bw.Flush()
}

// units returns the services and dependencies of sb's template version.
func (s *Server) units(ctx context.Context, sb *sandbox.Sandbox) ([]string, error) {
	tv, err := s.cfg.Store.GetTemplate(ctx, sb.Spec.Template, sb.Spec.TemplateVersion)
	if err != nil {
		return nil, err
	}
	t, err := template.Parse(tv.Filename, tv.Source)
	if err != nil {
		return nil, err
	}
	return append(append([]string(nil), t.ServiceOrder...), t.DependencyOrder...), nil
}

// checkUnit answers 404 and returns false when sb's template has no
// service or dependency called name. When the template cannot be read, the
// runtime decides.
func (s *Server) checkUnit(w http.ResponseWriter, r *http.Request, sb *sandbox.Sandbox, name string) bool {
	units, err := s.units(r.Context(), sb)
	if err != nil || slices.Contains(units, name) {
		return true
	}
	writeError(w, &client.Error{Status: http.StatusNotFound, Code: "not_found",
		Message: fmt.Sprintf("sandbox %s has no service or dependency %q", sb.Name, name),
		Hint:    "choose one of: " + strings.Join(units, ", ")})
	return false
}

// runtimeMessage words a runtime error for the sandbox's user: by name
// rather than id, without the sentinel's text.
func runtimeMessage(err error, sb *sandbox.Sandbox) string {
	msg := strings.TrimSuffix(err.Error(), ": "+sandbox.ErrNotFound.Error())
	return strings.ReplaceAll(msg, sb.ID, sb.Name)
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	sb, ok := s.sandboxByName(w, r)
	if !ok {
		return
	}
	ex, ok := s.cfg.Runtime.(runtime.Execer)
	if !ok {
		writeError(w, &client.Error{Status: http.StatusNotImplemented, Code: "unsupported", Message: "the " + s.cfg.Runtime.Name() + " runtime cannot exec"})
		return
	}
	if sb.Status.Phase == sandbox.PhaseSuspended {
		writeError(w, &client.Error{Status: http.StatusConflict, Code: "suspended",
			Message: fmt.Sprintf("sandbox %q is suspended: its services are not running", sb.Name),
			Hint:    fmt.Sprintf("wake it with `sandpit resume %s --wait`, then run the command again", sb.Name)})
		return
	}
	if s.cfg.Activity != nil {
		defer s.cfg.Activity.Begin(sb.Name)()
	}
	if ct := r.Header.Get("Content-Type"); ct != client.ExecContentType {
		writeError(w, &client.Error{Status: http.StatusUnsupportedMediaType, Code: "invalid_request", Message: "exec requests are " + client.ExecContentType + " frame streams"})
		return
	}
	typ, payload, err := client.ReadFrame(r.Body)
	var req client.ExecRequest
	switch {
	case errors.Is(err, io.EOF):
		err = errors.New("the request body is empty: it must start with a start frame")
	case err == nil && typ == client.FrameStart:
		err = json.Unmarshal(payload, &req)
	case err == nil:
		err = errors.New("the stream must start with a start frame")
	}
	if err != nil {
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "exec: " + err.Error()})
		return
	}
	if req.Service == "" || len(req.Command) == 0 {
		writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "exec needs a service and a command", Hint: "sandpit exec NAME SERVICE -- COMMAND..."})
		return
	}
	if sb.Spec.Deleting() {
		writeError(w, &client.Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf("sandbox %s is being deleted", sb.Name)})
		return
	}
	if !s.checkUnit(w, r, sb, req.Service) {
		return
	}
	// Stdin goes to the command through an OS pipe, not an io.Pipe: with
	// an *os.File the command's stdin is the pipe itself, so its exit is
	// not held up by a copy of stdin that only ends when the client's
	// input does (a command that exits without reading all its input, with
	// -i from a terminal, would otherwise never return).
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		writeError(w, &client.Error{Status: http.StatusInternalServerError, Code: "internal", Message: "exec: " + err.Error()})
		return
	}
	defer stdinR.Close()
	rc := http.NewResponseController(w)
	// Stdin keeps arriving in the request body while output goes out.
	_ = rc.EnableFullDuplex()
	// The connection is not reused: the body may end unread (see below).
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Type", client.ExecContentType)
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()

	ctx, cancel := s.streamContext(r)
	defer cancel()
	var wmu sync.Mutex
	out := func(typ byte) io.Writer {
		return writerFunc(func(p []byte) (int, error) {
			wmu.Lock()
			defer wmu.Unlock()
			total := len(p)
			for len(p) > 0 {
				n := min(len(p), client.MaxFrame)
				if err := client.WriteFrame(w, typ, p[:n]); err != nil {
					return 0, err
				}
				p = p[n:]
			}
			return total, rc.Flush()
		})
	}
	stdinDone := make(chan struct{})
	go func() {
		defer close(stdinDone)
		defer stdinW.Close()
		for {
			typ, payload, err := client.ReadFrame(r.Body)
			if err != nil || typ == client.FrameStdinEOF {
				return
			}
			if typ == client.FrameStdin {
				if _, err := stdinW.Write(payload); err != nil {
					return
				}
			}
		}
	}()
	s.log.Info("exec", "sandbox", sb.Name, "service", req.Service, "command", req.Command[0])
	code, err := ex.Exec(ctx, sb.ID, runtime.ExecRequest{Service: req.Service, Command: req.Command, Stdin: stdinR, Stdout: out(client.FrameStdout), Stderr: out(client.FrameStderr)})
	res := client.ExecResult{ExitCode: code}
	if err != nil {
		res.Error = runtimeMessage(err, sb)
	}
	b, _ := json.Marshal(res)
	wmu.Lock()
	_ = client.WriteFrame(w, client.FrameExit, b)
	_ = rc.Flush()
	wmu.Unlock()
	// The body must not be read once the handler returns: unblock the
	// stdin reader (a write into the pipe fails once its read end is
	// closed; a read of the body, at the deadline, which leaves the
	// connection unusable, hence "Connection: close") and wait for it.
	stdinR.Close()
	if rc.SetReadDeadline(time.Now()) == nil {
		<-stdinDone
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
