package template

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a template, at the place that has to change.
type Error struct {
	// Pos is where the problem is. Line 0 means the whole file (or, for
	// --set overrides, no file at all).
	Pos Pos
	// Path is the field path ("services.api.ports[0].name"), empty when the
	// problem is not about one field.
	Path string
	// Msg says what is wrong and what would be valid.
	Msg string
}

func (e *Error) Error() string {
	if e.Pos.File == "" && e.Pos.Line == 0 {
		return e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// ErrorList is every problem Parse (or ValidateSet) found, sorted by
// position. Parse returns it as a *ErrorList so callers can render each
// entry (an editor can underline them); its Error method prints one
// "file:line:column: message" per line.
type ErrorList []*Error

func (l *ErrorList) Error() string {
	var b strings.Builder
	for i, e := range *l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap exposes the entries to errors.Is and errors.As.
func (l *ErrorList) Unwrap() []error {
	out := make([]error, len(*l))
	for i, e := range *l {
		out[i] = e
	}
	return out
}

func (l *ErrorList) add(pos Pos, path, format string, args ...any) {
	*l = append(*l, &Error{Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// err sorts the list, drops repeats (a mistake inside an aliased node is met
// once per use of the alias) and returns nil when it is empty, so a caller
// never sees a non-nil error holding nothing.
func (l *ErrorList) err() error {
	if len(*l) == 0 {
		return nil
	}
	slices.SortStableFunc(*l, func(a, b *Error) int {
		if c := cmp.Compare(a.Pos.Line, b.Pos.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Pos.Column, b.Pos.Column)
	})
	*l = slices.CompactFunc(*l, func(a, b *Error) bool { return a.Pos == b.Pos && a.Msg == b.Msg })
	return l
}

// closest returns the candidate nearest to s when it is near enough to be
// a likely typo, or "". Case differences count as nothing, so "Name" finds
// "name" and "apiversion" finds "apiVersion".
func closest(s string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	limit := 1 + min(len(s), len(best))/4
	if best == "" || bestD > limit || bestD == len(s) {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of neighbours each cost one, so the
// common typo "rnu" is one step from "run".
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Names this long are not typos of a field; skip the quadratic work.
		return max(len(ra), len(rb))
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// didYouMean formats a suggestion suffix, or "" when nothing is close.
func didYouMean(s string, candidates []string) string {
	if c := closest(s, candidates); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

// quoteList renders names for a message: "api", "web" and "worker".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
