package logfile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sort"
	"syscall"
	"time"
)

// Line is one parsed record, tagged with the unit whose files it came from.
type Line struct {
	Unit   string
	Time   time.Time
	Stream string
	Text   string
}

// Source is one file of a unit's log (its rotated predecessor, path+".1",
// is read too).
type Source struct {
	Unit string
	Path string
}

// Parse reads one record. Lines that are not records (a truncated write)
// come back with ok false.
func Parse(b []byte) (Line, bool) {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		return Line{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(b[:i]))
	if err != nil {
		return Line{}, false
	}
	rest := b[i+1:]
	j := bytes.IndexByte(rest, ' ')
	if j < 0 {
		return Line{Time: t, Stream: string(rest)}, true
	}
	return Line{Time: t, Stream: string(rest[:j]), Text: string(rest[j+1:])}, true
}

// PollInterval is how often Follow looks for new lines.
var PollInterval = 150 * time.Millisecond

// Read calls fn for the records of sources, merged in time order; the last
// tail records only when tail > 0. With follow it then keeps calling fn for
// new records until ctx ends, surviving rotation. fn's error stops it and is
// returned.
func Read(ctx context.Context, sources []Source, tail int, follow bool, fn func(Line) error) error {
	tailers := make([]*tailer, len(sources))
	var history []Line
	for i, s := range sources {
		t := &tailer{src: s}
		tailers[i] = t
		lines, err := t.history()
		if err != nil {
			return err
		}
		history = append(history, lines...)
	}
	defer func() {
		for _, t := range tailers {
			t.close()
		}
	}()
	sort.SliceStable(history, func(i, j int) bool { return history[i].Time.Before(history[j].Time) })
	if tail > 0 && len(history) > tail {
		history = history[len(history)-tail:]
	}
	for _, l := range history {
		if err := fn(l); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		var batch []Line
		for _, t := range tailers {
			lines, err := t.poll()
			if err != nil {
				return err
			}
			batch = append(batch, lines...)
		}
		sort.SliceStable(batch, func(i, j int) bool { return batch[i].Time.Before(batch[j].Time) })
		for _, l := range batch {
			if err := fn(l); err != nil {
				return err
			}
		}
	}
}

// tailer follows one file across rotations by keeping the open file: after
// a rotation it drains the old (now ".1") file, then opens the new one.
type tailer struct {
	src     Source
	f       *os.File
	ino     uint64
	r       *bufio.Reader
	partial []byte
}

func (t *tailer) history() ([]Line, error) {
	var out []Line
	if old, err := os.ReadFile(t.src.Path + ".1"); err == nil {
		out = append(out, t.parseAll(old)...)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := t.openCurrent(); err != nil {
		return nil, err
	}
	lines, err := t.drain()
	return append(out, lines...), err
}

func (t *tailer) parseAll(b []byte) []Line {
	var out []Line
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		if l, ok := Parse(b[:i]); ok {
			l.Unit = t.src.Unit
			out = append(out, l)
		}
		b = b[i+1:]
	}
	return out
}

func (t *tailer) openCurrent() error {
	f, err := os.Open(t.src.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not written yet; poll opens it later
	}
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	t.f, t.r, t.partial = f, bufio.NewReaderSize(f, 64<<10), nil
	t.ino = st.Sys().(*syscall.Stat_t).Ino
	return nil
}

// drain reads complete lines up to the current end of the open file.
func (t *tailer) drain() ([]Line, error) {
	if t.f == nil {
		return nil, nil
	}
	var out []Line
	for {
		chunk, err := t.r.ReadSlice('\n')
		if len(chunk) > 0 {
			if chunk[len(chunk)-1] == '\n' {
				line := chunk
				if len(t.partial) > 0 {
					line = append(t.partial, chunk...)
					t.partial = nil
				}
				if l, ok := Parse(line); ok {
					l.Unit = t.src.Unit
					out = append(out, l)
				}
			} else {
				t.partial = append(t.partial, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func (t *tailer) poll() ([]Line, error) {
	if t.f == nil {
		if err := t.openCurrent(); err != nil || t.f == nil {
			return nil, err
		}
	}
	out, err := t.drain()
	if err != nil {
		return out, err
	}
	st, err := os.Stat(t.src.Path)
	if err != nil || st.Sys().(*syscall.Stat_t).Ino == t.ino {
		return out, nil // not rotated (or removed with its sandbox)
	}
	// Rotated: the writer no longer writes the old file, but it may have
	// written to it between our drain and the rename. Read it to its end
	// before moving on.
	more, err := t.drain()
	out = append(out, more...)
	if err != nil {
		return out, err
	}
	t.close()
	if err := t.openCurrent(); err != nil {
		return out, err
	}
	more, err = t.drain()
	return append(out, more...), err
}

func (t *tailer) close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}
