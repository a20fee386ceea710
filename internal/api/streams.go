package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/runtime"
	"sandpit.dev/sandpit/internal/sandbox"
	"sandpit.dev/sandpit/internal/store"
)

// streamContext ends when the client goes away or the server shuts down.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.cfg.BaseContext, cancel)
	return ctx, func() { stop(); cancel() }
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
	if q.Get("follow") != "true" {
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
			_ = send("sandbox", 0, cur)
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
	opts := runtime.LogOptions{Service: q.Get("service"), Follow: q.Get("follow") == "true"}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, &client.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf("tail=%q is not a line count", v)})
			return
		}
		opts.Tail = n
	}
	ctx, cancel := s.streamContext(r)
	defer cancel()
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
				}
			}
		}()
	}
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	started := false
	var mu sync.Mutex
	err := lr.Logs(ctx, sb.ID, opts, func(l runtime.LogLine) error {
		mu.Lock()
		defer mu.Unlock()
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
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
	if !started {
		if err != nil && !errors.Is(err, context.Canceled) {
			code, status := "internal", http.StatusInternalServerError
			if errors.Is(err, runtime.ErrNotFound) {
				code, status = "not_found", http.StatusNotFound
			}
			writeError(w, &client.Error{Status: status, Code: code, Message: err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
	}
	_ = bw.Flush()
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
	if ct := r.Header.Get("Content-Type"); ct != client.ExecContentType {
		writeError(w, &client.Error{Status: http.StatusUnsupportedMediaType, Code: "invalid_request", Message: "exec requests are " + client.ExecContentType + " frame streams"})
		return
	}
	typ, payload, err := client.ReadFrame(r.Body)
	var req client.ExecRequest
	if err == nil && typ == client.FrameStart {
		err = json.Unmarshal(payload, &req)
	} else if err == nil {
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
	rc := http.NewResponseController(w)
	// Stdin keeps arriving in the request body while output goes out.
	_ = rc.EnableFullDuplex()
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
	stdinR, stdinW := io.Pipe()
	go func() {
		for {
			typ, payload, err := client.ReadFrame(r.Body)
			if err != nil || typ == client.FrameStdinEOF {
				stdinW.Close()
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
	stdinR.Close()
	res := client.ExecResult{ExitCode: code}
	if err != nil {
		res.Error = err.Error()
	}
	b, _ := json.Marshal(res)
	wmu.Lock()
	_ = client.WriteFrame(w, client.FrameExit, b)
	_ = rc.Flush()
	wmu.Unlock()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
