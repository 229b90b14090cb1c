//go:build integration

package vault

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// tcpGate forwards TCP connections to a real server and can cut them off and let them through again
// on the same address: a network outage between the sidecar and Vault, with the real Vault behind it.
type tcpGate struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func newGate(t *testing.T, target string) *tcpGate {
	t.Helper()
	g := &tcpGate{target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	g.serve(ln)
	t.Cleanup(g.down)
	return g
}

func (g *tcpGate) serve(ln net.Listener) {
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", g.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			g.mu.Lock()
			g.conns = append(g.conns, c, u)
			g.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
			go func() { _, _ = io.Copy(c, u); _ = c.Close() }()
		}
	}()
}

// down refuses new connections and cuts the open ones.
func (g *tcpGate) down() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		_ = g.ln.Close()
		g.ln = nil
	}
	for _, c := range g.conns {
		_ = c.Close()
	}
	g.conns = nil
}

// up listens again on the same address.
func (g *tcpGate) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		t.Fatal(err)
	}
	g.serve(ln)
}

// TestVaultOutageAndRecovery cuts the network between the sidecar's Vault source and a real OpenBao: the
// last key keeps serving, then the source fails closed after MaxStaleness, and it serves again by itself
// once Vault is reachable.
func TestVaultOutageAndRecovery(t *testing.T) {
	w := setup(t)
	gate := newGate(t, strings.TrimPrefix(w.bao.Addr, "https://"))
	addr := w.bao.Addr
	w.bao.Addr = "https://" + gate.addr // the source talks to Vault through the gate
	v := w.source(t, "cert", "team-a", "tenants/team-a/anthropic", w.svidA, 3*time.Second)
	w.bao.Addr = addr
	eventuallyKey(t, v, keyA, "")

	gate.down()
	if got, err := v.Get(context.Background()); err != nil || got != keyA {
		t.Fatalf("right after the outage began: key %q, error %v", redact(got), err)
	}
	eventuallyKey(t, v, "", "beyond the maximum staleness")

	outageEnded := time.Now()
	gate.up(t)
	eventuallyKey(t, v, keyA, "")
	t.Logf("served again %s after Vault became reachable", time.Since(outageEnded).Round(time.Millisecond))
}
