// Package rediskeys is the Redis key layout and URL handling that the sidecar's limiter (sidecar/limits)
// and the operator's Redis user controller (internal/redisacl) must share: the operator grants each
// namespace's Redis ACL user exactly the keys the limiter writes for that namespace, so both build them
// here. It is a leaf (standard library only), so the manager does not link the limiter to use it.
//
// Layout (docs/limits.md):
//
//	cg:{<namespace>}:<p|t>:<policy or tenant>:<limit|budget>:<rule>:<window>:<key kind>=<value>:<window start, unix s>
//	cg:{<namespace>}:jti:<replay key>
//	cgrev:{<namespace>}                          (revocations: written by the operator only)
//
// The namespace in braces is the Redis Cluster hash tag: every key one request touches hashes to the same
// slot, which one Lua script needs. Every variable part goes through Part, so no value can add a
// separator, a brace or another field, and two different values never share a key.
package rediskeys

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Prefix starts every key.
const Prefix = "cg:"

// maxPart is the longest part kept readable; longer ones (end-user subjects can be anything) are hashed.
const maxPart = 64

// Part escapes s for a Redis key: bytes outside [A-Za-z0-9._-] become %XX, so ':', '=', '{', '}' and '%'
// can never appear unescaped. A part longer than maxPart after escaping is replaced by '#' and 32 hex
// digits of its SHA-256 ('#' is always escaped in readable parts, so the two forms cannot collide). The
// empty string becomes "-" so that every part is visible; "-" itself stays "-" (callers never need to
// tell an empty value from "-": the limiter already maps a missing value to "-").
func Part(s string) string {
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
		if b.Len() > maxPart {
			sum := sha256.Sum256([]byte(s))
			return "#" + hex.EncodeToString(sum[:16])
		}
	}
	return b.String()
}

// NamespacePrefix is the prefix of every key of namespace: "cg:{<escaped namespace>}:". The operator
// grants each namespace's Redis ACL user exactly the keys under it.
func NamespacePrefix(namespace string) string {
	return Prefix + "{" + Part(namespace) + "}:"
}

// RevocationsPrefix starts the key of each namespace's revoked end-user tokens and users.
const RevocationsPrefix = "cgrev:"

// RevocationsKey is the hash of namespace's revocations (field: policyconfig.RevocationID, value:
// policyconfig.Revocation.SharedValue, plus the field Version). It lies outside NamespacePrefix on
// purpose: the namespace's user may read it but, unlike its counters, never write it (the operator
// grants it read-only), so a tenant holding its Redis password cannot lift a revocation.
func RevocationsKey(namespace string) string {
	return RevocationsPrefix + "{" + Part(namespace) + "}"
}

// RevocationsVersion is the field of the revocation hash that changes with its content, so a sidecar
// polling it fetches the whole hash only when something changed. No revocation ID contains '#'.
const RevocationsVersion = "#version"
