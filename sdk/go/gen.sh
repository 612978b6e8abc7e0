#!/usr/bin/env bash
# Regenerates sdk/go/gen/ from proto/ with buf (from the repo root's npm install) and the
# pinned local protoc-gen-go / protoc-gen-go-grpc plugins (installed into sdk/go/.bin).
#
#   sdk/go/gen.sh           regenerate in place
#   sdk/go/gen.sh --check   generate into a temp dir and fail if gen/ differs
set -euo pipefail
check=0
if [[ "${1:-}" == "--check" ]]; then
  check=1
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--check]" >&2
  exit 2
fi

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

buf="$root/node_modules/.bin/buf"
if [[ ! -x "$buf" ]]; then
  echo "gen.sh: $buf missing; installing the pinned buf with 'npm ci' at the repo root" >&2
  (cd "$root" && npm ci)
fi

bin="$here/.bin"
mkdir -p "$bin"
# (Re)install a plugin when missing or not the pinned version (per its --version output:
# "protoc-gen-go v1.36.12", "protoc-gen-go-grpc 1.6.1").
need_install() { # <binary> <version>
  [[ -x "$bin/$1" ]] || return 0
  local have
  have="$("$bin/$1" --version 2>/dev/null || true)"
  [[ "$have" == *" $2" || "$have" == *" ${2#v}" ]] && return 1
  return 0
}
if need_install protoc-gen-go "$PROTOC_GEN_GO_VERSION"; then
  GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if need_install protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"; then
  GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

if [[ $check -eq 1 ]]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
  PATH="$bin:$PATH" "$buf" generate --template buf.gen.yaml -o "$out"   # the template's out (gen) under $out
  if ! diff -r "$out/gen" gen >/dev/null; then
    diff -r "$out/gen" gen | head -40 >&2 || true
    echo "gen.sh --check: sdk/go/gen is stale; run sdk/go/gen.sh" >&2
    exit 1
  fi
  echo "gen.sh --check: generated code is up to date"
  exit 0
fi
PATH="$bin:$PATH" "$buf" generate --template buf.gen.yaml
echo "gen.sh: generated $(find gen -name '*.go' | wc -l) files under sdk/go/gen"
