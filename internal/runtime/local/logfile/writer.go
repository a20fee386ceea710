package logfile

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultMaxBytes caps one log file; with its ".1" predecessor a unit keeps
// at most twice this much per file.
const DefaultMaxBytes = 8 << 20

// maxLine bounds one record; longer output is split so a program that never
// prints a newline cannot make the writer buffer without limit.
const maxLine = 16 << 10

// Writer appends records to a size-capped file.
type Writer struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
	buf  []byte
}

// Open opens path for appending, creating it with mode 0640.
func Open(path string, maxBytes int64) (*Writer, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	w := &Writer{path: path, max: maxBytes}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", w.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log %s: %w", w.path, err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// WriteLine appends one record. Newlines inside text are replaced by spaces
// so a record is always one line.
func (w *Writer) WriteLine(t time.Time, stream, text string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("log %s is closed", w.path)
	}
	w.buf = w.buf[:0]
	w.buf = t.UTC().AppendFormat(w.buf, time.RFC3339Nano)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, stream...)
	w.buf = append(w.buf, ' ')
	if strings.ContainsAny(text, "\n\r") {
		text = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(text)
	}
	w.buf = append(w.buf, text...)
	w.buf = append(w.buf, '\n')
	if w.size > 0 && w.size+int64(len(w.buf)) > w.max {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(w.buf)
	w.size += int64(n)
	return err
}

func (w *Writer) rotate() error {
	w.f.Close()
	w.f = nil
	if err := os.Rename(w.path, w.path+".1"); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("rotate log %s: %w", w.path, err)
	}
	return w.open()
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// Stream returns an io.Writer that turns a byte stream (a process's stdout,
// say) into records of the given stream name, one per line. Call Flush when
// the stream ends to write a final line that had no newline.
func (w *Writer) Stream(stream string) *LineWriter {
	return &LineWriter{w: w, stream: stream}
}

// LineWriter splits written bytes into lines. It is safe for one writer.
type LineWriter struct {
	w       *Writer
	stream  string
	pending []byte
}

// Write implements io.Writer. It never fails the writer (a program whose
// log cannot be written should keep running), but reports the first error.
func (l *LineWriter) Write(p []byte) (int, error) {
	n := len(p)
	var firstErr error
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.pending = append(l.pending, p...)
			// Only more than maxLine is split: a line of exactly maxLine
			// bytes whose newline comes in the next write is one record,
			// as it is when written at once.
			for len(l.pending) > maxLine {
				if err := l.emit(l.pending[:maxLine]); err != nil && firstErr == nil {
					firstErr = err
				}
				l.pending = append(l.pending[:0], l.pending[maxLine:]...)
			}
			break
		}
		line := p[:i]
		if len(l.pending) > 0 {
			line = append(l.pending, line...)
			l.pending = l.pending[:0]
		}
		for len(line) > maxLine {
			if err := l.emit(line[:maxLine]); err != nil && firstErr == nil {
				firstErr = err
			}
			line = line[maxLine:]
		}
		if err := l.emit(line); err != nil && firstErr == nil {
			firstErr = err
		}
		p = p[i+1:]
	}
	return n, firstErr
}

func (l *LineWriter) emit(line []byte) error {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return l.w.WriteLine(time.Now(), l.stream, string(line))
}

// Flush writes a pending partial line.
func (l *LineWriter) Flush() error {
	if len(l.pending) == 0 {
		return nil
	}
	err := l.emit(l.pending)
	l.pending = l.pending[:0]
	return err
}
