// Package cgroup puts CPU and memory limits on a sandbox of the local
// runtime with Linux control groups, where the host allows it.
//
// Open detects what the host offers under a root (normally /sys/fs/cgroup):
// the unified hierarchy (cgroup v2) with the memory and cpu controllers, or
// else the v1 memory and cpu hierarchies; anything else is unsupported, and
// Supported says why in words a user can act on. A hybrid host (v1
// controllers plus an empty v2 mount at <root>/unified) counts as v1.
//
// Each sandbox gets one group, sandpit/<node>/<sandbox-id>, in every
// hierarchy used (v2: one; v1: memory and cpu). The node (the server's
// node id) keeps two servers on one host apart. Groups hang off the
// hierarchy's root, like Docker's cgroupfs driver, not off the server's own
// cgroup: sandboxes outlive server restarts, and under v2 the server's
// cgroup could not hold both the server and child groups with controllers.
//
// The package only creates groups, sets their limits, lists and removes
// them. It never moves or kills a process: a process joins by writing its
// pid into the files Ensure returns, and Remove works once a group is empty.
// It imports nothing from this module.
package cgroup
