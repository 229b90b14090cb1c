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
