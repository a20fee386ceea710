package template

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// FuzzParse checks that Parse never panics, that every failure is an
// *ErrorList whose entries point into the file, and that a template that
// parses survives a round trip through YAML unchanged.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/valid/*.yaml", "testdata/errors/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Go's fuzzer has no per-input time limit; a hang would only show
		// as a stalled exec count. Crash the worker instead, so the input
		// is saved.
		tm := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("slow input %q", data)) })
		defer tm.Stop()
		tmpl, err := Parse("f.yaml", data)
		if err != nil {
			checkErrors(t, data, err)
			return
		}
		if tmpl == nil {
			t.Fatal("nil template without an error")
		}
		if order := tmpl.StartOrder(); len(order) != len(tmpl.Services) {
			t.Fatalf("StartOrder() = %v for %d services", order, len(tmpl.Services))
		}
		if c := tmpl.Clone(); !reflect.DeepEqual(c, tmpl) {
			t.Fatal("Clone differs")
		}
		for _, name := range tmpl.ServiceOrder {
			// Missing vars make errors, never panics.
			_, _ = tmpl.ExpandService(name, &Vars{}, nil)
		}
		out, err := yaml.Marshal(tmpl)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := Parse("f.yaml", out)
		if err != nil {
			t.Fatalf("the template does not parse after a round trip:\n%s\n%v", out, err)
		}
		again.positions, again.File = tmpl.positions, tmpl.File
		again.ServiceOrder, again.DependencyOrder, again.EndpointOrder = tmpl.ServiceOrder, tmpl.DependencyOrder, tmpl.EndpointOrder
		if !reflect.DeepEqual(again, tmpl) {
			t.Fatalf("round trip changed the template:\n%s", out)
		}
	})
}

func checkErrors(t *testing.T, data []byte, err error) {
	t.Helper()
	var list *ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, not *ErrorList: %v", err, err)
	}
	if len(*list) == 0 {
		t.Fatal("empty ErrorList")
	}
	lines := len(lineEnds(utf16ToUTF8(data)))
	if !slices.IsSortedFunc(*list, func(a, b *Error) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Column - b.Pos.Column
	}) {
		t.Fatalf("errors not sorted:\n%v", err)
	}
	for _, e := range *list {
		switch {
		case e.Pos.File != "f.yaml":
			t.Fatalf("error names file %q: %v", e.Pos.File, e)
		case e.Msg == "":
			t.Fatalf("empty message at %v", e.Pos)
		case e.Pos.Line == 0 && e.Path != "":
			t.Fatalf("error about %s has no line: %v", e.Path, e)
		case e.Pos.Line < 0 || e.Pos.Line > lines || e.Pos.Column < 0:
			t.Fatalf("position outside the file (%d lines): %v", lines, e)
		case strings.Contains(e.Msg, "internal error"):
			t.Fatalf("%v", e)
		}
	}
}
