// Package redislib is claude-guard's Redis function library: the Lua functions the sidecar's limiter and
// replay store call (FCALL) and the manager loads (FUNCTION LOAD), their names, the bounds they enforce,
// and the loading itself. It is shared by both binaries and depends on go-redis only.
//
// Functions rather than scripts (SCRIPT LOAD + EVALSHA): Redis keeps a function library in its RDB and
// AOF and replicates it, where a script cache is lost with every restart or failover; and a function is
// called by a name that an ACL can grant (+fcall|<name>) without granting any code of the caller's own
// (docs/design.md, "Redis functions").
package redislib

import (
	"context"
	_ "embed" // the library's code
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Source is the library's code, as loaded with FUNCTION LOAD.
//
//go:embed claudeguard.lua
var Source string

// The library and its functions. The version in the names is that of the calling convention (see the
// head of claudeguard.lua).
const (
	Library = "claudeguard_v1"
	// Reserve checks and takes every hold of one request (Limiter.Reserve).
	Reserve = "cg_v1_reserve"
	// Adjust adds signed deltas to the counters of one reservation (Settle, Refund).
	Adjust = "cg_v1_adjust"
	// Once records a replay key and reports whether it is new.
	Once = "cg_v1_once"
)

// Functions are the library's functions: all a namespace's Redis user may FCALL.
var Functions = []string{Reserve, Adjust, Once}

// Commands are the commands the functions run. Redis checks each of them, and its keys, against the
// ACL of the user calling FCALL, so that user needs them too (internal/redisacl grants them).
var Commands = []string{"hmget", "hincrby", "incr", "pexpire"}

// The bounds the functions enforce; a call beyond them is refused. claudeguard.lua holds the same
// numbers (TestBoundsMatchTheLibrary).
const (
	// MaxKeys is the most counters one Reserve or Adjust may name.
	MaxKeys = 128
	// MaxKeyLen is the longest key, in bytes.
	MaxKeyLen = 512
	// MaxCounterTTL is the longest TTL of a counter (the longest window, a month, plus the grace).
	MaxCounterTTL = 32 * 24 * time.Hour
	// MaxReplayTTL is the longest TTL of a replay key.
	MaxReplayTTL = 366 * 24 * time.Hour
	// MaxAmount bounds every limit, hold and delta (tokens or micro-USD): 2^62.
	MaxAmount = int64(1) << 62
)

// Ensure loads the library into the Redis behind c unless it already holds exactly this code, and
// reports whether it loaded it. A library of the same name with other code (another build of the same
// calling convention) is replaced. c needs FUNCTION LIST and FUNCTION LOAD (the manager's admin
// connection).
func Ensure(ctx context.Context, c redis.Cmdable) (loaded bool, err error) {
	libs, err := c.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: Library, WithCode: true}).Result()
	if err != nil {
		return false, fmt.Errorf("failed to list function library %s: %w", Library, err)
	}
	for _, l := range libs {
		if l.Name == Library && l.Code == Source {
			return false, nil
		}
	}
	name, err := c.FunctionLoadReplace(ctx, Source).Result()
	if err != nil {
		return false, fmt.Errorf("failed to load function library %s: %w", Library, err)
	}
	if name != Library {
		return false, fmt.Errorf("loading function library %s created library %q", Library, name)
	}
	return true, nil
}

// IsMissing reports whether err is Redis's answer to an FCALL of a function it does not have: the
// library is not loaded (a Redis restarted without persistence, or one the manager has not reached yet).
func IsMissing(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(rerr.Error(), "Function not found")
}
