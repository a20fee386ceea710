package template

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sandpit.dev/sandpit/internal/golden"
)

// TestErrors parses every testdata/errors/<case>.yaml and compares the
// messages with <case>.golden. Read the golden files as a user would: each
// line must say where the mistake is and what to write instead.
func TestErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test cases: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := Parse(filepath.Base(file), data)
			if err == nil {
				t.Fatalf("Parse succeeded; want errors")
			}
			if tmpl != nil {
				t.Errorf("Parse returned a template along with errors")
			}
			var list *ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want *ErrorList", err)
			}
			lines := len(lineEnds(utf16ToUTF8(data)))
			for _, e := range *list {
				if e.Pos.File != filepath.Base(file) {
					t.Errorf("error %q names file %q", e, e.Pos.File)
				}
				if e.Pos.Line > lines {
					t.Errorf("error %q is past the end of the file (%d lines)", e, lines)
				}
			}
			golden.File(t, strings.TrimSuffix(file, ".yaml")+".golden", []byte(err.Error()+"\n"))
		})
	}
}
