//go:build tools

// Package tools pins the Prometheus server this module builds: hack/prometheus.sh runs
// `go build github.com/prometheus/prometheus/cmd/prometheus` here, so go.mod and go.sum are the
// exact dependency set of that release.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
