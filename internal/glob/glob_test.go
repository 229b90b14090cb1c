package glob

import "testing"

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"claude-haiku-4-5", "claude-haiku-4-5", true},
		{"claude-haiku-4-5", "claude-haiku-4-5-20251001", false},
		{"claude-haiku-*", "claude-haiku-4-5-20251001", true},
		{"claude-haiku-*", "claude-sonnet-4-5", false},
		{"*", "anything", true},
		{"*", "", true},
		{"claude-*-4-5", "claude-opus-4-5", true},
		{"claude-*-4-5", "claude-opus-4-1", false},
		{"*sonnet*", "claude-sonnet-4-5", true},
		{"*sonnet*", "claude-3-7-sonnet-latest", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, c := range cases {
		t.Run(c.pattern+"~"+c.name, func(t *testing.T) {
			if got := Match(c.pattern, c.name); got != c.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	cases := []struct {
		wide, narrow string
		want         bool
	}{
		{"claude-*", "claude-haiku-*", true},
		{"claude-haiku-*", "claude-*", false},
		{"claude-haiku-*", "claude-haiku-4-5", true},
		{"claude-haiku-4-5", "claude-haiku-*", false},
		{"*", "*", true},
		{"*", "claude-opus-*", true},
		{"claude-sonnet-*", "claude-opus-*", false},
		{"*-4-5", "claude-*-4-5", true},
		{"claude-*-4-5", "*-4-5", false},
		{"*sonnet*", "claude-sonnet-*", true},
		{"claude-sonnet-*", "*sonnet*", false},
		{"a*c", "a*b*c", true},
		{"a*b*c", "a*c", false},
	}
	for _, c := range cases {
		t.Run(c.wide+">="+c.narrow, func(t *testing.T) {
			if got := Covers(c.wide, c.narrow); got != c.want {
				t.Fatalf("Covers(%q, %q) = %v, want %v", c.wide, c.narrow, got, c.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		pattern string
		ok      bool
	}{
		{"claude-haiku-4-5", true},
		{"claude-*", true},
		{"*", true},
		{"claude_3.5", true},
		{"", false},
		{"Claude-Opus", false},
		{"claude opus", false},
		{"claude-**", false},
		{"claude-[a-z]", false},
	}
	for _, c := range cases {
		t.Run(c.pattern, func(t *testing.T) {
			if err := Validate(c.pattern); (err == nil) != c.ok {
				t.Fatalf("Validate(%q) = %v, want ok=%v", c.pattern, err, c.ok)
			}
		})
	}
}

// FuzzCovers checks Covers against Match: if wide covers narrow, every name narrow matches must match wide.
func FuzzCovers(f *testing.F) {
	f.Add("claude-*", "claude-haiku-*", "claude-haiku-x")
	f.Add("*-4-5", "claude-*-4-5", "claude-opus-4-5")
	f.Fuzz(func(t *testing.T, wide, narrow, name string) {
		if Validate(wide) != nil || Validate(narrow) != nil || Validate(name) != nil || containsStar(name) {
			return
		}
		if Covers(wide, narrow) && Match(narrow, name) && !Match(wide, name) {
			t.Fatalf("Covers(%q, %q) but %q matches only the narrow one", wide, narrow, name)
		}
	})
}

func containsStar(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '*' {
			return true
		}
	}
	return false
}

// TestOverlaps checks Overlaps against brute force: every pair of patterns over {a, b, *} up to four
// characters, against every name over {a, b} up to eight (long enough to witness any overlap of two such
// patterns).
func TestOverlaps(t *testing.T) {
	var patterns, names []string
	var grow func(prefix string, alphabet string, max int, out *[]string)
	grow = func(prefix, alphabet string, max int, out *[]string) {
		*out = append(*out, prefix)
		if len(prefix) == max {
			return
		}
		for _, c := range alphabet {
			grow(prefix+string(c), alphabet, max, out)
		}
	}
	grow("", "ab*", 4, &patterns)
	grow("", "ab", 8, &names)
	for _, a := range patterns {
		for _, b := range patterns {
			want := false
			for _, n := range names {
				if Match(a, n) && Match(b, n) {
					want = true
					break
				}
			}
			if got := Overlaps(a, b); got != want {
				t.Fatalf("Overlaps(%q, %q) = %v, want %v", a, b, got, want)
			}
		}
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"claude-haiku-*", "claude-*-4-5", true},
		{"claude-opus-*", "claude-haiku-*", false},
		{"claude-sonnet-4-5", "claude-sonnet-*", true},
	} {
		if got := Overlaps(c.a, c.b); got != c.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
