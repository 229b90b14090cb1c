package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/claude-guard/claude-guard/internal/imagebuild"
	"github.com/claude-guard/claude-guard/internal/test/testenv"
)

// Test images: built from this repository like the product's, for the node's platform only, and named
// under claude-guard.local so nothing can mistake them for published ones.
const (
	TestRegistry = "claude-guard.local"
	TestVersion  = "test"
	// SandboxImage is the node's pod sandbox image (hack/cluster/env.sh's SANDBOX_IMAGE).
	SandboxImage = TestRegistry + "/pause:" + TestVersion
	// FakeUpstreamImage serves the fake Anthropic API (test/images/fakeupstream) on :8080.
	FakeUpstreamImage = TestRegistry + "/fakeupstream:" + TestVersion
	// ClientImage is the app: the official Anthropic Go SDK (test/images/claudeclient).
	ClientImage = TestRegistry + "/claudeclient:" + TestVersion
	// ClientBinary is where ClientImage holds its binary (its entrypoint).
	ClientBinary = "/usr/local/bin/claudeclient"
)

// testImages are the images the cluster's tests run besides the product's.
var testImages = []imagebuild.RepoImage{
	{Name: "pause", Package: "./hack/cluster/pause", Path: "/usr/local/bin/pause"},
	{Name: "fakeupstream", Package: "./test/images/fakeupstream", Path: "/usr/local/bin/fakeupstream"},
	{Name: "claudeclient", Package: "./test/images/claudeclient", Path: ClientBinary},
}

// Images are the image tarballs BuildImages wrote.
type Images struct {
	// Product are the manager and sidecar images, named exactly as the chart's defaults name them.
	Product []imagebuild.Result
	// Test are the sandbox, fake upstream and client images.
	Test []imagebuild.Result
}

// Tarballs lists every tarball, for Start.
func (i Images) Tarballs() []string {
	var out []string
	for _, r := range append(append([]imagebuild.Result{}, i.Product...), i.Test...) {
		out = append(out, r.Path)
	}
	return out
}

// BuildImages builds the product's images from the working tree, as `make images` does but for the
// node's platform only, and the test images, as OCI tarballs in dir.
func BuildImages(ctx context.Context, dir string) (Images, error) {
	host := []v1.Platform{{OS: "linux", Architecture: runtime.GOARCH}}
	var imgs Images
	var err error
	root := testenv.RepoRoot()
	if imgs.Product, err = imagebuild.BuildRepoImages(ctx, imagebuild.Options{Dir: root, Out: filepath.Join(dir, "product"), Platforms: host}); err != nil {
		return imgs, fmt.Errorf("building the manager and sidecar images: %w", err)
	}
	if imgs.Test, err = imagebuild.BuildRepoImages(ctx, imagebuild.Options{Dir: root, Out: filepath.Join(dir, "test"), Platforms: host,
		Catalog: testImages, Registry: TestRegistry, Version: TestVersion}); err != nil {
		return imgs, fmt.Errorf("building the test images: %w", err)
	}
	return imgs, nil
}

// FakeUpstream returns the manifests of a fake Anthropic API accepting keys (FAKE_API_KEYS of
// test/images/fakeupstream: "key" or "label=key", comma-separated): a Deployment and a Service
// called name on port 8080, in namespace FakeUpstreamNamespace. ServiceURL finds its address.
func FakeUpstream(name, keys string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      containers:
      - name: api
        image: %[3]s
        imagePullPolicy: Never
        args: [-listen, ":8080"]
        env: [{name: FAKE_API_KEYS, value: %[4]q}]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {tcpSocket: {port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {app: %[2]s}
  ports: [{port: 8080, targetPort: http, name: http}]
`, FakeUpstreamNamespace, name, FakeUpstreamImage, keys)
}

// FakeUpstreamNamespace holds the fake APIs.
const FakeUpstreamNamespace = "fake-anthropic"

// ClientDeployment returns a Deployment ns/name (label app=name, ServiceAccount name) whose app container
// runs ClientImage: it calls model once as it starts (so its log proves the sidecar was serving before
// the app ran), then waits; callers exec further calls into it.
func ClientDeployment(ns, name, model string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      serviceAccountName: %[2]s
      containers:
      - name: app
        image: %[3]s
        imagePullPolicy: Never
        args: [serve, -call-at-start, %[4]s]
`, ns, name, ClientImage, model)
}

// ClientResult is the JSON line ClientImage prints for one call.
type ClientResult struct {
	Model  string `json:"model"`
	Status int    `json:"status"`
	Text   string `json:"text"`
	Error  string `json:"error"`
}

// FindClientResult returns the first result line in out (a log or an exec's output).
func FindClientResult(out string) (ClientResult, bool) {
	for _, line := range strings.Split(out, "\n") {
		var r ClientResult
		if json.Unmarshal([]byte(line), &r) == nil && r.Model != "" {
			return r, true
		}
	}
	return ClientResult{}, false
}

// Call execs one call of model into the app container of pod ns/name. An exec that printed no result
// (the API server or kubelet busy) comes back as status 0 with the output as the error, so polling
// callers retry.
func (c *Cluster) Call(ctx context.Context, ns, pod, model string) ClientResult {
	out, _ := c.Run(ctx, "", "exec", "-n", ns, pod, "-c", "app", "--", ClientBinary, "call", "-model", model)
	r, ok := FindClientResult(out)
	if !ok {
		r.Error = out
	}
	return r
}
