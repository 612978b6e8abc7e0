#!/usr/bin/env bash
# Tests the Python SDK against a real clawplane gateway, then the cross-language test
# (tests/sdk-cross: TypeScript run -> Python wait, Python run -> Go wait and TypeScript wait).
#
#   sdk/python/test.sh [extra pytest args]
#
#   CLAWPLANE_BIN  gateway binary (default: <repo>/target/debug/clawplane, built with
#                  `cargo build -p clawplane-server` when missing and cargo is available)
#
# Uses (and creates) sdk/python/.venv with `pip install -e sdk/python[test]` plus the pinned
# generator, checks that the checked-in generated code matches proto/, prepares the
# TypeScript SDK's examples (npm ci when node_modules is missing, npm run build), and runs
# pytest. Exits non-zero on any failure; a skipped test or no tests at all is a failure too.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$here/.venv"
py="$venv/bin/python"

# --- Python environment ------------------------------------------------------------------
if [[ ! -x "$py" ]]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.clawplane-installed"
want="$(cat "$here/pyproject.toml" "$here/gen-requirements.txt" | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]] || ! "$py" -c 'import clawplane, pytest, cryptography' 2>/dev/null; then
  "$py" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$py" -m pip install --quiet --disable-pip-version-check -e "$here[test]" -r "$here/gen-requirements.txt"
  echo "$want" > "$stamp"
fi

# --- The generated code matches proto/ --------------------------------------------------
CLAWPLANE_GEN_PYTHON="$py" "$here/gen.sh" --check

# --- Type hints -------------------------------------------------------------------------
"$py" -m mypy --strict --config-file "$here/pyproject.toml" --cache-dir "$venv/.mypy_cache" "$here/src/clawplane/__init__.py" \
  "$here/src/clawplane/aio.py" "$here/src/clawplane/sync.py" "$here/src/clawplane/errors.py" "$here/src/clawplane/tls.py" \
  "$here"/examples/*.py

# --- The gateway --------------------------------------------------------------------------
bin="${CLAWPLANE_BIN:-$root/target/debug/clawplane}"
if [[ ! -x "$bin" ]]; then
  if [[ -z "${CLAWPLANE_BIN:-}" ]] && command -v cargo >/dev/null 2>&1; then
    echo "test.sh: $bin missing; building it (cargo build -p clawplane-server)" >&2
    (cd "$root" && cargo build -p clawplane-server)
  fi
  if [[ ! -x "$bin" ]]; then
    echo "test.sh: gateway binary not found at $bin (set CLAWPLANE_BIN)" >&2
    exit 1
  fi
fi
export CLAWPLANE_BIN="$bin"

# --- The other SDKs' examples used by tests/sdk-cross -------------------------------------
# Missing pieces are not fatal here: the cross-language test then fails saying what is missing.
ts="$root/sdk/typescript"
if [[ -f "$ts/package.json" ]] && command -v npm >/dev/null 2>&1; then
  if [[ ! -d "$ts/node_modules" ]]; then
    (cd "$ts" && npm ci --no-audit --no-fund) || echo "test.sh: npm ci in sdk/typescript failed" >&2
  fi
  (cd "$ts" && npm run --silent build) || echo "test.sh: npm run build in sdk/typescript failed" >&2
fi

# --- Tests -----------------------------------------------------------------------------------
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cd "$root"
status=0
"$py" -m pytest -p no:cacheprovider --rootdir "$root" -rfEs "$here/tests" "$root/tests/sdk-cross" "$@" 2>&1 | tee "$log" || status=$?
if [[ $status -ne 0 ]]; then
  echo "test.sh: pytest failed (exit $status)" >&2
  exit "$status"
fi
summary="$(grep -E '[0-9]+ (passed|failed|skipped|errors?|deselected).* in [0-9.]+s' "$log" | tail -1)"
if ! grep -qE '[0-9]+ passed' <<<"$summary"; then
  echo "test.sh: no tests passed ($summary)" >&2
  exit 1
fi
if grep -qE 'skipped|xfail|xpass|deselected' <<<"$summary"; then
  echo "test.sh: tests were skipped or deselected ($summary); that counts as a failure" >&2
  exit 1
fi
echo "test.sh: ok ($summary)"
