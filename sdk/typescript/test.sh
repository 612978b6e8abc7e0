#!/usr/bin/env bash
# Checks that the generated code matches proto/, builds the SDK and runs its tests against a
# real clawplane gateway.
#   CLAWPLANE_BIN  gateway binary (default: ../../target/debug/clawplane, built with
#                  `cargo build -p clawplane-server` when missing and cargo is available)
# Exits non-zero on any failure; a skipped or missing test counts as a failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
./gen.sh --check   # src/gen matches proto/ (pinned buf + protoc-gen-es)
npm run build

bin="${CLAWPLANE_BIN:-$root/target/debug/clawplane}"
if [ ! -x "$bin" ]; then
  if [ -z "${CLAWPLANE_BIN:-}" ] && command -v cargo >/dev/null 2>&1; then
    echo "test.sh: $bin missing; building it (cargo build -p clawplane-server)" >&2
    (cd "$root" && cargo build -p clawplane-server)
  fi
  if [ ! -x "$bin" ]; then
    echo "test.sh: gateway binary not found at $bin (set CLAWPLANE_BIN)" >&2
    exit 1
  fi
fi
export CLAWPLANE_BIN="$bin"

shopt -s nullglob
files=(test/*.test.mjs)
if [ ${#files[@]} -eq 0 ]; then
  echo "test.sh: no test files in test/" >&2
  exit 1
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
node --test --test-concurrency=2 --test-reporter=tap "${files[@]}" | tee "$log" || status=$?
if [ "$status" -ne 0 ]; then
  echo "test.sh: tests failed (exit $status)" >&2
  exit "$status"
fi
# Never pass silently: there must be tests, and none skipped, todo, cancelled or failed.
tests="$(sed -n 's/^# tests \([0-9]*\)$/\1/p' "$log" | tail -1)"
for k in fail skipped todo cancelled; do
  n="$(sed -n "s/^# $k \\([0-9]*\\)\$/\\1/p" "$log" | tail -1)"
  if [ "${n:-missing}" != "0" ]; then
    echo "test.sh: '# $k' is ${n:-missing}, expected 0" >&2
    exit 1
  fi
done
if [ -z "$tests" ] || [ "$tests" -eq 0 ]; then
  echo "test.sh: no tests ran" >&2
  exit 1
fi
echo "test.sh: $tests tests passed"
