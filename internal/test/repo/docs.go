package repo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DocBlock returns the body of the first fenced code block after the line `<!-- test: name -->` in the
// markdown file doc (relative to the repository root), so a test runs the commands the docs show, as
// they are written, and a doc that drifts from the code fails the suite.
func DocBlock(doc, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(Root(), doc))
	if err != nil {
		return "", err
	}
	marker := "<!-- test: " + name + " -->"
	_, rest, ok := strings.Cut(string(b), marker)
	if !ok {
		return "", fmt.Errorf("%s has no %s", doc, marker)
	}
	_, rest, ok = strings.Cut(rest, "```")
	if !ok {
		return "", fmt.Errorf("%s: no code block after %s", doc, marker)
	}
	if i := strings.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[i+1:] // the fence's info string (sh)
	}
	body, _, ok := strings.Cut(rest, "```")
	if !ok {
		return "", fmt.Errorf("%s: the code block after %s is not closed", doc, marker)
	}
	return body, nil
}
