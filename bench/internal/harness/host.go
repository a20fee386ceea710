package harness

import (
	"errors"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// FreePort is a TCP port free on 127.0.0.1 just now.
func FreePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RepoRoot is the root of the module the benchmark is run in (go env
// GOMOD).
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the sandpit module")
	}
	return filepath.Dir(mod), nil
}

// MountsUnder lists the mount points below dir (not dir itself), in the
// order of /proc/self/mountinfo: a mount's parent before it.
func MountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	return points
}

// UnmountUnder unmounts anything mounted below dir (the server's
// loop-mounted btrfs image of its snapshot store, say, which the server
// leaves mounted when it stops), deepest first.
func UnmountUnder(dir string) {
	points := MountsUnder(dir)
	for i := len(points) - 1; i >= 0; i-- {
		if out, err := exec.Command("umount", points[i]).CombinedOutput(); err != nil {
			log.Printf("umount %s: %v: %s", points[i], err, out)
		}
	}
}

// WriteResult writes a run's Markdown result md to
// dir/<name>-<start as 2006-01-02-1504>.md (dir "" is <repo>/bench/out)
// and returns the file's path.
func WriteResult(dir, repo, name string, start time.Time, md string) (string, error) {
	if dir == "" {
		dir = filepath.Join(repo, "bench", "out")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, name+"-"+start.Format("2006-01-02-1504")+".md")
	return p, os.WriteFile(p, []byte(md), 0o644)
}
