package limits

import (
	"context"
	"sync"
	"time"

	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// Memory is the in-process Limiter: counters live in this sidecar only.
type Memory struct {
	mu      sync.Mutex
	rules   *Rules
	buckets map[bucketKey]*bucket
	now     func() time.Time
	sweeps  int

	replay onceStore
}

// bucketKey is one counter: a rule, the kind of key it counts by (Workload, Namespace, ...) and its value.
type bucketKey struct{ rule, kind, value string }

type bucket struct {
	window   time.Time
	end      time.Time
	requests int64 // reserved + used
	amount   int64 // tokens or micro-USD, reserved + used
}

// NewMemory returns an in-memory limiter enforcing rs.
func NewMemory(rs *Rules) *Memory {
	m := &Memory{rules: rs, buckets: map[bucketKey]*bucket{}, now: time.Now}
	m.replay.now = func() time.Time { return m.now() }
	return m
}

// SetRules swaps the rules (on a config reload). Counters of rules that keep their ID carry over.
func (m *Memory) SetRules(rs *Rules) {
	m.mu.Lock()
	m.rules = rs
	m.mu.Unlock()
}

// Reserve implements Limiter.
func (m *Memory) Reserve(_ context.Context, r Request) (*Reservation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.rules
	res := &Reservation{model: r.Model, rules: rs}
	if rs.Empty() {
		return res, nil
	}
	now := m.now()
	m.maybeSweep(now)
	var denied *Denied
	res.holds = make([]hold, 0, len(rs.rules))
	counts := make([]count, len(rs.rules))
	for i := range rs.rules {
		ru := &rs.rules[i]
		if !r.Phase.in(ru) {
			counts[i].skip = true
			continue
		}
		start, end := windowStart(ru.window, now)
		k := bucketKey{ru.id, ru.key, r.Keys.get(ru.key)} // no concatenation: a lookup allocates nothing
		b := m.buckets[k]
		if b == nil {
			b = &bucket{window: start, end: end}
			m.buckets[k] = b
		}
		if !b.window.Equal(start) {
			*b = bucket{window: start, end: end}
		}
		h := hold{b: b, r: ru, index: i, window: start, end: end}
		h.requests, h.amount = rs.holdFor(ru, r)
		if what := check(ru, b.requests, b.amount, h.requests, h.amount); what != "" && denied == nil {
			denied = denial(ru, what, h.amount, end.Sub(now))
		}
		counts[i] = count{requests: b.requests, amount: b.amount, end: end}
		res.holds = append(res.holds, h)
	}
	if denied != nil && !r.Force {
		denied.Status = statusOf(rs, counts)
		return nil, denied
	}
	for _, h := range res.holds {
		h.b.requests += h.requests
		h.b.amount = addAmounts(h.b.amount, h.amount)
		counts[h.index].requests, counts[h.index].amount = h.b.requests, h.b.amount
	}
	res.status = statusOf(rs, counts)
	if denied != nil {
		denied.Status = res.status
		res.exceeded = denied
	}
	return res, nil
}

// Settle implements Limiter.
func (m *Memory) Settle(_ context.Context, res *Reservation, u usage.Usage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if res == nil || res.done {
		return nil
	}
	res.done = true
	for _, h := range res.holds {
		if !h.b.window.Equal(h.window) {
			continue
		}
		h.b.amount = max(0, addAmounts(h.b.amount, res.rules.settled(h.r, res.model, u))-h.amount)
	}
	return nil
}

// Refund implements Limiter.
func (m *Memory) Refund(_ context.Context, res *Reservation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if res == nil || res.done {
		return nil
	}
	res.done = true
	for _, h := range res.holds {
		if !h.b.window.Equal(h.window) {
			continue
		}
		h.b.requests = max(0, h.b.requests-h.requests)
		h.b.amount = max(0, h.b.amount-h.amount)
	}
	return nil
}

// Once records key for ttl and reports whether this is the first time it was seen within its ttl (jti
// replay protection; the caller's interface is ReplayStore in the end-user package). It fails with
// ErrReplayStoreFull rather than forget a key early.
func (m *Memory) Once(_ context.Context, key string, ttl time.Duration) (bool, error) {
	return m.replay.once(key, ttl)
}

// maybeSweep drops buckets of finished windows now and then, so keys seen once do not accumulate.
func (m *Memory) maybeSweep(now time.Time) {
	m.sweeps++
	if m.sweeps < 4096 {
		return
	}
	m.sweeps = 0
	for k, b := range m.buckets {
		if !b.end.After(now) {
			delete(m.buckets, k)
		}
	}
}
