//go:build integration

package limits

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/internal/test/wait"
)

// TestRedisUserPasswordFile: with Username and PasswordFile the limiter authenticates as that user with
// the file's password, reads the file again for new connections (a rotated password is used without a
// restart), and treats a missing or empty file as an outage, never as "no password".
func TestRedisUserPasswordFile(t *testing.T) {
	srv := testservers.StartRedis(t, testservers.RedisOptions{Password: "admin-pw"})
	ctx := context.Background()
	admin := srv.Client(t)
	setUser := func(pw string) {
		t.Helper()
		args := []any{"ACL", "SETUSER", "cg-team-a", "reset", "on", ">" + pw, "~" + NamespaceKeyPrefix("team-a") + "*", "resetchannels", "-@all",
			"+fcall|cg_v1_reserve", "+fcall|cg_v1_adjust", "+fcall|cg_v1_once", "+hmget", "+hincrby", "+incr", "+pexpire", "+hello", "+auth"}
		if err := admin.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	setUser("first")
	pwFile := filepath.Join(t.TempDir(), "password")
	writePW := func(pw string) {
		t.Helper()
		if err := os.WriteFile(pwFile, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePW("first\n") // kubelet writes Secret values as they are; a trailing newline is tolerated
	rs := compile(t, &policyconfig.Config{Identity: policyconfig.Identity{Namespace: "team-a"},
		Limits: policyconfig.Limits{Rules: []policyconfig.LimitRule{{Name: "rpm", Key: "Namespace", Window: "Minute", Requests: 100}}}})
	addr := "redis://" + srv.Addr + "/0"
	l, err := NewRedis(RedisOptions{URL: addr, Username: "cg-team-a", PasswordFile: pwFile, Rules: rs,
		Timeout: 2 * time.Second, BreakerInterval: time.Millisecond, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	reserve := func() error {
		_, err := l.Reserve(ctx, Request{})
		return err
	}
	if err := reserve(); err != nil {
		t.Fatalf("reserve as cg-team-a: %v", err)
	}
	if first, err := l.Once(ctx, "jti:x", time.Minute); err != nil || !first {
		t.Fatalf("once as cg-team-a: %v %v", first, err)
	}

	// Rotation: the operator sets a new password and kubelet updates the file; connections made after
	// that (here: after the old ones are killed) use it.
	setUser("second")
	writePW("second")
	if err := admin.Do(ctx, "CLIENT", "KILL", "USER", "cg-team-a").Err(); err != nil {
		t.Fatal(err)
	}
	if err := wait.Until(context.Background(), 5*time.Second, reserve); err != nil {
		t.Fatalf("reserve after the password rotated: %v", err)
	}

	cases := []struct{ name, content string }{{"empty file", ""}, {"wrong password", "third"}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			writePW(c.content)
			if err := admin.Do(ctx, "CLIENT", "KILL", "USER", "cg-team-a").Err(); err != nil {
				t.Fatal(err)
			}
			err := reserve()
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("reserve with %s: %v, want ErrUnavailable", c.name, err)
			}
			if strings.Contains(err.Error(), "second") || strings.Contains(err.Error(), "third") {
				t.Fatalf("the error repeats a password: %v", err)
			}
		})
	}
	t.Run("credentials in the URL too", func(t *testing.T) {
		_, err := NewRedis(RedisOptions{URL: "redis://u:pw@" + srv.Addr, Username: "cg-team-a", PasswordFile: pwFile})
		if err == nil || strings.Contains(err.Error(), "pw@") {
			t.Fatalf("NewRedis with two sources of credentials: %v", err)
		}
	})
}
