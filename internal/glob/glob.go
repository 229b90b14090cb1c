// Package glob matches Claude model names against the small glob language used in policies.
//
// A pattern is a model name in which '*' stands for any run of characters (including none). Nothing else
// is special: model names are lowercase letters, digits, '.', '-' and '_' , so there is no escaping and
// no character classes. Keeping the language this small is what lets the controller decide, exactly,
// whether one pattern is narrower than another (see Covers), which is how a tenant ceiling is checked.
//
// This package is a leaf: both the controller and the sidecar import it, so it imports nothing but the
// standard library.
package glob

import (
	"fmt"
	"strings"
)

// MaxLen is the longest pattern or model name accepted.
const MaxLen = 128

// Validate reports why pattern is not a well-formed model glob, or nil.
func Validate(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(pattern) > MaxLen {
		return fmt.Errorf("must be at most %d characters", MaxLen)
	}
	for i := 0; i < len(pattern); i++ {
		if !validChar(pattern[i]) {
			return fmt.Errorf("character %q at offset %d is not allowed: use lowercase letters, digits, '.', '-', '_' and '*'", pattern[i], i)
		}
	}
	if strings.Contains(pattern, "**") {
		return fmt.Errorf("must not contain \"**\"")
	}
	return nil
}

func validChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '*'
}

// Match reports whether name matches pattern.
func Match(pattern, name string) bool {
	return match(pattern, name, false)
}

// Covers reports whether every name that narrow matches is also matched by wide, that is whether the
// language of narrow is a subset of the language of wide.
//
// It treats each '*' of narrow as a symbol that only a '*' of wide can absorb. That is exact for this
// language: substituting a character that wide never mentions for each '*' of narrow gives a name that
// wide can only match by absorbing those characters with its own stars.
func Covers(wide, narrow string) bool {
	return match(wide, narrow, true)
}

// match is the classic linear-time wildcard matcher with one backtrack point. When starIsSymbol is set,
// a '*' in s is a literal that only a '*' in p can consume.
func match(p, s string, starIsSymbol bool) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			starP, starS = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si] && (!starIsSymbol || s[si] != '*'):
			pi++
			si++
		case starP >= 0:
			starS++
			pi, si = starP+1, starS
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// AnyMatch reports whether name matches any of patterns.
func AnyMatch(patterns []string, name string) bool {
	for _, p := range patterns {
		if Match(p, name) {
			return true
		}
	}
	return false
}

// AnyCovers reports whether any of wides covers narrow.
func AnyCovers(wides []string, narrow string) bool {
	for _, w := range wides {
		if Covers(w, narrow) {
			return true
		}
	}
	return false
}

// Overlaps reports whether some name matches both a and b: false means a rule granting a can never apply
// to a call that b admits. It is exact for this language, by dynamic programming over the two patterns
// (a '*' may absorb a character or a '*' of the other pattern, or nothing).
func Overlaps(a, b string) bool {
	seen := make([]int8, (len(a)+1)*(len(b)+1)) // 0 unknown, 1 yes, -1 no
	var rec func(i, j int) bool
	rec = func(i, j int) bool {
		k := i*(len(b)+1) + j
		if seen[k] != 0 {
			return seen[k] > 0
		}
		var ok bool
		switch {
		case i == len(a) && j == len(b):
			ok = true
		case i < len(a) && a[i] == '*':
			ok = rec(i+1, j) || j < len(b) && rec(i, j+1)
		case j < len(b) && b[j] == '*':
			ok = rec(i, j+1) || i < len(a) && rec(i+1, j)
		case i < len(a) && j < len(b):
			ok = a[i] == b[j] && rec(i+1, j+1)
		}
		seen[k] = -1
		if ok {
			seen[k] = 1
		}
		return ok
	}
	return rec(0, 0)
}
