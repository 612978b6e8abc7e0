#!/usr/bin/env bash
# Installs the real OpenClaw CLI (and the Node 24 it needs) from the npm registry into a cache
# folder outside the repo, reused when already present. Prints the path of the `openclaw`
# launcher script on its last line. Used by the conformance test `ws::real_openclaw_cli` and
# by scripts/test.sh; override the folder with CLAWPLANE_OPENCLAW_CACHE.
set -euo pipefail

NODE_SPEC="node@24"
OPENCLAW_VERSION="2026.9.6"
CACHE="${CLAWPLANE_OPENCLAW_CACHE:-${HOME:-/tmp}/.cache/clawplane-openclaw}"
mkdir -p "$CACHE"

NODE_BIN="$CACHE/node/node_modules/node/bin/node"
OPENCLAW_MJS="$CACHE/cli/node_modules/openclaw/openclaw.mjs"

node_ok() {
  [ -x "$NODE_BIN" ] && "$NODE_BIN" -e '
    const [a, b] = process.versions.node.split(".").map(Number);
    process.exit(a === 24 && b >= 16 || a >= 26 ? 0 : 1)' 2>/dev/null
}

if ! node_ok; then
  echo "installing $NODE_SPEC into $CACHE/node" >&2
  rm -rf "$CACHE/node"
  mkdir -p "$CACHE/node"
  npm install --prefix "$CACHE/node" --no-audit --no-fund --no-save --loglevel=error "$NODE_SPEC" >&2
  node_ok || { echo "node from npm is missing or too old: $("$NODE_BIN" --version 2>&1)" >&2; exit 1; }
fi

installed_version() {
  "$NODE_BIN" -e 'try { console.log(require(process.argv[1]).version) } catch { }' \
    "$CACHE/cli/node_modules/openclaw/package.json" 2>/dev/null || true
}

if [ "$(installed_version)" != "$OPENCLAW_VERSION" ]; then
  echo "installing openclaw@$OPENCLAW_VERSION into $CACHE/cli" >&2
  rm -rf "$CACHE/cli"
  mkdir -p "$CACHE/cli"
  # Run npm (and the package's install scripts) under the Node 24 just installed.
  PATH="$(dirname "$NODE_BIN"):$PATH" npm install --prefix "$CACHE/cli" --no-audit --no-fund \
    --no-save --loglevel=error "openclaw@$OPENCLAW_VERSION" >&2
fi

[ -f "$OPENCLAW_MJS" ] || { echo "openclaw.mjs not found after install" >&2; exit 1; }
echo "node=$NODE_BIN"
echo "openclaw=$OPENCLAW_MJS"
