package limits

import (
	"context"
	"sync"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/sidecar/usage"
)

// Memory is the in-process Limiter: counters live in this sidecar only.
type Memory struct {
	mu      sync.Mutex
	rules   *Rules
	buckets map[bucketKey]*bucket
	now     func() time.Time
	sweeps  int
}

type bucketKey struct{ rule, key string }

type bucket struct {
	window   time.Time
	end      time.Time
	requests int64 // reserved + used
	amount   int64 // tokens or micro-USD, reserved + used
}

// NewMemory returns an in-memory limiter enforcing rs.
func NewMemory(rs *Rules) *Memory {
	return &Memory{rules: rs, buckets: map[bucketKey]*bucket{}, now: time.Now}
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
	for i := range rs.rules {
		ru := &rs.rules[i]
		start, end := windowStart(ru.window, now)
		k := bucketKey{ru.id, ru.key + "=" + r.Keys.get(ru.key)}
		b := m.buckets[k]
		if b == nil {
			b = &bucket{window: start, end: end}
			m.buckets[k] = b
		}
		if !b.window.Equal(start) {
			*b = bucket{window: start, end: end}
		}
		h := hold{b: b, r: ru, window: start}
		retry := end.Sub(now)
		var d *Denied
		switch {
		case ru.budget:
			if b.amount >= ru.amount {
				d = &Denied{Rule: ru.id, What: "budget", RetryAfter: retry}
			}
		default:
			if ru.requests > 0 {
				h.requests = 1
				if b.requests+1 > ru.requests {
					d = &Denied{Rule: ru.id, What: "requests", RetryAfter: retry}
				}
			}
			if ru.amount > 0 && d == nil {
				switch ru.tokenType {
				case policyconfig.TokensInput:
					h.amount = r.InputTokens
				case policyconfig.TokensOutput:
					h.amount = r.OutputTokens
				default:
					h.amount = r.InputTokens + r.OutputTokens
				}
				if h.amount > ru.amount {
					d = &Denied{Rule: ru.id, What: "tokens", RetryAfter: retry, Never: true}
				} else if b.amount+h.amount > ru.amount {
					d = &Denied{Rule: ru.id, What: "tokens", RetryAfter: retry}
				}
			}
		}
		if d != nil && denied == nil {
			denied = d
		}
		res.holds = append(res.holds, h)
	}
	if denied != nil && !r.Force {
		res.holds = nil
		return nil, denied
	}
	for _, h := range res.holds {
		h.b.requests += h.requests
		h.b.amount += h.amount
	}
	if denied != nil {
		return res, denied
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
		ru := h.r
		var actual int64
		switch {
		case ru.usd:
			actual = res.rules.cost(res.model, u)
		case ru.budget || ru.amount > 0:
			actual = ru.tokens(u)
		}
		h.b.amount += actual - h.amount
		if h.b.amount < 0 {
			h.b.amount = 0
		}
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
