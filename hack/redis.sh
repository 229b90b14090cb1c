#!/usr/bin/env bash
# hack/redis.sh fetches Debian's redis-server and redis-cli without installing them: it downloads the .debs
# with `apt-get download`, unpacks them with `dpkg-deb -x` into a cache outside the repo keyed by version,
# and prints the directory holding redis-server.
#
#   CLAUDE_GUARD_REDIS_DIR=$(hack/redis.sh)
#
# Layout: $CG_CACHE/redis/<version>/bin/{redis-server,redis-cli} and .../lib/ with the shared libraries the
# binaries need that a fresh Debian does not have (libjemalloc, liblzf). The binaries need
# LD_LIBRARY_PATH=<dir>/../lib; internal/test/testservers sets it for the servers it starts.
#
# Nothing is installed system-wide, so the script needs no root (apt-get update does, and runs only when a
# download fails). To move to another release: change REDIS_DEB_VERSION to what
# `apt-cache policy redis-server` offers (docs/test-servers.md).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Debian 12's redis-server (the Debian version without its epoch).
REDIS_DEB_VERSION="7.0.15-1~deb12u7"
REDIS_EPOCH="5"

fetch() {
  [ -x "$OUT/bin/redis-server" ] && [ -x "$OUT/bin/redis-cli" ] && return
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "apt-get and dpkg-deb are required (Debian or Ubuntu)"
  log "fetching redis-server $REDIS_DEB_VERSION from Debian (not installed system-wide)"
  local t0=$SECONDS tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    apt_download "redis-server=$REDIS_EPOCH:$REDIS_DEB_VERSION" "redis-tools=$REDIS_EPOCH:$REDIS_DEB_VERSION" ||
      die "could not download redis $REDIS_DEB_VERSION; set REDIS_DEB_VERSION in hack/redis.sh to what 'apt-cache policy redis-server' offers"
    # The libraries redis-tools depends on that this machine lacks (on a fresh Debian: libjemalloc2 and
    # liblzf1). Installed ones are used from the system.
    local libs
    mapfile -t libs < <(uninstalled_deps redis-tools)
    if [ ${#libs[@]} -gt 0 ]; then apt_download "${libs[@]}" || die "could not download ${libs[*]}"; fi
    for d in *.deb; do dpkg-deb -x "$d" root; done
  ) || { rm -rf "$tmp"; exit 1; }
  rm -rf "$OUT/bin" "$OUT/lib"
  mkdir -p "$OUT/bin" "$OUT/lib"
  cp "$tmp/root/usr/bin/redis-server" "$tmp/root/usr/bin/redis-cli" "$OUT/bin/"
  find "$tmp/root" -path '*/lib/*' -name '*.so*' -exec cp -P {} "$OUT/lib/" \;
  local missing
  missing=$(missing_libs "$OUT/lib" "$OUT/bin/redis-server"; missing_libs "$OUT/lib" "$OUT/bin/redis-cli")
  rm -rf "$tmp"
  if [ -n "$missing" ]; then
    rm -rf "$OUT/bin"
    die "redis-server still lacks shared libraries: $(echo "$missing" | sort -u | tr '\n' ' ')(add their packages to hack/redis.sh)"
  fi
  LD_LIBRARY_PATH="$OUT/lib" "$OUT/bin/redis-server" --version >&2
  log "redis ready in $((SECONDS - t0))s: $OUT/bin"
}

OUT="$CG_CACHE/redis/$REDIS_DEB_VERSION"
with_lock "$OUT" fetch
echo "$OUT/bin"
