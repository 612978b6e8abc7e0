#!/usr/bin/env bash
# Regenerates every SDK's code from proto/ (checked in, so users need no protoc).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/buf ] || npm ci --no-audit --no-fund --silent
sdk/typescript/gen.sh
sdk/python/gen.sh
sdk/go/gen.sh
