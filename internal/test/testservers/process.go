// Package testservers starts the real servers that claude-guard's credential tests run against: an
// OpenBao dev server (the Vault-API server, see docs/test-servers.md) and a SPIRE server with one agent.
// The binaries come from hack/openbao.sh and hack/spire.sh, which build them from the Go module proxy and
// cache them; every server listens on 127.0.0.1 (or a short unix socket path), runs in its own process
// group and is stopped by t.Cleanup, so a test leaves no process behind.
package testservers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/ports"
	"github.com/claude-guard/claude-guard/internal/test/repo"
)

// ToolDir is repo.Tool: $env, else what hack/<script> builds.
func ToolDir(env, script string) (string, error) { return repo.Tool(env, script) }

var (
	openBaoDir = sync.OnceValues(func() (string, error) { return ToolDir("CLAUDE_GUARD_OPENBAO_DIR", "openbao.sh") })
	spireDir   = sync.OnceValues(func() (string, error) { return ToolDir("CLAUDE_GUARD_SPIRE_DIR", "spire.sh") })
)

// OpenBaoDir returns the directory holding the `bao` binary ($CLAUDE_GUARD_OPENBAO_DIR or hack/openbao.sh).
func OpenBaoDir() (string, error) { return openBaoDir() }

// SPIREDir returns the directory holding spire-server and spire-agent ($CLAUDE_GUARD_SPIRE_DIR or
// hack/spire.sh).
func SPIREDir() (string, error) { return spireDir() }

// runDir makes a fresh directory for one server's state, sockets and logs under /tmp, not t.TempDir():
// unix socket paths are limited to 108 bytes, and t.TempDir() embeds the (long) test name.
func runDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		t.Fatalf("failed to create run directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	return freePortOn(t, "127.0.0.1")
}

// freePortOn is freePort on another local address.
func freePortOn(t testing.TB, ip string) int {
	t.Helper()
	p, err := ports.Free(ip)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// process is one server process with its output in a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // set before done is closed
}

// startProcess runs bin in its own process group, with its output appended to logPath. The child gets
// SIGKILL if the test binary dies without running its cleanups (a timeout panic, a crash), so no server
// outlives the test run.
func startProcess(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, with its exit error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL if it has not ended within 10s, and waits. It is
// safe to call more than once.
func (p *process) stop() {
	if ok, _ := p.exited(); ok {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Anything the server started in its group goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// logTail returns the last few KiB of the process log, for failure messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const limit = 4 << 10
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return string(b)
}

// logOnFailure registers a cleanup that prints the process log when the test failed.
func (p *process) logOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", p.name, p.logPath, p.logTail())
		}
	})
}

// waitFor polls check every 50ms until it returns nil, the process exits, or timeout passes. The
// process log is printed by logOnFailure, not repeated in the error.
func waitFor(p *process, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if ok, exitErr := p.exited(); ok {
			return fmt.Errorf("%s exited while waiting for %s: %w", p.name, what, errors.Join(exitErr, err))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// baseEnv is the environment for server processes: PATH and HOME only, so that a developer's VAULT_*,
// BAO_* or SPIFFE_* variables cannot change what the servers do. HOME points into the run directory
// because the OpenBao CLI writes a token helper file there.
func baseEnv(home string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
}

var errNotReady = errors.New("not ready")

// portFree reports whether a TCP port on 127.0.0.1 can be bound right now.
func portFree(port int) bool { return portFreeOn("127.0.0.1", port) }

func portFreeOn(ip string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
