//go:build integration

package redisusers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redisacl"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/sidecar/limits"
)

// tenants is one Redis shared by two namespaces, each with the ACL user the manager gives it.
type tenants struct {
	srv   *testservers.Redis
	admin *redis.Client
	acl   *redisacl.Admin
}

const (
	nsA, nsB   = "team-a", "team-b"
	uidA, uidB = "0b5b3f2e-5f0c-4c8e-9d4e-3a1f2b6c7d8e", "7c1d9e4a-2b3f-4e5d-8a6b-9c0d1e2f3a4b"
)

func newTenants(t *testing.T) *tenants {
	t.Helper()
	srv := testservers.StartRedis(t, testservers.RedisOptions{Password: adminPassword, NoFunctions: true})
	a, err := redisacl.NewAdmin(srv.URL, master)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ctx := context.Background()
	if _, err := a.EnsureFunctions(ctx); err != nil {
		t.Fatal(err)
	}
	for ns, uid := range map[string]string{nsA: uidA, nsB: uidB} {
		if err := a.EnsureUser(ctx, ns, uid); err != nil {
			t.Fatal(err)
		}
	}
	return &tenants{srv: srv, admin: srv.Client(t), acl: a}
}

// user logs in as ns's user, as anyone holding the namespace's Secret can.
func (ts *tenants) user(t *testing.T, ns, uid string) *redis.Client {
	t.Helper()
	return userClient(t, ts.srv, ns, ts.acl.Password(ns, uid))
}

// limiter is ns's sidecar limiter, with the production timeout.
func (ts *tenants) limiter(t *testing.T, ns, uid string, rules ...policyconfig.LimitRule) *limits.Redis {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(ts.acl.Password(ns, uid)), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := limits.Compile(&policyconfig.Config{Policy: policyconfig.PolicyRef{Namespace: ns, Name: "chat"},
		Identity: policyconfig.Identity{Namespace: ns}, Limits: policyconfig.Limits{Rules: rules}})
	if err != nil {
		t.Fatal(err)
	}
	public, err := redisacl.PublicURL(ts.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	l, err := limits.NewRedis(limits.RedisOptions{URL: public, Username: "cg-" + ns, PasswordFile: pw, Rules: rs,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// TestTenantCannotMakeAnotherBusy: while tenant A, with its namespace's credentials, tries everything
// that would keep Redis busy (a Lua loop of its own by EVAL, SCRIPT LOAD or FUNCTION LOAD, another
// library's slow function, claude-guard's functions with far too many keys, unloading the library), tenant
// B's limiter answers every call in time, never BUSY, and keeps counting exactly.
func TestTenantCannotMakeAnotherBusy(t *testing.T) {
	ts := newTenants(t)
	ctx := context.Background()
	// Redis answers BUSY to everyone once a script has run for this long: 50 ms instead of the default
	// 5 s, so that a loop of A's would show at once.
	if err := ts.admin.ConfigSet(ctx, "busy-reply-threshold", "50").Err(); err != nil {
		t.Fatal(err)
	}
	// Another application's library in the same Redis, with a slow function: A may not call it.
	slow := "#!lua name=otherapp\nredis.register_function('otherapp_slow', function() local n = 0 for i = 1, 3e8 do n = n + i end return n end)"
	if err := ts.admin.FunctionLoad(ctx, slow).Err(); err != nil {
		t.Fatal(err)
	}
	const limit = 200
	b := ts.limiter(t, nsB, uidB, policyconfig.LimitRule{Name: "rpm", Key: "Namespace", Window: "Minute", Requests: limit})
	userA := ts.user(t, nsA, uidA)

	many := make([]string, 10_000)
	for i := range many {
		many[i] = fmt.Sprintf("cg:{%s}:p:x:limit:r:Minute:Namespace=%s:%d", nsA, nsA, i)
	}
	attempts := []struct {
		name string
		try  func() error
	}{
		{"EVAL of a loop", func() error { return userA.Eval(ctx, "while true do end", nil).Err() }},
		{"SCRIPT LOAD of a loop", func() error { return userA.ScriptLoad(ctx, "while true do end").Err() }},
		{"FUNCTION LOAD of a loop", func() error {
			return userA.FunctionLoad(ctx, "#!lua name=evil\nredis.register_function('evil', function() while true do end end)").Err()
		}},
		{"FCALL of another library's slow function", func() error { return userA.FCall(ctx, "otherapp_slow", nil).Err() }},
		{"FUNCTION FLUSH", func() error { return userA.FunctionFlush(ctx).Err() }},
		{"FUNCTION DELETE of claude-guard's library", func() error { return userA.FunctionDelete(ctx, redislib.Library).Err() }},
		{"FCALL reserve with 10,000 keys", func() error { return userA.FCall(ctx, redislib.Reserve, many, "0").Err() }},
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	succeeded := map[string]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for _, a := range attempts {
				select {
				case <-stop:
					return
				default:
				}
				if err := a.try(); err == nil {
					mu.Lock()
					succeeded[a.name] = true
					mu.Unlock()
				}
			}
		}
	}()
	var slowest time.Duration
	for i := range limit {
		t0 := time.Now()
		_, err := b.Reserve(ctx, limits.Request{})
		if d := time.Since(t0); d > slowest {
			slowest = d
		}
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("B's reserve %d while A tries: %v", i+1, err)
		}
	}
	close(stop)
	wg.Wait()
	if _, err := b.Reserve(ctx, limits.Request{}); !isDenied(err) {
		t.Fatalf("B's reserve %d: %v, want the limit's refusal", limit+1, err)
	}
	for name := range succeeded {
		t.Errorf("A's %s succeeded, want refused", name)
	}
	t.Logf("B's slowest reserve while A tried: %v", slowest)
}

// TestTenantCannotFillMemory: tenant A cannot store a value of its choosing, drop a TTL, or write
// anything in B's namespace: every raw write but HINCRBY is refused, and claude-guard's functions refuse
// oversized or malformed arguments and unbounded TTLs. What A writes through the functions is small and
// expires. HINCRBY stays, because the functions run it as their caller; what it leaves A (keys and
// field names of its own choosing, without a TTL, in its own namespace) is checked last, so that
// docs/limits.md ("Security") stays true.
func TestTenantCannotFillMemory(t *testing.T) {
	ts := newTenants(t)
	ctx := context.Background()
	userA := ts.user(t, nsA, uidA)
	b := ts.limiter(t, nsB, uidB, policyconfig.LimitRule{Name: "rpm", Key: "Namespace", Window: "Minute", Requests: 5})
	if _, err := b.Reserve(ctx, limits.Request{}); err != nil {
		t.Fatal(err)
	}
	bKeys := ts.keys(t, nsB)
	if len(bKeys) != 1 {
		t.Fatalf("B's keys: %v, want its one counter", bKeys)
	}
	bBefore := ts.admin.HGetAll(ctx, bKeys[0]).Val()

	const mib = 1 << 20
	big := strings.Repeat("x", mib)
	own, counter := "cg:{"+nsA+"}:jti:big", "cg:{"+nsA+"}:p:chat:limit:rpm:Minute:Namespace="+nsA+":0"
	cases := []struct {
		name string
		cmd  *redis.Cmd
		want string // the start of the error
	}{
		{"SET of 1 MiB", userA.Do(ctx, "SET", own, big), "NOPERM"},
		{"HSET of 1 MiB", userA.Do(ctx, "HSET", own, "f", big), "NOPERM"},
		{"APPEND of 1 MiB", userA.Do(ctx, "APPEND", own, big), "NOPERM"},
		{"SETRANGE far out", userA.Do(ctx, "SETRANGE", own, 256*mib, "x"), "NOPERM"},
		{"RESTORE without TTL", userA.Do(ctx, "RESTORE", own, 0, big), "NOPERM"},
		{"PERSIST (drop a TTL)", userA.Do(ctx, "PERSIST", own), "NOPERM"},
		{"EVAL writing 1 MiB", userA.Do(ctx, "EVAL", "return redis.call('SET', KEYS[1], ARGV[1])", 1, own, big), "NOPERM"},
		{"once with a 1 MiB key", userA.Do(ctx, "FCALL", redislib.Once, 1, own+big, "1000"), "ERR claude-guard"},
		{"once without a TTL", userA.Do(ctx, "FCALL", redislib.Once, 1, own, "0"), "ERR claude-guard"},
		{"once for 10 years", userA.Do(ctx, "FCALL", redislib.Once, 1, own, (10 * 365 * 24 * time.Hour).Milliseconds()), "ERR claude-guard"},
		{"reserve with a 1 MiB argument", userA.Do(ctx, "FCALL", redislib.Reserve, 1, counter, "0", "l", "1", "0", big, "0", "60000"), "ERR claude-guard"},
		{"reserve for 10 years", userA.Do(ctx, "FCALL", redislib.Reserve, 1, counter, "0", "l", "9", "0", "1", "0", (10 * 365 * 24 * time.Hour).Milliseconds()), "ERR claude-guard"},
		{"adjust without a TTL", userA.Do(ctx, "FCALL", redislib.Adjust, 1, counter, "1", "0", "-1"), "ERR claude-guard"},
		{"reserve on B's counter", userA.Do(ctx, "FCALL", redislib.Reserve, 1, bKeys[0], "1", "l", "1", "0", "1", "0", "60000"), "NOPERM"},
		{"adjust on B's counter", userA.Do(ctx, "FCALL", redislib.Adjust, 1, bKeys[0], "-1", "0", "60000"), "NOPERM"},
		{"HINCRBY on B's counter", userA.Do(ctx, "HINCRBY", bKeys[0], "r", 1000), "NOPERM"},
		{"PEXPIRE on B's counter", userA.Do(ctx, "PEXPIRE", bKeys[0], 1), "NOPERM"},
	}
	for _, c := range cases {
		if err := c.cmd.Err(); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s as A: %v, want %s", c.name, err, c.want)
		}
	}
	if got := ts.admin.HGetAll(ctx, bKeys[0]).Val(); fmt.Sprint(got) != fmt.Sprint(bBefore) {
		t.Errorf("B's counter changed from %v to %v", bBefore, got)
	}
	if keys := ts.keys(t, nsA); len(keys) != 0 {
		t.Errorf("A's refused writes left keys %v", keys)
	}

	// What A can write through the functions (here, as its own sidecar would) is small and expires.
	a := ts.limiter(t, nsA, uidA, policyconfig.LimitRule{Name: "tpm", Key: "EndUser", Window: "Minute", Tokens: 1 << 40})
	for i := range 50 {
		if _, err := a.Reserve(ctx, limits.Request{Keys: limits.Keys{EndUser: fmt.Sprint("user-", i, strings.Repeat("x", 1000))}, InputTokens: 1 << 30}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Once(ctx, fmt.Sprint("jti:", i, strings.Repeat("y", 1000)), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range ts.keys(t, nsA) {
		if n := ts.admin.MemoryUsage(ctx, k).Val(); n > 512 {
			t.Errorf("A's key %.40s... uses %d bytes", k, n)
		}
		if ttl := ts.admin.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("A's key %.40s... has TTL %v, want within (0, 1h]", k, ttl)
		}
	}

	// The limit of Redis ACLs: HINCRBY, which the functions need, creates a key in A's namespace with a
	// field name of A's choosing and no TTL. What A stores that way is about what it uploads, like any
	// flood of small keys, which no ACL bounds either (docs/limits.md, "Security").
	raw := "cg:{" + nsA + "}:raw"
	if err := userA.HIncrBy(ctx, raw, big, 1).Err(); err != nil {
		t.Fatalf("HINCRBY with a 1 MiB field: %v; if Redis now refuses it, update docs/limits.md", err)
	}
	if n, ttl := ts.admin.MemoryUsage(ctx, raw).Val(), ts.admin.PTTL(ctx, raw).Val(); n < mib || ttl != -1 {
		t.Fatalf("the HINCRBY key uses %d bytes with TTL %v; docs/limits.md says about 1 MiB without a TTL", n, ttl)
	}
}

// keys returns the keys of namespace ns (by the admin).
func (ts *tenants) keys(t *testing.T, ns string) []string {
	t.Helper()
	keys, err := ts.admin.Keys(context.Background(), limits.NamespaceKeyPrefix(ns)+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func isDenied(err error) bool {
	var d *limits.Denied
	return errors.As(err, &d)
}
