#!/usr/bin/env bash
# Regenerates the Python protobuf/gRPC modules of the SDK from proto/clawplane/v1/*.proto.
#
#   sdk/python/gen.sh           regenerate in place
#   sdk/python/gen.sh --check   generate into a temp dir and fail if the checked-in code differs
#
# Output (checked in): sdk/python/src/clawplane/v1/{*_pb2.py,*_pb2.pyi,*_pb2_grpc.py}.
# protoc writes `from clawplane.v1 import run_pb2`-style imports; the SDK's import package
# is `clawplane`, so generating straight into src/ makes those imports resolve inside the
# installed package without any sys.path or import rewriting.
#
# The generator (grpcio-tools, which bundles protoc and the well-known types) is pinned in
# gen-requirements.txt and installed into sdk/python/.venv (created when missing; set
# CLAWPLANE_GEN_PYTHON to use another interpreter that already has it). Same input, same
# output: running it twice leaves no diff.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
proto_dir="$root/proto"
check=0
if [[ "${1:-}" == "--check" ]]; then
  check=1
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--check]" >&2
  exit 2
fi
out="$here/src"
if [[ $check -eq 1 ]]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
pkg="$out/clawplane/v1"

py="${CLAWPLANE_GEN_PYTHON:-}"
if [[ -z "$py" ]]; then
  venv="$here/.venv"
  if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
  fi
  py="$venv/bin/python"
  want="$(grep -E '^grpcio-tools==' "$here/gen-requirements.txt" | cut -d= -f3)"
  have="$("$py" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null || true)"
  if [[ "$have" != "$want" ]]; then
    "$py" -m pip install --quiet --disable-pip-version-check -r "$here/gen-requirements.txt"
  fi
fi

wkt="$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"

# Start from nothing so removed .proto files leave no stale modules behind.
rm -f "$pkg"/*_pb2.py "$pkg"/*_pb2.pyi "$pkg"/*_pb2_grpc.py
mkdir -p "$pkg"

cd "$proto_dir"
# Sorted, relative paths: the generated descriptors and imports do not depend on where the
# repository is checked out or on the shell's glob order.
mapfile -t protos < <(LC_ALL=C ls clawplane/v1/*.proto | LC_ALL=C sort)
"$py" -m grpc_tools.protoc \
  -I. -I"$wkt" \
  --python_out="$out" \
  --pyi_out="$out" \
  --grpc_python_out="$out" \
  "${protos[@]}"

cat > "$pkg/__init__.py" <<'PY'
"""Generated clawplane.v1 protobuf messages and gRPC stubs (sdk/python/gen.sh; do not edit).

Modules: agent_pb2, channel_pb2, chat_pb2, device_pb2, event_pb2, gateway_pb2, model_pb2,
run_pb2, session_pb2, webhook_pb2, each with a ``*_pb2_grpc`` companion holding the
service stubs.
"""
PY

if [[ $check -eq 1 ]]; then
  if ! diff -r "$pkg" "$here/src/clawplane/v1" -x __pycache__ >/dev/null; then
    diff -r "$pkg" "$here/src/clawplane/v1" -x __pycache__ | head -40 >&2 || true
    echo "gen.sh --check: sdk/python/src/clawplane/v1 is stale; run sdk/python/gen.sh" >&2
    exit 1
  fi
  echo "gen.sh --check: generated code is up to date"
else
  echo "generated $(ls "$pkg" | wc -l) files into ${pkg#"$root"/}"
fi
