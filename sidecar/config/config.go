// Package config loads the sidecar's policy file and hot-reloads it. A new file is parsed, validated
// and compiled completely before it replaces the policy in force with one atomic swap; a file that fails
// any step is logged and the old policy stays, so a bad edit can never leave the proxy without a policy.
package config

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/decide"
	"github.com/claude-guard/claude-guard/sidecar/limits"
)

// Compiled is one loaded config, ready to enforce.
type Compiled struct {
	Policy *decide.Policy
	Rules  *limits.Rules
	// Document is the hash of the file as read, before flags and defaults: the hash the controller
	// gives the rendered ConfigMap, so the operator can tell whether a sidecar enforces the current one.
	Document string
}

// hash is the config hash the sidecar reports (audit records, claude_guard_config_info): the document's
// own hash when the flags change nothing in it, which is the case in an injected pod (the webhook passes
// exactly the addresses the controller renders), so one hash names the config in the policy's status, its
// ConfigMap, the audit records and the metrics. When flags do change it (a standalone sidecar, the
// gateway), the hash is of the config as changed: it is then another config than the file.
func hash(data []byte, decoded, overridden *policyconfig.Config) (string, error) {
	before, err := policyconfig.Marshal(decoded)
	if err != nil {
		return "", err
	}
	after, err := policyconfig.Marshal(overridden)
	if err != nil {
		return "", err
	}
	if bytes.Equal(before, after) {
		return policyconfig.Hash(data), nil
	}
	return policyconfig.Hash(after), nil
}

// Override adjusts a decoded config before it is validated (command-line flags win over the file), or
// refuses it.
type Override func(*policyconfig.Config) error

// Load reads, overrides, validates and compiles the file at path.
func Load(path string, override Override) (*Compiled, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read config %s: %w", path, err)
	}
	return Compile(data, override)
}

// Compile is Load for a document already in memory.
func Compile(data []byte, override Override) (*Compiled, error) {
	c, err := policyconfig.Decode(data)
	if err != nil {
		return nil, err
	}
	// The same document without the flags, to tell whether they changed anything (hash).
	decoded, err := policyconfig.Decode(data)
	if err != nil {
		return nil, err
	}
	decoded.ApplyDefaults()
	if override != nil {
		if err := override(c); err != nil {
			return nil, err
		}
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	h, err := hash(data, decoded, c)
	if err != nil {
		return nil, err
	}
	rules, err := limits.Compile(c)
	if err != nil {
		return nil, err
	}
	return &Compiled{Policy: decide.Compile(c, h), Rules: rules, Document: policyconfig.Hash(data)}, nil
}

// Store holds the config in force.
type Store struct{ cur atomic.Pointer[Compiled] }

// NewStore returns a store holding c.
func NewStore(c *Compiled) *Store {
	s := &Store{}
	s.cur.Store(c)
	return s
}

// Load returns the config in force.
func (s *Store) Load() *Compiled { return s.cur.Load() }

// Policy returns the policy in force.
func (s *Store) Policy() *decide.Policy { return s.cur.Load().Policy }

// Watcher reloads a config file when it changes.
type Watcher struct {
	Path     string
	Override Override
	Store    *Store
	Log      *slog.Logger
	// OnReload runs after a successful swap (e.g. to hand new limit rules to the limiter).
	OnReload func(*Compiled)
	// OnResult reports every reload attempt (for metrics).
	OnResult func(ok bool)
	// Poll is a fallback re-check interval for file systems without notifications. Zero means 30s.
	Poll time.Duration
}

// Run watches until ctx is done. It watches the file's directory, not the file, because Kubernetes
// updates a mounted ConfigMap by swapping a symlink, which replaces the file rather than writing it.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("failed to create config watcher: %w", err)
	}
	defer fw.Close()
	if err := fw.Add(filepath.Dir(w.Path)); err != nil {
		return fmt.Errorf("failed to watch %s: %w", filepath.Dir(w.Path), err)
	}
	// The file may have changed between the sidecar's first load and the watch above: look once now.
	w.Reload()
	poll := w.Poll
	if poll == 0 {
		poll = 30 * time.Second
	}
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod || !w.concerns(ev.Name) {
				continue
			}
			// Editors and kubelet write in several steps; reload once things settle.
			debounce = time.After(100 * time.Millisecond)
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.Log.Warn("Config watcher error", "error", err.Error())
		case <-debounce:
			debounce = nil
			w.Reload()
		case <-ticker.C:
			w.Reload()
		}
	}
}

// concerns reports whether a change to name in the watched directory can change the config: the file
// itself, or the "..data" symlink through which Kubernetes swaps a ConfigMap's files.
func (w *Watcher) concerns(name string) bool {
	base := filepath.Base(name)
	return base == filepath.Base(w.Path) || base == "..data"
}

// Reload loads the file now and swaps it in if it is valid and different.
func (w *Watcher) Reload() {
	c, err := Load(w.Path, w.Override)
	if err != nil {
		w.Log.Error("Rejected new config: keeping the policy in force", "path", w.Path, "error", err.Error(),
			"hash", w.Store.Policy().Hash)
		if w.OnResult != nil {
			w.OnResult(false)
		}
		return
	}
	old := w.Store.Load()
	if old.Policy.Hash == c.Policy.Hash {
		return
	}
	w.Store.cur.Store(c)
	if w.OnReload != nil {
		w.OnReload(c)
	}
	if w.OnResult != nil {
		w.OnResult(true)
	}
	w.Log.Info("Loaded new config", "path", w.Path, "hash", c.Policy.Hash, "previousHash", old.Policy.Hash)
}
