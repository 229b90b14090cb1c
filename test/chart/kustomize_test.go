//go:build integration

package chart

import (
	"bytes"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/claude-guard/claude-guard/internal/test/chartenv"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
)

// TestKustomizeDeploysWhatHelmDeploys builds config/default with kubectl's kustomize and checks it holds
// the objects `helm install claude-guard -n claude-guard-system` creates with default values, field for
// field (only the managed-by label differs), plus the CRDs and the namespace Helm handles itself.
// hack/verify.sh proves config/ is freshly generated; this proves the generated tree builds into it.
func TestKustomizeDeploysWhatHelmDeploys(t *testing.T) {
	kubectl, err := testenv.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", filepath.Join(testenv.RepoRoot(), "config", "default"))
	cmd.Stderr = &stderr
	built, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, stderr.String())
	}
	rendered, err := helmCLI(t).Run("template", "claude-guard", chartenv.Chart(), "--namespace", "claude-guard-system")
	if err != nil {
		t.Fatal(err)
	}
	fromKustomize, fromHelm := objects(t, built), objects(t, []byte(rendered))
	for key, obj := range fromHelm {
		labels, _ := obj["metadata"].(map[string]any)["labels"].(map[string]any)
		if labels["app.kubernetes.io/managed-by"] == "Helm" {
			labels["app.kubernetes.io/managed-by"] = "kustomize"
		}
		if !reflect.DeepEqual(fromKustomize[key], obj) {
			t.Errorf("%s differs between config/default and the chart:\nkustomize: %v\nhelm:      %v", key, fromKustomize[key], obj)
		}
		delete(fromKustomize, key)
	}
	var rest []string
	for key := range fromKustomize {
		if !strings.HasPrefix(key, "CustomResourceDefinition/") && key != "Namespace/<nil>/claude-guard-system" {
			rest = append(rest, key)
		}
	}
	if len(rest) > 0 {
		t.Errorf("config/default holds objects the chart does not: %v", rest)
	}
	if len(fromHelm) < 10 {
		t.Errorf("the chart rendered only %v", slices.Sorted(maps.Keys(fromHelm)))
	}
}

// objects parses a YAML stream into objects keyed by kind/namespace/name.
func objects(t *testing.T, stream []byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, doc := range bytes.Split(stream, []byte("\n---")) {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if obj == nil {
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		key := fmt.Sprintf("%v/%v/%v", obj["kind"], meta["namespace"], meta["name"])
		if _, dup := out[key]; dup {
			t.Fatalf("%s appears twice", key)
		}
		out[key] = obj
	}
	return out
}
