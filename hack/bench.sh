#!/usr/bin/env bash
# hack/bench.sh runs every benchmark and prints each figure next to its target (`make bench`).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
hack/bench-sidecar.sh
