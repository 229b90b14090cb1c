//go:build integration

package chart

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/internal/test/chartenv"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
)

// TestEveryValueIsDocumented: each value in values.yaml is listed in docs/values.md as `path` (or under a
// documented parent, for free-form objects such as resources).
func TestEveryValueIsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartenv.Chart(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "values.md"))
	if err != nil {
		t.Fatal(err)
	}
	leaves := leafPaths("", values)
	if len(leaves) < 50 {
		t.Fatalf("found only %d values: %v", len(leaves), leaves)
	}
	for _, path := range leaves {
		documented := false
		for p := path; p != "" && !documented; p = parent(p) {
			documented = strings.Contains(string(doc), "`"+p+"`")
		}
		if !documented {
			t.Errorf("%s is not documented in docs/values.md", path)
		}
	}
}

func leafPaths(prefix string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return []string{prefix}
	}
	var out []string
	for k, child := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		out = append(out, leafPaths(p, child)...)
	}
	slices.Sort(out)
	return out
}

func parent(path string) string {
	i := strings.LastIndex(path, ".")
	if i < 0 {
		return ""
	}
	return path[:i]
}
