package harness

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is USER_HZ, which Linux fixes at 100 for /proc.
const ClockTicks = 100

// HostBusyTicks is the CPU time (in clock ticks) the whole host has spent
// busy since boot: user, nice, system, irq, softirq and steal.
func HostBusyTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var sum int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		sum += n
	}
	return sum
}

// ProcTicks is a process's own CPU time (utime+stime) and that of the
// children it has waited for (cutime+cstime), in clock ticks; zeros when
// the process is gone.
func ProcTicks(pid int) (own, children int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0
	}
	// After the command: f[0] is field 3 (state); utime is field 14, so
	// f[11], then stime, cutime, cstime.
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0, 0
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	return n(11) + n(12), n(13) + n(14)
}

// Pct is the nearest-rank percentile p (0–100) of v: with 20 values p95 is
// the 19th smallest, with 10 it is the largest.
func Pct(v []time.Duration, p float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(k, len(s)-1))]
}
