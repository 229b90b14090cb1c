//go:build integration

package sharedlimits

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

// TestFleetReplayIsShared: with replay protection, an end-user token used once through one sidecar is
// refused by every other sidecar of the fleet (the jti is recorded in Redis); a fresh token passes, and
// end-user rules count per subject across the fleet.
func TestFleetReplayIsShared(t *testing.T) {
	is := oidctest.Start(t)
	f := newFleet(t, fleetSize, policy("FailClosed", `  rules:
  - {name: per-user, key: EndUser, window: Day, requests: 3}
endUser:
  mode: Strict
  replay: {}
  issuers: [{url: "`+is.URL+`", audiences: [claude-guard], caCert: `+strconv.Quote(is.CACert)+`}]
`))
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	tok := is.Sign(is.Claims("alice@example.com", "claude-guard"))
	if r := f.messagesWith(t, 0, 20, false, bearer(tok)); r.Status != 200 {
		t.Fatalf("first use: %d %s", r.Status, r.Body)
	}
	for i := 1; i < fleetSize; i++ {
		r := f.messagesWith(t, i, 20, false, bearer(tok))
		if r.Status != 401 || !strings.Contains(r.Body, "it was already used") {
			t.Fatalf("the same token via sidecar %d: %d %s, want it refused as a replay", i, r.Status, r.Body)
		}
	}
	// Fresh tokens for alice: her per-user limit (3 a day) is shared by the fleet too.
	for i := 1; i <= 3; i++ {
		r := f.messagesWith(t, i, 20, false, bearer(is.Sign(is.Claims("alice@example.com", "claude-guard"))))
		want := 200
		if i == 3 {
			want = 429
		}
		if r.Status != want {
			t.Fatalf("alice's request %d (via sidecar %d): %d %s, want %d", i+1, i%fleetSize, r.Status, r.Body, want)
		}
	}
	if r := f.messagesWith(t, 0, 20, false, bearer(is.Sign(is.Claims("bob@example.com", "claude-guard")))); r.Status != 200 {
		t.Fatalf("bob: %d %s", r.Status, r.Body)
	}
	keys, err := f.Redis.Client(t).Keys(t.Context(), "cg:{team-a}:jti:*").Result()
	if err != nil || len(keys) != 5 {
		t.Fatalf("jti keys in Redis: %v %v; want 5, one per token (alice's third fresh one was recorded, then rate limited)", keys, err)
	}
}
