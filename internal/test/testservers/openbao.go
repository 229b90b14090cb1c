package testservers

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/claude-guard/claude-guard/internal/test/testcert"
)

// OpenBaoOptions configure StartOpenBao.
type OpenBaoOptions struct {
	// TLS serves HTTPS with a CA written to OpenBao.CACert. The listener asks clients for a certificate,
	// which the cert auth method needs; without TLS the server speaks plain HTTP.
	TLS bool
	// PodListenIP adds a TLS listener on this address (a free port) with a certificate for it, for clients
	// that are not on loopback: pods of a test cluster reach its bridge address. Like the TLS listener it
	// asks clients for certificates (cert auth).
	PodListenIP string
}

// OpenBao is a running OpenBao dev server: in-memory storage, unsealed, KV v2 mounted at secret/, and
// a root token. Its state is lost when it stops.
type OpenBao struct {
	// Addr is the server's base URL, http://127.0.0.1:PORT or https://127.0.0.1:PORT.
	Addr string
	// RootToken is the dev server's root token.
	RootToken string
	// CACert is the path of the PEM CA that signed the server certificate (TLS only, else empty).
	CACert string
	// PodAddr is https://<PodListenIP>:PORT, and PodCA the PEM certificate that verifies it
	// (PodListenIP only).
	PodAddr, PodCA string

	proc *process
}

const openBaoRootToken = "root"

// StartOpenBao starts an OpenBao dev server on a free loopback port and waits until it is unsealed and
// active. It is stopped when the test ends.
func StartOpenBao(t testing.TB, o OpenBaoOptions) *OpenBao {
	t.Helper()
	binDir, err := OpenBaoDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := runDir(t, "cg-bao-")
	// OpenBao also opens a cluster listener on the API port + 1: pick a port whose neighbour is free too.
	var port int
	for range 20 {
		port = freePort(t)
		if portFree(port + 1) {
			break
		}
	}
	args := []string{
		"server", "-dev",
		"-dev-root-token-id=" + openBaoRootToken,
		"-dev-listen-address=127.0.0.1:" + strconv.Itoa(port),
		"-dev-no-store-token",
		"-log-level=warn",
	}
	b := &OpenBao{Addr: "http://127.0.0.1:" + strconv.Itoa(port), RootToken: openBaoRootToken}
	if o.TLS {
		certDir := filepath.Join(dir, "tls")
		if err := os.Mkdir(certDir, 0o700); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+certDir)
		b.Addr = "https://127.0.0.1:" + strconv.Itoa(port)
		b.CACert = filepath.Join(certDir, "vault-ca.pem")
	}
	if o.PodListenIP != "" {
		addr, ca, config := podListener(t, dir, o.PodListenIP)
		args = append(args, "-config="+config)
		b.PodAddr, b.PodCA = addr, ca
	}
	b.proc, err = startProcess("bao", filepath.Join(dir, "bao.log"), baseEnv(dir), filepath.Join(binDir, "bao"), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	b.proc.logOnFailure(t)

	if o.TLS {
		// The client below needs the CA file. OpenBao writes the CA, the certificate and then the key
		// before it listens: once the key exists the CA is complete.
		if err := waitFor(b.proc, 30*time.Second, "the OpenBao dev CA", func() error {
			_, err := os.Stat(filepath.Join(filepath.Dir(b.CACert), "vault-key.pem"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	c := b.Client(t)
	if err := waitFor(b.proc, 30*time.Second, "OpenBao to be unsealed and active", func() error {
		h, err := c.Sys().Health()
		if err != nil {
			return err
		}
		if !h.Initialized || h.Sealed || h.Standby {
			return fmt.Errorf("%w: %+v", errNotReady, h)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

// podListener writes an OpenBao config file with one more TLS listener on ip (merged into the dev
// server's configuration) and returns its address, CA and the file.
func podListener(t testing.TB, dir, ip string) (addr, caPEM, configFile string) {
	t.Helper()
	var port int
	for range 20 {
		if port = freePortOn(t, ip); portFreeOn(ip, port+1) {
			break
		}
	}
	certPEM, keyPEM, _ := testcert.ForIP(t, ip)
	certFile, keyFile := filepath.Join(dir, "pod-listener.crt"), filepath.Join(dir, "pod-listener.key")
	configFile = filepath.Join(dir, "pod-listener.hcl")
	hcl := fmt.Sprintf("listener \"tcp\" {\n  address = %q\n  cluster_address = %q\n  tls_cert_file = %q\n  tls_key_file = %q\n}\n",
		net.JoinHostPort(ip, strconv.Itoa(port)), net.JoinHostPort(ip, strconv.Itoa(port+1)), certFile, keyFile)
	for name, data := range map[string]string{certFile: certPEM, keyFile: keyPEM, configFile: hcl} {
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return "https://" + net.JoinHostPort(ip, strconv.Itoa(port)), certPEM, configFile
}

// Stop stops the server (its state is lost). It is safe to call more than once; StartOpenBao registers it
// with t.Cleanup.
func (b *OpenBao) Stop() { b.proc.stop() }

// Config returns a vault/api client configuration for the server with no token: TLS trusts CACert, and
// retries are off so that tests see each failure as it happens.
func (b *OpenBao) Config(t testing.TB) *vault.Config {
	t.Helper()
	cfg := vault.DefaultConfig()
	if cfg.Error != nil {
		t.Fatalf("failed to build the vault client configuration: %v", cfg.Error)
	}
	cfg.Address = b.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	if b.CACert != "" {
		if err := cfg.ConfigureTLS(&vault.TLSConfig{CACert: b.CACert}); err != nil {
			t.Fatalf("failed to configure TLS for OpenBao: %v", err)
		}
	}
	return cfg
}

// Client returns a client for the server that holds the root token.
func (b *OpenBao) Client(t testing.TB) *vault.Client {
	t.Helper()
	c, err := vault.NewClient(b.Config(t))
	if err != nil {
		t.Fatalf("failed to create the vault client: %v", err)
	}
	// DefaultConfig reads VAULT_TOKEN and friends: the test's client must not depend on them.
	c.SetToken(b.RootToken)
	c.ClearNamespace()
	return c
}
