#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: release builds of the gateway and the bench, the OpenClaw
# baseline from npm (a no-op when ~/.cache/clawplane-openclaw is complete; without it the
# OpenClaw rows say why they were not measured), then every comparison scenario and every
# performance target in one run (about 3-5 minutes on 2 cores). Extra arguments go to the
# bench, e.g. `scripts/bench.sh --skip-openclaw` or `--secs 5`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p clawplane-server -p clawplane-bench
if ! scripts/install-openclaw.sh >/dev/null; then
  echo "warning: OpenClaw could not be installed; its rows will say so" >&2
fi
exec cargo run -q -p clawplane-bench --release -- \
  --report BENCHMARKS.md --secs 3 --warmup-secs 1 --quiet-wait-secs 5 --attempts 1 "$@"
