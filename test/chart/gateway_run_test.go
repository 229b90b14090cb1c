//go:build integration

package chart

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	corev1 "k8s.io/api/core/v1"

	"github.com/claude-guard/claude-guard/internal/test/chartenv"
	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
	"github.com/claude-guard/claude-guard/internal/test/testcert"
	"github.com/claude-guard/claude-guard/internal/test/wait"
	"github.com/claude-guard/claude-guard/sidecar/app"
	"github.com/claude-guard/claude-guard/sidecar/enduser/oidctest"
)

// TestChartGatewayServes runs the sidecar binary's Run with the arguments of the gateway Deployment the
// chart renders for testdata/gateway.values.yaml (a TLS Secret, the API key from a Secret) and calls it
// with the Anthropic SDK: over TLS with an end-user token it answers with the key from the mounted
// Secret; without a token it refuses. There is no kubelet: the test does its part, and only that: each
// volume's files are written to a directory that replaces the volume's mount path in the arguments, and
// the listeners bind to loopback.
func TestChartGatewayServes(t *testing.T) {
	const apiKey = "sk-ant-chart-gateway"
	up := httptest.NewServer(fakeupstream.New(apiKey))
	defer up.Close()
	is := oidctest.Start(t)
	values, err := filepath.Abs(filepath.Join("testdata", "gateway.values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := helmCLI(t).Run("template", "claude-guard", chartenv.Chart(), "-f", values, "--namespace", "claude-guard-system")
	if err != nil {
		t.Fatal(err)
	}
	gw := gatewayObjects(t, []byte(rendered))
	if gw.deployment == nil {
		t.Fatal("no gateway Deployment rendered")
	}
	pod := gw.deployment.Spec.Template.Spec
	c := pod.Containers[0]

	// What each volume holds in a cluster: the policy's rendered config (as the controller renders a
	// Strict end-user policy with a secretRef), the TLS Secret, the API key Secret.
	dir := t.TempDir()
	cert, key, pool := serverCert(t)
	config := fmt.Sprintf(`{"apiVersion": "sidecar.claudeguard.io/v1", "kind": "SidecarConfig",
  "server": {"upstream": %q},
  "credentials": {"secret": {"name": "anthropic", "key": "api-key"}},
  "models": {"allow": ["claude-haiku-*"]},
  "endUser": {"mode": "Strict", "issuers": [{"url": %q, "audiences": ["partner-api"], "caCert": %q}]}}`, up.URL, is.URL, is.CACert)
	contents := map[string]map[string]string{
		"config":  {"config.json": config},
		"tls":     {"tls.crt": cert, "tls.key": key},
		"api-key": {"api-key": apiKey},
	}
	args := c.Args
	for _, m := range c.VolumeMounts {
		files, ok := contents[m.Name]
		if !ok {
			t.Fatalf("the gateway mounts volume %s, which this test does not fill", m.Name)
		}
		local := filepath.Join(dir, m.Name)
		if err := os.MkdirAll(local, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, item := range volumeItems(t, pod, m.Name) {
			body, ok := files[item]
			if !ok {
				t.Fatalf("volume %s holds %s, which this test does not fill", m.Name, item)
			}
			if err := os.WriteFile(filepath.Join(local, item), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for i, a := range args {
			args[i] = strings.Replace(a, "="+m.MountPath, "="+local, 1)
		}
	}
	args = chartenv.Override(args, map[string]string{"listen": "127.0.0.1:0", "metrics-listen": "127.0.0.1:0"})

	var o app.Options
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	o.Complete()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	addr := runGateway(t, &o)

	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	params := anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 10,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	user := anthropic.NewClient(option.WithBaseURL("https://"+addr), option.WithHTTPClient(httpc), option.WithMaxRetries(0),
		option.WithAuthToken(is.Sign(is.Claims("partner-user", "partner-api"))))
	if _, err := user.Messages.New(context.Background(), params); err != nil {
		t.Fatalf("an end user over TLS: %v", err)
	}
	noUser := anthropic.NewClient(option.WithBaseURL("https://"+addr), option.WithHTTPClient(httpc), option.WithMaxRetries(0),
		option.WithAPIKey("claude-guard-placeholder"))
	var apiErr *anthropic.Error
	if _, err := noUser.Messages.New(context.Background(), params); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without an end-user token: want 401, got %v", err)
	}
}

// volumeItems returns the file names a ConfigMap or Secret volume of the pod projects.
func volumeItems(t *testing.T, pod corev1.PodSpec, name string) []string {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name != name {
			continue
		}
		var items []corev1.KeyToPath
		switch {
		case v.ConfigMap != nil:
			items = v.ConfigMap.Items
		case v.Secret != nil:
			items = v.Secret.Items
		default:
			t.Fatalf("volume %s is neither a ConfigMap nor a Secret", name)
		}
		var paths []string
		for _, i := range items {
			paths = append(paths, i.Path)
		}
		return paths
	}
	t.Fatalf("no volume %s", name)
	return nil
}

// runGateway runs the sidecar until the test ends and returns its proxy address once it is ready.
func runGateway(t *testing.T, o *app.Options) string {
	t.Helper()
	addrs := make(chan [2]string, 1)
	o.Ready = func(p, m string) { addrs <- [2]string{p, m} }
	o.Stdout = io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, o) }()
	select {
	case a := <-addrs:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("the gateway exited with %v", err)
			}
		})
		wait.For(t, 30*time.Second, "", func() error {
			if code, body := get("http://" + a[1] + "/readyz"); code != http.StatusOK {
				return fmt.Errorf("the gateway is not ready: %d %s", code, body)
			}
			return nil
		})
		return a[0]
	case err := <-done:
		cancel()
		t.Fatalf("the gateway exited: %v", err)
	}
	return ""
}

// serverCert returns a PEM certificate and key for 127.0.0.1, and the pool that trusts it.
func serverCert(t *testing.T) (cert, key string, pool *x509.CertPool) { return testcert.Loopback(t) }
