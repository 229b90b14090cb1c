// Command fakeupstream serves internal/test/fakeupstream, the faithful fake of the Anthropic API, over plain
// HTTP, so that it can run as a pod in the test cluster (this machine has no internet). It accepts the
// keys named in FAKE_API_KEYS (comma-separated, each "key" or "label=key") and logs one text line per
// request (method=, path=, status= and key=, the label of the key used), never a header, a key or a body:
// a test tells which tenant's key reached it by the label.
//
//	FAKE_API_KEYS=shop=sk-ant-shop,other=sk-ant-other fakeupstream -listen :8080
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/claude-guard/claude-guard/internal/test/fakeupstream"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve the fake API on")
	flag.Parse()
	labels := map[string]string{}
	var keys []string
	for _, e := range strings.Split(os.Getenv("FAKE_API_KEYS"), ",") {
		label, key, ok := strings.Cut(e, "=")
		if !ok {
			label, key = "", e
		}
		labels[key] = label
		keys = append(keys, key)
	}
	fake := fakeupstream.New(keys...)
	srv := &http.Server{Addr: *listen, Handler: logged(fake, labels), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	slog.Info("serving the fake Anthropic API", "listen", *listen, "keys", len(keys))
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		slog.Error("serve failed", "err", err)
		os.Exit(1)
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func logged(h http.Handler, labels map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		label, ok := labels[r.Header.Get("x-api-key")]
		if !ok {
			label = "unknown"
		}
		slog.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "key", label)
	})
}
