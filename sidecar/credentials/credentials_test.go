package credentials

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := os.WriteFile(p, []byte("sk-one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := NewFile(p)
	now := time.Unix(1000, 0)
	f.now = func() time.Time { return now }
	ctx := context.Background()

	get := func(want string) {
		t.Helper()
		got, err := f.Get(ctx)
		if err != nil || got != want {
			t.Fatalf("Get() = %q, %v; want %q", got, err, want)
		}
	}
	get("sk-one")

	// Rotated on disk: not seen before the recheck interval, seen after it.
	writeKey(t, p, "sk-two")
	get("sk-one")
	now = now.Add(DefaultRecheck)
	get("sk-two")

	// A 401 forces a re-read even within the interval.
	writeKey(t, p, "sk-three") // same mtime: only Invalidate can notice
	get("sk-two")
	f.Invalidate()
	get("sk-three")

	// The file vanishing mid-rotation keeps the last good key.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	f.Invalidate()
	get("sk-three")
}

// writeKey rewrites the key file with a fixed mtime, so only the recheck interval or Invalidate can
// notice the change.
func writeKey(t *testing.T, p, key string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, time.Unix(2000, 0), time.Unix(2000, 0)); err != nil {
		t.Fatal(err)
	}
}

func TestFileErrorsDoNotLeakKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing")
	_, err := NewFile(p).Get(context.Background())
	if err == nil {
		t.Fatal("want error for a missing file")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFile(empty).Get(context.Background()); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("empty file: %v, want ErrNoCredential", err)
	}
}

func TestEnv(t *testing.T) {
	t.Setenv("CG_TEST_KEY", "sk-env")
	e := NewEnv("CG_TEST_KEY")
	if k, err := e.Get(context.Background()); err != nil || k != "sk-env" {
		t.Fatalf("Get() = %q, %v", k, err)
	}
	t.Setenv("CG_TEST_KEY", "sk-env-2")
	e.Invalidate()
	if k, _ := e.Get(context.Background()); k != "sk-env-2" {
		t.Fatalf("after Invalidate Get() = %q", k)
	}
	t.Setenv("CG_TEST_KEY", "")
	e.Invalidate()
	_, err := e.Get(context.Background())
	if !errors.Is(err, ErrNoCredential) || strings.Contains(err.Error(), "sk-") {
		t.Fatalf("unset: %v", err)
	}
}
