package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"sandpit.dev/sandpit/client"
	"sandpit.dev/sandpit/internal/sandbox"
)

// launchStages are the top-level stages in the order a launch runs them.
var launchStages = []string{sandbox.StageCheckout, sandbox.StageBuild, sandbox.StageDependencies, "init", sandbox.StageStart, sandbox.StageReady}

// progressView shows a launch: on a terminal a block of one line per stage
// redrawn in place, otherwise one line per event (for CI logs).
type progressView struct {
	w    io.Writer
	tty  bool
	name string
	// since is when what is shown began (the sandbox's creation, its
	// claim from a pool, a resume request): event lines show the time
	// elapsed since then. With onlySince, earlier events are history and
	// not shown.
	since     time.Time
	onlySince bool

	mu    sync.Mutex
	sb    *client.Sandbox
	lines int
	frame int
	start time.Time
	stop  chan struct{}
	done  chan struct{}
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// newProgressView starts showing sb's progress under header, counting from
// since (and showing no earlier events with onlySince).
func newProgressView(w io.Writer, tty bool, sb *client.Sandbox, header string, since time.Time, onlySince bool) *progressView {
	p := &progressView{w: w, tty: tty, name: sb.Name, sb: sb, since: since, onlySince: onlySince, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	fmt.Fprintln(w, header)
	if tty {
		go p.tick()
	} else {
		close(p.done)
	}
	return p
}

func (p *progressView) tick() {
	defer close(p.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.frame++
			p.draw()
			p.mu.Unlock()
		}
	}
}

func (p *progressView) close() {
	if p.tty {
		close(p.stop)
		<-p.done
		p.mu.Lock()
		p.draw()
		p.mu.Unlock()
	}
}

func (p *progressView) update(sb *client.Sandbox) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sb = sb
	if p.tty {
		p.draw()
	}
}

// event prints launch events as lines when not on a terminal.
func (p *progressView) event(ev client.Event) {
	if p.tty || p.onlySince && ev.Time.Before(p.since) {
		return
	}
	switch ev.Reason {
	case sandbox.ReasonStageStarted, sandbox.ReasonStageSucceeded, sandbox.ReasonStageFailed, sandbox.ReasonStageSkipped,
		sandbox.ReasonPhaseChanged, sandbox.ReasonRetrying, sandbox.ReasonAdopted, sandbox.ReasonResuming:
	default:
		if ev.Type != sandbox.EventWarning {
			return
		}
	}
	elapsed := ev.Time.Sub(p.since)
	if elapsed < 0 {
		elapsed = 0
	}
	indent := "  "
	if strings.Contains(ev.Stage, "/") {
		indent = "    "
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%8s %s%s\n", "+"+dur(elapsed), indent, firstLine(ev.Message))
}

// draw redraws the stage block in place. The caller holds p.mu.
func (p *progressView) draw() {
	var b strings.Builder
	if p.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.lines)
	}
	lines := p.render(time.Now())
	for _, l := range lines {
		b.WriteString("\r\x1b[2K")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	// Clear what a longer previous block left below.
	for i := len(lines); i < p.lines; i++ {
		b.WriteString("\r\x1b[2K\n")
	}
	if extra := p.lines - len(lines); extra > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", extra)
	}
	p.lines = len(lines)
	io.WriteString(p.w, b.String())
}

func (p *progressView) render(now time.Time) []string {
	st := p.sb.Status
	byName := map[string]sandbox.Stage{}
	running := map[string][]string{}
	for _, s := range st.Stages {
		byName[s.Name] = s
		if top, part, ok := strings.Cut(s.Name, "/"); ok && s.State == sandbox.StageRunning {
			running[top] = append(running[top], part)
		}
	}
	var out []string
	for _, name := range launchStages {
		s, ok := byName[name]
		if !ok {
			out = append(out, fmt.Sprintf("  %s %-13s", dim("·"), name))
			continue
		}
		var mark, d, note string
		switch s.State {
		case sandbox.StageRunning:
			mark = cyan(spinner[p.frame%len(spinner)])
			d = dur(now.Sub(s.StartedAt))
			if parts := running[name]; len(parts) > 0 {
				note = dim(strings.Join(parts, ", "))
			}
		case sandbox.StageSucceeded:
			mark, d = green("✓"), dur(s.Duration(now))
		case sandbox.StageFailed:
			mark, d, note = red("✗"), dur(s.Duration(now)), red(firstLine(s.Message))
		case sandbox.StageSkipped:
			mark, d, note = dim("-"), "", dim("skipped: "+s.Message)
		}
		out = append(out, strings.TrimRight(fmt.Sprintf("  %s %-13s %7s  %s", mark, name, d, note), " "))
	}
	phase := phaseOf(p.sb)
	line := fmt.Sprintf("  %s  %s", phase, dur(now.Sub(p.start)))
	if st.Message != "" && st.Phase != sandbox.PhaseReady {
		line += "  " + dim(firstLine(st.Message))
	}
	return append(out, line)
}

func color(code, s string) string { return "\x1b[" + code + "m" + s + "\x1b[0m" }
func dim(s string) string         { return color("2", s) }
func green(s string) string       { return color("32", s) }
func red(s string) string         { return color("31", s) }
func cyan(s string) string        { return color("36", s) }
