package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMainOptions say what a test package's cluster carries.
type TestMainOptions struct {
	// Package names the package in figure lines ("test/pods").
	Package string
	// SPIRE also builds and imports SPIRE's images (BuildSPIREImages).
	SPIRE bool
}

// TestMain is the TestMain of a package whose tests share one cluster: in the network namespace Main
// makes, it builds the images, starts the cluster, stores it in *c for the tests, runs them and stops
// it. Figures of the images' build and the start are recorded (Figures).
func TestMain(m *testing.M, o TestMainOptions, c **Cluster) {
	os.Exit(Main(func() int {
		f := Figures{Package: o.Package}
		code, err := runPackage(m, o, f, c)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return code
	}))
}

func runPackage(m *testing.M, o TestMainOptions, f Figures, c **Cluster) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "cg-cluster-images-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	imgs, err := BuildImages(ctx, dir)
	if err != nil {
		return 0, err
	}
	tarballs, what := imgs.Tarballs(), "manager, sidecar, test images"
	if o.SPIRE {
		spire, err := BuildSPIREImages(ctx, filepath.Join(dir, "spire"))
		if err != nil {
			return 0, err
		}
		tarballs, what = append(tarballs, spire...), "manager, sidecar, SPIRE, test images"
	}
	f.Duration("images built ("+what+"; host platform)", time.Since(t0))
	if *c, err = Start(ctx, tarballs...); err != nil {
		return 0, err
	}
	f.Duration("cluster start (control plane + node Ready + Services routed)", (*c).Started)
	code := m.Run()
	if err := (*c).Stop(); err != nil {
		return 0, err
	}
	return code, nil
}

// Figures records measured figures: on stdout (the test log), and in $CLAUDE_GUARD_FIGURES, which
// hack/test.sh prints at the end of the suite.
type Figures struct{ Package string }

// Duration records what took d.
func (f Figures) Duration(what string, d time.Duration) {
	f.Record(fmt.Sprintf("%s: %.1fs", what, d.Seconds()))
}

// Record records one figure line.
func (f Figures) Record(figure string) {
	line := "figure: " + figure
	fmt.Println(line)
	if path := os.Getenv("CLAUDE_GUARD_FIGURES"); path != "" {
		if out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			_, _ = fmt.Fprintln(out, f.Package+" "+line)
			_ = out.Close()
		}
	}
}

// Step is one step of a story test.
type Step struct {
	Name string
	Run  func(*testing.T)
}

// Story runs steps in order as subtests, each needing the ones before it: at the first that fails it
// calls dump (what a person would look at) and stops.
func Story(t *testing.T, dump func(*testing.T), steps ...Step) {
	t.Helper()
	for _, s := range steps {
		if !t.Run(s.Name, s.Run) {
			dump(t)
			return
		}
	}
}

// TailLines returns the last n lines of s, for failure messages.
func TailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
