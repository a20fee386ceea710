package proc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exists reports whether pid exists and is not a zombie.
func Exists(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return !zombie(pid)
}

// GroupExists reports whether any live process is in process group pgid.
func GroupExists(pgid int) bool {
	if pgid <= 1 {
		return false
	}
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// SignalGroup sends sig to process group pgid, ignoring a group that is
// already gone. pgid must be > 1: signalling group 0 or 1 would hit the
// caller's own group or everything.
func SignalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return nil
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Signal sends sig to pid, ignoring a process that is already gone.
func Signal(pid int, sig syscall.Signal) error {
	if pid <= 1 {
		return nil
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// WaitGone polls until gone returns true or ctx ends. It starts fast, since
// most processes exit within milliseconds of a signal, and backs off.
func WaitGone(ctx context.Context, gone func() bool) bool {
	d := time.Millisecond
	for {
		if gone() {
			return true
		}
		select {
		case <-ctx.Done():
			return gone()
		case <-time.After(d):
		}
		if d < 100*time.Millisecond {
			d *= 2
		}
	}
}

// Children returns the live (not zombie) children of pid, found by the
// parent pid in /proc/*/stat.
func Children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold anything, so read
		// after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil && ppid == pid {
			out = append(out, child)
		}
	}
	return out
}
