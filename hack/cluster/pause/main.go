// Command pause is the pod sandbox ("infra") process of the test cluster's node, which cannot pull
// registry.k8s.io/pause: it holds the pod's namespaces open, reaps zombies (for pods that share a PID
// namespace) and exits 0 on SIGINT or SIGTERM. hack/node.sh builds it static; the harness packs it into
// the image claude-guard.local/pause:1.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every child that has exited, without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
