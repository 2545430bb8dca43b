#!/usr/bin/env python3
"""gRPC beside REST on one gateway (`make bench-protocols`): what each front end costs.

    python3 benches/protocols.py [--rounds 3] [--seconds 3] [--bin PATH]

One server (release build, lineage on, REST and gRPC listeners) serves two models:
- `mlp`, the tiny fixture (input [1,64] FP32), at c=1 and c=8;
- `sum`, a ReduceSum over a 1 MiB FP32 input ([1,262144]; generated here), at c=2.

Each point is measured three ways: gRPC with raw tensors and REST with binary tensors, both by
perf_analyzer (the same C++ load generator, `-i grpc` / `-i http`, which sends raw / binary
tensors), and REST with JSON tensors by wrk (a lighter client than perf_analyzer, which cannot
send JSON: this favours JSON, so the raw/JSON ratio is if anything understated). Rounds alternate
the order of the three; medians per point. Targets (the gRPC issue): gRPC raw at least as fast as
REST binary on the tiny model, at least 3x REST JSON's throughput on the 1 MiB input. Writes
benches/results/protocols.md.
"""

import argparse
import csv
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "protocols"
BIG = 262144  # FP32 elements: 1 MiB


def perf_analyzer():
    for p in (c.ROOT / ".cache/perf_analyzer/bin/perf_analyzer-run", c.ROOT / ".cache/perf_analyzer/bin/perf_analyzer"):
        if p.is_file() and os.access(p, os.X_OK):
            return p
    out = subprocess.run([str(c.ROOT / "scripts" / "setup-perf-analyzer.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        c.die("scripts/setup-perf-analyzer.sh failed")
    return perf_analyzer()


def sum_model(path):
    """ReduceSum over a [1, 262144] FP32 input, written with the onnx package of the test venv."""
    code = f"""
import onnx, numpy as np
from onnx import helper, TensorProto, numpy_helper
x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, {BIG}])
y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1])
axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
node = helper.make_node("ReduceSum", ["input", "axes"], ["output"], keepdims=1)
g = helper.make_graph([node], "sum", [x], [y], [axes])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="switchyard-benches")
m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, {str(path)!r})
"""
    subprocess.run([str(c.venv_python()), "-c", code], check=True)


def json_lua(body_path):
    """A wrk script whose body is the file's contents."""
    lua = WORK / f"{body_path.stem}.lua"
    lua.write_text(
        f'local f = assert(io.open("{body_path}", "rb"))\nwrk.body = f:read("*a")\nf:close()\n'
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    return lua


def run_pa(pa, model, url, protocol, concurrency, seconds):
    """One perf_analyzer point; returns (inferences/s, p50 µs, p99 µs)."""
    out_csv = WORK / f"pa-{model}-{protocol}-{concurrency}.csv"
    out_csv.unlink(missing_ok=True)
    args = [str(pa), "-m", model, "-u", url, "-i", protocol, "--concurrency-range", str(concurrency),
            "--measurement-interval", str(seconds * 1000), "--stability-percentage", "100",
            "--max-trials", "6", "-f", str(out_csv)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=seconds * 10 + 60, cwd=WORK)
    if proc.returncode != 0 or not out_csv.is_file():
        c.die(f"perf_analyzer {' '.join(args[1:])} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    with out_csv.open(newline="") as f:
        row = next(r for r in csv.DictReader(f) if r.get("Concurrency", "").strip())
    return float(row["Inferences/Second"]), float(row["p50 latency"]), float(row["p99 latency"])


def run_json(url, lua, concurrency, seconds):
    r = c.run_wrk(url, concurrency, seconds, lua=lua, threads=1 if concurrency == 1 else 2)
    return r["rps"], r["p50_us"], r["p99_us"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"))
    args = ap.parse_args()
    binary, binary_desc, ort, env = c.start_bench("protocols", args.bin, WORK)
    pa = perf_analyzer()

    store = WORK / "store"
    c.register(binary, env, store, [("mlp", "mlp_v1", 1)])
    sum_path = WORK / "sum.onnx"
    sum_model(sum_path)
    subprocess.run([str(binary), "models", "register", "--store", str(store), "--model", "sum",
                    "--file", str(sum_path), "--json"], check=True, env=env, capture_output=True)
    config = WORK / "protocols.toml"
    head = c.config_head("protocols.py", store, lineage=True)
    head = head.replace('admin_listen = "127.0.0.1:0"\n',
                        'admin_listen = "127.0.0.1:0"\ngrpc_listen = "127.0.0.1:0"\nmax_body_bytes = 8388608\n')
    config.write_text(head + '\n[[model]]\nname = "mlp"\nversions = [1]\n\n[[model]]\nname = "sum"\nversions = [1]\n')
    server = c.Server(binary, "protocols", config, WORK, env)
    server.check_infer("mlp")
    grpc = _grpc_address(server)
    http = server.public.removeprefix("http://")

    tiny_lua = c.LUA_POST
    rng = random.Random(7)
    big_body = WORK / "big.json"
    big_body.write_text('{"inputs":[{"name":"input","shape":[1,%d],"datatype":"FP32","data":[%s]}]}' % (
        BIG, ",".join(f"{rng.uniform(-1, 1):.4f}" for _ in range(BIG))))
    big_lua = json_lua(big_body)
    status, _, body = server.request("POST", f"{server.public}/v2/models/sum/infer", big_body.read_bytes(), timeout=30)
    if status != 200:
        c.die(f"the 1 MiB JSON request was refused: {status} {body[:300]!r}")

    points = [("mlp", 1), ("mlp", 8), ("sum", 2)]
    modes = ["grpc raw", "REST binary", "REST JSON"]
    results = {(m, n, mode): [] for m, n in points for mode in modes}
    started = c.machine()
    for r in range(args.rounds):
        order = modes[r % 3:] + modes[:r % 3]
        for model, n in points:
            for mode in order:
                if mode == "grpc raw":
                    got = run_pa(pa, model, grpc, "grpc", n, args.seconds)
                elif mode == "REST binary":
                    got = run_pa(pa, model, http, "http", n, args.seconds)
                else:
                    got = run_json(f"{server.public}/v2/models/{model}/infer",
                                   tiny_lua if model == "mlp" else big_lua, n, args.seconds)
                results[(model, n, mode)].append(got)
                c.log(f"round {r + 1} {model} c={n} {mode}: {got[0]:.0f}/s, p50 {got[1]:.0f} us, p99 {got[2]:.0f} us")
    alive = server.alive()
    server.stop()
    if not alive:
        c.die("the server died during the run")
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in results.items()}

    lines = [
        "# gRPC beside REST (benches/protocols.py)",
        "",
        f"- binary: {binary_desc}",
        f"- one server, lineage on; {args.rounds} rounds, the three modes' order rotating each round;"
        f" perf_analyzer {args.seconds} s windows (3 that agree within 100 %, at most 6), wrk {args.seconds} s; medians",
        f"- machine: {started['nproc']} cores, {started['cpu']}, {started['mem']}; load average at start "
        f"{started['load_start']}; repository at {started['commit'][:10]}; client and server share the cores",
        "",
        "| model | c | mode | inferences/s | p50 µs | p99 µs |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for model, n in points:
        for mode in modes:
            rps, p50, p99 = med[(model, n, mode)]
            lines.append(f"| {model} | {n} | {mode} | {rps:.0f} | {p50:.0f} | {p99:.0f} |")
    tiny = [med[("mlp", n, "grpc raw")][0] / med[("mlp", n, "REST binary")][0] for n in (1, 8)]
    big = med[("sum", 2, "grpc raw")][0] / med[("sum", 2, "REST JSON")][0]
    lines += [
        "",
        f"- tiny model, gRPC raw / REST binary throughput: {tiny[0]:.2f} at c=1, {tiny[1]:.2f} at c=8"
        f" (target ≥ 1: {'met' if min(tiny) >= 1 else 'not met'})",
        f"- 1 MiB input, gRPC raw / REST JSON throughput: {big:.2f} (target ≥ 3: {'met' if big >= 3 else 'not met'})",
        "",
    ]
    text = "\n".join(lines)
    c.write_atomic(c.RESULTS / "protocols.md", text)
    print(text)


def _grpc_address(server):
    import re

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = re.search(r"grpc=http://(\S+)", server.stdout_path.read_text())
        if m:
            return m.group(1)
        time.sleep(0.05)
    c.die("the server's listening line names no gRPC address")


if __name__ == "__main__":
    main()
