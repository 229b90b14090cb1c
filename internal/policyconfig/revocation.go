package policyconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Revocation is one end-user token (jti) or user (subject) the sidecar refuses, rendered from a
// ClaudeRevocation of the policy's namespace. The config carries no jti or subject, only their
// RevocationID, so a ConfigMap (or a Redis hash) holding many of them names nobody.
type Revocation struct {
	// ID is RevocationID of what is revoked.
	ID string `json:"id"`
	// Name is the ClaudeRevocation's name, for audit records.
	Name string `json:"name"`
	// Until ends the revocation (the ClaudeRevocation's expiresAt); nil: while the config stands.
	Until *time.Time `json:"until,omitempty"`
}

// What a revocation names.
const (
	RevokeJTI     = "jti"
	RevokeSubject = "sub"
)

// RevocationID identifies what a revocation names: the first 32 hex digits (128 bits) of
// SHA-256("claude-guard-revocation", kind, issuer, value), NUL-separated. kind is RevokeJTI or
// RevokeSubject; the issuer qualifies both, since two issuers may hand out the same jti or subject. The
// operator computes it from the ClaudeRevocation, the sidecar from each verified token.
func RevocationID(kind, issuer, value string) string {
	h := sha256.New()
	for _, s := range []string{"claude-guard-revocation", kind, issuer, value} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Active reports whether r is in force at now.
func (r Revocation) Active(now time.Time) bool { return r.Until == nil || now.Before(*r.Until) }

// SharedValue is r as the value of its field in the namespace's Redis revocation hash (the field is
// r.ID): "<until, unix seconds; 0 for none> <name>".
func (r Revocation) SharedValue() string {
	var until int64
	if r.Until != nil {
		until = r.Until.Unix()
	}
	return strconv.FormatInt(until, 10) + " " + r.Name
}

// ParseShared reads a Revocation from its Redis hash field and value (SharedValue).
func ParseShared(id, value string) (Revocation, error) {
	u, name, ok := strings.Cut(value, " ")
	if !ok || !validRevocationID(id) {
		return Revocation{}, fmt.Errorf("revocation %q is not \"<until> <name>\" under a revocation ID", clipID(id))
	}
	until, err := strconv.ParseInt(u, 10, 64)
	if err != nil || until < 0 {
		return Revocation{}, fmt.Errorf("revocation %s: until must be a non-negative Unix time, got %q", id, u)
	}
	r := Revocation{ID: id, Name: name}
	if until > 0 {
		t := time.Unix(until, 0).UTC()
		r.Until = &t
	}
	return r, nil
}

func validRevocationID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

func clipID(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
