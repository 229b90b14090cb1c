package limits

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/claude-guard/claude-guard/internal/policyconfig"
)

// Redis key layout (docs/limits.md):
//
//	cg:{<namespace>}:<p|t>:<policy or tenant>:<limit|budget>:<rule>:<window>:<key kind>=<value>:<window start, unix s>
//	cg:{<namespace>}:jti:<replay key>
//
// The namespace in braces is the Redis Cluster hash tag: every key one request touches hashes to the same
// slot, which one Lua script needs. Every variable part goes through keyPart, so no value can add a
// separator, a brace or another field, and two different values never share a key.
const keyPrefix = "cg:"

// maxKeyPart is the longest part kept readable; longer ones (end-user subjects can be anything) are hashed.
const maxKeyPart = 64

// keyPart escapes s for a Redis key: bytes outside [A-Za-z0-9._-] become %XX, so ':', '=', '{', '}' and
// '%' can never appear unescaped. A part longer than maxKeyPart after escaping is replaced by '#' and 32
// hex digits of its SHA-256 ('#' is always escaped in readable parts, so the two forms cannot collide).
// The empty string becomes "-" so that every part is visible; "-" itself stays "-" (callers never need
// to tell an empty value from "-": Keys already maps a missing value to "-").
func keyPart(s string) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	const hexd = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&0xf])
		}
		if b.Len() > maxKeyPart {
			sum := sha256.Sum256([]byte(s))
			return "#" + hex.EncodeToString(sum[:16])
		}
	}
	return b.String()
}

// NamespaceKeyPrefix is the prefix of every Redis key of namespace: "cg:{<escaped namespace>}:". The
// operator grants each namespace's Redis ACL user exactly the keys under it, so the grant and the keys
// must be built by this one function.
func NamespaceKeyPrefix(namespace string) string {
	return keyPrefix + "{" + keyPart(namespace) + "}:"
}

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
