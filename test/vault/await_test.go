//go:build integration

package vault

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/logbuf"
	"github.com/claude-guard/claude-guard/sidecar/credentials"
)

// arriving is an identity whose SVID arrives at a given time, as a new pod's does once its registration
// entry reaches the SPIRE agent (internal/identity.Provider reports the same through Ready).
type arriving struct {
	svids
	at time.Time
}

var errNoSVIDYet = errors.New("no SPIFFE identity yet")

func (a arriving) Ready() error {
	if time.Now().Before(a.at) {
		return errNoSVIDYet
	}
	return nil
}

func (a arriving) ClientCertificate(i *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if err := a.Ready(); err != nil {
		return nil, err
	}
	return a.svids.ClientCertificate(i)
}

// TestLoginWaitsForTheIdentity: a source started before its SVID exists logs in once the SVID is there,
// without failed attempts (whose growing backoff delayed a new pod's first key read by up to 15 s).
func TestLoginWaitsForTheIdentity(t *testing.T) {
	w := setup(t)
	var logs logbuf.Buffer
	v, err := credentials.NewVault(credentials.VaultOptions{
		Address: w.bao.Addr, CACert: w.caPEM, AuthMethod: "cert", Role: "team-a",
		Mount: "secret", Path: "tenants/team-a/anthropic", Field: "api_key",
		RefreshInterval: time.Minute, MaxStaleness: time.Hour,
		Identity: arriving{svids: svids{t: t, spire: w.spire, svid: w.svidA}, at: time.Now().Add(1500 * time.Millisecond)},
		Log:      slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go v.Run(ctx)
	eventuallyKey(t, v, keyA, "")
	if strings.Contains(logs.String(), "Vault session ended") {
		t.Fatalf("the source tried to log in before its SVID arrived:\n%s", logs.String())
	}
}
