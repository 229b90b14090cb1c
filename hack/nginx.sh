#!/usr/bin/env bash
# hack/nginx.sh fetches Debian's nginx without installing it, for `make bench`, which runs it as a plain
# reverse proxy beside the sidecar (test/bench): it downloads the .deb with `apt-get download`, unpacks
# it with `dpkg-deb -x` into a cache outside the repo keyed by version, and prints the path of the nginx
# binary.
#
#   CLAUDE_GUARD_NGINX=$(hack/nginx.sh)
#
# Layout: $CG_CACHE/nginx/<version>/bin/nginx and .../lib/ with the shared libraries it needs that this
# machine lacks (run it with LD_LIBRARY_PATH=<dir>/../lib; test/bench does). Nothing is installed
# system-wide. To move to another release: change NGINX_DEB_VERSION to what `apt-cache policy nginx`
# offers.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Debian 12's nginx, the version in bookworm/main (a bookworm-security version disappears when it is
# superseded; the point release stays).
NGINX_DEB_VERSION="1.22.1-9+deb12u9"

fetch() {
  [ -x "$OUT/bin/nginx" ] && return
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "apt-get and dpkg-deb are required (Debian or Ubuntu)"
  log "fetching nginx $NGINX_DEB_VERSION from Debian (not installed system-wide)"
  local t0=$SECONDS tmp
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    apt_download "nginx=$NGINX_DEB_VERSION" ||
      die "could not download nginx $NGINX_DEB_VERSION; set NGINX_DEB_VERSION in hack/nginx.sh to what 'apt-cache policy nginx' offers"
    local libs
    mapfile -t libs < <(uninstalled_deps nginx)
    if [ ${#libs[@]} -gt 0 ]; then apt_download "${libs[@]}" || die "could not download ${libs[*]}"; fi
    for d in *.deb; do dpkg-deb -x "$d" root; done
  ) || { rm -rf "$tmp"; exit 1; }
  rm -rf "$OUT/bin" "$OUT/lib"
  mkdir -p "$OUT/bin" "$OUT/lib"
  cp "$tmp/root/usr/sbin/nginx" "$OUT/bin/"
  find "$tmp/root" -path '*/lib/*' -name '*.so*' -exec cp -P {} "$OUT/lib/" \;
  local missing
  missing=$(missing_libs "$OUT/lib" "$OUT/bin/nginx")
  rm -rf "$tmp"
  if [ -n "$missing" ]; then
    rm -rf "$OUT/bin"
    die "nginx still lacks shared libraries: $(echo "$missing" | sort -u | tr '\n' ' ')(add their packages to hack/nginx.sh)"
  fi
  LD_LIBRARY_PATH="$OUT/lib" "$OUT/bin/nginx" -v
  log "nginx ready in $((SECONDS - t0))s: $OUT/bin/nginx"
}

OUT="$CG_CACHE/nginx/$NGINX_DEB_VERSION"
with_lock "$OUT" fetch
echo "$OUT/bin/nginx"
