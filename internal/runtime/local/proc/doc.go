// Package proc owns the host-process mechanics of the local runtime: finding
// every process a Sandpit server started (by marker variables in their
// environment, so nothing escapes when a pid file was never written because
// the server was killed), signalling whole process groups with a staged
// stop (signal, wait, SIGKILL), and resolving the unprivileged user that
// services run as.
//
// It is Linux-specific (it reads /proc) and imports nothing from this module.
package proc
