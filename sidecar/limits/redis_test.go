//go:build integration

package limits

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// TestRedisKeys checks the key layout: one hash tag per namespace, policy rules per policy, tenant rules
// shared across the namespace's policies, and escaped values.
func TestRedisKeys(t *testing.T) {
	policy := func(ns, name, tenant string) *policyconfig.Config {
		return &policyconfig.Config{
			Policy:   policyconfig.PolicyRef{Namespace: ns, Name: name, Tenant: tenant},
			Identity: policyconfig.Identity{Namespace: ns},
			Limits: policyconfig.Limits{Rules: []policyconfig.LimitRule{
				{Name: "rpm", Key: "EndUser", Window: "Minute", Requests: 10},
				{Name: "ns-rpm", Source: "tenant", Key: "Namespace", Window: "Minute", Requests: 10},
			}},
			Budgets: []policyconfig.Budget{{Name: "rpm", Key: "Workload", Window: "Day", Tokens: 10}},
		}
	}
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	k := Keys{Workload: "spiffe://td/ns/team-a/sa/app", EndUser: "user:{evil}", Namespace: "team-a"}
	a, b, other := compile(t, policy("team-a", "chat", "acme")), compile(t, policy("team-a", "batch", "acme")), compile(t, policy("team-b", "chat", "acme"))
	got := []string{a.bucketKey(&a.rules[0], k, start), a.bucketKey(&a.rules[1], k, start), a.bucketKey(&a.rules[2], k, start)}
	want := []string{
		"cg:{team-a}:p:chat:limit:rpm:Minute:EndUser=user%3A%7Bevil%7D:1767261600",
		"cg:{team-a}:t:acme:limit:ns-rpm:Minute:Namespace=team-a:1767261600",
		"cg:{team-a}:p:chat:budget:rpm:Day:Workload=spiffe%3A%2F%2Ftd%2Fns%2Fteam-a%2Fsa%2Fapp:1767261600",
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("key %d = %q\n        want %q", i, got[i], want[i])
		}
	}
	if b.bucketKey(&b.rules[0], k, start) == got[0] {
		t.Error("two policies' rules of the same name share a counter")
	}
	if b.bucketKey(&b.rules[1], k, start) != got[1] {
		t.Error("a tenant rule is not shared by the namespace's policies")
	}
	if other.bucketKey(&other.rules[1], Keys{Namespace: "team-b"}, start) == got[1] {
		t.Error("two namespaces share a tenant counter")
	}
	if r := a.replayKey("https://issuer|jti-1"); r != "cg:{team-a}:jti:https%3A%2F%2Fissuer%7Cjti-1" {
		t.Errorf("replay key = %q", r)
	}
}

// TestRedisIsolation proves the key layout on a real Redis: counters are shared exactly where they should be.
func TestRedisIsolation(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{})
	ctx := context.Background()
	cfg := func(ns, name string) *Rules {
		return compile(t, &policyconfig.Config{
			Policy: policyconfig.PolicyRef{Namespace: ns, Name: name, Tenant: "acme"},
			Limits: policyconfig.Limits{Rules: []policyconfig.LimitRule{
				{Name: "one", Key: "EndUser", Window: "Hour", Requests: 1},
				{Name: "tenant-two", Source: "tenant", Key: "Namespace", Window: "Hour", Requests: 2},
			}},
		})
	}
	chat, batch, otherNS := newRedis(t, srv, cfg("team-a", "chat"), RedisOptions{}), newRedis(t, srv, cfg("team-a", "batch"), RedisOptions{}), newRedis(t, srv, cfg("team-b", "chat"), RedisOptions{})
	reserve := func(l *Redis, user, ns string) error {
		_, err := l.Reserve(ctx, Request{Keys: Keys{EndUser: user, Namespace: ns}})
		return err
	}
	steps := []struct {
		name    string
		l       *Redis
		user    string
		ns      string
		allowed bool
		rule    string
	}{
		{"chat: alice's first", chat, "alice", "team-a", true, ""},
		{"chat: alice again (policy rule)", chat, "alice", "team-a", false, "policy/one"},
		{"batch: alice has her own count in another policy", batch, "alice", "team-a", true, ""},
		{"batch: bob is the namespace's 3rd request (tenant rule shared by both policies)", batch, "bob", "team-a", false, "tenant/tenant-two"},
		{"team-b: its own namespace counter", otherNS, "alice", "team-b", true, ""},
		{"chat: a user named like a key with separators", chat, "alice:x", "team-a", false, "tenant/tenant-two"},
	}
	for _, s := range steps {
		err := reserve(s.l, s.user, s.ns)
		if d := asDenied(err); s.allowed != (err == nil) || (!s.allowed && (d == nil || d.Rule != s.rule)) {
			t.Fatalf("%s: %v, want allowed=%v rule=%q", s.name, err, s.allowed, s.rule)
		}
	}
	keys, err := srv.Client(t).Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if inTeam := strings.HasPrefix(k, "cg:{team-a}:") || strings.HasPrefix(k, "cg:{team-b}:"); strings.Count(k, "{") != 1 || !inTeam {
			t.Errorf("key %q does not carry exactly one namespace hash tag", k)
		}
		if ttl := srv.Client(t).PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour+keyGrace {
			t.Errorf("key %q has TTL %v, want until its window ends plus %v", k, ttl, keyGrace)
		}
	}
}

// countingHook counts the commands (round trips) a client sends.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)

		return next(ctx, cmd)
	}
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestRedisOneRoundTripPerOperation: Reserve is one FCALL whatever the number of rules; Settle and
// Refund one each (none when nothing changes); checked with a client hook and with the server's own
// command statistics.
func TestRedisOneRoundTripPerOperation(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{})
	ctx := context.Background()
	rs := rules(t, []policyconfig.LimitRule{
		{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 1000},
		{Name: "tpm", Key: "Workload", Window: "Minute", Tokens: 1_000_000},
		{Name: "rpd", Key: "Namespace", Window: "Day", Requests: 100_000},
		{Name: "eu", Key: "EndUser", Window: "Hour", Tokens: 1_000_000},
	}, []policyconfig.Budget{{Name: "b", Key: "Namespace", Window: "Month", Tokens: 1 << 40}}, nil)
	l := newRedis(t, srv, rs, RedisOptions{})
	hook := &countingHook{}
	l.client.AddHook(hook)
	// Warm up the connection.
	warm, err := l.Reserve(ctx, Request{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, warm, usage.Usage{OutputTokens: 1}); err != nil {
		t.Fatal(err)
	}
	admin := srv.Client(t)
	if err := admin.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	hook.n.Store(0)
	oneCall := func(what string, f func() error) {
		t.Helper()
		before := hook.n.Load()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if d := hook.n.Load() - before; d != 1 {
			t.Fatalf("%s sent %d commands, want 1", what, d)
		}
	}
	const n = 50
	for range n {
		var r *Reservation
		oneCall("reserve", func() (err error) {
			r, err = l.Reserve(ctx, Request{Keys: Keys{Workload: "w", EndUser: "u", Namespace: "ns"}, InputTokens: 10, OutputTokens: 100})
			return err
		})
		oneCall("settle", func() error { return l.Settle(ctx, r, usage.Usage{InputTokens: 10, OutputTokens: 20}) })
		oneCall("reserve", func() (err error) { r, err = l.Reserve(ctx, Request{Keys: Keys{Workload: "w"}}); return err })
		oneCall("refund", func() error { return l.Refund(ctx, r) })
	}
	stats := admin.Info(ctx, "commandstats").Val()
	if !strings.Contains(stats, "cmdstat_fcall:calls=200,") {
		t.Fatalf("server saw:\n%s\nwant exactly 200 FCALL calls (50 × reserve, settle, reserve, refund)", stats)
	}
	// (The commands the functions run inside Redis are listed too; they are not round trips.) No code
	// of the client's own:
	for _, c := range []string{"cmdstat_eval:", "cmdstat_evalsha:", "cmdstat_script|", "cmdstat_function|"} {
		if strings.Contains(stats, c) {
			t.Errorf("the client sent %s...: %s", c, stats)
		}
	}
	// A settle that changes nothing (a request-only rule) needs no round trip at all.
	only := newRedis(t, srv, rules(t, []policyconfig.LimitRule{{Name: "r", Key: "Workload", Window: "Minute", Requests: 10}}, nil, nil), RedisOptions{})
	only.client.AddHook(hook)
	before := hook.n.Load()
	if _, err := only.Reserve(ctx, Request{}); err != nil {
		t.Fatal(err)
	}
	if d := hook.n.Load() - before; d != 2 {
		t.Fatalf("reserve on a new connection sent %d commands, want 2 (HELLO, then FCALL)", d)
	}
	var r *Reservation
	oneCall("reserve", func() (err error) { r, err = only.Reserve(ctx, Request{}); return err })
	before = hook.n.Load()
	if err := only.Settle(ctx, r, usage.Usage{OutputTokens: 5}); err != nil {
		t.Fatal(err)
	}
	if d := hook.n.Load() - before; d != 0 {
		t.Fatalf("a settle that changes nothing sent %d commands", d)
	}
}

// TestRedisOutage stops Redis under each failure mode and brings it back: FailClosed refuses with
// ErrUnavailable, FailOpen counts locally; the breaker answers without waiting for a timeout; one log
// line per outage start and end; recovery without a new limiter.
func TestRedisOutage(t *testing.T) {
	for _, mode := range []string{policyconfig.FailClosed, policyconfig.FailOpen} {
		t.Run(mode, func(t *testing.T) {
			srv := testservers.StartRedis(t, testservers.RedisOptions{Password: "hunter2-secret"})
			ctx := context.Background()
			rs := compile(t, &policyconfig.Config{Limits: policyconfig.Limits{FailureMode: mode, Rules: []policyconfig.LimitRule{
				{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 3},
			}}})
			var logs logbuf.Buffer
			var failOpen atomic.Int64
			const interval = 300 * time.Millisecond
			l := newRedis(t, srv, rs, RedisOptions{BreakerInterval: interval, Log: slog.New(slog.NewJSONHandler(&logs, nil)),
				OnFailOpen: func(string) { failOpen.Add(1) }})
			w := Keys{Workload: "w"}
			held, err := l.Reserve(ctx, Request{Keys: w})
			if err != nil {
				t.Fatal(err)
			}

			srv.Stop()
			if l.Up() != true {
				t.Fatal("down before any call failed")
			}
			_, err = l.Reserve(ctx, Request{Keys: w})
			switch mode {
			case policyconfig.FailClosed:
				if !errors.Is(err, ErrUnavailable) {
					t.Fatalf("FailClosed reserve with Redis down: %v, want ErrUnavailable", err)
				}
			case policyconfig.FailOpen:
				if err != nil {
					t.Fatalf("FailOpen reserve with Redis down: %v", err)
				}
			}
			if l.Up() {
				t.Fatal("Up after a failed call")
			}
			// With the breaker open, calls do not wait for Redis; FailOpen counts them locally against the
			// same rules (3 per minute, in this sidecar).
			local := 0
			for range 5 {
				t0 := time.Now()
				_, err := l.Reserve(ctx, Request{Keys: w})
				if d := time.Since(t0); d > 20*time.Millisecond {
					t.Fatalf("reserve took %v with the breaker open", d)
				}
				if err == nil {
					local++
				} else if mode == policyconfig.FailOpen && asDenied(err) == nil {
					t.Fatalf("FailOpen: %v", err)
				}
			}
			if mode == policyconfig.FailOpen && local != 2 {
				t.Fatalf("FailOpen admitted %d more locally, want 2 (the local limit of 3 with one taken)", local)
			}
			if mode == policyconfig.FailClosed && local != 0 {
				t.Fatalf("FailClosed admitted %d", local)
			}
			// The reservation taken on Redis cannot be settled while it is down: an error, not a panic.
			if err := l.Settle(ctx, held, usage.Usage{}); err != nil && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("settle while down: %v", err)
			}
			// Once-replay protection follows the same mode.
			_, err = l.Once(ctx, "jti", time.Minute)
			if (mode == policyconfig.FailClosed) != errors.Is(err, ErrUnavailable) {
				t.Fatalf("Once while down: %v", err)
			}

			srv.Start(t)
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, err := l.Reserve(ctx, Request{Keys: Keys{Workload: "after"}})
				if err == nil && l.Up() {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no recovery 5s after Redis came back: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if first, err := l.Once(ctx, "jti-after", time.Minute); err != nil || !first {
				t.Fatalf("Once after recovery: %v %v", first, err)
			}
			if mode == policyconfig.FailOpen && failOpen.Load() < 6 {
				t.Fatalf("%d operations counted as served locally, want >= 6", failOpen.Load())
			}
			out := logs.String()
			if n := strings.Count(out, "is unavailable"); n != 1 {
				t.Errorf("%d outage log lines, want 1:\n%s", n, out)
			}
			if n := strings.Count(out, "reachable again"); n != 1 {
				t.Errorf("%d recovery log lines, want 1:\n%s", n, out)
			}
			if strings.Contains(out, "hunter2") || (err != nil && strings.Contains(err.Error(), "hunter2")) {
				t.Errorf("the password leaked:\n%s", out)
			}
		})
	}
}

// TestRedisTimeoutIsShort: a Redis that accepts connections but never answers costs one timeout, then
// the breaker answers at once.
func TestRedisTimeoutIsShort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	rs := rules(t, []policyconfig.LimitRule{{Name: "r", Key: "Workload", Window: "Minute", Requests: 1}}, nil, nil)
	l, err := NewRedis(RedisOptions{URL: "redis://" + ln.Addr().String(), Rules: rs, Timeout: 100 * time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i, max := range []time.Duration{600 * time.Millisecond, 20 * time.Millisecond} {
		t0 := time.Now()
		_, err := l.Reserve(context.Background(), Request{})
		if d := time.Since(t0); !errors.Is(err, ErrUnavailable) || d > max {
			t.Fatalf("call %d: %v after %v, want ErrUnavailable within %v", i, err, d, max)
		}
	}
}

func TestRedisURLs(t *testing.T) {
	for _, c := range []struct {
		url, want, err string
	}{
		{url: "redis://127.0.0.1:6379/0", want: "redis://127.0.0.1:6379"},
		{url: "rediss://user:hunter2@redis.example:6380/1?dial_timeout=1s", want: "rediss://redis.example:6380"},
		{url: "http://user:hunter2@x", err: `must start with redis://, rediss://`},
		{url: "redis://:hunter2@host:notaport", err: "failed to parse"},
		{url: "redis://user:hunter2@", err: "names no host"},
		{url: "redis://:hunter2@%zz", err: "failed to parse"},
	} {
		got, err := RedactURL(c.url)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("RedactURL(%q) = %q, %v; want %q, %q", c.url, got, err, c.want, c.err)
		}
		_, nerr := NewRedis(RedisOptions{URL: c.url})
		if (nerr == nil) != (c.err == "") {
			t.Errorf("NewRedis(%q): %v", c.url, nerr)
		}
		for _, e := range []error{err, nerr} {
			if e != nil && strings.Contains(e.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", e)
			}
		}
	}
}

// TestRedisTLS: rediss:// verifies the server against the configured roots, and refuses an unknown CA.
func TestRedisTLS(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{TLS: true})
	rs := rules(t, []policyconfig.LimitRule{{Name: "r", Key: "Workload", Window: "Minute", Requests: 1}}, nil, nil)
	l := newRedis(t, srv, rs, RedisOptions{})
	if _, err := l.Reserve(context.Background(), Request{}); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	if _, err := l.Reserve(context.Background(), Request{}); asDenied(err) == nil {
		t.Fatalf("second request over TLS: %v, want denied", err)
	}
	untrusted, err := NewRedis(RedisOptions{URL: srv.URL, Rules: rs, TLS: &tls.Config{}, Timeout: 2 * time.Second, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer untrusted.Close()
	if _, err := untrusted.Reserve(context.Background(), Request{}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server certificate: %v", err)
	}
}

// TestRedisACL: the ACL that docs/limits.md recommends is enough for every operation, and keeps the user
// to claude-guard's keys and commands.
func TestRedisACL(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{})
	ctx := context.Background()
	admin := srv.Client(t)
	// The line from docs/limits.md, "Security".
	acl := "on >s3cret-acl resetkeys ~cg:* resetchannels -@all +fcall|cg_v1_reserve +fcall|cg_v1_adjust +fcall|cg_v1_once +hmget +hincrby +incr +pexpire +hello +auth +select"
	if err := admin.Do(ctx, append([]any{"ACL", "SETUSER", "claude-guard"}, anySlice(strings.Fields(acl))...)...).Err(); err != nil {
		t.Fatal(err)
	}
	url := strings.Replace(srv.URL, "redis://", "redis://claude-guard:s3cret-acl@", 1)
	rs := rules(t, []policyconfig.LimitRule{{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 2, Tokens: 1000}},
		[]policyconfig.Budget{{Name: "b", Key: "Namespace", Window: "Month", Tokens: 100}}, nil)
	l, err := NewRedis(RedisOptions{URL: url, Rules: rs, Timeout: 2 * time.Second, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r, err := l.Reserve(ctx, Request{InputTokens: 10})
	if err != nil {
		t.Fatalf("reserve as the ACL user: %v", err)
	}
	if err := l.Settle(ctx, r, usage.Usage{InputTokens: 5}); err != nil {
		t.Fatalf("settle: %v", err)
	}
	r, err = l.Reserve(ctx, Request{InputTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Refund(ctx, r); err != nil {
		t.Fatalf("refund: %v", err)
	}
	if first, err := l.Once(ctx, "iss|jti", time.Minute); err != nil || !first {
		t.Fatalf("once: %v %v", first, err)
	}
	// The same user cannot touch other keys or run other commands.
	o := srv.Options()
	o.Username, o.Password = "claude-guard", "s3cret-acl"
	user := redis.NewClient(o)
	defer user.Close()
	if err := user.Set(ctx, "not-ours", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("SET outside cg:*: %v, want NOPERM", err)
	}
	for name, err := range map[string]error{
		"FLUSHALL":        user.FlushAll(ctx).Err(),
		"EVAL":            user.Eval(ctx, "return 1", nil).Err(),
		"SET on cg:*":     user.Set(ctx, "cg:{x}:jti:y", "1", 0).Err(),
		"FUNCTION DELETE": user.FunctionDelete(ctx, redislib.Library).Err(),
	} {
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%s: %v, want NOPERM", name, err)
		}
	}
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
