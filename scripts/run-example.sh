#!/usr/bin/env bash
# Sets up and runs the gateway on the shipped example models: fetches ONNX Runtime, builds the
# release binary, registers the fixture models with their provenance into .cache/example-store
# (idempotent: the same bytes keep their version), and serves configs/example.toml.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export ORT_DYLIB_PATH="$(scripts/fetch-onnxruntime.sh)"
cargo build --release --locked -p gateway
bin="$root/target/release/switchyard"
store="$root/.cache/example-store"
fixtures="$root/tests/fixtures"
for v in 1 2 3; do
  "$bin" models register --store "$store" --model mlp --file "$fixtures/models/mlp_v$v.onnx" \
    --manifest "$fixtures/manifests/mlp_v$v.toml" --actor make-run
done
# The alias the example routes by (champion = 2 in configs/example.toml): paths may name it too.
"$bin" models alias --store "$store" mlp:2 champion --actor make-run >/dev/null
for m in mixed dtypes slow faulty; do
  "$bin" models register --store "$store" --model "$m" --file "$fixtures/models/$m.onnx" \
    --manifest "$fixtures/manifests/$m.toml" --actor make-run
done
"$bin" config check configs/example.toml
echo "try: curl -s localhost:8000/v2/models/mlp; Ctrl-C stops the gateway" >&2
exec "$bin" serve --config configs/example.toml
