package limits

import (
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/rediskeys"
)

// The Redis key layout is internal/rediskeys' (shared with the operator's Redis users); Part escapes
// every variable part of a key.
var keyPart = rediskeys.Part

// NamespaceKeyPrefix is the prefix of every Redis key of namespace (rediskeys.NamespacePrefix).
func NamespaceKeyPrefix(namespace string) string { return rediskeys.NamespacePrefix(namespace) }

// ruleScope is a rule's identity in Redis keys (rediskeys.Scope).
func ruleScope(p policyconfig.PolicyRef, source, kind, name string) string {
	return rediskeys.Scope(p.Name, p.Tenant, source, kind, name)
}

// bucketKey is the Redis key of rule ru's counter for the charged value of k in the window that starts at
// start.
func (rs *Rules) bucketKey(ru *rule, k Keys, start time.Time) string {
	return rediskeys.Counter(rs.keyPrefix, ru.scope, ru.window, ru.key, k.get(ru.key), start)
}

// replayKey is the Redis key recording that key was seen (jti replay protection).
func (rs *Rules) replayKey(key string) string {
	return rs.keyPrefix + "jti:" + keyPart(key)
}
