#!/usr/bin/env bash
# Creates the Python peers for the side-by-side bench (benches/side_by_side.py), one venv each,
# under benches/.cache/peers-venv/ (ignored by git):
#   mlserver/  MLServer 1.7.1 + onnxruntime   (runtime: benches/peers/mlserver_runtime.py)
#   kserve/    KServe 0.21.0  + onnxruntime   (server:  benches/peers/kserve_server.py)
#   pytriton/  nvidia-pytriton 0.6.0 (embeds Triton Inference Server 2.51.0) + onnxruntime
#              (server: benches/peers/pytriton_server.py; Triton's Python backend calls ORT)
# One venv per peer: their web-framework pins (fastapi, uvicorn, pydantic, protobuf) differ.
# Idempotent: a venv whose requirements are unchanged is left alone. A peer whose install fails
# is reported on stderr and skipped (exit status 0 as long as one peer installed); the bench
# records the missing peer in its results. Prints one line per peer on stdout: NAME PYTHON|-
# Arguments name the peers to set up (default: all three); the upstream tests need only
# mlserver and kserve.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
base="$root/benches/.cache/peers-venv"
mkdir -p "$base"
python="${PYTHON:-python3}"
ORT="onnxruntime==1.31.1"

declare -A REQS=(
  # uvloop 0.22+ raises in asyncio.get_event_loop() without a running loop, which MLServer
  # 1.7.1's inference worker processes call at start: the model never loads ("not ready").
  [mlserver]="mlserver==1.7.1 uvloop<0.22 $ORT numpy"
  [kserve]="kserve==0.21.0 $ORT numpy"
  [pytriton]="nvidia-pytriton==0.6.0 $ORT numpy"
)
ok=0
peers=("$@")
[ ${#peers[@]} -gt 0 ] || peers=(mlserver kserve pytriton)
for peer in "${peers[@]}"; do
  if [ -z "${REQS[$peer]+set}" ]; then
    echo "[peers] unknown peer '$peer' (expected mlserver, kserve or pytriton)" >&2; echo "$peer -"; continue
  fi
  venv="$base/$peer"
  want="${REQS[$peer]}"
  stamp="$venv/.requirements"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$peer $venv/bin/python"; ok=1; continue
  fi
  echo "[peers] installing $peer: $want" >&2
  rm -rf "$venv"
  # shellcheck disable=SC2086
  if "$python" -m venv "$venv" >&2 \
     && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 \
     && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want >&2; then
    echo "$want" > "$stamp"
    echo "$peer $venv/bin/python"; ok=1
  else
    echo "[peers] WARNING: installing $peer failed; the bench will skip it" >&2
    rm -rf "$venv"
    echo "$peer -"
  fi
done
[ "$ok" = 1 ]
