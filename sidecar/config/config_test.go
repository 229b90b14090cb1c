package config

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

const doc = "apiVersion: sidecar.claudeguard.io/v1\nkind: SidecarConfig\ncredentials: {env: {name: K}}\nmodels: {allow: [%s]}\n"

func write(t *testing.T, path, models string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Replace(doc, "%s", models, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReloadSwapsOnlyValidConfigs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	write(t, path, "claude-haiku-*")
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var results []bool
	reloaded := 0
	w := &Watcher{Path: path, Store: NewStore(c), Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		OnReload: func(*Compiled) { reloaded++ }, OnResult: func(ok bool) { results = append(results, ok) }}

	steps := []struct {
		models    string
		wantAllow string
		wantOK    []bool
	}{
		{"claude-sonnet-*", "claude-sonnet-*", []bool{true}},
		{"NOT A GLOB", "claude-sonnet-*", []bool{true, false}},      // rejected: the old policy stays
		{"claude-sonnet-*", "claude-sonnet-*", []bool{true, false}}, // unchanged: no swap, no result
		{"claude-opus-*", "claude-opus-*", []bool{true, false, true}},
	}
	for i, s := range steps {
		write(t, path, s.models)
		w.Reload()
		if got := w.Store.Policy().Config.Models.Allow[0]; got != s.wantAllow {
			t.Fatalf("step %d: policy allows %q, want %q", i, got, s.wantAllow)
		}
		if len(results) != len(s.wantOK) {
			t.Fatalf("step %d: results %v, want %v", i, results, s.wantOK)
		}
	}
	if reloaded != 2 || !strings.Contains(logs.String(), "Rejected new config") {
		t.Fatalf("reloaded %d times; logs: %s", reloaded, logs.String())
	}
}

func TestOverrideAppliesBeforeValidation(t *testing.T) {
	// No credentials in the file: valid only because the override supplies them.
	data := []byte("apiVersion: sidecar.claudeguard.io/v1\nkind: SidecarConfig\nmodels: {allow: [x]}\n")
	if _, err := Compile(data, nil); err == nil {
		t.Fatal("want an error without credentials")
	}
	c, err := Compile(data, func(c *policyconfig.Config) error {
		c.Credentials.File = &policyconfig.FileSource{Path: "/k"}
		return nil
	})
	if err != nil || c.Policy.Hash == "" {
		t.Fatalf("override: %v", err)
	}
}

func TestConcerns(t *testing.T) {
	w := &Watcher{Path: "/etc/claude-guard/config.json"}
	for name, want := range map[string]bool{
		"/etc/claude-guard/config.json": true,
		"/etc/claude-guard/..data":      true,
		"/etc/claude-guard/sidecar.log": false,
		"/etc/claude-guard/..2026_tmp":  false,
	} {
		if w.concerns(name) != want {
			t.Errorf("concerns(%q) = %v", name, !want)
		}
	}
}

// TestHashIsTheDocumentsUnlessFlagsChangeIt: the hash the sidecar reports is the rendered document's
// (the controller's, in the policy's status) when the flags only repeat what the document says, as the
// webhook's do; flags that change the config give the changed config's hash.
func TestHashIsTheDocumentsUnlessFlagsChangeIt(t *testing.T) {
	data := []byte("apiVersion: sidecar.claudeguard.io/v1\nkind: SidecarConfig\nserver: {listen: \"127.0.0.1:8787\", metricsListen: \"0.0.0.0:9787\"}\ncredentials: {env: {name: K}}\nmodels: {allow: [claude-haiku-*]}\n")
	listen := func(proxy, metrics string) Override {
		return func(c *policyconfig.Config) error {
			c.Server.Listen, c.Server.MetricsListen = proxy, metrics
			return nil
		}
	}
	for _, tc := range []struct {
		name     string
		override Override
		document bool
	}{
		{"no flags", nil, true},
		{"the webhook's flags, equal to the document", listen("127.0.0.1:8787", "0.0.0.0:9787"), true},
		{"another proxy port", listen("127.0.0.1:18787", "0.0.0.0:9787"), false},
		{"another credential", func(c *policyconfig.Config) error {
			c.Credentials = policyconfig.Credentials{File: &policyconfig.FileSource{Path: "/k"}}
			return nil
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Compile(data, tc.override)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Policy.Hash == policyconfig.Hash(data); got != tc.document {
				t.Errorf("policy hash %s, document hash %s: equal = %v, want %v", c.Policy.Hash, policyconfig.Hash(data), got, tc.document)
			}
			if c.Document != policyconfig.Hash(data) {
				t.Errorf("Document = %s, want the document's hash", c.Document)
			}
		})
	}
}
