package proxy

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"sandpit.dev/sandpit/internal/sandbox"
)

// Waking on request: a request for a suspended sandbox asks the server to
// start it (Config.Wake) and is held until the sandbox is ready, then routed
// like any other request. The proxy decides nothing about the sandbox; it
// only makes sure that a burst of requests asks once, and that no request
// waits without bound.

// wakeCall is the wake of one sandbox shared by the requests held for it.
// It lives while its Wake call runs or any request holds on to it, so that
// requests arriving in the meantime do not call Wake again.
type wakeCall struct {
	done chan struct{} // closed when Wake has returned
	// err is Wake's answer: read it after done is closed, or under
	// Proxy.wakeMu once finished is set.
	err error

	// Guarded by Proxy.wakeMu.
	holders  int
	finished bool
}

// awaitReady handles a request for a sandbox that is not Ready: it answers
// with a page and returns nil, or, for a suspended sandbox that Wake starts
// again, holds the request until the sandbox is Ready and returns its entry
// to route the request through.
func (p *Proxy) awaitReady(s *reqState, r *http.Request, e *entry) *entry {
	if e.target.Phase != sandbox.PhaseSuspended || p.wake == nil {
		s.page(r, notReady(e))
		return nil
	}
	held := time.Now()
	c := p.joinWake(r, s.sandbox, s.endpoint)
	defer p.leaveWake(s.sandbox, c)

	bound, browser := p.wakeTimeout, wantsHTML(r)
	if browser {
		bound = p.browserWait
	}
	timer := time.NewTimer(bound)
	defer timer.Stop()
	ctx := r.Context()
	wakeDone := c.done
	for {
		// The entry and the channel come together: a change made after
		// this look closes changed, so none is missed.
		e, changed := p.table.watch(s.sandbox)
		switch {
		case e == nil:
			s.page(r, p.unknownSandbox(r, s.sandbox))
			return nil
		case e.target.Phase == sandbox.PhaseReady:
			now := time.Now()
			p.metrics.wakeWait.Observe(now.Sub(held).Seconds())
			// From here on the request is timed like any other: the
			// upstream's header timeout and latency start now.
			s.start = now
			s.result = resultWoken
			return e
		case !stillWaking(e.target.Phase):
			s.page(r, notReady(e))
			return nil
		}
		if wakeDone == nil && c.err != nil {
			s.page(r, wakeRefused(e, c.err))
			return nil
		}
		select {
		case <-changed:
		case <-wakeDone:
			wakeDone = nil // look again: the table may have changed too
		case <-timer.C:
			if browser {
				s.page(r, wakingUp(e))
			} else {
				s.page(r, wakeTimedOut(e, bound))
			}
			return nil
		case <-ctx.Done():
			// The client left; nobody will read a page.
			s.result = resultClientClosed
			s.status = 499
			return nil
		}
	}
}

// stillWaking reports whether a sandbox in phase ph may yet become Ready
// without anyone doing anything more: it is Suspended while the runtime
// resumes it, and a wake that starts it afresh goes through Pending and
// Provisioning.
func stillWaking(ph sandbox.Phase) bool {
	switch ph {
	case sandbox.PhaseSuspended, sandbox.PhasePending, sandbox.PhaseProvisioning:
		return true
	}
	return false
}

// joinWake returns the wake in progress for a sandbox, calling Config.Wake
// in a goroutine of its own if there is none. The caller must leaveWake.
func (p *Proxy) joinWake(r *http.Request, sandboxName, endpoint string) *wakeCall {
	p.wakeMu.Lock()
	c := p.wakes[sandboxName]
	// A refusal is for the requests that were waiting for it; a request
	// that comes after it asks again, as the answer may have changed.
	start := c == nil || (c.finished && c.err != nil)
	if start {
		c = &wakeCall{done: make(chan struct{})}
		p.wakes[sandboxName] = c
	}
	c.holders++
	p.wakeMu.Unlock()
	if start {
		// Not bound to the request that happened to come first: its
		// client leaving must not cancel the wake for the others.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), p.wakeTimeout)
		go p.runWake(ctx, cancel, c, sandboxName, endpoint)
	}
	return c
}

func (p *Proxy) runWake(ctx context.Context, cancel context.CancelFunc, c *wakeCall, sandboxName, endpoint string) {
	defer cancel()
	defer func() {
		// A panic here would take the whole server down, not just one
		// request as in a handler: turn it into a refusal.
		if v := recover(); v != nil {
			p.log.Error("proxy: Wake panicked", "sandbox", sandboxName, "panic", v)
			c.err = fmt.Errorf("internal error: %v", v)
		}
		if c.err != nil {
			p.log.Info("proxy: sandbox not woken", "sandbox", sandboxName, "endpoint", endpoint, "err", c.err)
		}
		// Finished before done is closed, so that a holder that saw done
		// and leaves lets go of the call.
		p.wakeMu.Lock()
		c.finished = true
		p.forgetWake(sandboxName, c)
		p.wakeMu.Unlock()
		close(c.done)
	}()
	c.err = p.wake(ctx, sandboxName, endpoint)
}

func (p *Proxy) leaveWake(sandboxName string, c *wakeCall) {
	p.wakeMu.Lock()
	c.holders--
	p.forgetWake(sandboxName, c)
	p.wakeMu.Unlock()
}

// forgetWake drops a wake that is over and that nobody holds on to, so that
// the next request for the sandbox calls Wake again. p.wakeMu must be held.
func (p *Proxy) forgetWake(sandboxName string, c *wakeCall) {
	if c.finished && c.holders == 0 && p.wakes[sandboxName] == c {
		delete(p.wakes, sandboxName)
	}
}

// heldRequests is the number of requests held for a sandbox, for tests.
func (p *Proxy) heldRequests(sandboxName string) int {
	p.wakeMu.Lock()
	defer p.wakeMu.Unlock()
	if c := p.wakes[sandboxName]; c != nil {
		return c.holders
	}
	return 0
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
