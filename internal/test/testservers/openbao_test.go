//go:build integration

package testservers_test

import (
	"strings"
	"testing"

	"github.com/claude-guard/claude-guard/internal/test/testservers"
)

func TestOpenBaoServesKVAndStops(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tls        bool
		wantScheme string
	}{
		{name: "plain HTTP", wantScheme: "http://"},
		{name: "TLS", tls: true, wantScheme: "https://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			bao := testservers.StartOpenBao(t, testservers.OpenBaoOptions{TLS: tc.tls})
			if !strings.HasPrefix(bao.Addr, tc.wantScheme) {
				t.Fatalf("Addr = %q, want scheme %s", bao.Addr, tc.wantScheme)
			}
			if (bao.CACert != "") != tc.tls {
				t.Fatalf("CACert = %q with TLS %v", bao.CACert, tc.tls)
			}
			c := bao.Client(t)
			if _, err := c.KVv2("secret").Put(ctx, "probe", map[string]any{"v": "1"}); err != nil {
				t.Fatalf("failed to write to the dev server's KV v2 mount: %v", err)
			}
			s, err := c.KVv2("secret").Get(ctx, "probe")
			if err != nil || s.Data["v"] != "1" {
				t.Fatalf("read back %v, %v; want v=1", s, err)
			}

			bao.Stop()
			if _, err := c.Sys().HealthWithContext(ctx); err == nil {
				t.Fatal("the server still answers after Stop")
			}
			bao.Stop() // idempotent, as t.Cleanup calls it again
		})
	}
}
