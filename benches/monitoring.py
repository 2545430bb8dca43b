#!/usr/bin/env python3
"""What drift profiling and slices cost (`make bench-monitoring`): the tiny model served twice by
the same release build, side by side.

    python3 benches/monitoring.py [--rounds 5] [--seconds 3] [--bin PATH]

- `off`: `mlp` v1 with its manifest, lineage on: the gateway as it serves without monitoring.
- `on`:  the same model with a training-data profile in its manifest (so every request's inputs
  are measured for drift and out-of-range values) and `[model.slices]` (every request's
  `x-market` header counted, its top-5 slice figures recorded).

wrk sends the same JSON body to both, each request tagged with one of 50 markets (five carry
75 % of traffic), at c=1 and c=8; the two servers alternate within every round (order swapped
each round); medians over rounds. The issue's target: at most a few percent of throughput.
Writes benches/results/monitoring.md.
"""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "monitoring"

LUA = """-- wrk: the mlp body, each request tagged with one of 50 markets (m0..m4: 75 %).
local data = {}
for i = 0, 63 do data[#data + 1] = string.format("%.6f", i / 64) end
local body = '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":['
  .. table.concat(data, ",") .. ']}]}'
local n = 0
request = function()
  n = n + 1
  local market
  if n % 4 ~= 3 then market = "m" .. (n % 5) else market = "rare" .. (n % 45) end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["x-market"] = market}, body)
end
"""


def profiled_manifest(binary, env):
    """mlp_v1's manifest plus the profile of 5000 rows of training-like inputs (uniform on [0, 1),
    as the bench's requests are)."""
    npy = WORK / "train.npy"
    subprocess.run([str(c.venv_python()), "-c",
                    f"import numpy as np; np.save({str(npy)!r}, np.random.default_rng(1).random((5000, 64), dtype=np.float32))"],
                   check=True)
    profile = subprocess.run([str(binary), "models", "profile", "--data", str(npy)], capture_output=True, text=True,
                             env=env, check=True).stdout
    manifest = WORK / "mlp_v1_profiled.toml"
    manifest.write_text((c.FIXTURES / "manifests" / "mlp_v1.toml").read_text() + "\n" + profile)
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"))
    args = ap.parse_args()
    binary, binary_desc, _, env = c.start_bench("monitoring", args.bin, WORK)
    lua = WORK / "markets.lua"
    lua.write_text(LUA)

    servers = {}
    for name in ("off", "on"):
        store = WORK / f"store-{name}"
        manifest = c.FIXTURES / "manifests" / "mlp_v1.toml" if name == "off" else profiled_manifest(binary, env)
        subprocess.run([str(binary), "models", "register", "--store", str(store), "--model", "mlp", "--file",
                        str(c.FIXTURES / "models" / "mlp_v1.onnx"), "--manifest", str(manifest)],
                       check=True, env=env, capture_output=True)
        extra = '\n[model.slices]\nheader = "x-market"\ntop_k = 5\n' if name == "on" else ""
        config = WORK / f"{name}.toml"
        config.write_text(c.config_head("monitoring.py", store, lineage=True)
                          + '\n[[model]]\nname = "mlp"\nversions = [1]\n' + extra)
        servers[name] = c.Server(binary, name, config, WORK, env)
        servers[name].check_infer("mlp")

    points = (1, 8)
    results = {(n, name): [] for n in points for name in servers}
    started = c.machine()
    for r in range(args.rounds):
        for n in points:
            for name in (("off", "on") if r % 2 == 0 else ("on", "off")):
                got = c.run_wrk(f"{servers[name].public}/v2/models/mlp/infer", n, args.seconds, lua=lua,
                                threads=1 if n == 1 else 2)
                results[(n, name)].append((got["rps"], got["p50_us"], got["p99_us"]))
                c.log(f"round {r + 1} c={n} {name}: {got['rps']:.0f}/s, p50 {got['p50_us']:.0f} us")
    on_metrics = servers["on"].metrics_text()
    alive = all(s.alive() for s in servers.values())
    for s in servers.values():
        s.stop()
    if not alive:
        c.die("a server died during the run")
    slices = sorted({line.split('slice="')[1].split('"')[0] for line in on_metrics.splitlines()
                     if line.startswith("switchyard_slice_requests_total{")})
    drift = sum(1 for line in on_metrics.splitlines() if line.startswith("switchyard_drift_psi{"))
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in results.items()}

    lines = [
        "# What drift profiling and slices cost (benches/monitoring.py)",
        "",
        f"- binary: {binary_desc}",
        "- `off`: the tiny `mlp` fixture, lineage on; `on`: the same with a training-data profile in"
        " its manifest (drift and out-of-range measured per request) and `[model.slices]` (top 5 of"
        " 50 markets)",
        f"- wrk, JSON body, a market header per request; {args.seconds} s per point; {args.rounds} rounds,"
        " the two servers alternating (order swapped every round); medians",
        f"- machine: {started['nproc']} cores, {started['cpu']}, {started['mem']}; load average at start "
        f"{started['load_start']}; repository at {started['commit'][:10]}; wrk and both servers share the cores",
        f"- the `on` server exported slice series {', '.join(slices)} and {drift} drift series",
        "",
        "| c | server | requests/s | p50 µs | p99 µs |",
        "|---:|---|---:|---:|---:|",
    ]
    for n in points:
        for name in ("off", "on"):
            rps, p50, p99 = med[(n, name)]
            lines.append(f"| {n} | {name} | {rps:.0f} | {p50:.0f} | {p99:.0f} |")
    lines += [""]
    for n in points:
        ratio = med[(n, "on")][0] / med[(n, "off")][0]
        lines.append(f"- c={n}: throughput on / off {ratio:.3f} ({(1 - ratio) * 100:+.1f} % cost)")
    lines.append("")
    text = "\n".join(lines)
    c.write_atomic(c.RESULTS / "monitoring.md", text)
    print(text)


if __name__ == "__main__":
    main()
