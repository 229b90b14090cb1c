package redisacl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/rediskeys"
)

// SetRevocations makes namespace's revocation hash (rediskeys.RevocationsKey) hold exactly entries
// (field: revocation ID, value: policyconfig.Revocation.SharedValue) and a version that changes with
// them, or removes it when entries is empty. It reports whether it wrote anything: a hash already
// holding this version is left alone, so the periodic resync costs one HGET per namespace.
//
// The whole hash is replaced in one MULTI, so a sidecar never reads half of an update.
func (f *Functions) SetRevocations(ctx context.Context, namespace string, entries map[string]string) (wrote bool, err error) {
	key := rediskeys.RevocationsKey(namespace)
	if len(entries) == 0 {
		n, err := f.client.Del(ctx, key).Result()
		if err != nil {
			return false, fmt.Errorf("failed to delete the revocations of namespace %s on %s: %w", namespace, f.addr, err)
		}
		return n > 0, nil
	}
	ids := slices.Sorted(maps.Keys(entries))
	version := revocationsVersion(ids, entries)
	cur, err := f.client.HGet(ctx, key, rediskeys.RevocationsVersion).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("failed to read the revocations of namespace %s on %s: %w", namespace, f.addr, err)
	}
	if cur == version {
		return false, nil
	}
	fields := make([]any, 0, 2*len(entries)+2)
	for _, id := range ids {
		fields = append(fields, id, entries[id])
	}
	fields = append(fields, rediskeys.RevocationsVersion, version)
	_, err = f.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, fields...)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("failed to write the revocations of namespace %s on %s: %w", namespace, f.addr, err)
	}
	return true, nil
}

// revocationsVersion is the version of a set of revocation entries: 16 hex digits of the SHA-256 of
// their fields (ids, sorted) and values.
func revocationsVersion(ids []string, entries map[string]string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id + "\x00" + entries[id] + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
