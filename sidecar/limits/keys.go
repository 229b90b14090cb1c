package limits

import (
	"strconv"
	"strings"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
	"github.com/claude-guard/claude-guard/internal/rediskeys"
)

// The Redis key layout is internal/rediskeys' (shared with the operator's Redis users); Part escapes
// every variable part of a key.
var keyPart = rediskeys.Part

// NamespaceKeyPrefix is the prefix of every Redis key of namespace (rediskeys.NamespacePrefix).
func NamespaceKeyPrefix(namespace string) string { return rediskeys.NamespacePrefix(namespace) }

// ruleScope is a rule's identity in Redis keys. A policy's rule includes the policy's name, so two
// policies of one namespace with a rule of the same name count separately. A tenant's rule includes the
// tenant's name instead: it is shared by every policy and pod of the namespace, which is the point of a
// tenant ceiling.
func ruleScope(p policyconfig.PolicyRef, source, kind, name string) string {
	owner := "p:" + keyPart(p.Name)
	if source == policyconfig.SourceTenant {
		owner = "t:" + keyPart(p.Tenant)
	}
	return owner + ":" + kind + ":" + keyPart(name)
}

// bucketKey is the Redis key of rule ru's counter for the charged value of k in the window that starts at
// start.
func (rs *Rules) bucketKey(ru *rule, k Keys, start time.Time) string {
	var b strings.Builder
	b.Grow(96)
	b.WriteString(rs.keyPrefix)
	b.WriteString(ru.scope)
	b.WriteByte(':')
	b.WriteString(ru.window)
	b.WriteByte(':')
	b.WriteString(ru.key)
	b.WriteByte('=')
	b.WriteString(keyPart(k.get(ru.key)))
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(start.Unix(), 10))
	return b.String()
}

// replayKey is the Redis key recording that key was seen (jti replay protection).
func (rs *Rules) replayKey(key string) string {
	return rs.keyPrefix + "jti:" + keyPart(key)
}
