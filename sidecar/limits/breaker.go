package limits

import (
	"sync"
	"time"
)

// breaker keeps a dead backend from adding its timeout to every request. After a failure it refuses
// calls for interval; then it lets exactly one call through as a probe (every other call is refused
// until the probe reports), and the first success closes it again. Recovery needs no restart.
type breaker struct {
	interval time.Duration

	mu      sync.Mutex
	down    bool      // an outage is in progress
	since   time.Time // when it started
	retryAt time.Time
	probing bool
}

// allow reports whether a call may go to the backend now, and whether it is the probe of an outage. A
// caller that was allowed must report the outcome with success, failure or abandon.
func (b *breaker) allow(now time.Time) (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.down {
		return true, false
	}
	if b.probing || now.Before(b.retryAt) {
		return false, false
	}
	b.probing = true
	return true, true
}

// success reports a call that worked. Only the probe closes an open breaker: a call that started
// before the outage and finished after it began says little about Redis now (during a shutdown, for
// example, commands on open connections still succeed while new connections are refused). It returns
// the outage's length when this call ended one.
func (b *breaker) success(now time.Time, probe bool) (ended bool, outage time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.down || !probe {
		return false, 0
	}
	b.down, b.probing = false, false
	return true, now.Sub(b.since)
}

// failure opens the breaker for interval; it reports whether this call started an outage.
func (b *breaker) failure(now time.Time) (started bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	started = !b.down
	if started {
		b.since = now
	}
	b.down, b.probing, b.retryAt = true, false, now.Add(b.interval)
	return started
}

// abandon ends a call that told nothing about the backend (its caller went away); a probe's turn passes
// to the next call.
func (b *breaker) abandon(probe bool) {
	if !probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// up reports whether the backend is believed reachable.
func (b *breaker) up() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.down
}
