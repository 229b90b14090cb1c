// Package wait is the one polling helper of the test suites: a test waits for a condition of the world
// (an object reconciled, a pod serving, a log line written) by asking again until it holds.
package wait

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Interval is how often a condition is asked again.
const Interval = 50 * time.Millisecond

// For asks cond every Interval until it returns nil and returns how long that took; if timeout passes
// first it fails t with what and cond's last error.
func For(t testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	t0 := time.Now()
	if err := Until(context.Background(), timeout, cond); err != nil {
		if what == "" {
			what = "condition"
		}
		t.Fatalf("%s: not within %s: %v", what, timeout, err)
	}
	return time.Since(t0)
}

// Until is For outside a test: it returns nil once cond does, or cond's last error when timeout passes or
// ctx ends.
func Until(ctx context.Context, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(Interval):
		}
	}
}

// True turns a boolean condition into one For takes.
func True(cond func() bool) func() error {
	return func() error {
		if !cond() {
			return errNotYet
		}
		return nil
	}
}

var errNotYet = errors.New("not yet")

// ForTrue is For with a boolean condition.
func ForTrue(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return For(t, timeout, what, True(cond))
}
