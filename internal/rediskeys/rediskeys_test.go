package rediskeys

import (
	"strings"
	"testing"
)

func TestPart(t *testing.T) {
	long := strings.Repeat("x", 65)
	cases := []struct{ in, want string }{
		{"", "-"},
		{"team-a", "team-a"},
		{"Claude_1.2", "Claude_1.2"},
		{"spiffe://td/ns/a/sa/b", "spiffe%3A%2F%2Ftd%2Fns%2Fa%2Fsa%2Fb"},
		{"{tag}", "%7Btag%7D"},
		{"a=b:c", "a%3Db%3Ac"},
		{"100%", "100%25"},
		{"é", "%C3%A9"},
		{strings.Repeat("x", 64), strings.Repeat("x", 64)},
	}
	for _, c := range cases {
		if got := Part(c.in); got != c.want {
			t.Errorf("Part(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	h := Part(long)
	if !strings.HasPrefix(h, "#") || len(h) != 33 || Part(long+"y") == h {
		t.Errorf("long part = %q: want '#' and 32 hex digits, distinct per value", h)
	}
	// Escaped parts never contain a separator or a brace, so no value can move the hash tag or add a field.
	for _, in := range []string{"a:b", "}{", "x=y", "#abc", strings.Repeat("}", 40)} {
		if p := Part(in); strings.ContainsAny(p, ":={}") || (strings.HasPrefix(p, "#") && len(in) < 20) {
			t.Errorf("Part(%q) = %q", in, p)
		}
	}
}
