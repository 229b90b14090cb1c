// Package proxytest serves the sidecar's proxy in tests: a config, an upstream and a credential source
// in, an official SDK client holding only the placeholder key out (as an injected app's would be).
package proxytest

import (
	"log/slog"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/claude-guard/claude-guard/internal/wellknown"
	"github.com/claude-guard/claude-guard/sidecar/config"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
	"github.com/claude-guard/claude-guard/sidecar/limits"
	"github.com/claude-guard/claude-guard/sidecar/metrics"
	"github.com/claude-guard/claude-guard/sidecar/proxy"
)

// Serve starts the proxy for configYAML in front of upstream, with creds, until the test ends, and
// returns an SDK client for it (no retries, so each failure is seen).
func Serve(t testing.TB, configYAML, upstream string, creds credentials.Source) anthropic.Client {
	t.Helper()
	cfg, err := config.Compile([]byte(configYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	up, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(proxy.New(proxy.Options{
		Upstream: up, Policy: config.NewStore(cfg).Policy, Credentials: creds,
		Limiter: limits.NewMemory(cfg.Rules), Metrics: metrics.New(), Log: slog.New(slog.DiscardHandler), Workload: "test",
	}))
	t.Cleanup(srv.Close)
	return anthropic.NewClient(option.WithBaseURL(srv.URL), option.WithAPIKey(wellknown.PlaceholderAPIKey), option.WithMaxRetries(0))
}

// Hello is a small Messages request for a Haiku model.
func Hello() anthropic.MessageNewParams {
	return anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 10,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
}
