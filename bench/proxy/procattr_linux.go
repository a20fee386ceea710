package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a child stop when the benchmark dies, even by
// SIGKILL, so that no backend, proxy or nginx outlives it.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
