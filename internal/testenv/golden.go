package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"sandpit.dev/sandpit/internal/golden"
)

// Golden compares got with the golden file at path (relative to the test's
// package directory), or rewrites the file with -update.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	golden.File(t, path, got)
}

// Diff is a line diff of a and b, for failure messages.
func Diff(a, b string) string { return golden.Diff(a, b) }

// Scrubber replaces what differs between runs (ids, times, durations,
// ports, digests, paths) with stable placeholders.
type Scrubber struct {
	literal []string // old, new pairs
	extra   []pattern
}

type pattern struct {
	re  *regexp.Regexp
	new string
}

// Scrubber returns the stack's scrubber: the general rules plus the
// stack's own data directory and address.
func (s *Stack) Scrubber() *Scrubber {
	sc := &Scrubber{}
	sc.Literal(s.DataDir, "<datadir>")
	sc.Literal(s.URL, "<server>")
	sc.Literal(strings.TrimPrefix(s.URL, "http://"), "<server-address>")
	return sc
}

// Pattern adds a regular expression replacement (with $1-style
// references), applied after the literals and before the general patterns.
func (sc *Scrubber) Pattern(re, new string) *Scrubber {
	sc.extra = append(sc.extra, pattern{regexp.MustCompile(re), new})
	return sc
}

// Literal adds an exact replacement, applied before the patterns.
func (sc *Scrubber) Literal(old, new string) *Scrubber {
	if old != "" {
		sc.literal = append(sc.literal, old, new)
	}
	return sc
}

var scrubPatterns = []pattern{
	{regexp.MustCompile(`sb-[0-9a-f]{16}`), "sb-<id>"},
	{regexp.MustCompile(`\b[0-9a-f]{64}\b`), "<digest>"},
	// RFC 3339 times, as in JSON.
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<time>"},
	// Times as the CLI prints them; same width, so tables stay aligned.
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\b`), "YYYY-MM-DD hh:mm:ss"},
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\d \d\d:\d\d\b`), "YYYY-MM-DD hh:mm"},
	{regexp.MustCompile(`\b\d\d:\d\d:\d\d\.\d{3}\b`), "hh:mm:ss.mmm"},
	// Ports of test stacks are five digits from 30000 to 59999.
	{regexp.MustCompile(`\b[3-5]\d{4}\b`), "<port>"},
	// Durations: 850ms, 1.2s, 3m05s, 1m0.5s, 12µs, +120ms.
	{regexp.MustCompile(`\+?\b\d+(\.\d+)?(ns|µs|us|ms|s)\b`), "<dur>"},
	{regexp.MustCompile(`\+?\b\d+m\d+(\.\d+)?s\b`), "<dur>"},
}

// String scrubs text.
func (sc *Scrubber) String(s string) string {
	for i := 0; i < len(sc.literal); i += 2 {
		s = strings.ReplaceAll(s, sc.literal[i], sc.literal[i+1])
	}
	for _, p := range sc.extra {
		s = p.re.ReplaceAllString(s, p.new)
	}
	for _, p := range scrubPatterns {
		s = p.re.ReplaceAllString(s, p.new)
	}
	return s
}

// JSON parses a JSON document, scrubs it (see Node) and prints it again
// indented, keeping the order of object keys.
func (sc *Scrubber) JSON(b []byte) ([]byte, error) {
	n, err := sc.parse(b)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	writeJSON(&out, n, "")
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// YAML is JSON for YAML documents.
func (sc *Scrubber) YAML(b []byte) ([]byte, error) {
	n, err := sc.parse(b)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func (sc *Scrubber) parse(b []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse %q: %w", b, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("not one document: %q", b)
	}
	n := doc.Content[0]
	sc.Node(n, "")
	return n, nil
}

var timeKeys = map[string]bool{
	"created_at": true, "updated_at": true, "time": true, "started_at": true, "finished_at": true,
	"ready_at": true, "failed_at": true, "deletion_requested_at": true,
}

func placeholder(n *yaml.Node, s string) {
	n.Kind, n.Tag, n.Value, n.Style, n.Content = yaml.ScalarNode, "!!str", s, 0, nil
}

// Node scrubs a parsed document in place: values of time, digest, pid,
// seq, *_ms and port keys become placeholders, every other string is
// scrubbed as text, and "stages" lists are sorted by name (stages that run
// concurrently finish in any order).
func (sc *Scrubber) Node(n *yaml.Node, key string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			switch {
			case v.Kind == yaml.ScalarNode && v.Tag != "!!null" && timeKeys[k] && !strings.HasPrefix(v.Value, "0001-01-01T"):
				placeholder(v, "<time>")
			case v.Kind == yaml.ScalarNode && k == "digest":
				placeholder(v, "<digest>")
			case v.Kind == yaml.ScalarNode && (k == "pid" || k == "seq" || k == "port" && v.Tag == "!!int"):
				placeholder(v, "<"+k+">")
			case v.Kind == yaml.ScalarNode && strings.HasSuffix(k, "_ms"):
				placeholder(v, "<ms>")
			case v.Kind == yaml.MappingNode && k == "ports":
				for j := 1; j < len(v.Content); j += 2 {
					placeholder(v.Content[j], "<port>")
				}
			default:
				sc.Node(v, k)
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			sc.Node(c, key)
		}
		if key == "stages" {
			sort.SliceStable(n.Content, func(i, j int) bool { return nodeField(n.Content[i], "name") < nodeField(n.Content[j], "name") })
		}
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			n.Value = sc.String(n.Value)
		}
	}
}

func nodeField(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// writeJSON prints a node parsed from JSON as indented JSON.
func writeJSON(b *bytes.Buffer, n *yaml.Node, indent string) {
	in := indent + "  "
	switch n.Kind {
	case yaml.MappingNode:
		if len(n.Content) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString("{\n")
		for i := 0; i+1 < len(n.Content); i += 2 {
			b.WriteString(in)
			b.Write(jsonString(n.Content[i].Value))
			b.WriteString(": ")
			writeJSON(b, n.Content[i+1], in)
			if i+2 < len(n.Content) {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "}")
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for i, c := range n.Content {
			b.WriteString(in)
			writeJSON(b, c, in)
			if i+1 < len(n.Content) {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(indent + "]")
	case yaml.AliasNode:
		writeJSON(b, n.Alias, indent)
	default:
		switch n.Tag {
		case "!!str", "!!binary", "!!timestamp":
			b.Write(jsonString(n.Value))
		default:
			b.WriteString(n.Value)
		}
	}
}

func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
