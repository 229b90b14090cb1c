// Package cluster runs a whole single-node Kubernetes cluster on this machine for tests and the demo:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, containerd and a real
// kubelet running real pods (hack/cluster/*.sh). The cluster and the process that uses it live in a
// network namespace of their own, so the pod bridge, kube-proxy's rules and every listener exist only
// there and vanish with it, and nothing in it has a route off the machine.
package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/claude-guard/claude-guard/internal/test/chartenv"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

// envInNetns marks the re-executed process that runs inside the cluster's network namespace.
const envInNetns = "CLAUDE_GUARD_CLUSTER_NETNS"

// Tool directories the namespaced process inherits: it cannot reach the Go module proxy, so every tool
// is built (or found in the cache) before it starts.
const (
	envNodeDir = "CLAUDE_GUARD_NODE_DIR"
	envAssets  = "KUBEBUILDER_ASSETS"
	envHelm    = "CLAUDE_GUARD_HELM"
	// envRunDir is the cluster's run directory (hack/cluster's CG_CLUSTER_DIR), made by Main.
	envRunDir = "CG_CLUSTER_DIR"
)

// InNetns reports whether this process runs in the namespace Main made.
func InNetns() bool { return os.Getenv(envInNetns) == "1" }

// Main runs a program in a network namespace of its own: called first thing (a TestMain, the demo's
// main), it builds the tools the cluster needs, runs this same executable again with the same arguments
// in a new network namespace and returns its exit code; in that re-executed process it calls run and
// returns what run returns. Where the machine cannot do this (not root), the error says what is missing.
func Main(run func() int) int {
	if InNetns() {
		return run()
	}
	if err := Prepare(); err != nil {
		fmt.Fprintf(os.Stderr, "the real-node cluster cannot run here: %v\n", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot find this executable to re-run it in a network namespace: %v\n", err)
		return 1
	}
	// One cluster on the machine at a time: the node's cgroup root and a few host paths are fixed.
	unlock, err := lock()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer unlock()
	dir, err := os.MkdirTemp("/tmp", "cg-cluster-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot make the cluster's run directory: %v\n", err)
		return 1
	}
	// Whatever happens to the namespaced process (a test timeout panics past its cleanups), this one
	// stops what it started and removes what it left on the machine.
	// down.sh also removes the run directory, unless something is still mounted under it.
	defer func() {
		if err := down(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	return runInNetns(self, dir)
}

// runInNetns runs self again in a new network namespace and returns its exit code.
func runInNetns(self, dir string) int {
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInNetns+"=1", envRunDir+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	// Ctrl-C reaches both processes (one process group); SIGTERM is passed on. Either way this process
	// waits for the namespaced one, then cleans up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot run in a network namespace of its own (needs root: CAP_SYS_ADMIN): %v\n", err)
		return 1
	}
	go func() {
		for s := range sigs {
			if s == syscall.SIGTERM {
				_ = cmd.Process.Signal(s)
			}
		}
	}()
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() >= 0 {
			return exit.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "the namespaced process failed: %v\n", err)
		return 1
	}
	return 0
}

// lock takes the machine-wide cluster lock (blocking while another test package or the demo runs one).
func lock() (func(), error) {
	dir := cacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot make %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "cluster.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open the cluster lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cannot take the cluster lock: %w", err)
	}
	return func() { _ = f.Close() }, nil
}

// cacheDir is hack/lib.sh's CG_CACHE.
func cacheDir() string {
	if d := os.Getenv("CLAUDE_GUARD_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "claude-guard")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "claude-guard")
}

// Prepare builds (or finds cached) every tool the cluster and its users need, and exports their
// directories for the namespaced process: kube-apiserver, etcd and kubectl (hack/envtest.sh), the node's
// binaries and the container runtime (hack/node.sh), and helm (hack/helm.sh).
func Prepare() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: a node mounts filesystems, makes cgroups and runs containers (run the tests as root, as CI does)")
	}
	if _, err := testenv.Assets(); err != nil {
		return err
	}
	if _, err := testservers.ToolDir(envNodeDir, "node.sh"); err != nil {
		return err
	}
	helm, err := chartenv.HelmBinary()
	if err != nil {
		return err
	}
	return os.Setenv(envHelm, helm)
}

// scriptEnv is the environment of the hack/cluster scripts for the cluster in dir.
func scriptEnv(dir string) []string {
	return append(os.Environ(), "CG_CLUSTER_DIR="+dir, "CLUSTER_BIN="+os.Getenv(envNodeDir), "KUBE_ASSETS="+os.Getenv(envAssets))
}

// down runs hack/cluster/down.sh for the cluster in dir: it stops what up.sh started and removes what it
// left on the machine, and does nothing more when run a second time.
func down(dir string) error {
	cmd := exec.Command(script("down.sh"))
	cmd.Env = scriptEnv(dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("hack/cluster/down.sh: %w\n%s", err, out)
	}
	return nil
}

// script is the path of one of the hack/cluster scripts.
func script(name string) string { return filepath.Join(testenv.RepoRoot(), "hack", "cluster", name) }
