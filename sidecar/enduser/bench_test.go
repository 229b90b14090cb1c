package enduser_test

import (
	"context"
	"testing"

	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

// BenchmarkCachedToken is the hot path: a token already verified, found in the cache (make bench
// target: at most 5 µs per request).
func BenchmarkCachedToken(b *testing.B) {
	is := oidctest.Start(b)
	c := config(is)
	c.Replay = nil
	a := startB(b, c, 0)
	h := bearer(is.Sign(is.Claims("alice", aud, "basic", "pro")))
	if _, f := a.Authenticate(context.Background(), h); f != nil {
		b.Fatal(f)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, f := a.Authenticate(context.Background(), h); f != nil {
			b.Fatal(f)
		}
	}
}

// BenchmarkFirstVerificationRS256 is a token seen for the first time: header and claims parsed,
// RS256 signature checked against the cached JWKS, claims checked (keys already fetched).
func BenchmarkFirstVerificationRS256(b *testing.B) {
	is := oidctest.Start(b)
	c := config(is)
	c.Replay = nil
	a := startB(b, c, 1) // a one-entry cache: each of the rotating tokens below misses it
	// Warm the key set; the iterations cycle through distinct tokens so none is served from the cache.
	if _, f := a.Authenticate(context.Background(), bearer(is.Sign(is.Claims("warm", aud)))); f != nil {
		b.Fatal(f)
	}
	tokens := make([]string, 2000)
	for i := range tokens {
		tokens[i] = is.Sign(is.Claims("alice", aud, "basic"))
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, f := a.Authenticate(context.Background(), bearer(tokens[i%len(tokens)])); f != nil {
			b.Fatal(f)
		}
		i++
	}
}
