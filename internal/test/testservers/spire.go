package testservers

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// SPIREOptions configure StartSPIRE.
type SPIREOptions struct {
	// TrustDomain defaults to "test.local".
	TrustDomain string
	// JWTIssuer, when set, becomes the `iss` claim of JWT-SVIDs (SPIRE sets none otherwise).
	JWTIssuer string
}

// SPIRE is a running SPIRE server with one agent attested by a join token. The agent serves the Workload
// API on a unix socket and attests callers with the unix workload attestor, so entries select test
// processes by `unix:uid:<uid>`. Both sync every second, so a new entry's SVID is served within ~2s.
type SPIRE struct {
	// TrustDomain is the server's trust domain.
	TrustDomain spiffeid.TrustDomain
	// SocketAddr is the agent's Workload API address (unix:///...), for SPIFFE_ENDPOINT_SOCKET or
	// workloadapi.WithAddr.
	SocketAddr string
	// NodeID is the agent's alias and the parent ID of every entry Register creates.
	NodeID spiffeid.ID

	binDir     string
	dir        string
	serverSock string
	agentSock  string
	agentConf  string
	server     *process
	agent      *process
}

// StartSPIRE starts a SPIRE server on a free loopback port and an agent joined to it, and waits until
// both are healthy. They are stopped when the test ends.
func StartSPIRE(t testing.TB, o SPIREOptions) *SPIRE {
	t.Helper()
	binDir, err := SPIREDir()
	if err != nil {
		t.Fatal(err)
	}
	if o.TrustDomain == "" {
		o.TrustDomain = "test.local"
	}
	td, err := spiffeid.TrustDomainFromString(o.TrustDomain)
	if err != nil {
		t.Fatalf("invalid trust domain: %v", err)
	}
	// Socket paths must stay under 108 bytes: /tmp/cg-spire-NNNNNNNNN/agent.sock is ~40.
	dir := runDir(t, "cg-spire-")
	s := &SPIRE{
		TrustDomain: td,
		NodeID:      spiffeid.RequireFromPath(td, "/node1"),
		binDir:      binDir,
		dir:         dir,
		serverSock:  filepath.Join(dir, "server.sock"),
		agentSock:   filepath.Join(dir, "agent.sock"),
		agentConf:   filepath.Join(dir, "agent.conf"),
	}
	s.SocketAddr = "unix://" + s.agentSock
	port := freePort(t)
	s.startServer(t, port, o.JWTIssuer)
	s.writeAgentConfig(t, port, s.joinToken(t))
	s.StartAgent(t)
	return s
}

// serverConfig is the SPIRE server's configuration: sqlite, join-token node attestation, in-memory keys,
// entries visible to agents within a second.
const serverConfig = `server {
  bind_address = "127.0.0.1"
  bind_port = "%d"
  socket_path = %q
  trust_domain = %q
  data_dir = %q
  log_level = "WARN"
  %s
  experimental {
    cache_reload_interval = "1s"
  }
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = %q
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
}
`

// agentConfig is the agent's: join token, keys on disk, unix workload attestation, a 1 s sync.
const agentConfig = `agent {
  data_dir = %q
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "%d"
  socket_path = %q
  trust_domain = %q
  insecure_bootstrap = true
  join_token = %q
  experimental {
    sync_interval = "1s"
  }
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "disk" {
    plugin_data {
      directory = %q
    }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`

// startServer starts spire-server on port and waits until it is healthy.
func (s *SPIRE) startServer(t testing.TB, port int, jwtIssuer string) {
	t.Helper()
	issuer := ""
	if jwtIssuer != "" {
		issuer = fmt.Sprintf("jwt_issuer = %q", jwtIssuer)
	}
	conf := filepath.Join(s.dir, "server.conf")
	writeFile(t, conf, fmt.Sprintf(serverConfig, port, s.serverSock, s.TrustDomain.Name(), filepath.Join(s.dir, "server"), issuer,
		filepath.Join(s.dir, "server", "datastore.sqlite3")))
	var err error
	s.server, err = startProcess("spire-server", filepath.Join(s.dir, "server.log"), baseEnv(s.dir),
		filepath.Join(s.binDir, "spire-server"), "run", "-config", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.server.stop)
	s.server.logOnFailure(t)
	if err := waitFor(s.server, 60*time.Second, "spire-server to be healthy", func() error {
		_, err := s.serverCLI("healthcheck", "-shallow")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// joinToken generates the single-use token that attests the agent as NodeID.
func (s *SPIRE) joinToken(t testing.TB) string {
	t.Helper()
	out, err := s.serverCLI("token", "generate", "-spiffeID", s.NodeID.String(), "-ttl", "3600")
	if err != nil {
		t.Fatalf("failed to generate a join token: %v", err)
	}
	token, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "Token: ")
	if !ok {
		t.Fatalf("unexpected output of spire-server token generate: %q", out)
	}
	return token
}

// writeAgentConfig writes the agent's configuration. The agent keeps its key on disk so that
// StopAgent/StartAgent resumes with the same identity: the join token is single-use and cannot attest
// the agent twice.
func (s *SPIRE) writeAgentConfig(t testing.TB, port int, token string) {
	t.Helper()
	writeFile(t, s.agentConf, fmt.Sprintf(agentConfig, filepath.Join(s.dir, "agent"), port, s.agentSock, s.TrustDomain.Name(), token,
		filepath.Join(s.dir, "agent")))
}

// StartAgent starts the agent (again, after StopAgent) and waits until its Workload API is healthy.
func (s *SPIRE) StartAgent(t testing.TB) {
	t.Helper()
	if s.agent != nil {
		if ok, _ := s.agent.exited(); !ok {
			t.Fatal("spire-agent is already running")
		}
	}
	agent, err := startProcess("spire-agent", filepath.Join(s.dir, "agent.log"), baseEnv(s.dir),
		filepath.Join(s.binDir, "spire-agent"), "run", "-config", s.agentConf)
	if err != nil {
		t.Fatal(err)
	}
	s.agent = agent
	t.Cleanup(agent.stop)
	agent.logOnFailure(t)
	if err := waitFor(agent, 60*time.Second, "spire-agent to be healthy", func() error {
		out, err := exec.Command(filepath.Join(s.binDir, "spire-agent"), "healthcheck", "-socketPath", s.agentSock).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// StopAgent stops the agent; workloads lose the Workload API until StartAgent.
func (s *SPIRE) StopAgent() { s.agent.stop() }

// Workload describes a registration entry for a test process.
type Workload struct {
	// ID is the SPIFFE ID to issue; it must be in the server's trust domain.
	ID spiffeid.ID
	// UID selects the processes that get the SVID (selector unix:uid:<UID>); os.Getuid() for the test
	// process itself.
	UID int
	// DNSNames go into the X.509-SVID. Give one when the SVID is a client certificate for Vault's cert
	// auth: SPIRE sets the Subject CN only from the first DNS name, and cert auth needs a CN.
	DNSNames []string
	// X509SVIDTTL overrides the server default (1h); short TTLs exercise rotation.
	X509SVIDTTL time.Duration
}

// Register creates a registration entry for w under the agent and returns its entry ID. The agent
// learns of it within about two seconds; use FetchX509SVID or FetchJWTSVID to wait for it.
func (s *SPIRE) Register(t testing.TB, w Workload) string {
	t.Helper()
	args := []string{"entry", "create", "-output", "json",
		"-parentID", s.NodeID.String(), "-spiffeID", w.ID.String(), "-selector", "unix:uid:" + strconv.Itoa(w.UID)}
	for _, n := range w.DNSNames {
		args = append(args, "-dns", n)
	}
	if w.X509SVIDTTL > 0 {
		args = append(args, "-x509SVIDTTL", strconv.Itoa(int(w.X509SVIDTTL/time.Second)))
	}
	out, err := s.serverCLI(args...)
	if err != nil {
		t.Fatalf("failed to register %s: %v", w.ID, err)
	}
	var resp struct {
		Results []struct {
			Status struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"status"`
			Entry struct {
				ID string `json:"id"`
			} `json:"entry"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.Results) != 1 {
		t.Fatalf("unexpected output of spire-server entry create (%v): %s", err, out)
	}
	if r := resp.Results[0]; r.Status.Code != 0 {
		t.Fatalf("failed to register %s: %s", w.ID, r.Status.Message)
	}
	return resp.Results[0].Entry.ID
}

// FetchX509SVID waits (up to 30s) until the agent serves the test process an X.509-SVID for id and
// returns it. Until the entry reaches the agent the Workload API answers "no identity issued".
func (s *SPIRE) FetchX509SVID(t testing.TB, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	var found *x509svid.SVID
	s.poll(t, "an X.509-SVID for "+id.String(), func(ctx context.Context) error {
		svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(s.SocketAddr))
		if err != nil {
			return err
		}
		for _, svid := range svids {
			if svid.ID == id {
				found = svid
				return nil
			}
		}
		return fmt.Errorf("%w: the agent serves %d other SVIDs", errNotReady, len(svids))
	})
	return found
}

// FetchJWTSVID waits (up to 30s) until the agent issues the test process a JWT-SVID for id with the
// given audience and returns it.
func (s *SPIRE) FetchJWTSVID(t testing.TB, id spiffeid.ID, audience string) *jwtsvid.SVID {
	t.Helper()
	var found *jwtsvid.SVID
	s.poll(t, "a JWT-SVID for "+id.String(), func(ctx context.Context) error {
		svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience, Subject: id}, workloadapi.WithAddr(s.SocketAddr))
		if err != nil {
			return err
		}
		found = svid
		return nil
	})
	return found
}

// X509BundlePEM returns the trust domain's X.509 authorities as PEM, which is what Vault's cert auth
// takes as the trusted `certificate` of a role.
func (s *SPIRE) X509BundlePEM(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	bundles, err := workloadapi.FetchX509Bundles(ctx, workloadapi.WithAddr(s.SocketAddr))
	if err != nil {
		t.Fatalf("failed to fetch the X.509 bundles: %v", err)
	}
	b, err := bundles.GetX509BundleForTrustDomain(s.TrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, c := range b.X509Authorities() {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.String()
}

// JWTAuthoritiesPEM returns the trust domain's JWT signing keys as PKIX public-key PEMs, which is what
// Vault's jwt auth takes as `jwt_validation_pubkeys`.
func (s *SPIRE) JWTAuthoritiesPEM(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	bundles, err := workloadapi.FetchJWTBundles(ctx, workloadapi.WithAddr(s.SocketAddr))
	if err != nil {
		t.Fatalf("failed to fetch the JWT bundles: %v", err)
	}
	b, err := bundles.GetJWTBundleForTrustDomain(s.TrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range b.JWTAuthorities() {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatalf("failed to encode a JWT authority: %v", err)
		}
		keys = append(keys, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	}
	if len(keys) == 0 {
		t.Fatal("the JWT bundle has no keys")
	}
	return keys
}

// ServerCLI runs a spire-server subcommand (e.g. "entry", "show") against the server's admin socket and
// returns its output.
func (s *SPIRE) ServerCLI(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := s.serverCLI(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *SPIRE) serverCLI(args ...string) ([]byte, error) {
	if len(args) < 1 {
		return nil, errors.New("no subcommand")
	}
	// -socketPath belongs to the leaf subcommand: "entry create -socketPath ...".
	n := 1
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		n = 2
	}
	full := append(append(append([]string{}, args[:n]...), "-socketPath", s.serverSock), args[n:]...)
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(s.binDir, "spire-server"), full...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("spire-server %s: %w: %s %s", strings.Join(args, " "), err, bytes.TrimSpace(out), bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// poll calls fetch with a short deadline every 100ms until it succeeds or 30s pass.
func (s *SPIRE) poll(t testing.TB, what string, fetch func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := fetch(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || t.Context().Err() != nil {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
