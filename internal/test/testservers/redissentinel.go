package testservers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redislib"
)

// SentinelMaster is the name the sentinels of StartRedisSentinel know the primary by.
const SentinelMaster = "cg"

// SentinelAdmin and SentinelAdminPassword are the sentinels' own administrator, which they also use
// among themselves. Everyone else is the sentinels' default user, allowed only what clients need to
// find the primary (SentinelClientGrants), as docs/limits.md recommends: a tenant's app shares its
// sidecar's network and could otherwise reconfigure the sentinels or start a failover.
const (
	SentinelAdmin         = "sentinel-admin"
	SentinelAdminPassword = "sentinel-admin-s3cret"
)

// SentinelClientGrants are the sentinels' default user's commands: what go-redis's Sentinel client and
// the manager send to a sentinel (docs/limits.md, "Redis topologies").
const SentinelClientGrants = "-@all +sentinel|get-master-addr-by-name +sentinel|sentinels +sentinel|replicas +subscribe +ping +hello +auth"

// RedisSentinelOptions configure StartRedisSentinel.
type RedisSentinelOptions struct {
	// Replicas of the primary; 2 when zero.
	Replicas int
	// Sentinels watching it; 3 when zero (a quorum of 2).
	Sentinels int
	// DownAfter is how long the primary may not answer before a sentinel deems it down; 1 s when zero.
	DownAfter time.Duration
	// Password is the default user's password on the data nodes (requirepass, masterauth, and the
	// sentinels' auth-pass). The sentinels themselves take no password.
	Password string
}

// RedisSentinel is a primary with replicas and the sentinels watching them: redis-server processes
// (Debian's; a sentinel is redis-server --sentinel) on 127.0.0.1, with claude-guard's function library
// loaded on the primary (replication copies it to the replicas). No persistence.
type RedisSentinel struct {
	// URL is redis+sentinel://[:password@]SENTINEL?addr=...&master_name=cg.
	URL string
	// Sentinels are the sentinels' addresses.
	Sentinels []string

	t        testing.TB
	password string
	nodes    map[string]*process // data nodes by address
	addrs    []string            // data nodes, the first primary first
}

// StartRedisSentinel starts the data nodes and the sentinels and waits until every sentinel knows every
// replica and every other sentinel, so that a failover can start as soon as the primary fails.
func StartRedisSentinel(t testing.TB, o RedisSentinelOptions) *RedisSentinel {
	t.Helper()
	if o.Replicas == 0 {
		o.Replicas = 2
	}
	if o.Sentinels == 0 {
		o.Sentinels = 3
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	binDir, err := RedisDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := runDir(t, "cg-redissentinel-")
	s := &RedisSentinel{t: t, password: o.Password, nodes: map[string]*process{}}
	env := redisEnv(binDir, dir)
	server := filepath.Join(binDir, "redis-server")
	var primary string
	for i := range 1 + o.Replicas {
		port := strconv.Itoa(freePort(t))
		addr := net.JoinHostPort("127.0.0.1", port)
		args := dataNodeArgs(port, dir, o.Password)
		if i == 0 {
			primary = addr
		} else {
			args = append(args, "--replicaof", "127.0.0.1", strings.TrimPrefix(primary, "127.0.0.1:"))
		}
		p, err := startProcess("redis-server "+addr, filepath.Join(dir, "redis-"+port+".log"), env, server, args...)
		if err != nil {
			t.Fatal(err)
		}
		p.logOnFailure(t)
		t.Cleanup(p.stop)
		s.nodes[addr], s.addrs = p, append(s.addrs, addr)
		if err := waitFor(p, 20*time.Second, "redis-server to answer PING", func() error { return ping(t.Context(), s.Node(addr)) }); err != nil {
			t.Fatal(err)
		}
	}
	pc := s.Node(primary)
	defer func() { _ = pc.Close() }()
	if _, err := redislib.Ensure(t.Context(), pc); err != nil {
		t.Fatal(err)
	}
	s.waitForSync(t)
	for range o.Sentinels {
		s.startSentinel(t, dir, env, server, primary, o)
	}
	q := url.Values{"master_name": {SentinelMaster}}
	for _, a := range s.Sentinels[1:] {
		q.Add("addr", a)
	}
	u := url.URL{Scheme: "redis+sentinel", Host: s.Sentinels[0], RawQuery: q.Encode()}
	if o.Password != "" {
		u.User = url.UserPassword("", o.Password)
	}
	s.URL = u.String()
	s.waitUntilWatched(t, o)
	return s
}

func (s *RedisSentinel) startSentinel(t testing.TB, dir string, env []string, server, primary string, o RedisSentinelOptions) {
	t.Helper()
	port := strconv.Itoa(freePort(t))
	host, pport, _ := net.SplitHostPort(primary)
	conf := []string{
		"port " + port, "bind 127.0.0.1", "protected-mode no", "dir " + dir,
		fmt.Sprintf("sentinel monitor %s %s %s 2", SentinelMaster, host, pport),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", SentinelMaster, o.DownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s 10000", SentinelMaster),
		fmt.Sprintf("sentinel parallel-syncs %s 2", SentinelMaster),
		fmt.Sprintf("user %s on >%s ~* &* +@all", SentinelAdmin, SentinelAdminPassword),
		"user default on nopass " + SentinelClientGrants,
		"sentinel sentinel-user " + SentinelAdmin, "sentinel sentinel-pass " + SentinelAdminPassword,
	}
	if o.Password != "" {
		conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", SentinelMaster, o.Password))
	}
	// A sentinel rewrites its configuration file (what it learnt of the others): each needs its own.
	path := filepath.Join(dir, "sentinel-"+port+".conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	p, err := startProcess("redis-sentinel "+addr, filepath.Join(dir, "sentinel-"+port+".log"), env, server, path, "--sentinel")
	if err != nil {
		t.Fatal(err)
	}
	p.logOnFailure(t)
	t.Cleanup(p.stop)
	s.Sentinels = append(s.Sentinels, addr)
}

// waitForSync waits until every replica is in sync with the primary (and so has its function library).
func (s *RedisSentinel) waitForSync(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range s.addrs[1:] {
		n := s.Node(a)
		for {
			info, err := n.Info(t.Context(), "replication").Result()
			if err == nil && strings.Contains(info, "master_link_status:up") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %s is not in sync with its primary after 30s: %v", a, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = n.Close()
	}
}

// waitUntilWatched waits until every sentinel sees every replica and the other sentinels.
func (s *RedisSentinel) waitUntilWatched(t testing.TB, o RedisSentinelOptions) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, Username: SentinelAdmin, Password: SentinelAdminPassword, MaxRetries: -1, DisableIdentity: true})
		for {
			m, err := sc.Master(t.Context(), SentinelMaster).Result()
			if err == nil && m["num-slaves"] == strconv.Itoa(o.Replicas) && m["num-other-sentinels"] == strconv.Itoa(o.Sentinels-1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sentinel %s did not see %d replicas and %d other sentinels within 30s: %v %v", a, o.Replicas, o.Sentinels-1, m, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = sc.Close()
	}
}

// Node returns a plain client of one data node; the caller closes it.
func (s *RedisSentinel) Node(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: s.password, MaxRetries: -1, DisableIdentity: true})
}

// Primary asks the sentinels where the primary is.
func (s *RedisSentinel) Primary(ctx context.Context) (string, error) {
	var errs []error
	for _, a := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, MaxRetries: -1, DisableIdentity: true})
		hp, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("no sentinel named the primary: %w", errors.Join(errs...))
}

// DataNodes returns the data nodes' addresses, the first primary first.
func (s *RedisSentinel) DataNodes() []string { return slices.Clone(s.addrs) }

// Kill ends data node addr with SIGKILL, as a crash would.
func (s *RedisSentinel) Kill(addr string) {
	if p := s.nodes[addr]; p != nil {
		p.kill()
	}
}

// WaitForFailover waits until the sentinels name a primary other than old and that node answers as a
// primary, and returns it.
func (s *RedisSentinel) WaitForFailover(t testing.TB, old string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, err := s.Primary(t.Context())
		if err == nil && p != old {
			n := s.Node(p)
			role, rerr := n.Do(t.Context(), "ROLE").Slice()
			_ = n.Close()
			if rerr == nil && len(role) > 0 && role[0] == "master" {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover from %s within %s (primary now %q, %v)", old, timeout, p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
