//go:build integration

package limits

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/testservers"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// benchRules is a realistic policy: request and token limits per workload, end user and namespace, and
// a USD budget: six counters per request.
func benchRules(b *testing.B) *Rules {
	rs, err := Compile(&policyconfig.Config{
		Policy: policyconfig.PolicyRef{Namespace: "team-a", Name: "chat", Tenant: "acme"},
		Limits: policyconfig.Limits{Rules: []policyconfig.LimitRule{
			{Name: "rpm", Key: "Workload", Window: "Minute", Requests: 1 << 40},
			{Name: "tpm", Key: "Workload", Window: "Minute", Tokens: 1 << 40},
			{Name: "user-tph", Key: "EndUser", Window: "Hour", Tokens: 1 << 40},
			{Name: "ns-rpd", Source: "tenant", Key: "Namespace", Window: "Day", Requests: 1 << 40},
			{Name: "ns-tpd", Source: "tenant", Key: "Namespace", Window: "Day", Tokens: 1 << 40},
		}},
		Budgets: []policyconfig.Budget{{Name: "usd", Key: "Namespace", Window: "Month", USD: "1000000"}},
		Prices:  []policyconfig.Price{{Model: "claude-*", TokenPrices: policyconfig.TokenPrices{InputUSD: "3", OutputUSD: "15"}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// benchReserveSettle runs one reservation and its settle per iteration, across 64 end users.
func benchReserveSettle(b *testing.B, l Limiter) {
	ctx := context.Background()
	users := make([]string, 64)
	for i := range users {
		users[i] = "user-" + strconv.Itoa(i)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			r, err := l.Reserve(ctx, Request{Keys: Keys{Workload: "w", EndUser: users[i%64], Namespace: "team-a"}, Model: "claude-haiku-4-5",
				InputTokens: 800, OutputTokens: 1024})
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Settle(ctx, r, usage.Usage{InputTokens: 800, OutputTokens: 300}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReserveSettle is the limiter's cost per request: Memory, and Redis on loopback (one round trip
// each for Reserve and Settle). -cpu 1 gives the serial latency; higher values the throughput.
func BenchmarkReserveSettle(b *testing.B) {
	b.Run("Memory", func(b *testing.B) { benchReserveSettle(b, NewMemory(benchRules(b))) })
	b.Run("Redis", func(b *testing.B) {
		srv := testservers.StartRedis(b, testservers.RedisOptions{})
		l, err := NewRedis(RedisOptions{URL: srv.URL, Rules: benchRules(b), Timeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		benchReserveSettle(b, l)
	})
}
