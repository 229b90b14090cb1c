package redisacl

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redisconn"
)

// Counters reads the limiter's counters (internal/rediskeys.Counter) for the operator's status: what
// a budget has spent in its window. It only reads, over a connection of the manager's (--redis-url).
type Counters struct {
	client *redisconn.Client
	addr   string
}

// NewCounters returns a Counters for the Redis at rawURL. It does not connect; the first read does.
func NewCounters(rawURL string) (*Counters, error) {
	c, err := newClient(rawURL)
	if err != nil {
		return nil, err
	}
	return &Counters{client: c, addr: c.URL().String()}, nil
}

// Amounts returns the amount (field a: tokens, or micro-USD for a USD budget) of each counter key, 0
// for one that does not exist (nothing was spent in that window), in one round trip.
func (c *Counters) Amounts(ctx context.Context, keys []string) ([]int64, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGet(ctx, k, "a")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("failed to read counters from Redis %s: %w", c.addr, err)
	}
	out := make([]int64, len(keys))
	for i, cmd := range cmds {
		v, err := cmd.Int64()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("failed to read a counter from Redis %s: %w", c.addr, err)
		default:
			out[i] = v
		}
	}
	return out, nil
}

// Close closes the connection.
func (c *Counters) Close() error { return c.client.Close() }
