// Package ports finds free TCP ports for the servers tests start.
package ports

import (
	"fmt"
	"net"
)

// Free returns a TCP port that is free on host now (another process may take it before the caller binds
// it; servers that can listen on port 0 should).
func Free(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("failed to find a free port on %s: %w", host, err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// TB is the part of testing.TB that MustFree needs.
type TB interface {
	Helper()
	Fatal(...any)
}

// MustFree is Free on 127.0.0.1 that fails t instead of returning an error.
func MustFree(t TB) int {
	t.Helper()
	p, err := Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
