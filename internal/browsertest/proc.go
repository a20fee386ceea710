//go:build unix

package browsertest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// processesOf lists the live processes (not zombies) whose command line
// holds marker, from /proc; none where there is no /proc.
func processesOf(marker string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(marker)) {
			continue // gone, or a zombie (whose cmdline is empty)
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitGone waits until no process names marker on its command line. After
// timeout it kills those left, waits a little for them, and returns their
// process IDs.
func waitGone(marker string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := processesOf(marker)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			killed := time.Now().Add(2 * time.Second)
			for len(processesOf(marker)) > 0 && time.Now().Before(killed) {
				time.Sleep(20 * time.Millisecond)
			}
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}
