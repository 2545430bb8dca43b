#!/usr/bin/env python3
"""Switchyard against the least a correct server does (`make bench-minimal`): what its features
cost per request, the performance issue's reference.

    python3 benches/minimal.py [--rounds 5] [--seconds 4] [--bin PATH]

- `minimal` (benches/rust/minimal): hyper + serde_json + ONNX Runtime run inline, for the tiny
  `mlp` fixture; sessions built like Switchyard's (level 3, one intra-op thread, one per worker).
- `switchyard`: the same model as champion with a challenger at 20 % and a sticky header, lineage
  on, and its /metrics scraped every 5 s during the run, as in production.

wrk sends the same JSON body to both (with an `x-user` header that varies per request, for the
sticky routing), at c=1 and c=8; the two alternate within every round (order swapped each
round); medians of the per-round ratios (the machine drifts between rounds). CPU per request is
each server's own /proc utime + stime over the requests it answered. Targets (the issue):
throughput at c=8 ≥ 0.9 × minimal's, p50 at c=1 ≤ 1.2 ×, CPU per request ≤ minimal's + 10 µs.
Writes benches/results/minimal.md.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "minimal"

LUA = """-- wrk: the mlp body, an x-user header that varies per request (sticky routing).
local data = {}
for i = 0, 63 do data[#data + 1] = string.format("%.6f", i / 64) end
local body = '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":['
  .. table.concat(data, ",") .. ']}]}'
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["x-user"] = "u" .. (n % 1000)}, body)
end
"""


def build_minimal():
    c.log("building benches/rust minimal (cargo build --release)")
    out = subprocess.run(["cargo", "build", "--release", "-q", "-p", "minimal"], cwd=c.BENCHES / "rust",
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        c.die("cannot build benches/rust/minimal")
    return c.BENCHES / "rust" / "target" / "release" / "minimal"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"))
    args = ap.parse_args()
    binary, binary_desc, ort, env = c.start_bench("minimal", args.bin, WORK)
    minimal_bin = build_minimal()
    lua = WORK / "sticky.lua"
    lua.write_text(LUA)

    store = c.register(binary, env, WORK / "store", [("mlp", "mlp_v1", 1), ("mlp", "mlp_v2", 2)])
    config = WORK / "switchyard.toml"
    config.write_text(c.config_head("minimal.py", store, lineage=True)
                      + '\n[[model]]\nname = "mlp"\n[model.routing]\nchampion = 1\nchallengers = { 2 = 20 }\n'
                      'sticky_header = "x-user"\n')
    sy = c.Server(binary, "switchyard", config, WORK, env)
    sy.check_infer("mlp")
    out = open(WORK / "minimal.stdout", "w")
    proc = subprocess.Popen([str(minimal_bin), "--model", str(c.FIXTURES / "models" / "mlp_v1.onnx"), "--name", "mlp",
                             "--onnxruntime", ort], stdout=out, stderr=subprocess.STDOUT)
    c.RUNNING.add(proc)
    deadline = time.monotonic() + 30
    while not (m := re.search(r"minimal listening (\S+)", (WORK / "minimal.stdout").read_text())):
        if proc.poll() is not None or time.monotonic() > deadline:
            c.die(f"minimal did not start:\n{(WORK / 'minimal.stdout').read_text()}")
        time.sleep(0.05)
    minimal_url = m.group(1)

    # Production-like: Prometheus scrapes the gateway every 5 s throughout.
    scraping = threading.Event()

    def scrape():
        while not scraping.wait(5):
            try:
                urllib.request.urlopen(f"{sy.admin}/metrics", timeout=5).read()
            except OSError:
                pass

    threading.Thread(target=scrape, daemon=True).start()
    servers = {"minimal": (minimal_url, proc.pid), "switchyard": (sy.public, sy.pid)}
    points = (1, 8)
    results = {(n, s): [] for n in points for s in servers}
    started = c.machine()
    for r in range(args.rounds):
        for n in points:
            for name in (("minimal", "switchyard") if r % 2 == 0 else ("switchyard", "minimal")):
                url, pid = servers[name]
                before = c.process_cpu_seconds(pid)
                got = c.run_wrk(f"{url}/v2/models/mlp/infer", n, args.seconds, lua=lua, threads=1 if n == 1 else 2)
                cpu_us = (c.process_cpu_seconds(pid) - before) / got["requests"] * 1e6
                results[(n, name)].append((got["rps"], got["p50_us"], got["p99_us"], cpu_us))
                c.log(f"round {r + 1} c={n} {name}: {got['rps']:.0f}/s, p50 {got['p50_us']:.0f} us, "
                      f"p99 {got['p99_us']:.0f} us, {cpu_us:.1f} us CPU/request")
    scraping.set()
    alive = sy.alive() and proc.poll() is None
    sy.stop()
    proc.terminate()
    proc.wait(timeout=10)
    if not alive:
        c.die("a server died during the run")

    def paired(n, i, op):
        return statistics.median(op(a[i], b[i]) for a, b in zip(results[(n, "switchyard")], results[(n, "minimal")]))

    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(4)) for k, v in results.items()}
    lines = [
        "# Switchyard against a minimal server (benches/minimal.py)",
        "",
        f"- binary: {binary_desc}",
        "- `minimal`: benches/rust/minimal (hyper + serde_json + ONNX Runtime inline, the tiny `mlp` fixture);"
        " `switchyard`: champion + challenger at 20 % with a sticky header, lineage on, /metrics scraped every 5 s",
        f"- wrk, JSON body, a varying `x-user` header; {args.seconds} s per point; {args.rounds} rounds alternating"
        " (order swapped every round); medians, ratios as medians of the per-round ratios",
        f"- machine: {started['nproc']} cores, {started['cpu']}, {started['mem']}; load average at start "
        f"{started['load_start']}; repository at {started['commit'][:10]}; wrk and the servers share the cores",
        "",
        "| c | server | requests/s | p50 µs | p99 µs | CPU µs/request |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for n in points:
        for name in servers:
            rps, p50, p99, cpu = med[(n, name)]
            lines.append(f"| {n} | {name} | {rps:.0f} | {p50:.0f} | {p99:.0f} | {cpu:.1f} |")
    tput8 = paired(8, 0, lambda a, b: a / b)
    p50_1 = paired(1, 1, lambda a, b: a / b)
    cpu_1 = paired(1, 3, lambda a, b: a - b)
    cpu_8 = paired(8, 3, lambda a, b: a - b)
    verdict = lambda ok: "met" if ok else "not met"  # noqa: E731
    lines += [
        "",
        f"- throughput at c=8, switchyard / minimal: {tput8:.2f} (target ≥ 0.9: {verdict(tput8 >= 0.9)})",
        f"- p50 at c=1, switchyard / minimal: {p50_1:.2f} (target ≤ 1.2: {verdict(p50_1 <= 1.2)})",
        f"- CPU per request, switchyard − minimal: {cpu_1:+.1f} µs at c=1, {cpu_8:+.1f} µs at c=8"
        f" (target ≤ +10 µs: {verdict(max(cpu_1, cpu_8) <= 10)})",
        "",
    ]
    text = "\n".join(lines)
    c.write_atomic(c.RESULTS / "minimal.md", text)
    print(text)


if __name__ == "__main__":
    main()
