package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDocBlock(t *testing.T) {
	// Every marked block in docs/ is found and not empty.
	files, _ := filepath.Glob(filepath.Join(Root(), "docs", "*.md"))
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(Root(), f)
		for _, name := range markers(string(b)) {
			body, err := DocBlock(rel, name)
			if err != nil || body == "" {
				t.Errorf("%s %s: %q %v", rel, name, body, err)
			}
			found++
		}
	}
	if found == 0 {
		t.Fatal("no <!-- test: ... --> block in docs/")
	}
	if _, err := DocBlock("docs/uninstall.md", "no-such-block"); err == nil {
		t.Fatal("a missing block was found")
	}
}

func markers(s string) []string {
	var out []string
	const open = "<!-- test: "
	for {
		_, rest, ok := strings.Cut(s, open)
		if !ok {
			return out
		}
		name, after, ok := strings.Cut(rest, " -->")
		if !ok {
			return out
		}
		out, s = append(out, name), after
	}
}
