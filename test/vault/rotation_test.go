//go:build integration

package vault

import (
	"context"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/sidecar/proxy/proxytest"
)

const proxyConfig = `
apiVersion: sidecar.claudeguard.io/v1
kind: SidecarConfig
credentials: {env: {name: UNUSED}}
models: {allow: ["claude-haiku-*"]}
`

// TestRotationLosesNoRequest rotates the key in Vault while the official SDK sends a steady stream of
// requests through the sidecar's proxy: with the old key still valid upstream (the usual overlap), no
// request fails and the upstream sees the new key within the refresh interval. Then a key is rotated
// and the old one revoked at once: the upstream's 401 makes the sidecar re-read Vault immediately.
func TestRotationLosesNoRequest(t *testing.T) {
	w := setup(t)
	const refresh = 500 * time.Millisecond
	v := w.source(t, "cert", "team-a", "tenants/team-a/anthropic", w.svidA, time.Hour)
	eventuallyKey(t, v, keyA, "")

	const key2, key3 = "sk-ant-team-a-second-00000000000000000", "sk-ant-team-a-third-000000000000000000"
	fake := fakeupstream.New(keyA, key2)
	fake.Record = true
	up := httptest.NewServer(fake)
	defer up.Close()
	sdk := proxytest.Serve(t, proxyConfig, up.URL, v)
	params := proxytest.Hello()

	// A steady stream: 4 clients, one request every 20 ms each.
	var sent, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				sent.Add(1)
				if _, err := sdk.Messages.New(context.Background(), params); err != nil {
					failed.Add(1)
					t.Logf("request failed during rotation: %v", err)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	rotated := time.Now()
	if _, err := w.rootClient.KVv2("secret").Put(context.Background(), "tenants/team-a/anthropic", map[string]any{"api_key": key2}); err != nil {
		t.Fatal(err)
	}
	seenAfter := waitUpstreamKey(t, fake, key2)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the rotation", failed.Load(), sent.Load())
	}
	if d := seenAfter.Sub(rotated); d > refresh+time.Second {
		t.Errorf("the upstream saw the new key %s after the rotation, more than the refresh interval %s", d, refresh)
	}
	t.Logf("%d requests, none failed; new key upstream %s after the rotation", sent.Load(), seenAfter.Sub(rotated).Round(time.Millisecond))

	// Rotate and revoke at once: one request meets the 401, the next uses the new key.
	if _, err := w.rootClient.KVv2("secret").Put(context.Background(), "tenants/team-a/anthropic", map[string]any{"api_key": key3}); err != nil {
		t.Fatal(err)
	}
	fake.SetKeys(key3)
	_, _ = sdk.Messages.New(context.Background(), params) // may meet the 401 unless the interval refresh won
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := sdk.Messages.New(context.Background(), params); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no request succeeded after the 401: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitUpstreamKey waits until the upstream has received a request with key and returns when it first did.
func waitUpstreamKey(t *testing.T, fake *fakeupstream.Server, key string) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range fake.Requests() {
			if r.Header.Get("X-Api-Key") == key {
				return time.Now()
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the upstream never saw the rotated key")
	return time.Time{}
}
