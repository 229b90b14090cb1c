package managerapp

import (
	"strings"
	"testing"
)

// TestValidateNeverEchoesTheRedisURL: --redis-url may carry a password, so a bad one is refused without
// repeating it (the manager's logs and events are readable by more people than its flags).
func TestValidateNeverEchoesTheRedisURL(t *testing.T) {
	for _, c := range []struct {
		url     string
		wantErr bool
	}{
		{url: "redis://:hunter2@redis.claude-guard-system:6379/0"},
		{url: "rediss://limits:hunter2@redis:6380"},
		{url: "redis://:hunter2@%zz", wantErr: true},
		{url: "hunter2@redis:6379", wantErr: true},
		{url: "redis+cluster://admin:hunter2@r1:6379?addr=r2:6379"},
		{url: "redis+sentinel://:hunter2@s1:26379?master_name=cg"},
		{url: "redis+cluster://admin:hunter2@r1:6379/2", wantErr: true},
		{url: "redis+sentinel://:hunter2@s1:26379", wantErr: true},
		{url: "redis+sentinel://s1:26379?master_name=cg&password=hunter2", wantErr: true},
	} {
		o := NewOptions()
		o.OperatorNamespace = "claude-guard-system"
		o.RedisURL = c.url
		err := o.Validate()
		if (err != nil) != c.wantErr {
			t.Fatalf("Validate with --redis-url %q: %v", c.url, err)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "--redis-url")) {
			t.Fatalf("error %q must name the flag and not repeat its value", err)
		}
	}
}

// TestRedisURLRenderedWithoutCredentials: with per-namespace users (the default) the sidecars get the
// address only and the webhook mounts the namespace's password; with the flag off, or without Redis,
// nothing changes from before.
func TestRedisURLRenderedWithoutCredentials(t *testing.T) {
	cases := []struct {
		name         string
		args         []string
		wantURL      string
		wantUsers    bool
		wantPassword bool
	}{
		{name: "per-namespace users by default", args: []string{"--redis-url=rediss://admin:hunter2@redis:6380/0?dial_timeout=1s"},
			wantURL: "rediss://redis:6380/0?dial_timeout=1s", wantUsers: true, wantPassword: true},
		{name: "flag off: the URL as is", args: []string{"--redis-url=rediss://admin:hunter2@redis:6380/0", "--redis-per-namespace-users=false"},
			wantURL: "rediss://admin:hunter2@redis:6380/0"},
		{name: "no Redis", args: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := NewOptions()
			if err := o.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			eff, err := o.Effective()
			if err != nil {
				t.Fatal(err)
			}
			if eff.RedisURL != c.wantURL || eff.RedisUsers != c.wantUsers {
				t.Fatalf("effective Redis = %q users=%v, want %q users=%v", eff.RedisURL, eff.RedisUsers, c.wantURL, c.wantUsers)
			}
			if got := o.Inject().RedisPassword; got != c.wantPassword {
				t.Fatalf("webhook mounts the Redis password = %v, want %v", got, c.wantPassword)
			}
		})
	}
}
