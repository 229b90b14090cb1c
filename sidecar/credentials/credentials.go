// Package credentials supplies the Anthropic API key the sidecar injects into upstream requests.
//
// Every source implements Source. File and Env are the standalone sources; Vault, Kubernetes Secret and
// workload identity federation sources implement the same interface in their own packages. A key is a
// secret: nothing here formats one into an error or a log line.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// ErrNoCredential is returned when a source has no usable key.
var ErrNoCredential = errors.New("no API key available")

// Source yields the current API key.
type Source interface {
	// Get returns the key to send upstream. It is called on every request and must be cheap.
	Get(ctx context.Context) (string, error)
	// Invalidate tells the source the upstream rejected its key (401); the next Get re-reads it.
	Invalidate()
}

// Static is a fixed key (tests and benchmarks).
type Static string

// Get returns the key.
func (s Static) Get(context.Context) (string, error) {
	if s == "" {
		return "", ErrNoCredential
	}
	return string(s), nil
}

// Invalidate does nothing: a static key cannot be re-read.
func (Static) Invalidate() {}

// Env reads the key from an environment variable once, and again after Invalidate.
type Env struct {
	name string
	c    cache
}

// NewEnv returns a source reading the variable name.
func NewEnv(name string) *Env {
	e := &Env{name: name}
	e.c.load = func() (string, error) {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			return "", fmt.Errorf("failed to read API key from environment variable %s: %w", name, ErrNoCredential)
		}
		return v, nil
	}
	return e
}

// Get returns the key.
func (e *Env) Get(context.Context) (string, error) { return e.c.get() }

// Invalidate forces a re-read.
func (e *Env) Invalidate() { e.c.invalidate() }

// File reads the key from a file (a mounted Secret or a standalone key file). It re-reads the file when
// its modification time changes (checked at most every Recheck) and after Invalidate, so a rotated key is
// picked up without a restart and without dropping requests: the old key serves until the new one loads.
type File struct {
	path    string
	recheck time.Duration

	mu      sync.Mutex
	key     string
	modTime time.Time
	checked time.Time
	stale   bool
	now     func() time.Time
}

// DefaultRecheck is how often a File source looks at the file's modification time.
const DefaultRecheck = 10 * time.Second

// NewFile returns a source reading path.
func NewFile(path string) *File {
	return &File{path: path, recheck: DefaultRecheck, now: time.Now, stale: true}
}

// Get returns the key, re-reading the file when it changed or was invalidated.
func (f *File) Get(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if !f.stale && f.key != "" && now.Sub(f.checked) < f.recheck {
		return f.key, nil
	}
	f.checked = now
	st, err := os.Stat(f.path)
	if err != nil {
		if f.key != "" {
			return f.key, nil // keep serving the last good key while the file is being replaced
		}
		return "", fmt.Errorf("failed to stat API key file %s: %w", f.path, err)
	}
	if !f.stale && f.key != "" && st.ModTime().Equal(f.modTime) {
		return f.key, nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		if f.key != "" {
			return f.key, nil
		}
		return "", fmt.Errorf("failed to read API key file %s: %w", f.path, err)
	}
	k := strings.TrimSpace(string(b))
	if k == "" {
		if f.key != "" {
			return f.key, nil
		}
		return "", fmt.Errorf("API key file %s is empty: %w", f.path, ErrNoCredential)
	}
	f.key, f.modTime, f.stale = k, st.ModTime(), false
	return k, nil
}

// Invalidate forces the next Get to re-read the file.
func (f *File) Invalidate() {
	f.mu.Lock()
	f.stale = true
	f.mu.Unlock()
}

// cache holds a loaded value until invalidated.
type cache struct {
	mu   sync.Mutex
	load func() (string, error)
	val  string
	ok   bool
}

func (c *cache) get() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok {
		return c.val, nil
	}
	v, err := c.load()
	if err != nil {
		return "", err
	}
	c.val, c.ok = v, true
	return v, nil
}

func (c *cache) invalidate() {
	c.mu.Lock()
	c.ok = false
	c.mu.Unlock()
}
