package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/test/cluster"
	"github.com/claude-guard/claude-guard/internal/test/ports"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

// demoRedisPassword is the manager's admin password for the demo's Redis (which listens on the
// cluster's bridge only, inside this process's network namespace; not a secret).
const demoRedisPassword = "demo-redis-admin-not-real"

// startRedis runs Debian's redis-server (hack/redis.sh) on the node's bridge, where the manager and the
// sidecars reach it: the tenant's limits and budgets count there, shared by the namespace's pods. It
// returns the admin URL the chart gets as redis.url, and a stop function.
func (d *demo) startRedis() (string, func(), error) {
	step("Platform team: a Redis for shared limits (Debian's redis-server, on the cluster's bridge): tenant ceilings count only in a shared backend")
	bin, err := testservers.RedisDir()
	if err != nil {
		return "", nil, err
	}
	port, err := ports.Free(cluster.NodeIP)
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(d.dir, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	addr := net.JoinHostPort(cluster.NodeIP, strconv.Itoa(port))
	cmd := exec.Command(filepath.Join(bin, "redis-server"), "--bind", cluster.NodeIP, "--port", strconv.Itoa(port),
		"--requirepass", demoRedisPassword, "--save", "", "--appendonly", "no", "--dir", dir,
		"--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning", "--logfile", filepath.Join(dir, "redis.log"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LD_LIBRARY_PATH=" + filepath.Join(bin, "..", "lib")}
	// Killed with the demo, however the demo ends: it must not outlive the cluster it serves.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("failed to start redis-server: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	c := redis.NewClient(&redis.Options{Addr: addr, Password: demoRedisPassword})
	defer func() { _ = c.Close() }()
	ctx, cancel := context.WithTimeout(d.ctx, 20*time.Second)
	defer cancel()
	for c.Ping(ctx).Err() != nil {
		select {
		case <-ctx.Done():
			stop()
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return "", nil, fmt.Errorf("redis-server on %s did not answer PING: %s", addr, log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Printf("    redis-server on %s\n", addr)
	return "redis://:" + demoRedisPassword + "@" + addr + "/0", stop, nil
}
