#!/usr/bin/env bash
# Sets up everything the tests need (ONNX Runtime, the Python venv, perf_analyzer) and runs the
# whole suite: format and lint checks, Rust unit and end-to-end tests, Python client tests, and
# FUZZ_SECONDS (default 60) of fuzzing per fuzz target.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# Assigned, then exported: `export X="$(…)"` would hide a failing setup script from set -e.
ORT_DYLIB_PATH="$(scripts/fetch-onnxruntime.sh)"
export ORT_DYLIB_PATH
python="$(scripts/setup-python.sh)"
if [ -x scripts/setup-perf-analyzer.sh ]; then
  PERF_ANALYZER="$(scripts/setup-perf-analyzer.sh)"
  export PERF_ANALYZER
fi

# CI builds once from a fresh clone: incremental caches (as large as the build itself) would
# only be written, never read. Say how much disk there is, since a build that runs out of it
# fails in the linker with a bus error rather than a clear message.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
fi
df -h "$root" | sed -n '2s/^/disk: /p'

# The upstream servers of the remote-version tests (MLServer, KServe) install from PyPI into
# ignored venvs while the Rust suites build and run (about 45 s cold, nothing when cached).
peers_out="$(mktemp)"
benches/peers/setup.sh mlserver kserve >"$peers_out" 2>"$peers_out.err" &
peers_pid=$!

echo "== format and lint"
cargo fmt --all -- --check
# The fuzz targets are a workspace of their own (fuzz/), which `cargo fmt --all` does not reach.
rustfmt --check --edition 2024 fuzz/fuzz_targets/*.rs
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== Rust unit and end-to-end tests"
cargo build --locked -p gateway
cargo test --locked --workspace

if ! wait "$peers_pid"; then
  cat "$peers_out.err" >&2
  echo "cannot install the upstream peers (MLServer, KServe) from PyPI" >&2
  exit 1
fi
while read -r peer peer_python; do
  if [ "$peer_python" != - ]; then export "SWITCHYARD_PEER_${peer^^}=$peer_python"; fi
done <"$peers_out"
rm -f "$peers_out" "$peers_out.err"

echo "== Python client tests (tritonclient, perf_analyzer, curl, upstream peers)"
export SWITCHYARD_BIN="$root/target/debug/switchyard"
"$python" -m pytest tests/python -q -n 2

# Last: the one step that is not deterministic, so a new fuzz finding never hides a regression
# the suites above would report, and it comes with everything else green. Builds fuzz/ (its own
# workspace and target dir; a few minutes from cold, seconds when warm), then runs every target
# side by side with the committed seeds and regression inputs; fails on a crash, timeout or OOM.
echo "== Fuzzing: v2 request decoder, config parser and JSON tensor data reader, ${FUZZ_SECONDS:-60} s each"
scripts/fuzz.sh
