#!/usr/bin/env bash
# Checks the generated code, vets and tests the Go SDK against the real gateway. Non-zero
# on any failure; the tests fail (never skip) when the gateway binary is missing.
#
# The gateway binary is $CLAWPLANE_BIN, else <repo>/target/debug/clawplane, which is built
# with `cargo build -p clawplane-server` when missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

if [[ -z "${CLAWPLANE_BIN:-}" ]]; then
  export CLAWPLANE_BIN="$root/target/debug/clawplane"
  if [[ ! -x "$CLAWPLANE_BIN" ]]; then
    echo "test.sh: $CLAWPLANE_BIN missing; building it (cargo build -p clawplane-server)" >&2
    (cd "$root" && cargo build -p clawplane-server)
  fi
fi
if [[ ! -x "$CLAWPLANE_BIN" ]]; then
  echo "test.sh: gateway binary $CLAWPLANE_BIN not found or not executable" >&2
  exit 1
fi

# gen/ matches proto/ (pinned buf + protoc-gen-go / protoc-gen-go-grpc, cached in .bin).
"$here/gen.sh" --check

unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
  echo "test.sh: gofmt needed:" >&2
  echo "$unformatted" >&2
  exit 1
fi

go vet ./...
go test -count=1 -timeout 180s ./...
