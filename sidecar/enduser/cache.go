package enduser

import (
	"sync"
	"time"
)

// cache holds verified tokens until they expire, so a token used for many calls has its signature
// checked once. The key is the token itself: the map hashes it faster than a digest would, and the token
// is already in this process's memory for the request. Only verified tokens are stored.
type cache struct {
	mu      sync.RWMutex
	max     int
	entries map[string]cacheEntry
}

type cacheEntry struct {
	p     *Principal
	until time.Time
}

func newCache(size int) *cache {
	if size <= 0 {
		size = 10_000
	}
	return &cache{max: size, entries: make(map[string]cacheEntry)}
}

func (c *cache) get(tok string, now time.Time) (*Principal, bool) {
	c.mu.RLock()
	e, ok := c.entries[tok]
	c.mu.RUnlock()
	if !ok || now.After(e.until) {
		return nil, false
	}
	return e.p, true
}

// put stores a verified token. When full it drops expired entries, and if that is not enough, all of
// them: a full cache of live tokens is rare and costs only re-verification.
func (c *cache) put(tok string, p *Principal, until, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if now.After(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[tok] = cacheEntry{p: p, until: until}
}
