#!/usr/bin/env bash
# hack/claude-code.sh installs Claude Code (npm @anthropic-ai/claude-code) into a cache outside the repo,
# keyed by version, and prints the directory holding its `claude` binary. test/claudecode runs it against
# the sidecar and the fake upstream.
#
#   CLAUDE_GUARD_CLAUDE_CODE_DIR=$(hack/claude-code.sh)
#
# Claude Code 2.x ships as a native binary in a per-platform npm package
# (@anthropic-ai/claude-code-linux-x64); the wrapper package's postinstall only copies it into place. The
# install runs with --ignore-scripts and the binary is taken from the platform package, so neither Node.js
# 22 (the wrapper's engines field) nor npm's install-script policy matters. To move to another release,
# change CLAUDE_CODE_VERSION to one `npm view @anthropic-ai/claude-code versions` lists.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLAUDE_CODE_VERSION="2.1.332"

platform() {
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) die "no Claude Code build for $(uname -m)" ;;
  esac
  if ldd --version 2>&1 | grep -qi musl; then arch="$arch-musl"; fi
  printf 'linux-%s' "$arch"
}

OUT="$CG_CACHE/claude-code/$CLAUDE_CODE_VERSION"

install_claude_code() {
  [ -x "$OUT/bin/claude" ] && return
  command -v npm >/dev/null || die "npm is required to install Claude Code (Debian: apt-get install npm)"
  local plat t0=$SECONDS tmp
  plat=$(platform)
  log "installing Claude Code $CLAUDE_CODE_VERSION ($plat) from the npm registry"
  tmp=$(mktemp -d "$CG_CACHE/claude-code/.tmp.XXXXXX")
  npm install --prefix "$tmp" --ignore-scripts --no-audit --no-fund --no-save --loglevel=error \
    "@anthropic-ai/claude-code-$plat@$CLAUDE_CODE_VERSION" >&2 || { rm -rf "$tmp"; die "npm install of Claude Code failed"; }
  mkdir -p "$tmp/bin"
  mv "$tmp/node_modules/@anthropic-ai/claude-code-$plat/claude" "$tmp/bin/claude"
  rm -rf "$tmp/node_modules" "$tmp/package.json" "$tmp/package-lock.json"
  chmod +x "$tmp/bin/claude"
  "$tmp/bin/claude" --version >&2 || { rm -rf "$tmp"; die "the installed claude binary does not run"; }
  rm -rf "$OUT" && mv "$tmp" "$OUT"
  log "Claude Code installed in $((SECONDS - t0))s"
}

mkdir -p "$CG_CACHE/claude-code"
with_lock "$CG_CACHE/claude-code" install_claude_code
echo "$OUT/bin"
