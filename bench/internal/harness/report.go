package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// LoadAvg is the host's 1, 5 and 15 minute load averages ("?" when
// unknown), printed beside results so a busy machine shows.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Machine describes the host for a result's header: vCPUs, CPU model,
// memory, kernel and Go, then the first line each of versions prints
// (e.g. {"git", "--version"}).
func Machine(versions ...[]string) string {
	var parts []string
	if out, err := exec.Command("nproc").Output(); err == nil {
		parts = append(parts, strings.TrimSpace(string(out))+" vCPUs")
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				parts = append(parts, strings.TrimSpace(v))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			parts = append(parts, fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20)))
		}
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		parts = append(parts, "Linux "+strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		parts = append(parts, strings.TrimSpace(string(out)))
	}
	for _, argv := range versions {
		if out, err := exec.Command(argv[0], argv[1:]...).Output(); err == nil {
			line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, ", ")
}

// FmtDur formats a latency for a table: "0.84 ms", "81.9 ms", "1.84 s".
func FmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
