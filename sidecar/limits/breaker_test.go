package limits

import (
	"testing"
	"time"
)

// TestBreaker walks the breaker through an outage: refusals during the interval, one probe at a time,
// stale successes ignored, and recovery by the probe.
func TestBreaker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := &breaker{interval: time.Second}
	type step struct {
		name string
		do   func() any
		want any
	}
	allow := func(at time.Duration) func() any {
		return func() any { ok, probe := b.allow(t0.Add(at)); return [2]bool{ok, probe} }
	}
	steps := []step{
		{"healthy: calls pass, not as probes", allow(0), [2]bool{true, false}},
		{"a failure starts an outage", func() any { return b.failure(t0) }, true},
		{"a second failure does not start another", func() any { return b.failure(t0.Add(10 * time.Millisecond)) }, false},
		{"refused within the interval", allow(500 * time.Millisecond), [2]bool{false, false}},
		{"a call from before the outage succeeding does not end it", func() any { ended, _ := b.success(t0, false); return ended }, false},
		{"still refused", allow(900 * time.Millisecond), [2]bool{false, false}},
		{"after the interval: one probe", allow(1100 * time.Millisecond), [2]bool{true, true}},
		{"while it probes, others are refused", allow(1200 * time.Millisecond), [2]bool{false, false}},
		{"an abandoned probe hands over", func() any { b.abandon(true); return b.up() }, false},
		{"the next call probes", allow(1300 * time.Millisecond), [2]bool{true, true}},
		{"the probe fails: the interval restarts", func() any { return b.failure(t0.Add(1300 * time.Millisecond)) }, false},
		{"refused again", allow(2 * time.Second), [2]bool{false, false}},
		{"probe", allow(2400 * time.Millisecond), [2]bool{true, true}},
		{"the probe succeeds: the outage ends", func() any { ended, d := b.success(t0.Add(2500*time.Millisecond), true); return [2]any{ended, d} }, [2]any{true, 2500 * time.Millisecond}},
		{"healthy again", allow(2500 * time.Millisecond), [2]bool{true, false}},
		{"up", func() any { return b.up() }, true},
	}
	for _, s := range steps {
		if got := s.do(); got != s.want {
			t.Fatalf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
}
