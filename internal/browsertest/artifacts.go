package browsertest

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// ArtifactDir is the directory where this browser saves screenshots and
// failure artifacts: $SANDPIT_TEST_ARTIFACTS/<TestName>; else, under
// `go test -artifacts`, the test's own (t.ArtifactDir); else
// /var/tmp/sandpit-test-artifacts/<TestName>-<time>. It is created on first
// use.
func (b *Browser) ArtifactDir() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.artifacts != "" {
		return b.artifacts, nil
	}
	name := safeName(b.t.Name())
	dir := filepath.Join("/var/tmp/sandpit-test-artifacts", name+"-"+time.Now().Format("20060102-150405"))
	if root := os.Getenv("SANDPIT_TEST_ARTIFACTS"); root != "" {
		dir = filepath.Join(root, name)
	} else if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		dir = b.t.ArtifactDir() // go test -artifacts
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create the artifact directory: %w", err)
	}
	b.artifacts = dir
	return dir, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// safeName turns a test or artifact name into one path element.
func safeName(s string) string {
	s = strings.Trim(unsafeChars.ReplaceAllString(s, "_"), "_.")
	if s == "" {
		s = "unnamed"
	}
	return clip(s, 120)
}

// writeArtifact writes data to name+ext in the artifact directory, adding
// -2, -3... when that file exists already.
func (b *Browser) writeArtifact(name, ext string, data []byte) (string, error) {
	dir, err := b.ArtifactDir()
	if err != nil {
		return "", err
	}
	base := safeName(name)
	for i := 1; ; i++ {
		path := filepath.Join(dir, base+ext)
		if i > 1 {
			path = filepath.Join(dir, fmt.Sprintf("%s-%d%s", base, i, ext))
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return path, err
	}
}

func (b *Browser) screenshot(name string) (string, error) {
	var png []byte
	if err := b.run(b.timeout, chromedp.FullScreenshot(&png, 100)); err != nil {
		return "", fmt.Errorf("take a screenshot: %w", b.explain(err))
	}
	return b.writeArtifact(name, ".png", png)
}

// Screenshot saves a full-page PNG screenshot as <name>.png in ArtifactDir,
// logs its path and returns it. A failure to take it fails the test but not
// at once.
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	path, err := b.screenshot(name)
	if err != nil {
		b.t.Errorf("browsertest: screenshot %q: %v", name, err)
		return ""
	}
	b.t.Logf("browsertest: screenshot %s", path)
	return path
}

// saveArtifacts saves what shows why a test failed: a screenshot, the
// page's HTML and the console log.
func (b *Browser) saveArtifacts() {
	var saved, problems []string
	if path, err := b.screenshot("failure"); err != nil {
		problems = append(problems, err.Error())
	} else {
		saved = append(saved, filepath.Base(path))
	}
	var html string
	err := b.run(10*time.Second, chromedp.Evaluate(`(document.doctype ? new XMLSerializer().serializeToString(document.doctype) + "\n" : "") + document.documentElement.outerHTML`, &html))
	if err == nil {
		var path string
		if path, err = b.writeArtifact("failure", ".html", []byte(html)); err == nil {
			saved = append(saved, filepath.Base(path))
		}
	}
	if err != nil {
		problems = append(problems, "save the page's HTML: "+err.Error())
	}
	var url string
	_ = b.run(5*time.Second, chromedp.Location(&url))
	console := fmt.Sprintf("# page: %s\n# viewport: %+v\n%s\n", url, b.Viewport(), strings.Join(b.ConsoleLog(), "\n"))
	if path, err := b.writeArtifact("console", ".log", []byte(console)); err != nil {
		problems = append(problems, "save the console log: "+err.Error())
	} else {
		saved = append(saved, filepath.Base(path))
	}
	dir, _ := b.ArtifactDir()
	msg := fmt.Sprintf("browsertest: the test failed; saved %s in %s", strings.Join(saved, ", "), dir)
	if len(problems) > 0 {
		msg += "; could not: " + strings.Join(problems, "; ")
	}
	b.t.Log(msg)
}
