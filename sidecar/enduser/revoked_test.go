package enduser_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/sidecar/enduser"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

func revoke(kind, issuer, value, name string, until *time.Time) policyconfig.Revocation {
	return policyconfig.Revocation{ID: policyconfig.RevocationID(kind, issuer, value), Name: name, Until: until}
}

// TestRevokedTokensAndUsersAreRefused: a reusable token works until it is revoked, cached or not; a
// revoked user's every token is refused; a revocation names no one to the caller, lapses at its end,
// and applies from the config or from the shared list alike.
func TestRevokedTokensAndUsersAreRefused(t *testing.T) {
	is := oidctest.Start(t)
	other := oidctest.Start(t)
	c := config(is, other)
	c.Replay = nil // reusable tokens, as Claude Code's apiKeyHelper returns
	revoked := enduser.NewRevocations()
	a := oidctest.StartAuthenticator(t, enduser.Options{Config: c, Revoked: revoked})

	claims := is.Claims("alice", aud)
	tok := is.Sign(claims)
	jti := claims["jti"].(string)
	for range 3 {
		if _, f := a.Authenticate(context.Background(), bearer(tok)); f != nil {
			t.Fatalf("a reusable token was refused before any revocation: %v", f)
		}
	}
	past := time.Now().Add(-time.Minute)
	future := time.Now().Add(time.Hour)
	tests := []struct {
		name   string
		config []policyconfig.Revocation
		shared map[string]policyconfig.Revocation
		tok    string
		want   string // revocation name; "" accepted
	}{
		{"nothing revoked", nil, nil, tok, ""},
		{"its jti, from the config (the token is cached)", []policyconfig.Revocation{revoke(policyconfig.RevokeJTI, is.URL, jti, "leaked", nil)}, nil, tok, "leaked"},
		{"its jti, from the shared list", nil, shared(revoke(policyconfig.RevokeJTI, is.URL, jti, "leaked", &future)), tok, "leaked"},
		{"its user", []policyconfig.Revocation{revoke(policyconfig.RevokeSubject, is.URL, "alice", "alice-left", nil)}, nil, is.Sign(is.Claims("alice", aud)), "alice-left"},
		{"another user", []policyconfig.Revocation{revoke(policyconfig.RevokeSubject, is.URL, "alice", "alice-left", nil)}, nil, is.Sign(is.Claims("bob", aud)), ""},
		{"the same subject of another issuer", []policyconfig.Revocation{revoke(policyconfig.RevokeSubject, is.URL, "alice", "alice-left", nil)}, nil, other.Sign(other.Claims("alice", aud)), ""},
		{"the same value as a jti is not a subject", []policyconfig.Revocation{revoke(policyconfig.RevokeJTI, is.URL, "alice", "odd", nil)}, nil, is.Sign(is.Claims("alice", aud)), ""},
		{"an expired revocation", []policyconfig.Revocation{revoke(policyconfig.RevokeJTI, is.URL, jti, "old", &past)}, nil, tok, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			revoked.SetConfig(tt.config)
			revoked.SetShared(tt.shared)
			p, f := a.Authenticate(context.Background(), bearer(tt.tok))
			if tt.want == "" {
				if f != nil {
					t.Fatalf("refused: %v", f)
				}
				return
			}
			if f == nil {
				t.Fatalf("accepted %s", p.Subject)
			}
			if f.Status != http.StatusUnauthorized || f.Rule != enduser.RuleRevoked || f.Revocation != tt.want || f.User == nil {
				t.Fatalf("failure = %+v, want 401 %s by %s with the user", f, enduser.RuleRevoked, tt.want)
			}
			if strings.Contains(f.Message, tt.want) || strings.Contains(f.Message, "alice") {
				t.Fatalf("the caller's message names the revocation or the user: %q", f.Message)
			}
		})
	}
}

func shared(rs ...policyconfig.Revocation) map[string]policyconfig.Revocation {
	m := map[string]policyconfig.Revocation{}
	for _, r := range rs {
		m[r.ID] = r
	}
	return m
}

// source is a SharedSource whose answers the test sets.
type source struct {
	mu      sync.Mutex
	version string
	entries map[string]string
	err     error
	reads   int
}

func (s *source) Revocations(_ context.Context, known string) (string, map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return "", nil, s.err
	}
	if s.version == known {
		return known, nil, nil
	}
	return s.version, s.entries, nil
}

func (s *source) set(version string, entries map[string]string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version, s.entries, s.err = version, entries, err
}

// TestFollowKeepsTheLastListThroughAnOutage: the shared list follows the source; an outage keeps the
// last one (it never lifts a revocation) and is logged once; an emptied list clears it.
func TestFollowKeepsTheLastListThroughAnOutage(t *testing.T) {
	const issuer = "https://issuer.test"
	r := revoke(policyconfig.RevokeSubject, issuer, "alice", "alice-left", nil)
	alice := &enduser.Principal{Issuer: issuer, Subject: "alice"}
	src := &source{}
	src.set("v1", map[string]string{r.ID: r.SharedValue(), "not-an-id": "0 bad"}, nil)
	revoked := enduser.NewRevocations()
	var logs logbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		revoked.Follow(ctx, src, 5*time.Millisecond, slog.New(slog.NewJSONHandler(&logs, nil)))
	}()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, want bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, got := revoked.Check(alice, time.Now()); got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: revoked = %v, want %v", what, !want, want)
			}
		}
	}
	waitFor("first read", true)
	src.set("", nil, errors.New("connection refused"))
	time.Sleep(50 * time.Millisecond)
	waitFor("during an outage", true)
	src.set("", nil, nil)
	waitFor("after the list was emptied", false)
	out := logs.String()
	if n := strings.Count(out, "Failed to read the namespace's revocations"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "Skipping a malformed revocation") {
		t.Errorf("a malformed entry was not reported:\n%s", out)
	}
}
