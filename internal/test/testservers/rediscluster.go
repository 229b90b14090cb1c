package testservers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/ports"
)

// RedisClusterOptions configure LaunchRedisCluster.
type RedisClusterOptions struct {
	// Primaries is the number of primaries the 16384 slots are spread over; 3 (the fewest Redis
	// Cluster accepts) when zero.
	Primaries int
	// ReplicasPerPrimary is the number of replicas of each primary.
	ReplicasPerPrimary int
	// Password is the default user's password on every node (requirepass and masterauth).
	Password string
	// NodeTimeout is cluster-node-timeout: how long a primary may be unreachable before its replica
	// takes over. 1 s when zero.
	NodeTimeout time.Duration
}

// RedisCluster is a running Redis Cluster of redis-server processes (Debian's, hack/redis.sh) on
// 127.0.0.1, formed with redis-cli --cluster create, with claude-guard's function library loaded on
// every primary. No persistence; every node in its own process group.
type RedisCluster struct {
	// URL is redis+cluster://[:password@]127.0.0.1:PORT?addr=... naming every node as a seed.
	URL string
	// Addrs are the nodes, primaries first (as redis-cli assigned them at creation).
	Addrs []string

	password string
	dir      string
	nodes    map[string]*process
}

// LaunchRedisCluster starts and forms a cluster. It needs no testing.TB, so that commands (make
// bench) can use it too; Close stops it. Tests use StartRedisCluster.
func LaunchRedisCluster(ctx context.Context, o RedisClusterOptions) (c *RedisCluster, err error) {
	if o.Primaries == 0 {
		o.Primaries = 3
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = time.Second
	}
	binDir, err := RedisDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("/tmp", "cg-rediscluster-")
	if err != nil {
		return nil, err
	}
	c = &RedisCluster{password: o.Password, dir: dir, nodes: map[string]*process{}}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, c.logs())
			c.Close()
		}
	}()
	n := o.Primaries * (1 + o.ReplicasPerPrimary)
	for range n {
		port, err := clusterPort()
		if err != nil {
			return c, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := append(dataNodeArgs(strconv.Itoa(port), dir, o.Password),
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes-"+strconv.Itoa(port)+".conf"),
			"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10))
		p, err := startProcess("redis-server "+addr, filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log"), redisEnv(binDir, dir),
			filepath.Join(binDir, "redis-server"), args...)
		if err != nil {
			return c, err
		}
		c.nodes[addr] = p
		c.Addrs = append(c.Addrs, addr)
		if err := waitFor(p, 20*time.Second, "redis-server to answer PING", func() error {
			return ping(ctx, c.Node(addr))
		}); err != nil {
			return c, err
		}
	}
	if err := c.create(ctx, binDir, o.ReplicasPerPrimary); err != nil {
		return c, err
	}
	u := url.URL{Scheme: "redis+cluster", Host: c.Addrs[0]}
	if o.Password != "" {
		u.User = url.UserPassword("", o.Password)
	}
	q := url.Values{}
	for _, a := range c.Addrs[1:] {
		q.Add("addr", a)
	}
	u.RawQuery = q.Encode()
	c.URL = u.String()
	return c, c.loadFunctions(ctx)
}

// clusterPort returns a free port whose cluster bus port (port + 10000) is free too.
func clusterPort() (int, error) {
	for range 50 {
		p, err := ports.Free("127.0.0.1")
		if err != nil {
			return 0, err
		}
		if p+10000 <= 65535 && portFree(p+10000) {
			return p, nil
		}
	}
	return 0, errors.New("found no free port pair for a Redis Cluster node")
}

// dataNodeArgs are the arguments of a redis-server of a cluster or Sentinel deployment on 127.0.0.1:port:
// no persistence, its own RDB name in the shared dir (replication writes one), password as both
// requirepass and masterauth.
func dataNodeArgs(port, dir, password string) []string {
	args := []string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", dir,
		"--dbfilename", "dump-" + port + ".rdb", "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
		// A replica's first sync starts at once, not after the default 5 s wait for others.
		"--repl-diskless-sync-delay", "0"}
	if password != "" {
		args = append(args, "--requirepass", password, "--masterauth", password)
	}
	return args
}

func redisEnv(binDir, dir string) []string {
	return append(baseEnv(dir), "LD_LIBRARY_PATH="+filepath.Join(binDir, "..", "lib"))
}

// create runs redis-cli --cluster create and waits until every node sees the cluster ok and every
// replica is in sync with its primary.
func (c *RedisCluster) create(ctx context.Context, binDir string, replicas int) error {
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "redis-cli"), args...)
	cmd.Env = redisEnv(binDir, c.dir)
	if c.password != "" {
		cmd.Env = append(cmd.Env, "REDISCLI_AUTH="+c.password) // not -a: it would be in ps
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range c.Addrs {
		for {
			err := c.ready(ctx, a, replicas)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the Redis Cluster did not settle within 30s: node %s: %w", a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// ready reports whether node addr sees the cluster ok and every replica in its slot map, and, if it is
// a replica, is in sync. (Replicas appear in CLUSTER SLOTS only once gossip told the node whose they
// are, a moment after redis-cli returns.)
func (c *RedisCluster) ready(ctx context.Context, addr string, replicas int) error {
	n := c.Node(addr)
	defer func() { _ = n.Close() }()
	info, err := n.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return errors.New("cluster_state is not ok")
	}
	//nolint:staticcheck // CLUSTER SLOTS is deprecated for CLUSTER SHARDS, but it is what go-redis routes by
	slots, err := n.ClusterSlots(ctx).Result()
	if err != nil {
		return err
	}
	for _, r := range slots {
		if len(r.Nodes) != 1+replicas {
			return fmt.Errorf("slots %d-%d list %d nodes, want %d", r.Start, r.End, len(r.Nodes), 1+replicas)
		}
	}
	repl, err := n.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
		return errors.New("the replica is not in sync with its primary")
	}
	return nil
}

// loadFunctions loads claude-guard's function library on every primary, as the manager does.
func (c *RedisCluster) loadFunctions(ctx context.Context) error {
	cc := c.newClient()
	defer func() { _ = cc.Close() }()
	return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		_, err := redislib.Ensure(ctx, n)
		return err
	})
}

func (c *RedisCluster) newClient() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, Password: c.password, MaxRetries: -1})
}

// Client returns a cluster client of the default user, closed when the test ends.
func (c *RedisCluster) Client(t testing.TB) *redis.ClusterClient {
	cc := c.newClient()
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// ping sends PING over n and closes it.
func ping(ctx context.Context, n *redis.Client) error {
	defer func() { _ = n.Close() }()
	return n.Ping(ctx).Err()
}

// Node returns a plain client of one node; the caller closes it.
func (c *RedisCluster) Node(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: c.password, MaxRetries: -1, DisableIdentity: true})
}

// Primaries returns the primaries' addresses, as the cluster sees them now.
func (c *RedisCluster) Primaries(ctx context.Context) ([]string, error) {
	shards, err := c.shards(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range shards {
		for _, n := range s.Nodes {
			if n.Role == "master" && n.Health == "online" {
				out = append(out, net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10)))
			}
		}
	}
	return out, nil
}

// PrimaryOf returns the address of the primary serving key.
func (c *RedisCluster) PrimaryOf(ctx context.Context, key string) (string, error) {
	cc := c.newClient()
	defer func() { _ = cc.Close() }()
	slot, err := cc.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return "", err
	}
	shards, err := c.shards(ctx)
	if err != nil {
		return "", err
	}
	for _, s := range shards {
		for _, r := range s.Slots {
			if r.Start > slot || slot > r.End {
				continue
			}
			for _, n := range s.Nodes {
				if n.Role == "master" && n.Health == "online" {
					return net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10)), nil
				}
			}
		}
	}
	return "", fmt.Errorf("no online primary serves slot %d", slot)
}

func (c *RedisCluster) shards(ctx context.Context) ([]redis.ClusterShard, error) {
	cc := c.newClient()
	defer func() { _ = cc.Close() }()
	return cc.ClusterShards(ctx).Result()
}

// Kill ends node addr with SIGKILL, as a crash would.
func (c *RedisCluster) Kill(addr string) {
	if p := c.nodes[addr]; p != nil {
		p.kill()
	}
}

// Close stops every node and removes the run directory.
func (c *RedisCluster) Close() {
	for _, p := range c.nodes {
		p.stop()
	}
	_ = os.RemoveAll(c.dir)
}

// logs returns the tail of every node's log.
func (c *RedisCluster) logs() string {
	var b strings.Builder
	for _, a := range c.Addrs {
		fmt.Fprintf(&b, "--- %s log:\n%s\n", c.nodes[a].name, c.nodes[a].logTail())
	}
	return b.String()
}

// StartRedisCluster is LaunchRedisCluster for a test: stopped by t.Cleanup, the logs printed if the
// test failed.
func StartRedisCluster(t testing.TB, o RedisClusterOptions) *RedisCluster {
	t.Helper()
	c, err := LaunchRedisCluster(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.logs())
		}
		c.Close()
	})
	return c
}

// kill sends SIGKILL to the process group and waits for the process to end.
func (p *process) kill() {
	if ok, _ := p.exited(); ok {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}
