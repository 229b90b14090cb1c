package enduser

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// header is the part of a JWS header read before verification, to pick the issuer and explain refusals.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// unverified is what is read from a token before its signature is checked: only used to choose the
// verifier and to word errors, never to grant anything.
type unverified struct {
	header header
	iss    string
}

var errMalformed = errors.New("token is not a JWT (three base64url parts: header, claims, signature)")

// peek decodes the header and the iss claim of a compact JWS without verifying it.
func peek(token string) (unverified, error) {
	var u unverified
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return u, errMalformed
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return u, errMalformed
	}
	if err := decodeSegment(h, &u.header); err != nil {
		return u, errMalformed
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := decodeSegment(p, &c); err != nil {
		return u, errMalformed
	}
	u.iss = c.Iss
	return u, nil
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// claims are the verified claims the sidecar reads.
type claims map[string]any

func (c claims) str(name string) string {
	s, _ := c[name].(string)
	return s
}

// strings reads a claim that is either a list of strings or one string; split says whether one string is
// a space-separated list (OAuth 2.0 "scope") or a single value.
func (c claims) strings(name string, split bool) []string {
	switch v := c[name].(type) {
	case string:
		if split {
			return strings.Fields(v)
		}
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// scopes reads OAuth 2.0 scopes from "scope" (RFC 8693: space-separated) and "scp" (a list, as Azure AD
// and Okta write it, or a string).
func (c claims) scopes() []string {
	out := c.strings("scope", true)
	return append(out, c.strings("scp", true)...)
}

// numericDate reads a JWT NumericDate (seconds since the epoch, possibly fractional).
func (c claims) numericDate(name string) (time.Time, bool) {
	switch v := c[name].(type) {
	case float64:
		sec := int64(v)
		return time.Unix(sec, int64((v-float64(sec))*1e9)), true
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(int64(f), 0), true
	}
	return time.Time{}, false
}

// audiences reads aud, which is a string or a list of strings.
func (c claims) audiences() []string { return c.strings("aud", false) }
