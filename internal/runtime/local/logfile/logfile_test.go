package logfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func open(t *testing.T, path string, max int64) *Writer {
	t.Helper()
	w, err := Open(path, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func readAll(t *testing.T, srcs []Source, tail int) []Line {
	t.Helper()
	var out []Line
	if err := Read(context.Background(), srcs, tail, false, func(l Line) error { out = append(out, l); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func texts(ls []Line) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Text
	}
	return out
}

func TestWriteLineFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	w := open(t, path, 0)
	local := time.FixedZone("X", 3600)
	if err := w.WriteLine(time.Date(2026, 1, 2, 4, 4, 5, 6, local), "stdout", "hello world"); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteLine(at(1), "stderr", "two\nlines\r\nand\rmore"); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteLine(at(2), "system", ""); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	want := "2026-01-02T03:04:05.000000006Z stdout hello world\n" +
		"2026-01-02T03:04:05.001Z stderr two lines and more\n" +
		"2026-01-02T03:04:05.002Z system \n"
	if string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	w.Close()
	if err := w.WriteLine(at(3), "stdout", "late"); err == nil {
		t.Error("WriteLine after Close succeeded")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want Line
	}{
		{"2026-01-02T03:04:05Z stdout hi there\n", true, Line{Time: t0, Stream: "stdout", Text: "hi there"}},
		{"2026-01-02T03:04:05Z stdout ", true, Line{Time: t0, Stream: "stdout"}},
		{"2026-01-02T03:04:05Z stdout", true, Line{Time: t0, Stream: "stdout"}},
		{"2026-01-02T03:04:05Z", false, Line{}},
		{"not-a-time stdout hi", false, Line{}},
		{"", false, Line{}},
	} {
		got, ok := Parse([]byte(tc.in))
		if ok != tc.ok || !got.Time.Equal(tc.want.Time) || got.Stream != tc.want.Stream || got.Text != tc.want.Text {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRotationKeepsOnePredecessor(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "svc.log")
	const max = 300
	w := open(t, path, max)
	for i := range 100 {
		if err := w.WriteLine(at(i), "stdout", fmt.Sprintf("line %03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if fi, _ := e.Info(); fi.Size() > max {
			t.Errorf("%s has %d bytes, more than the cap %d", e.Name(), fi.Size(), max)
		}
	}
	if strings.Join(names, " ") != "svc.log svc.log.1" {
		t.Errorf("files %v, want svc.log and svc.log.1", names)
	}
	// What is kept is the newest lines, contiguous, oldest first.
	got := texts(readAll(t, []Source{{Unit: "svc", Path: path}}, 0))
	if len(got) == 0 || got[len(got)-1] != "line 099" {
		t.Fatalf("kept %v", got)
	}
	for i := 1; i < len(got); i++ {
		var a, b int
		fmt.Sscanf(got[i-1], "line %d", &a)
		fmt.Sscanf(got[i], "line %d", &b)
		if b != a+1 {
			t.Errorf("gap between %q and %q", got[i-1], got[i])
		}
	}
	// A reopened writer counts what the file already holds.
	w.Close()
	before, _ := os.ReadFile(path + ".1")
	w2 := open(t, path, max)
	for i := 100; i < 110; i++ {
		if err := w2.WriteLine(at(i), "stdout", fmt.Sprintf("line %03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := os.ReadFile(path + ".1")
	if string(before) == string(after) {
		t.Error("reopened writer did not rotate: it ignored the existing file's size")
	}
	if fi, _ := os.Stat(path); fi.Size() > max {
		t.Errorf("reopened writer wrote past the cap: %d", fi.Size())
	}
}

func TestOverlongRecordStillWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	w := open(t, path, 100)
	long := strings.Repeat("y", 500)
	for i := range 3 {
		if err := w.WriteLine(at(i), "stdout", long); err != nil {
			t.Fatal(err)
		}
	}
	got := readAll(t, []Source{{Unit: "x", Path: path}}, 0)
	if len(got) != 2 || got[1].Text != long {
		t.Errorf("kept %d records, want the last two (each alone in its file)", len(got))
	}
}

func TestLineWriter(t *testing.T) {
	long := strings.Repeat("z", maxLine)
	for _, tc := range []struct {
		name   string
		writes []string
		flush  bool
		want   []string
	}{
		{"lines", []string{"a\nb\n"}, false, []string{"a", "b"}},
		{"empty line", []string{"\n\n"}, false, []string{"", ""}},
		{"partial across writes", []string{"par", "ti", "al\nnext\n"}, false, []string{"partial", "next"}},
		{"byte by byte", strings.Split("ab\ncd\n", ""), false, []string{"ab", "cd"}},
		{"crlf", []string{"dos\r\n"}, false, []string{"dos"}},
		{"no newline is held", []string{"held"}, false, nil},
		{"no newline, flushed", []string{"held"}, true, []string{"held"}},
		{"flush with nothing pending", []string{"x\n"}, true, []string{"x"}},
		{"overlong line at once", []string{long + "tail\n"}, false, []string{long, "tail"}},
		{"overlong line without newline", []string{long + "tail"}, false, []string{long}},
		{"overlong line without newline, flushed", []string{long, "tail"}, true, []string{long, "tail"}},
		{"exactly the limit at once", []string{long + "\n"}, false, []string{long}},
		{"exactly the limit, newline later", []string{long, "\n"}, false, []string{long}},
		{"twice the limit in pieces", []string{long[:10], long[10:] + long, "!\n"}, false, []string{long, long, "!"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.log")
			w := open(t, path, 0)
			lw := w.Stream("stdout")
			for _, s := range tc.writes {
				n, err := lw.Write([]byte(s))
				if err != nil || n != len(s) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if tc.flush {
				if err := lw.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			got := readAll(t, []Source{{Unit: "x", Path: path}}, 0)
			if strings.Join(texts(got), "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				short := func(ss []string) []string {
					out := []string{}
					for _, s := range ss {
						if len(s) > 20 {
							s = fmt.Sprintf("%s…(%d)", s[:10], len(s))
						}
						out = append(out, s)
					}
					return out
				}
				t.Errorf("records %q, want %q", short(texts(got)), short(tc.want))
			}
			for _, l := range got {
				if l.Stream != "stdout" {
					t.Errorf("stream %q", l.Stream)
				}
			}
		})
	}
}

func TestLineWriterReportsWriteErrors(t *testing.T) {
	w := open(t, filepath.Join(t.TempDir(), "x.log"), 0)
	lw := w.Stream("stdout")
	w.Close()
	n, err := lw.Write([]byte("a\nb\n"))
	if n != 4 || err == nil {
		t.Errorf("Write to a closed log = %d, %v; want all bytes taken and an error", n, err)
	}
}

func TestReadMergesSourcesInTimeOrder(t *testing.T) {
	dir := t.TempDir()
	build := open(t, filepath.Join(dir, "api.task.log"), 0)
	run := open(t, filepath.Join(dir, "api.log"), 200)
	db := open(t, filepath.Join(dir, "db.log"), 0)
	write := func(w *Writer, ms int, stream, text string) {
		t.Helper()
		if err := w.WriteLine(at(ms), stream, text); err != nil {
			t.Fatal(err)
		}
	}
	write(build, 0, "build", "b0")
	write(db, 1, "stdout", "d1")
	write(build, 2, "build", "b2")
	for i := 3; i < 12; i++ { // enough to rotate api.log once
		write(run, i*10, "stdout", fmt.Sprintf("r%d", i*10))
	}
	write(db, 35, "stderr", "d35")
	write(build, 200, "init", "i200")
	if _, err := os.Stat(filepath.Join(dir, "api.log.1")); err != nil {
		t.Fatalf("test needs api.log rotated: %v", err)
	}
	srcs := []Source{
		{Unit: "api", Path: filepath.Join(dir, "api.task.log")},
		{Unit: "api", Path: filepath.Join(dir, "api.log")},
		{Unit: "db", Path: filepath.Join(dir, "db.log")},
		{Unit: "none", Path: filepath.Join(dir, "never-written.log")},
	}
	got := readAll(t, srcs, 0)
	for i := 1; i < len(got); i++ {
		if got[i].Time.Before(got[i-1].Time) {
			t.Errorf("out of order: %v before %v", got[i-1], got[i])
		}
	}
	joined := strings.Join(texts(got), " ")
	for _, want := range []string{"b0 d1 b2 ", " r30 d35 r40 ", " r110 i200"} {
		if !strings.Contains(" "+joined+" ", want) && !strings.HasSuffix(joined, strings.TrimSpace(want)) {
			t.Errorf("merged %q lacks %q", joined, want)
		}
	}
	for _, l := range got {
		if (strings.HasPrefix(l.Text, "d") && l.Unit != "db") || (!strings.HasPrefix(l.Text, "d") && l.Unit != "api") {
			t.Errorf("line %v tagged with the wrong unit", l)
		}
	}
	for _, tc := range []struct {
		tail int
		want string
	}{
		{1, "i200"},
		{3, "r100 r110 i200"},
		{len(got), joined},
		{len(got) + 5, joined},
		{0, joined},
	} {
		if g := strings.Join(texts(readAll(t, srcs, tc.tail)), " "); g != tc.want {
			t.Errorf("tail %d = %q, want %q", tc.tail, g, tc.want)
		}
	}
	// fn's error stops Read and is returned.
	stop := errors.New("stop")
	n := 0
	if err := Read(context.Background(), srcs, 0, false, func(Line) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("Read with a failing fn = %v after %d lines", err, n)
	}
}

// follow runs Read with follow and hands its lines over a channel.
func follow(t *testing.T, srcs []Source, tail int) (<-chan Line, context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lines := make(chan Line, 10000)
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- Read(ctx, srcs, tail, true, func(l Line) error { lines <- l; return nil })
		close(finished)
	}()
	t.Cleanup(func() { cancel(); <-finished })
	return lines, cancel, done
}

func expect(t *testing.T, lines <-chan Line, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case l := <-lines:
			if l.Text != w {
				t.Fatalf("got %q, want %q", l.Text, w)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("timed out waiting for %q", w)
		}
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	old := PollInterval
	PollInterval = 5 * time.Millisecond
	t.Cleanup(func() { PollInterval = old })

	dir := t.TempDir()
	path := filepath.Join(dir, "svc.log")
	w := open(t, path, 250)
	for i := range 3 {
		_ = w.WriteLine(at(i), "stdout", fmt.Sprintf("old %d", i))
	}
	lines, cancel, done := follow(t, []Source{{Unit: "svc", Path: path}, {Unit: "late", Path: filepath.Join(dir, "late.log")}}, 2)
	expect(t, lines, "old 1", "old 2")
	// One line at a time, each seen before the next: every rotation is
	// crossed while following, and nothing is lost or repeated.
	for i := range 40 {
		_ = w.WriteLine(at(100+i), "stdout", fmt.Sprintf("new %d", i))
		expect(t, lines, fmt.Sprintf("new %d", i))
	}
	// Several lines and a rotation between two polls.
	var want []string
	for i := range 10 {
		s := fmt.Sprintf("burst %d", i)
		_ = w.WriteLine(at(200+i), "stdout", s)
		want = append(want, s)
	}
	expect(t, lines, want...)
	// A file that did not exist when following started is picked up.
	late := open(t, filepath.Join(dir, "late.log"), 0)
	_ = late.WriteLine(at(300), "stdout", "late line")
	expect(t, lines, "late line")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not end with its context")
	}
	select {
	case l := <-lines:
		t.Errorf("unexpected extra line %v", l)
	default:
	}
}

// The tailer keeps a partial record until its newline arrives, and drains
// the rotated file before moving to the new one.
func TestTailerPollSteps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "svc.log")
	if err := os.WriteFile(path, []byte("2026-01-02T03:04:05Z stdout first\n2026-01-02T03:04:05Z stdout par"), 0o644); err != nil {
		t.Fatal(err)
	}
	tl := &tailer{src: Source{Unit: "svc", Path: path}}
	defer tl.close()
	hist, err := tl.history()
	if err != nil || strings.Join(texts(hist), ",") != "first" {
		t.Fatalf("history = %v, %v", texts(hist), err)
	}
	poll := func(want string) {
		t.Helper()
		got, err := tl.poll()
		if err != nil || strings.Join(texts(got), ",") != want {
			t.Fatalf("poll = %q, %v; want %q", texts(got), err, want)
		}
	}
	poll("")
	appendTo := func(s string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	appendTo("tial\n")
	poll("partial")
	// The writer appends, rotates, and writes to the new file, all
	// between two polls.
	appendTo("2026-01-02T03:04:06Z stdout before rotation\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("2026-01-02T03:04:07Z stdout after rotation\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll("before rotation,after rotation")
	poll("")
	// The sandbox was deleted: nothing more, no error.
	os.Remove(path)
	os.Remove(path + ".1")
	poll("")
}
