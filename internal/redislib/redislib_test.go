//go:build integration

package redislib_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

// TestEnsure: the library is loaded into an empty Redis, left alone when in place, replaced when its
// code differs, and loaded again after FUNCTION FLUSH; a connection without FUNCTION rights gets an
// error naming the library.
func TestEnsure(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{NoFunctions: true})
	ctx := context.Background()
	c := srv.Client(t)
	if err := c.FCall(ctx, redislib.Once, []string{"cg:{a}:jti:x"}, "1000").Err(); !redislib.IsMissing(err) {
		t.Fatalf("FCALL before loading: %v, want a missing function", err)
	}
	ensure := func(want bool) {
		t.Helper()
		loaded, err := redislib.Ensure(ctx, c)
		if err != nil || loaded != want {
			t.Fatalf("Ensure = %v, %v; want loaded=%v", loaded, err, want)
		}
	}
	ensure(true)
	ensure(false)
	if err := c.FCall(ctx, redislib.Once, []string{"cg:{a}:jti:x"}, "1000").Err(); err != nil {
		t.Fatalf("FCALL once loaded: %v", err)
	}
	// Another build of the same convention: replaced by this one.
	if err := c.FunctionLoadReplace(ctx, strings.Replace(redislib.Source, "local MAX_KEYS = 128", "local MAX_KEYS = 1", 1)).Err(); err != nil {
		t.Fatal(err)
	}
	ensure(true)
	if err := c.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	ensure(true)

	if err := c.Do(ctx, "ACL", "SETUSER", "u", "on", ">pw", "~*", "+@all", "-function").Err(); err != nil {
		t.Fatal(err)
	}
	o := srv.Options()
	o.Username, o.Password = "u", "pw"
	u := redis.NewClient(o)
	defer u.Close()
	if _, err := redislib.Ensure(ctx, u); err == nil || !strings.Contains(err.Error(), redislib.Library) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Ensure without FUNCTION rights: %v", err)
	}
}

// TestFunctionsRefuseBadArguments: every argument is checked before the first write, so a call outside
// the bounds (too many or malformed keys, keys of two namespaces, a counter function on a replay key,
// numbers that are not integers or out of range, a TTL of zero or beyond the bound, the wrong number of
// arguments) is refused and leaves nothing in Redis.
func TestFunctionsRefuseBadArguments(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{})
	ctx := context.Background()
	c := srv.Client(t)
	const counter, mark = "cg:{team-a}:p:chat:limit:rpm:Minute:Namespace=team-a:1767261600", "cg:{team-a}:jti:x"
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	rule := func(hold, ttl string) []any { return []any{"l", "10", "0", hold, "0", ttl} }
	many := make([]string, redislib.MaxKeys+1)
	var manyArgs []any
	for i := range many {
		many[i] = counter + strconv.Itoa(i)
		manyArgs = append(manyArgs, rule("1", "60000")...)
	}
	cases := []struct {
		name, fn string
		keys     []string
		args     []any
		want     string
	}{
		{"no keys", redislib.Reserve, nil, []any{"0"}, "between 1 and 128 counter keys"},
		{"too many keys", redislib.Reserve, many, append([]any{"0"}, manyArgs...), "between 1 and 128 counter keys"},
		{"key too long", redislib.Reserve, []string{counter + strings.Repeat("x", redislib.MaxKeyLen)}, append([]any{"0"}, rule("1", "60000")...), "longer than 512 bytes"},
		{"key outside cg", redislib.Reserve, []string{"other:key"}, append([]any{"0"}, rule("1", "60000")...), "not a claude-guard counter key"},
		{"replay key as counter", redislib.Reserve, []string{mark}, append([]any{"0"}, rule("1", "60000")...), "not a claude-guard counter key"},
		{"counter as replay key", redislib.Once, []string{counter}, []any{"60000"}, "not a claude-guard replay key"},
		{"two namespaces", redislib.Reserve, []string{counter, "cg:{team-b}:p:chat:x"}, append(append([]any{"0"}, rule("1", "60000")...), rule("1", "60000")...), "one namespace"},
		{"missing arguments", redislib.Reserve, []string{counter}, []any{"0", "l", "10"}, "1 + 6 arguments per key"},
		{"force not 0 or 1", redislib.Reserve, []string{counter}, append([]any{"2"}, rule("1", "60000")...), "force must be 0 or 1"},
		{"unknown rule kind", redislib.Reserve, []string{counter}, []any{"0", "x", "10", "0", "1", "0", "60000"}, "kind must be l or b"},
		{"hold not an integer", redislib.Reserve, []string{counter}, append([]any{"0"}, rule("1e3", "60000")...), "must be a decimal integer"},
		{"request hold above 1", redislib.Reserve, []string{counter}, append([]any{"0"}, rule("1000000", "60000")...), "request hold is out of range"},
		{"negative hold", redislib.Reserve, []string{counter}, []any{"0", "l", "10", "0", "1", "-5", "60000"}, "amount hold is out of range"},
		{"amount beyond 2^62", redislib.Reserve, []string{counter}, []any{"0", "l", "10", "0", "1", "9223372036854775807", "60000"}, "amount hold is out of range"},
		{"huge number", redislib.Reserve, []string{counter}, append([]any{"0"}, rule(strings.Repeat("9", 1000), "60000")...), "must be a decimal integer"},
		{"counter TTL zero", redislib.Reserve, []string{counter}, append([]any{"0"}, rule("1", "0")...), "TTL (ms) is out of range"},
		{"counter TTL beyond the bound", redislib.Reserve, []string{counter}, append([]any{"0"}, rule("1", ms(redislib.MaxCounterTTL+time.Millisecond))...), "TTL (ms) is out of range"},
		{"adjust: wrong arity", redislib.Adjust, []string{counter}, []any{"1", "1"}, "3 arguments per key"},
		{"adjust: request delta 1000", redislib.Adjust, []string{counter}, []any{"1000", "0", "60000"}, "request delta is out of range"},
		{"adjust: no TTL", redislib.Adjust, []string{counter}, []any{"0", "5", "-1"}, "TTL (ms) is out of range"},
		{"once: two keys", redislib.Once, []string{mark, mark + "2"}, []any{"60000"}, "between 1 and 1 replay keys"},
		{"once: TTL beyond the bound", redislib.Once, []string{mark}, []any{ms(redislib.MaxReplayTTL + time.Millisecond)}, "TTL (ms) is out of range"},
		{"once: no TTL", redislib.Once, []string{mark}, nil, "once takes 1 argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.FCall(ctx, tc.fn, tc.keys, tc.args...).Err()
			if err == nil || !strings.HasPrefix(err.Error(), "ERR claude-guard: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s: %v, want ERR claude-guard: %s", tc.fn, err, tc.want)
			}
			if n := c.DBSize(ctx).Val(); n != 0 {
				t.Fatalf("a refused call left %d keys", n)
			}
		})
	}
}

// TestFunctionsAlwaysSetATTL: every key a function writes ends with a TTL within its bound, including a
// key that was written without one by other means.
func TestFunctionsAlwaysSetATTL(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{})
	ctx := context.Background()
	c := srv.Client(t)
	const a, b, mark = "cg:{t}:p:x:limit:a", "cg:{t}:p:x:budget:b", "cg:{t}:jti:m"
	if err := c.HSet(ctx, b, "a", 5).Err(); err != nil { // no TTL
		t.Fatal(err)
	}
	calls := []struct {
		fn   string
		keys []string
		args []any
	}{
		{redislib.Reserve, []string{a, b}, []any{"0", "l", "1", "100", "1", "10", "60000", "b", "0", "100", "0", "0", "60000"}},
		{redislib.Adjust, []string{a, b}, []any{"0", "-3", "60000", "0", "7", "60000"}},
		{redislib.Once, []string{mark}, []any{"30000"}},
	}
	for _, call := range calls {
		if err := c.FCall(ctx, call.fn, call.keys, call.args...).Err(); err != nil {
			t.Fatalf("%s: %v", call.fn, err)
		}
	}
	for k, max := range map[string]time.Duration{a: time.Minute, b: time.Minute, mark: 30 * time.Second} {
		if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 || ttl > max {
			t.Errorf("%s: TTL %v, want within (0, %v]", k, ttl, max)
		}
	}
	if got := c.HMGet(ctx, b, "a").Val(); got[0] != "12" {
		t.Errorf("budget counter = %v, want 12 (5 + 7)", got)
	}
}

// TestOnceSeesMarksOfEarlierReleases: a replay key an earlier release wrote (SET key 1 NX PX) counts as
// seen, and keeps its TTL.
func TestOnceSeesMarksOfEarlierReleases(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{})
	ctx := context.Background()
	c := srv.Client(t)
	const mark = "cg:{t}:jti:old"
	if err := c.SetNX(ctx, mark, "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.FCall(ctx, redislib.Once, []string{mark}, "3600000").Int64(); err != nil || n != 0 {
		t.Fatalf("once on an earlier release's mark = %d, %v; want 0 (seen)", n, err)
	}
	if ttl := c.PTTL(ctx, mark).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL %v, want the mark's own (at most 1m)", ttl)
	}
	if n, err := c.FCall(ctx, redislib.Once, []string{"cg:{t}:jti:new"}, "3600000").Int64(); err != nil || n != 1 {
		t.Fatalf("once on a new key = %d, %v; want 1", n, err)
	}
}
