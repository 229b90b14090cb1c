//go:build linux

package app

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRunMakesTheProcessUndumpable: Run marks the process non-dumpable first, even when it then fails
// (here: no config), so the key is never read by a dumpable process.
func TestRunMakesTheProcessUndumpable(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), &Options{ConfigPath: "/nonexistent/config.json"}); err == nil {
		t.Fatal("want an error without a config")
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil || d != 0 {
		t.Fatalf("PR_GET_DUMPABLE = %d (%v), want 0", d, err)
	}
}
