package testservers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-guard/claude-guard/internal/redislib"
)

var redisDir = sync.OnceValues(func() (string, error) { return ToolDir("CLAUDE_GUARD_REDIS_DIR", "redis.sh") })

// RedisDir returns the directory holding redis-server and redis-cli ($CLAUDE_GUARD_REDIS_DIR or
// hack/redis.sh). Their shared libraries are in ../lib (see RedisEnv).
func RedisDir() (string, error) { return redisDir() }

// RedisOptions configure StartRedis.
type RedisOptions struct {
	// Password enables AUTH (requirepass) for the default user.
	Password string
	// TLS serves TLS only (rediss://), with a certificate for 127.0.0.1 signed by a fresh CA (Redis.RootCAs).
	TLS bool
	// NoFunctions starts the server without claude-guard's function library. By default every Start
	// loads it (as the manager keeps it loaded), so that a limiter works at once; tests of the manager's
	// own loading start without it.
	NoFunctions bool
	// PodListenIP makes the server listen on this address too (same port, no TLS), for pods of a test
	// cluster that reach it over the cluster's bridge (Redis.PodAddr).
	PodListenIP string
}

// Redis is a running redis-server on 127.0.0.1: no persistence (its data is lost when it stops), no
// protected mode (it listens on loopback only), all in one process group stopped by t.Cleanup.
type Redis struct {
	// Addr is 127.0.0.1:PORT; it stays the same across Stop and Start.
	Addr string
	// URL is redis://[:password@]127.0.0.1:PORT/0, or rediss:// with TLS.
	URL string
	// RootCAs trusts the server certificate (TLS only, else nil).
	RootCAs *x509.CertPool
	// PodAddr is PodListenIP:PORT (PodListenIP only).
	PodAddr string

	t    testing.TB
	bin  string
	dir  string
	args []string
	env  []string
	o    RedisOptions

	mu   sync.Mutex
	proc *process
}

// StartRedis starts redis-server on a free loopback port and waits until it answers PING.
func StartRedis(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	binDir, err := RedisDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := runDir(t, "cg-redis-")
	bind := []string{"127.0.0.1"}
	port := strconv.Itoa(freePort(t))
	if o.PodListenIP != "" {
		bind = append(bind, o.PodListenIP)
		port = strconv.Itoa(freePortOn(t, o.PodListenIP))
	}
	r := &Redis{
		Addr: net.JoinHostPort("127.0.0.1", port),
		t:    t, bin: filepath.Join(binDir, "redis-server"), dir: dir, o: o,
		env: append(baseEnv(dir), "LD_LIBRARY_PATH="+filepath.Join(binDir, "..", "lib")),
	}
	if o.PodListenIP != "" {
		r.PodAddr = net.JoinHostPort(o.PodListenIP, port)
	}
	u := url.URL{Scheme: "redis", Host: r.Addr, Path: "/0"}
	r.args = append(append([]string{"--bind"}, bind...),
		// A test server: no RDB snapshots, no AOF, nothing written but the log.
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
	)
	if o.Password != "" {
		r.args = append(r.args, "--requirepass", o.Password)
		u.User = url.UserPassword("", o.Password)
	}
	if !o.TLS {
		r.args = append(r.args, "--port", port)
	} else {
		r.RootCAs = writeRedisCerts(t, dir)
		r.args = append(r.args, "--port", "0", "--tls-port", port,
			"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server-key.pem"),
			"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "no")
		u.Scheme = "rediss"
	}
	r.URL = u.String()
	t.Cleanup(r.Stop)
	r.Start(t)
	return r
}

// Start starts the server again on the same port after Stop (with empty data, and the function library
// unless NoFunctions). StartRedis calls it.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		if ok, _ := r.proc.exited(); !ok {
			t.Fatal("redis-server is already running")
		}
	}
	p, err := startProcess("redis-server", filepath.Join(r.dir, "redis.log"), r.env, r.bin, r.args...)
	if err != nil {
		t.Fatal(err)
	}
	r.proc = p
	p.logOnFailure(t)
	c := r.client()
	defer func() { _ = c.Close() }()
	if err := waitFor(p, 20*time.Second, "redis-server to answer PING", func() error {
		return c.Ping(t.Context()).Err()
	}); err != nil {
		t.Fatal(err)
	}
	if !r.o.NoFunctions {
		if _, err := redislib.Ensure(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
}

// Stop stops the server (its data is lost). It is safe to call more than once and concurrently with
// requests in flight; StartRedis registers it with t.Cleanup.
func (r *Redis) Stop() {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Options returns go-redis options for the server: its URL, and the test CA with TLS.
func (r *Redis) Options() *redis.Options {
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		panic(fmt.Sprintf("testservers: unparsable Redis URL: %v", err)) // built by StartRedis
	}
	if opt.TLSConfig != nil {
		opt.TLSConfig.RootCAs = r.RootCAs
	}
	opt.MaxRetries = -1
	return opt
}

// Client returns a go-redis client for inspecting the server; it is closed when the test ends.
func (r *Redis) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := r.client()
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (r *Redis) client() *redis.Client { return redis.NewClient(r.Options()) }

// writeRedisCerts writes ca.pem, server.pem and server-key.pem (for 127.0.0.1) into dir and returns a
// pool trusting the CA.
func writeRedisCerts(t testing.TB, dir string) *x509.CertPool {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "claude-guard test Redis CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"ca.pem":         {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem":     {Type: "CERTIFICATE", Bytes: leafDER},
		"server-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	// The pair must load as Go would serve it; a broken pair would only show up as a handshake timeout.
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")); err != nil {
		t.Fatal(errors.Join(errors.New("generated Redis certificate does not load"), err))
	}
	return pool
}
