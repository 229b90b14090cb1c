package app

import (
	"context"
	"testing"
)

// start runs Run with o and returns, once it serves, the bound addresses, a channel that receives what
// Run returns, and a function that stops it (the caller waits on done).
func start(t *testing.T, o *Options) (proxyAddr, metricsAddr string, done <-chan error, stop context.CancelFunc) {
	t.Helper()
	addrs := make(chan [2]string, 1)
	o.Ready = func(p, m string) { addrs <- [2]string{p, m} }
	o.Complete()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- Run(ctx, o) }()
	select {
	case a := <-addrs:
		return a[0], a[1], result, cancel
	case err := <-result:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	return "", "", nil, nil
}

// serve runs Run with o until the test ends and returns the bound proxy and metrics addresses.
func serve(t *testing.T, o *Options) (proxyAddr, metricsAddr string) {
	t.Helper()
	proxyAddr, metricsAddr, done, stop := start(t, o)
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return proxyAddr, metricsAddr
}
