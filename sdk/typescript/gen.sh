#!/usr/bin/env bash
# Regenerates src/gen/ from ../../proto (the clawplane contract) and proto/ (vendored
# google/rpc). Idempotent: output depends only on the .proto files and the pinned tool
# versions (@bufbuild/buf in the repo root, @bufbuild/protoc-gen-es here).
#
#   sdk/typescript/gen.sh           regenerate in place
#   sdk/typescript/gen.sh --check   generate into a temp dir and fail if src/gen differs
set -euo pipefail
check=0
if [[ "${1:-}" == "--check" ]]; then
  check=1
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--check]" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
if [ ! -x node_modules/.bin/protoc-gen-es ]; then
  npm ci --no-audit --no-fund
fi
buf="$root/node_modules/.bin/buf"
if [ ! -x "$buf" ]; then
  (cd "$root" && npm ci --no-audit --no-fund)
fi
export PATH="$here/node_modules/.bin:$PATH"
if [[ $check -eq 1 ]]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
  "$buf" generate -o "$out"   # the template's out (src/gen) under $out
  if ! diff -r "$out/src/gen" src/gen >/dev/null; then
    diff -r "$out/src/gen" src/gen | head -40 >&2 || true
    echo "gen.sh --check: sdk/typescript/src/gen is stale; run sdk/typescript/gen.sh" >&2
    exit 1
  fi
  echo "gen.sh --check: generated code is up to date"
  exit 0
fi
"$buf" generate
echo "generated: $(find src/gen -name '*.ts' | wc -l) files in src/gen"
