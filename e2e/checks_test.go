package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPageChecksFindProblems shows that the console's page checks can
// fail: a page with one of each problem gets one finding for each.
func TestPageChecksFindProblems(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("testdata", "bad-page.html"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write(page)
	}))
	defer srv.Close()
	b := startBrowser(t)
	b.Navigate(srv.URL)
	a11y := strings.Join(b.Accessibility(), "\n")
	for _, want := range []string{
		"the document has no lang",
		"the document has no title",
		"no label: input#unlabelled",
		"no accessible name: button#noname",
		`contrast 1.92:1 (needs 4.5): p.grey "hard to read"`,
		`no visible focus indicator: button#noring`,
	} {
		if !strings.Contains(a11y, want) {
			t.Errorf("accessibility findings lack %q; got:\n%s", want, a11y)
		}
	}
	mobile := strings.Join(b.Mobile(), "\n")
	for _, want := range []string{"px wide on a 390 px screen: div.wide", `text smaller than 12 px: p.tiny "tiny text"`} {
		if !strings.Contains(mobile, want) {
			t.Errorf("390 px findings lack %q; got:\n%s", want, mobile)
		}
	}
	// A script error on a page is recorded (and would fail a test).
	var v any
	b.eval(`setTimeout(() => { throw new Error("boom") }, 0); console.error("logged error"); 1`, &v)
	b.WaitText("body", "", 0)
	deadline := 50
	for ; deadline > 0; deadline-- {
		b.mu.Lock()
		n := len(b.errors)
		b.mu.Unlock()
		if n >= 2 {
			break
		}
		b.Run(chromedpSleep())
	}
	b.mu.Lock()
	got := strings.Join(b.errors, "\n")
	b.errors = nil // expected here: do not fail the test at cleanup
	b.mu.Unlock()
	if !strings.Contains(got, "logged error") || !strings.Contains(got, "boom") {
		t.Errorf("recorded errors %q, want the console.error and the uncaught exception", got)
	}
}
