package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/testcert"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and returns the pool that trusts it.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	cert, key, pool := testcert.Loopback(t)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeFile(t, certFile, cert)
	writeFile(t, keyFile, key)
	return certFile, keyFile, pool
}

func gatewayConfig(is *oidctest.Issuer, mode string) string {
	return fmt.Sprintf(`apiVersion: sidecar.claudeguard.io/v1
kind: SidecarConfig
credentials: {env: {name: NOT_USED}}
models: {allow: ["claude-haiku-*"]}
endUser:
  mode: %s
  issuers: [{url: %s, audiences: [gateway], caCert: %q}]
`, mode, is.URL, is.CACert)
}

// startGateway runs the sidecar binary's Run in gateway mode and returns its proxy and metrics
// addresses once /readyz says it is ready (its issuers discovered).
func startGateway(t *testing.T, o *Options) (proxyAddr, metricsAddr string) {
	t.Helper()
	o.Stdout = &lockedBuf{ch: make(chan string, 1000)}
	p, m := serve(t, o)
	wait.ForTrue(t, 10*time.Second, "", func() bool { status, _ := get(t, "http://"+m+"/readyz"); return status == http.StatusOK })
	return p, m
}

// gatewayRun is a gateway started by runStrictGateway.
type gatewayRun struct {
	is                          *oidctest.Issuer
	dir, cfgPath, addr, metrics string
	pool                        *x509.CertPool
}

// runStrictGateway starts a gateway over TLS (a self-signed certificate in dir) requiring end-user
// tokens of is, in front of a fake upstream.
func runStrictGateway(t *testing.T) gatewayRun {
	t.Helper()
	up := httptest.NewServer(fakeupstream.New(key))
	t.Cleanup(up.Close)
	g := gatewayRun{is: oidctest.Start(t), dir: t.TempDir()}
	g.cfgPath = filepath.Join(g.dir, "config.yaml")
	keyPath := filepath.Join(g.dir, "key")
	writeFile(t, g.cfgPath, gatewayConfig(g.is, "Strict"))
	writeFile(t, keyPath, key)
	var certFile, keyFile string
	certFile, keyFile, g.pool = selfSigned(t, g.dir, "gateway")
	g.addr, g.metrics = startGateway(t, &Options{ConfigPath: g.cfgPath, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0", Upstream: up.URL,
		APIKeyFile: keyPath, Workload: "gw", ShutdownGrace: time.Second, MaxRequestDuration: time.Minute, LogLevel: "info",
		Gateway: true, TLSCertFile: certFile, TLSKeyFile: keyFile})
	return g
}

func TestGatewayServesTheSDKOverTLSWithAJWT(t *testing.T) {
	g := runStrictGateway(t)
	is, dir, addr, pool := g.is, g.dir, g.addr, g.pool

	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	client := anthropic.NewClient(option.WithBaseURL("https://"+addr), option.WithHTTPClient(httpc), option.WithMaxRetries(0),
		option.WithAuthToken(is.Sign(is.Claims("browser-user", "gateway"))))
	params := anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 10,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	if _, err := client.Messages.New(context.Background(), params); err != nil {
		t.Fatalf("SDK over TLS with a JWT: %v", err)
	}

	// Without a token: 401. (The SDK needs some credential; the placeholder is not an end-user token.)
	noUser := anthropic.NewClient(option.WithBaseURL("https://"+addr), option.WithHTTPClient(httpc), option.WithMaxRetries(0), option.WithAPIKey("claude-guard-placeholder"))
	_, err := noUser.Messages.New(context.Background(), params)
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("without a token: %v", err)
	}

	// Plain HTTP is not served.
	plain := anthropic.NewClient(option.WithBaseURL("http://"+addr), option.WithMaxRetries(0), option.WithAuthToken(is.Sign(is.Claims("u", "gateway"))))
	if _, err := plain.Messages.New(context.Background(), params); err == nil || errors.As(err, &apiErr) && apiErr.StatusCode == 200 {
		t.Fatalf("plain HTTP was served: %v", err)
	}

	// A renewed certificate is served without a restart.
	time.Sleep(1100 * time.Millisecond)
	_, _, pool2 := selfSigned(t, dir, "gateway")
	httpc2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool2, MinVersion: tls.VersionTLS12}}}
	renewed := anthropic.NewClient(option.WithBaseURL("https://"+addr), option.WithHTTPClient(httpc2), option.WithMaxRetries(0),
		option.WithAuthToken(is.Sign(is.Claims("browser-user", "gateway"))))
	if _, err := renewed.Messages.New(context.Background(), params); err != nil {
		t.Fatalf("after the certificate was renewed: %v", err)
	}
}

func TestGatewayRefusesUnsafeSettings(t *testing.T) {
	is := oidctest.Start(t)
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir, "gateway")
	cases := []struct {
		name, config string
		o            Options
		want         string
	}{
		{"end users optional", gatewayConfig(is, "Optional"), Options{TLSCertFile: certFile, TLSKeyFile: keyFile}, "gateway mode requires endUser.mode Strict"},
		{"no end users", policyYAML("claude-haiku-*"), Options{TLSCertFile: certFile, TLSKeyFile: keyFile}, "gateway mode requires endUser.mode Strict"},
		{"no TLS", gatewayConfig(is, "Strict"), Options{}, "gateway mode requires TLS"},
		{"mTLS without SPIFFE", gatewayConfig(is, "Strict"), Options{ClientTrustDomain: "example.org"}, "--client-trust-domain needs the SPIFFE Workload API"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "config.yaml")
			writeFile(t, cfgPath, tc.config)
			o := tc.o
			o.ConfigPath, o.Listen, o.MetricsListen, o.Gateway = cfgPath, "127.0.0.1:0", "127.0.0.1:0", true
			o.ShutdownGrace, o.MaxRequestDuration, o.LogLevel, o.Stdout = time.Second, time.Minute, "info", &lockedBuf{ch: make(chan string, 100)}
			o.Complete()
			err := Run(context.Background(), &o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestGatewayRefusesAReloadThatDropsEndUsers: a config edit that would let the gateway serve callers
// without an end-user token (mode Optional, or no endUser at all) is refused on reload: the config in
// force stays, a tokenless call is still 401, and the refusal shows in the reload metric.
func TestGatewayRefusesAReloadThatDropsEndUsers(t *testing.T) {
	g := runStrictGateway(t)
	is, cfgPath, addr, metricsAddr, pool := g.is, g.cfgPath, g.addr, g.metrics, g.pool
	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	tokenless := func() int {
		req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/messages", strings.NewReader(`{"model":"claude-haiku-4-5","max_tokens":5,"messages":[]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("anthropic-version", "2023-06-01")
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for i, weaker := range []string{gatewayConfig(is, "Optional"), policyYAML("claude-haiku-*")} {
		writeFile(t, cfgPath, weaker)
		wait.ForTrue(t, 10*time.Second, "the refused reload in the metrics", func() bool {
			_, body := get(t, "http://"+metricsAddr+"/metrics")
			return strings.Contains(body, fmt.Sprintf(`claude_guard_config_reloads_total{result="failure"} %d`, i+1))
		})
		if status := tokenless(); status != http.StatusUnauthorized {
			t.Fatalf("after a refused reload (%d), a call without an end-user token got %d, want 401", i, status)
		}
	}
}
