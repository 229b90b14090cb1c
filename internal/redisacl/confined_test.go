//go:build integration

package redisacl

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redislib"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

// assertConfined checks that user, namespace ns's user, gets NOPERM for everything but calling
// claude-guard's functions on its own keys: no code of its own (so no loop keeping Redis BUSY for every
// tenant, no unloading the library others call), no command that stores a value of its choosing or
// drops a TTL, nothing of namespace other, no administration.
func assertConfined(t *testing.T, ctx context.Context, user *redis.Client, ns, other string) {
	t.Helper()
	own, theirs := "cg:{"+ns+"}:jti:x", "cg:{"+other+"}:jti:x"
	big := strings.Repeat("x", 1<<20)
	loop := "#!lua name=evil\nredis.register_function('evil', function() while true do end end)"
	denied := []struct {
		name string
		cmd  *redis.Cmd
	}{
		// Code of its own.
		{"EVAL of a loop", user.Do(ctx, "EVAL", "while true do end", 0)},
		{"EVAL_RO", user.Do(ctx, "EVAL_RO", "return 1", 0)},
		{"EVALSHA", user.Do(ctx, "EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", 0)},
		{"SCRIPT LOAD", user.Do(ctx, "SCRIPT", "LOAD", "return 1")},
		{"SCRIPT FLUSH", user.Do(ctx, "SCRIPT", "FLUSH")},
		{"SCRIPT KILL", user.Do(ctx, "SCRIPT", "KILL")},
		{"FUNCTION LOAD", user.Do(ctx, "FUNCTION", "LOAD", loop)},
		{"FUNCTION DELETE", user.Do(ctx, "FUNCTION", "DELETE", redislib.Library)},
		{"FUNCTION FLUSH", user.Do(ctx, "FUNCTION", "FLUSH")},
		{"FUNCTION KILL", user.Do(ctx, "FUNCTION", "KILL")},
		{"FUNCTION RESTORE", user.Do(ctx, "FUNCTION", "RESTORE", "x")},
		{"FCALL of another function", user.Do(ctx, "FCALL", "evil", 0)},
		{"FCALL_RO", user.Do(ctx, "FCALL_RO", redislib.Once, 1, own, "1000")},
		// Values of its choosing, keys without a TTL, on its own keys.
		{"SET of 1 MiB", user.Do(ctx, "SET", own, big)},
		{"SET with PX", user.Do(ctx, "SET", own, "1", "PX", "1000")},
		{"HSET", user.Do(ctx, "HSET", own, "f", big)},
		{"HSETNX", user.Do(ctx, "HSETNX", own, "f", big)},
		{"APPEND", user.Do(ctx, "APPEND", own, big)},
		{"SETRANGE", user.Do(ctx, "SETRANGE", own, 1<<28, "x")},
		{"LPUSH", user.Do(ctx, "LPUSH", own, big)},
		{"XADD", user.Do(ctx, "XADD", own, "*", "f", big)},
		{"RESTORE", user.Do(ctx, "RESTORE", own, 0, big)},
		{"PERSIST", user.Do(ctx, "PERSIST", own)},
		{"EXPIRE", user.Do(ctx, "EXPIRE", own, 1<<30)},
		{"DEL", user.Do(ctx, "DEL", own)},
		// Other namespaces and other keys.
		{"FCALL on another namespace's key", user.Do(ctx, "FCALL", redislib.Once, 1, theirs, "1000")},
		{"HINCRBY on another namespace's key", user.Do(ctx, "HINCRBY", theirs, "n", -1)},
		{"HMGET of another namespace's key", user.Do(ctx, "HMGET", theirs, "n")},
		{"HINCRBY outside cg", user.Do(ctx, "HINCRBY", "x", "n", 1)},
		// Administration and the rest.
		{"FLUSHALL", user.Do(ctx, "FLUSHALL")},
		{"FLUSHDB", user.Do(ctx, "FLUSHDB")},
		{"CONFIG SET", user.Do(ctx, "CONFIG", "SET", "maxmemory", "1")},
		{"ACL SETUSER", user.Do(ctx, "ACL", "SETUSER", "cg-"+ns, "~*")},
		{"KEYS", user.Do(ctx, "KEYS", "*")},
		{"SCAN", user.Do(ctx, "SCAN", 0)},
		{"CLIENT KILL", user.Do(ctx, "CLIENT", "KILL", "USER", "default")},
		{"SWAPDB", user.Do(ctx, "SWAPDB", 0, 1)},
		{"PUBLISH", user.Do(ctx, "PUBLISH", "c", "m")},
		{"SELECT another database", user.Do(ctx, "SELECT", 1)},
	}
	for _, d := range denied {
		if err := d.cmd.Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("%s as %s: %v, want NOPERM", d.name, user.Options().Username, err)
		}
	}
}

// TestFunctionsNeedTheirCommands shows, on the real server, why the commands the functions run are
// granted: Redis checks every command a function runs against the ACL of the user calling FCALL, so a
// user without any one of redislib.Commands cannot use the functions. Withholding them (so that writes
// happen only through the functions) is therefore not possible with Redis ACLs.
func TestFunctionsNeedTheirCommands(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{})
	ctx := context.Background()
	admin := srv.Client(t)
	o := srv.Options()
	o.Username, o.Password = "probe", "pw"
	probe := redis.NewClient(o)
	defer probe.Close()
	const counter, mark = "cg:{a}:p:x:limit:r:Minute:Namespace=a:0", "cg:{a}:jti:x"
	calls := func() error {
		if err := probe.FCall(ctx, redislib.Reserve, []string{counter}, "0", "l", "10", "100", "1", "1", "60000").Err(); err != nil {
			return err
		}
		if err := probe.FCall(ctx, redislib.Adjust, []string{counter}, "0", "5", "60000").Err(); err != nil {
			return err
		}
		return probe.FCall(ctx, redislib.Once, []string{mark}, "60000").Err()
	}
	for _, without := range append([]string{""}, redislib.Commands...) {
		t.Run("without "+without, func(t *testing.T) {
			grants := slices.DeleteFunc(Grants(0, false), func(g string) bool { return g == "+"+without })
			args := append([]any{"ACL", "SETUSER", "probe", "reset", "on", ">pw", "~cg:{a}:*", "resetchannels", "-@all"}, anys(grants)...)
			if err := admin.Do(ctx, args...).Err(); err != nil {
				t.Fatal(err)
			}
			err := calls()
			if without == "" {
				if err != nil {
					t.Fatalf("with every grant: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "can't run this command") {
				t.Fatalf("without %s: %v, want Redis to refuse the function's %s", without, err, strings.ToUpper(without))
			}
		})
	}
}

// TestSelectOnlyTheManagersDatabase: with an admin URL on database 2, sidecars may SELECT 2 and no
// other database, and their limiter works there.
func TestSelectOnlyTheManagersDatabase(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{})
	ctx := context.Background()
	a, err := NewAdmin(strings.TrimSuffix(srv.URL, "/0")+"/2", master)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.EnsureUser(ctx, "team-a", uid); err != nil {
		t.Fatal(err)
	}
	o := srv.Options()
	o.Username, o.Password, o.DB = "cg-team-a", a.Password("team-a", uid), 2
	user := redis.NewClient(o)
	defer user.Close()
	if err := user.FCall(ctx, redislib.Once, []string{"cg:{team-a}:jti:x"}, "60000").Err(); err != nil {
		t.Fatalf("FCALL on database 2: %v", err)
	}
	for _, db := range []int{0, 1, 3} {
		if err := user.Do(ctx, "SELECT", strconv.Itoa(db)).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("SELECT %d: %v, want NOPERM", db, err)
		}
	}
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
