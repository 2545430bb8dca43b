#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library from the PyPI wheel (no downloader from ort's build
# script) into .cache/onnxruntime/. Idempotent: does nothing when the library is already there.
# Prints the library's path on stdout.
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.31.1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/onnxruntime/$ORT_VERSION"
lib="$dest/libonnxruntime.so"
if [ ! -s "$lib" ]; then
  mkdir -p "$dest"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
    "onnxruntime==$ORT_VERSION" -d "$tmp" >&2
  wheel="$(ls "$tmp"/onnxruntime-*.whl)"
  python3 - "$wheel" "$ORT_VERSION" "$tmp/lib" <<'PY'
import sys, zipfile
wheel, version, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    name = f"onnxruntime/capi/libonnxruntime.so.{version}"
    with z.open(name) as src, open(out, "wb") as dst:
        dst.write(src.read())
PY
  # Atomic: a half-extracted library is never left at the final path.
  mv "$tmp/lib" "$lib.partial" && mv "$lib.partial" "$lib"
fi
echo "$lib"
