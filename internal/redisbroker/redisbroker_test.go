package redisbroker

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/claude-guard/claude-guard/internal/test/testcert"
)

const (
	td       = "claude-guard.test"
	brokerID = "spiffe://" + td + "/ns/claude-guard-system/sa/claude-guard-manager"
)

// broker serves the handler with ca's SVID for brokerID on loopback and counts the lookups.
type broker struct {
	url     string
	lookups atomic.Int32
	srv     *http.Server
}

func startBroker(t *testing.T, ca *testcert.SPIFFECA) *broker {
	t.Helper()
	b := &broker{}
	lookup := func(_ context.Context, ns string, got spiffeid.TrustDomain) (Credentials, error) {
		b.lookups.Add(1)
		if got.Name() != td {
			return Credentials{}, errors.New("wrong trust domain reached the lookup")
		}
		if ns == "noredis" {
			return Credentials{}, ErrNotEntitled
		}
		return Credentials{Username: "cg-" + ns, Password: "pw-" + ns}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.url = "https://" + ln.Addr().String()
	b.srv = &http.Server{Handler: Handler{Lookup: lookup, Log: logr.Discard()},
		TLSConfig: ServerTLS(ca.Source(t, brokerID), spiffeid.RequireTrustDomainFromString(td)), ReadHeaderTimeout: time.Second}
	go func() { _ = b.srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

func client(t *testing.T, url, serverID string, src Source) *Client {
	t.Helper()
	c, err := NewClient(ClientOptions{URL: url, ServerID: serverID, Source: src, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBrokerHandsOutOnlyTheCallersNamespace(t *testing.T) {
	ca := testcert.NewSPIFFECA(t, td)
	b := startBroker(t, ca)
	sidecar := func(id string) Source { return ca.Source(t, id) }
	evil := testcert.NewSPIFFECA(t, "evil.test")
	// The same trust domain name, another CA: a self-made "SPIRE".
	forger := testcert.NewSPIFFECA(t, td)

	for _, c := range []struct {
		name     string
		src      Source
		serverID string
		user     string // "" when refused
		refusal  string
	}{
		{"a sidecar of shop gets shop's user", sidecar("spiffe://" + td + "/ns/shop/sa/chat"), brokerID, "cg-shop", ""},
		{"a sidecar of other gets other's user", sidecar("spiffe://" + td + "/ns/other/sa/default"), brokerID, "cg-other", ""},
		{"a namespace without a brokered policy gets nothing", sidecar("spiffe://" + td + "/ns/noredis/sa/x"), brokerID, "", "403 Forbidden: forbidden: no policy of the namespace"},
		{"an ID that names no namespace", sidecar("spiffe://" + td + "/spire/agent/x"), brokerID, "", "does not have the form"},
		{"an SVID of another trust domain", testcert.SPIFFESource{SVID: evil.SVID(t, "spiffe://evil.test/ns/shop/sa/chat"), Source: x509bundle.NewSet(ca.Bundle(), evil.Bundle())}, brokerID, "", "tls"},
		{"a certificate from another CA naming shop", testcert.SPIFFESource{SVID: forger.SVID(t, "spiffe://"+td+"/ns/shop/sa/chat"), Source: ca.Bundle()}, brokerID, "", "tls"},
		{"a server that is not the broker is not asked", sidecar("spiffe://" + td + "/ns/shop/sa/chat"), "spiffe://" + td + "/ns/claude-guard-system/sa/someone-else", "", "unexpected ID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := b.lookups.Load()
			user, pw, err := client(t, b.url, c.serverID, c.src).Credentials(context.Background())
			if c.user != "" {
				if err != nil || user != c.user || pw != "pw-"+strings.TrimPrefix(c.user, "cg-") {
					t.Fatalf("got %q/%q, %v; want %s", user, pw, err, c.user)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.refusal) {
				t.Fatalf("got %q, %v; want an error containing %q", user, err, c.refusal)
			}
			if strings.Contains(err.Error(), "pw-") {
				t.Fatalf("the error holds a password: %v", err)
			}
			if c.refusal == "tls" || c.refusal == "unexpected ID" {
				if n := b.lookups.Load() - before; n != 0 {
					t.Fatalf("%d lookups for a caller refused in the handshake", n)
				}
			}
		})
	}
}

func TestBrokerNeedsAClientCertificate(t *testing.T) {
	ca := testcert.NewSPIFFECA(t, td)
	b := startBroker(t, ca)
	tc := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test is about the server refusing us
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: tc}}).Get(b.url + Path)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %s", resp.Status)
	}
	if b.lookups.Load() != 0 {
		t.Fatal("a caller without a certificate reached the lookup")
	}
}

func TestClientKeepsFreshCredentialsAndTheLastOnesThroughAnOutage(t *testing.T) {
	ca := testcert.NewSPIFFECA(t, td)
	b := startBroker(t, ca)
	c := client(t, b.url, brokerID, ca.Source(t, "spiffe://"+td+"/ns/shop/sa/chat"))
	now := time.Now()
	c.now = func() time.Time { return now }
	for range 3 {
		if _, _, err := c.Credentials(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.lookups.Load(); n != 1 {
		t.Fatalf("%d broker calls for three connections within the refresh interval, want 1", n)
	}
	now = now.Add(DefaultRefresh)
	if _, _, err := c.Credentials(context.Background()); err != nil || b.lookups.Load() != 2 {
		t.Fatalf("after the refresh interval: %v, %d calls; want a second call", err, b.lookups.Load())
	}
	_ = b.srv.Close()
	now = now.Add(DefaultRefresh)
	if user, _, err := c.Credentials(context.Background()); err != nil || user != "cg-shop" {
		t.Fatalf("with the broker down: %q, %v; want the last credentials", user, err)
	}
}
