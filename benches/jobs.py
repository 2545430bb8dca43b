#!/usr/bin/env python3
"""What a prediction job run by a serving gateway costs its online traffic (`make bench-jobs`):
one gateway serving the tiny model to a steady open-loop load, alternating points with and
without a job (`POST /admin/jobs`, a 200,000-row file through the CPU-heavy `slow` fixture)
running beside.

    python3 benches/jobs.py [--rounds 5] [--seconds 4] [--rate 500] [--bin PATH]

The load is open-loop (requests sent on schedule whatever the server does, latency counted from
the scheduled time: no coordinated omission), `--rate` requests/s. A job runs as a
`switchyard predict` child at nice 19; after each "job" point the bench stops it (SIGKILL: it is
resumable) so every "job" point has one running from its start. Medians over rounds of p50, p99
and the job's rows/s. The issue's target: online p99 within noise. Writes benches/results/jobs.md.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "jobs"
ROWS = 200_000


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def job_pids(output):
    """The `switchyard predict` processes writing `output` (the `nice` wrapper execs into it)."""
    out = subprocess.run(["pgrep", "-f", f"predict .*--output {output}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"))
    args = ap.parse_args()
    binary, binary_desc, _, env = c.start_bench("jobs", args.bin, WORK, wrk=False)
    data = WORK / "batch.npy"
    subprocess.run([str(c.venv_python()), "-c",
                    f"import numpy as np; np.save({str(data)!r}, np.random.default_rng(3).random(({ROWS}, 64), dtype=np.float32))"],
                   check=True)
    # The job runs the `slow` fixture (milliseconds of matrix products a call, whatever the batch):
    # it keeps a core busy for the whole point, the hard case for the online load beside it.
    store = c.register(binary, env, WORK / "store", [("mlp", "mlp_v1", 1), ("ranker", "slow", 1)])
    config = WORK / "jobs.toml"
    config.write_text(c.config_head("jobs.py", store, lineage=True) + '\n[[model]]\nname = "mlp"\nversions = [1]\n')
    server = c.Server(binary, "jobs", config, WORK, env)
    server.check_infer("mlp")

    results = {"idle": [], "job": []}
    rows_per_s = []
    ended_early = 0
    started = c.machine()
    for r in range(args.rounds):
        for mode in (("idle", "job") if r % 2 == 0 else ("job", "idle")):
            output = WORK / f"out-{r}.npy"
            if mode == "job":
                job = post(f"{server.admin}/admin/jobs",
                           {"model": "ranker:1", "input": str(data), "output": str(output), "batch": 100})["job"]
                before = get(f"{server.admin}/admin/jobs/{job}")["rows_done"]
                t0 = time.monotonic()
            res = c.open_loop(server.host, server.port, "/v2/models/mlp/infer", c.BODY, args.rate, args.seconds)
            if mode == "job":
                shown = get(f"{server.admin}/admin/jobs/{job}")
                rows_per_s.append((shown["rows_done"] - before) / (time.monotonic() - t0))
                if shown["status"] != "running":
                    ended_early += 1
                    c.log(f"WARNING: the job ended within the point ({shown['status']}); use a larger file")
                for pid in job_pids(output):
                    os.kill(pid, signal.SIGKILL)
            ok = [lat for lat, s in zip(res.latency, res.status) if s == 200]
            if len(ok) < len(res.status):
                c.log(f"WARNING: {len(res.status) - len(ok)} requests failed during the {mode} point")
            p50, p99 = c.percentile(ok, 50) * 1e6, c.percentile(ok, 99) * 1e6
            results[mode].append((p50, p99))
            c.log(f"round {r + 1} {mode}: p50 {p50:.0f} us, p99 {p99:.0f} us")
    alive = server.alive()
    server.stop()
    if not alive:
        c.die("the server died during the run")
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(2)) for k, v in results.items()}
    lines = [
        "# Online latency while the gateway runs a prediction job (benches/jobs.py)",
        "",
        f"- binary: {binary_desc}",
        f"- one gateway, the tiny `mlp` fixture, lineage on; open-loop load at {args.rate} requests/s,"
        f" {args.seconds} s per point; `job`: `POST /admin/jobs` running the `slow` fixture (a core's worth"
        f" of matrix products a call) over {ROWS:,} rows (batch 100) beside it (a `switchyard predict`"
        " child at nice 19)",
        f"- {args.rounds} rounds, idle and job alternating (order swapped every round); medians",
        f"- machine: {started['nproc']} cores, {started['cpu']}, {started['mem']}; load average at start "
        f"{started['load_start']}; repository at {started['commit'][:10]}; load generator, gateway and job share the cores",
        "",
        "| point | p50 µs | p99 µs |",
        "|---|---:|---:|",
    ]
    for mode in ("idle", "job"):
        lines.append(f"| {mode} | {med[mode][0]:.0f} | {med[mode][1]:.0f} |")
    lines += [
        "",
        f"- the job meanwhile: {statistics.median(rows_per_s):.0f} rows/s (median); it ran through"
        f" {args.rounds - ended_early} of {args.rounds} job points (ended early in the others)",
        f"- p99 job / idle: {med['job'][1] / med['idle'][1]:.2f}",
        "",
    ]
    text = "\n".join(lines)
    c.write_atomic(c.RESULTS / "jobs.md", text)
    print(text)


if __name__ == "__main__":
    main()
