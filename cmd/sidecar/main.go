// Command sidecar is claude-guard's policy-enforcing proxy in front of the Anthropic API. It runs
// injected next to a workload, as a shared gateway, or standalone from a config file:
//
//	sidecar --config config/samples/sidecar-standalone.yaml --api-key-file ~/.anthropic-key
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// The image has no /etc/ssl (an empty base, docs/images.md): these roots, compiled in, verify
	// api.anthropic.com (and a Vault, OIDC issuer or Redis with a public certificate). Go uses them only
	// when the system has none, so a CA bundle mounted at the usual paths (or SSL_CERT_FILE) still wins.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/claude-guard/claude-guard/internal/version"
	"github.com/claude-guard/claude-guard/sidecar/app"
)

const usage = `claude-guard sidecar: the policy-enforcing proxy in front of the Anthropic API.

Injected by the claude-guard webhook next to a workload (every flag set for you), as a shared gateway
(--gateway), or standalone from a config file:

  CLAUDE_GUARD_API_KEY=sk-ant-... sidecar --config config/samples/sidecar-standalone.yaml

Then point an SDK at it: ANTHROPIC_BASE_URL=http://127.0.0.1:8787, with any placeholder
ANTHROPIC_API_KEY (the sidecar strips it and sends the real key).
Config reference: docs/sidecar-config.md; standalone use: README.md; gateway mode: docs/gateway.md.

Flags:
`

// stopProfile writes the benchmark profiles in a -tags benchprofile build (profile.go); a no-op otherwise.
var stopProfile = func() {}

func main() {
	var o app.Options
	o.BindFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "print the version, commit and Go version, then exit")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Get().String("claude-guard sidecar"))
		return
	}
	o.Complete()
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := app.Run(ctx, &o)
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
