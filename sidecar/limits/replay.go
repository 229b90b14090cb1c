package limits

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrReplayStoreFull is returned by Memory.Once when maxReplayKeys unexpired keys are held: forgetting
// one early would let its token be replayed, so the caller must refuse instead.
var ErrReplayStoreFull = errors.New("the replay store is full")

// maxReplayKeys bounds the in-memory replay store (about 150 bytes per key).
const maxReplayKeys = 1 << 18

// onceStore remembers keys until they expire. Expired keys are swept whenever the map has doubled since
// the last sweep, so the cost stays amortised O(1) per insert and memory stays bounded.
type onceStore struct {
	mu        sync.Mutex
	seen      map[string]time.Time // key → expiry
	nextSweep int
	max       int
	now       func() time.Time
}

func (s *onceStore) once(key string, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("replay key TTL must be positive, got %s", ttl)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.seen == nil {
		s.seen = map[string]time.Time{}
	}
	if exp, ok := s.seen[key]; ok && now.Before(exp) {
		return false, nil
	}
	limit := s.max
	if limit == 0 {
		limit = maxReplayKeys
	}
	if len(s.seen) >= s.nextSweep || len(s.seen) >= limit {
		for k, exp := range s.seen {
			if !now.Before(exp) {
				delete(s.seen, k)
			}
		}
		s.nextSweep = max(1024, 2*len(s.seen))
	}
	if _, ok := s.seen[key]; !ok && len(s.seen) >= limit {
		return false, ErrReplayStoreFull
	}
	s.seen[key] = now.Add(ttl)
	return true, nil
}
