//go:build integration

package redisacl

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redisconn"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

// topology is a Redis deployment of several nodes under test: its admin URL, its data nodes, a way to
// drop their function library, and a crash of the primary that holds namespace's keys.
type topology struct {
	name      string
	url       string
	nodes     []string
	node      func(addr string) *redis.Client
	primaries func(t *testing.T) []string
	// killPrimaryOf kills the primary serving key and returns its address.
	killPrimaryOf func(t *testing.T, key string) string
}

func clusterTopology(t *testing.T) topology {
	c := testservers.StartRedisCluster(t, testservers.RedisClusterOptions{ReplicasPerPrimary: 1, Password: "admin-pw"})
	return topology{name: "Cluster", url: c.URL, nodes: c.Addrs, node: c.Node,
		primaries: func(t *testing.T) []string { return must(c.Primaries(t.Context())) },
		killPrimaryOf: func(t *testing.T, key string) string {
			p := must(c.PrimaryOf(t.Context(), key))
			c.Kill(p)
			return p
		}}
}

func sentinelTopology(t *testing.T) topology {
	s := testservers.StartRedisSentinel(t, testservers.RedisSentinelOptions{Password: "admin-pw"})
	primary := func(t *testing.T) []string { return []string{must(s.Primary(t.Context()))} }
	return topology{name: "Sentinel", url: s.URL, nodes: s.DataNodes(), node: s.Node, primaries: primary,
		killPrimaryOf: func(t *testing.T, _ string) string {
			p := primary(t)[0]
			s.Kill(p)
			return p
		}}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestAdminOnEveryNode: on a Redis Cluster (3 primaries, a replica each) and on a Sentinel deployment
// (a primary, 2 replicas), the manager loads the function library on every primary and sets each
// namespace's user on every node, replicas included. That is what lets a namespace's sidecars go on
// the moment a failover promotes a replica: Redis does not replicate ACL users, and the next resync may
// be a minute away. The test kills the primary holding team-a's keys and calls the function as team-a
// on whichever node took over, without running EnsureUser again.
func TestAdminOnEveryNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		mk   func(*testing.T) topology
	}{{"Cluster", clusterTopology}, {"Sentinel", sentinelTopology}} {
		t.Run(tc.name, func(t *testing.T) {
			tp := tc.mk(t)
			ctx := t.Context()
			for _, p := range tp.primaries(t) {
				n := tp.node(p)
				if err := n.FunctionFlush(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				_ = n.Close()
			}
			a, err := NewAdmin(tp.url, master)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if loaded, err := a.EnsureFunctions(ctx); err != nil || !loaded {
				t.Fatalf("EnsureFunctions = %v, %v; want loaded", loaded, err)
			}
			for _, ns := range []string{"team-a", "team-b", "team-c"} {
				if err := a.EnsureUser(ctx, ns, uid); err != nil {
					t.Fatal(err)
				}
			}
			waitForReplication(t, tp)
			for _, addr := range tp.nodes {
				n := tp.node(addr)
				libs, err := n.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: redislib.Library}).Result()
				if err != nil || len(libs) != 1 {
					t.Errorf("node %s: FUNCTION LIST = %v, %v; want the library (loaded on its primary)", addr, libs, err)
				}
				if err := n.Do(ctx, "ACL", "GETUSER", "cg-team-a").Err(); err != nil {
					t.Errorf("node %s: ACL GETUSER cg-team-a: %v", addr, err)
				}
				_ = n.Close()
			}
			if got, err := a.Namespaces(ctx); err != nil || strings.Join(got, ",") != "team-a,team-b,team-c" {
				t.Fatalf("Namespaces = %v, %v", got, err)
			}
			if err := a.DeleteUser(ctx, "team-c"); err != nil {
				t.Fatal(err)
			}
			for _, addr := range tp.nodes {
				n := tp.node(addr)
				if v, err := n.Do(ctx, "ACL", "GETUSER", "cg-team-c").Result(); err == nil && v != nil {
					t.Errorf("node %s still has cg-team-c after DeleteUser: %v", addr, v)
				}
				_ = n.Close()
			}

			user := namespaceClient(t, tp.url, "team-a", a.Password("team-a", uid))
			own, theirs := "cg:{team-a}:jti:x", "cg:{team-b}:jti:x"
			if err := user.FCall(ctx, redislib.Once, []string{own}, "60000").Err(); err != nil {
				t.Fatalf("FCALL on its own key: %v", err)
			}
			if err := user.FCall(ctx, redislib.Once, []string{theirs}, "60000").Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
				t.Fatalf("FCALL on team-b's key as team-a: %v, want NOPERM", err)
			}

			killed := tp.killPrimaryOf(t, own)
			t0 := time.Now()
			var last error
			for time.Since(t0) < 30*time.Second {
				if last = user.FCall(ctx, redislib.Once, []string{own + time.Now().String()}, "60000").Err(); last == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if last != nil {
				t.Fatalf("team-a after its primary %s was killed: %v for 30s", killed, last)
			}
			if strings.Contains(strings.ToUpper(errorText(last)), "WRONGPASS") {
				t.Fatal(last)
			}
			t.Logf("%s: team-a's calls went on %v after its primary %s was killed", tp.name, time.Since(t0).Round(10*time.Millisecond), killed)
		})
	}
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// waitForReplication waits until every replica has the function library its primary loaded.
func waitForReplication(t *testing.T, tp topology) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range tp.nodes {
		n := tp.node(addr)
		for {
			libs, err := n.FunctionList(t.Context(), redis.FunctionListQuery{LibraryNamePattern: redislib.Library}).Result()
			if err == nil && len(libs) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s has no function library 10s after it was loaded: %v", addr, errors.Join(err))
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = n.Close()
	}
}

// namespaceClient is a client of the topology's URL as a namespace's user, as a sidecar connects.
func namespaceClient(t *testing.T, rawURL, ns, password string) redis.UniversalClient {
	t.Helper()
	pub, err := PublicURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u, err := redisconn.Parse(pub)
	if err != nil {
		t.Fatal(err)
	}
	c := redisconn.NewClient(u, redisconn.Settings{Timeout: 2 * time.Second, NoRetries: true,
		Credentials: func(context.Context) (string, string, error) { return "cg-" + ns, password, nil }})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestSentinelsRefuseTenants: a tenant's app container shares its sidecar's network, so it reaches the
// sentinels the sidecar asks for the primary, without credentials (a sidecar has none for them). With
// the sentinel configuration docs/limits.md recommends (the default user allowed only the discovery
// commands, testservers.SentinelClientGrants), the manager and a namespace's client still find the
// primary, and everything that would let a tenant steer the deployment is refused: a failover on
// demand, moving or dropping the monitored primary, changing its settings, the sentinels' own
// configuration and ACLs.
func TestSentinelsRefuseTenants(t *testing.T) {
	s := testservers.StartRedisSentinel(t, testservers.RedisSentinelOptions{Password: "admin-pw"})
	ctx := t.Context()
	a, err := NewAdmin(s.URL, master)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.EnsureUser(ctx, "team-a", uid); err != nil {
		t.Fatal(err)
	}
	user := namespaceClient(t, s.URL, "team-a", a.Password("team-a", uid))
	if err := user.FCall(ctx, redislib.Once, []string{"cg:{team-a}:jti:x"}, "60000").Err(); err != nil {
		t.Fatalf("FCALL through the locked sentinels: %v", err)
	}
	anon := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0], MaxRetries: -1, DisableIdentity: true})
	defer func() { _ = anon.Close() }()
	primary := must(s.Primary(ctx))
	host, port, _ := strings.Cut(primary, ":")
	for _, c := range [][]any{
		{"SENTINEL", "FAILOVER", testservers.SentinelMaster},
		{"SENTINEL", "REMOVE", testservers.SentinelMaster},
		{"SENTINEL", "MONITOR", "evil", host, port, "1"},
		{"SENTINEL", "SET", testservers.SentinelMaster, "down-after-milliseconds", "1"},
		{"SENTINEL", "SET", testservers.SentinelMaster, "auth-pass", "x"},
		{"SENTINEL", "RESET", "*"},
		{"SENTINEL", "CONFIG", "SET", "resolve-hostnames", "yes"},
		{"SENTINEL", "DEBUG"},
		{"SENTINEL", "FLUSHCONFIG"},
		{"SENTINEL", "MASTER", testservers.SentinelMaster}, // its auth-pass is not shown, but its settings are not a tenant's business
		{"ACL", "SETUSER", "default", "+@all"},
		{"SHUTDOWN"},
		{"CLIENT", "KILL", "TYPE", "normal"},
	} {
		if err := anon.Process(ctx, redis.NewCmd(ctx, c...)); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("%v as the sentinels' default user: %v, want NOPERM", c, err)
		}
	}
	if p := must(s.Primary(ctx)); p != primary {
		t.Fatalf("the primary moved from %s to %s", primary, p)
	}
}
