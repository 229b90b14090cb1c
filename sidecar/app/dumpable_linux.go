//go:build linux

package app

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// undumpable makes the process non-dumpable before it reads any credential: no core dump holds the key,
// and /proc/<pid>/mem, environ and fd, and ptrace, need CAP_SYS_PTRACE, which no container of the pod
// has by default, even one running as the sidecar's user or as root (a debug container, a process in a
// shared process namespace).
func undumpable() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("failed to make the sidecar non-dumpable (prctl PR_SET_DUMPABLE): %w", err)
	}
	return nil
}
