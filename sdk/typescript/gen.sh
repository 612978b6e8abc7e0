#!/usr/bin/env bash
# Regenerates src/gen/ from ../../proto (the clawplane contract) and proto/ (vendored
# google/rpc). Idempotent: output depends only on the .proto files and the pinned tool
# versions (@bufbuild/buf in the repo root, @bufbuild/protoc-gen-es here).
set -euo pipefail
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
"$buf" generate
echo "generated: $(find src/gen -name '*.ts' | wc -l) files in src/gen"
