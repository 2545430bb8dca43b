#!/usr/bin/env python3
"""Lineage and shadow overhead benchmark for the `mlp` fixture (`make bench-lineage`).

Measures, side by side in one run, three server configurations:

  lineage-off         [lineage] enabled = false, no shadow
  lineage-on          [lineage] enabled = true,  no shadow
  lineage-on+shadow   [lineage] enabled = true,  shadows = { 2 = 10 } (10% mirrored to v2)

and reports (a) throughput with lineage ON vs OFF (target: ON/OFF >= 0.95) and (b) client
latency p50/p99 with a 10% shadow vs none (target: p50 within noise, since the shadow runs after
the response is sent), at 8 and 1 connections.

Method: every round starts a fresh server (and a fresh copy of the store) per configuration, in an
order rotated from round to round; each server gets, per concurrency, a warm-up run and then a
measured wrk run. The reported figure is the median over rounds. Every server is checked to answer
200 before it is measured, and every wrk run must report no non-2xx responses and no socket
errors, or the bench stops with an error.

Writes benches/results/lineage.md and prints it. Stdlib only. Options and environment:
  SWITCHYARD_BIN=path     use this binary instead of building target/release/switchyard
  BENCH_DURATION=10       seconds per measured run     BENCH_WARMUP=2   seconds per warm-up run
  BENCH_ROUNDS=3          rounds per configuration      BENCH_CONNECTIONS=8,1
  BENCH_STORE_DIR=dir     where each server's copy of the store goes (default benches/results/tmp/)
"""

import argparse
import datetime
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS, Server, die, ensure_wrk, env_default, fmt_us, histogram_quantile, install_exit_handlers,
    log, loadavg, machine, machine_lines, metric_sum, onnxruntime, parse_prometheus, pick_binary, register,
    rel, run_wrk, server_env, set_tag, sh, write_results,
)

WORK = RESULTS / "tmp" / "lineage"  # ignored by git

CONFIGS = {
    "lineage-off": {"lineage": False, "shadow": False, "label": "lineage OFF, no shadow"},
    "lineage-on": {"lineage": True, "shadow": False, "label": "lineage ON, no shadow"},
    "lineage-on+shadow": {"lineage": True, "shadow": True, "label": "lineage ON, 10% shadow to v2"},
}



# --------------------------------------------------------------------------------------------
# Setup and servers


def register_store(binary, env):
    """The store every server starts from a copy of: mlp versions 1, 2 and 3."""
    return register(binary, env, WORK / "store-template", [("mlp", f"mlp_v{v}", v) for v in (1, 2, 3)])


def config_toml(store, cfg):
    text = f"""[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
worker_threads = 1

[store]
path = "{store}"

[lineage]
enabled = {"true" if cfg["lineage"] else "false"}

[[model]]
name = "mlp"
[model.engine]
instances = 1
[model.routing]
champion = 1
"""
    if cfg["shadow"]:
        text += "shadows = { 2 = 10 }\n"
    return text


def start_server(binary, name, store, cfg, env):
    """A server for `cfg` on its own copy of the store, its config and logs in WORK."""
    config_path = WORK / f"{name}.toml"
    config_path.write_text(config_toml(store, cfg))
    return Server(binary, name, config_path, WORK, env)


class QueueSampler(threading.Thread):
    """Polls the admin /metrics every 2 s during a measured run: the highest lineage queue depth."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.stop_event, self.max_depth = server, threading.Event(), 0.0

    def run(self):
        while not self.stop_event.wait(2.0):
            try:
                depth = metric_sum(self.server.metrics(), "switchyard_lineage_queue_depth")
                self.max_depth = max(self.max_depth, depth)
            except OSError:
                pass

    def finish(self):
        self.stop_event.set()
        self.join()
        return self.max_depth


def thread_cpu(pid):
    """{tid: (thread name, CPU seconds)} for every thread of a process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[task.name] = (comm, (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
    return out


def cpu_by_name(before, after):
    """CPU seconds per thread name between two thread_cpu() samples."""
    by = {}
    for tid, (comm, secs) in after.items():
        by[comm] = by.get(comm, 0.0) + secs - before.get(tid, (comm, 0.0))[1]
    return by


# --------------------------------------------------------------------------------------------
# Report


def median(xs):
    return statistics.median(xs)


def overlap(a, b):
    return min(a) <= max(b) and min(b) <= max(a)


def report(args, mach, binary_desc, ort, results, counters, exits, started, finished):
    conns = args.connections
    med = {
        key: {f: median([r[f] for r in runs]) for f in ("rps", "p50_us", "p99_us", "cpu_us_per_req", "cores")}
        for key, runs in results.items()
    }
    L = []
    w = L.append
    w("# Lineage and shadow overhead: `mlp` fixture")
    w("")
    w("Generated by `make bench-lineage` (`benches/lineage_shadow.py`); see `benches/README.md`.")
    w("")
    L.extend(machine_lines(mach, binary_desc, ort, started, finished, mach["wrk"]))
    w("Each figure is the median of the rounds; the per-round values are at the end.")
    w("")
    w("## Setup")
    w("")
    w("- model `mlp` (input [1,64] FP32, output [1,10]); version 1 is the champion and answers every request; "
      "`[server] worker_threads = 1`, `[model.engine] instances = 1`, every other key at its default "
      "(lineage: capacity 65536, batch_max 1024, on_full = \"block\"; engine: max_batch 1)")
    w("- configurations: **lineage-off** (`[lineage] enabled = false`), **lineage-on** (`enabled = true`), "
      "**lineage-on+shadow** (`enabled = true` and `shadows = { 2 = 10 }`: 10% of requests mirrored to "
      "version 2 after the response is sent; the shadow runs get lineage records too)")
    store_fs = sh("df", "--output=fstype,source", str(args.store_dir)).splitlines()[-1:] or ["?"]
    w(f"- stores (the lineage database) under `{rel(args.store_dir)}` "
      f"({' '.join(store_fs[0].split())})")
    w(f"- {args.rounds} rounds; per round, a fresh server and a fresh copy of the store for each configuration, "
      "in an order rotated each round; per server and concurrency, a "
      f"{args.warmup} s warm-up run then a {args.duration} s measured run "
      f"(wrk `-t2 -c8` / `-t1 -c1`, `--latency`, one fixed request body, `benches/lua/post.lua`)")
    w("- checked: each server answers 200 before it is measured; no wrk run saw a non-2xx response or a socket error")
    w("")
    w(f"## Results (median of {args.rounds} rounds)")
    w("")
    w("| config | concurrency | req/s | p50 | p99 | server CPU per request | server cores busy |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for c in conns:
        for name in CONFIGS:
            m = med[(name, c)]
            w(f"| {name} | {c} | {m['rps']:.0f} | {fmt_us(m['p50_us'])} | {fmt_us(m['p99_us'])} | "
              f"{m['cpu_us_per_req']:.0f} µs | {m['cores']:.2f} |")
    w("")
    w("Server CPU: the gateway process's user + system CPU time over the measured run (from "
      "`/proc/PID/task/*/stat`), per request counted by wrk, and as cores busy. wrk runs on the same cores.")
    w("")
    w("## Ratios")
    w("")
    w("Ratios of the medians. \"Rounds overlap\" means the per-round ranges of the two configurations "
      "overlap, i.e. the difference is within this run's round-to-round noise.")
    w("")
    w("| comparison | concurrency | req/s | p50 | p99 | target | verdict |")
    w("|---|---:|---:|---:|---:|---|---|")
    verdicts = []
    for c in conns:
        on, off = med[("lineage-on", c)], med[("lineage-off", c)]
        ratio = on["rps"] / off["rps"]
        ok = ratio >= 0.95
        ov = overlap([r["rps"] for r in results[("lineage-on", c)]], [r["rps"] for r in results[("lineage-off", c)]])
        verdict = ("met" if ok else "**NOT met**") + ("; rounds overlap" if ov else "; rounds do not overlap")
        verdicts.append((f"lineage ON/OFF req/s at c={c}: {ratio:.3f}", ok))
        w(f"| lineage ON / OFF | {c} | {ratio:.3f} | {on['p50_us'] / off['p50_us']:.3f} | "
          f"{on['p99_us'] / off['p99_us']:.3f} | req/s ≥ 0.95 | {verdict} |")
    for c in conns:
        sh_, base = med[("lineage-on+shadow", c)], med[("lineage-on", c)]
        p50 = sh_["p50_us"] / base["p50_us"]
        ov = overlap([r["p50_us"] for r in results[("lineage-on+shadow", c)]],
                     [r["p50_us"] for r in results[("lineage-on", c)]])
        verdict = "p50 within noise (rounds overlap)" if ov else "**p50 outside noise** (rounds do not overlap)"
        verdicts.append((f"shadow/no-shadow p50 at c={c}: {p50:.3f}", ov))
        w(f"| 10% shadow / no shadow | {c} | {sh_['rps'] / base['rps']:.3f} | {p50:.3f} | "
          f"{sh_['p99_us'] / base['p99_us']:.3f} | p50 within noise | {verdict} |")
    w("")
    w("## Server-side counters")
    w("")
    w("From the admin port's `/metrics` at the end of each server's life (after its warm-up and measured "
      "runs at every concurrency, once the lineage queue had drained). Requests: "
      "`switchyard_requests_total`; records: `switchyard_lineage_records_written_total` (one per request "
      "and one per shadow run); max queue: the highest `switchyard_lineage_queue_depth` seen by polling "
      "every 2 s during measured runs; batch write: `switchyard_lineage_batch_write_duration_seconds` "
      "(mean, and the p99 bucket's upper bound).")
    w("")
    w("| round | config | requests | lineage records | blocked | dropped | write errors | max queue | batches | records/batch | batch write mean | batch write p99 ≤ | shadow runs ok / dropped / error | server exit |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for (rnd, name), k in sorted(counters.items()):
        if CONFIGS[name]["lineage"]:
            batches = k["batches"]
            lin = (f"{k['written']:.0f} | {k['blocked']:.0f} | {k['dropped']:.0f} | {k['write_errors']:.0f} | "
                   f"{k['max_queue']:.0f} | {batches:.0f} | {k['written'] / batches if batches else 0:.1f} | "
                   f"{(k['batch_sum'] / batches * 1e3) if batches else 0:.2f} ms | "
                   f"{'–' if k['batch_p99'] is None else '%g ms' % (k['batch_p99'] * 1e3)}")
        else:
            lin = "– | – | – | – | – | – | – | – | –"
        shadow = (f"{k['shadow_ok']:.0f} / {k['shadow_dropped']:.0f} / {k['shadow_error']:.0f} "
                  f"({k['shadow_share'] * 100:.1f}% of requests)") if CONFIGS[name]["shadow"] else "–"
        w(f"| {rnd} | {name} | {k['requests']:.0f} | {lin} | {shadow} | {exits[(rnd, name)]} |")
    w("")
    c_hi = max(conns)
    w(f"## Where the server's CPU went (c={c_hi}, median over rounds, cores busy per thread name)")
    w("")
    names_seen = sorted({t for name in CONFIGS for r in results[(name, c_hi)] for t in r["cpu_by_thread"]})
    rows = []
    for t in names_seen:
        vals = [median([r["cpu_by_thread"].get(t, 0.0) for r in results[(name, c_hi)]]) for name in CONFIGS]
        if max(vals) >= 0.005:
            rows.append((t, vals))
    rows.sort(key=lambda tv: -max(tv[1]))
    w("| thread | " + " | ".join(CONFIGS) + " |")
    w("|---|" + "---:|" * len(CONFIGS))
    for t, vals in rows:
        w(f"| `{t}` | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    w("")
    w("## Per-round values")
    w("")
    w("| round | config | concurrency | req/s | p50 | p99 | requests | server CPU per request |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|")
    for c in conns:
        for name in CONFIGS:
            for r in results[(name, c)]:
                w(f"| {r['round']} | {name} | {c} | {r['rps']:.0f} | {fmt_us(r['p50_us'])} | "
                  f"{fmt_us(r['p99_us'])} | {r['requests']} | {r['cpu_us_per_req']:.0f} µs |")
    w("")
    return "\n".join(L), verdicts


# --------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=env_default("SWITCHYARD_BIN", None), help="switchyard binary (skips the build)")
    p.add_argument("--duration", type=int, default=env_default("BENCH_DURATION", 10, int))
    p.add_argument("--warmup", type=int, default=env_default("BENCH_WARMUP", 2, int))
    p.add_argument("--rounds", type=int, default=env_default("BENCH_ROUNDS", 3, int))
    p.add_argument("--connections", default=env_default("BENCH_CONNECTIONS", "8,1"))
    p.add_argument("--store-dir", default=env_default("BENCH_STORE_DIR", str(WORK)),
                   help="where the per-server store copies go (e.g. /dev/shm to take the disk out)")
    p.add_argument("--out", default=str(RESULTS / "lineage.md"))
    args = p.parse_args()
    args.store_dir = Path(args.store_dir).resolve()
    args.connections = [int(c) for c in str(args.connections).split(",") if c.strip()]

    set_tag("bench")
    install_exit_handlers()

    ensure_wrk()
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    binary, binary_desc = pick_binary(args.bin, WORK)
    ort = onnxruntime()
    env = server_env(ort)
    template = register_store(binary, env)
    mach = machine()
    started = datetime.datetime.now(datetime.timezone.utc)

    per_server = len(args.connections) * (args.warmup + args.duration) + 3
    log(f"{args.rounds} rounds x {len(CONFIGS)} configurations, ~{per_server} s each: "
        f"~{args.rounds * len(CONFIGS) * per_server // 60 + 1} min")

    names = list(CONFIGS)
    results = {(n, c): [] for n in names for c in args.connections}
    counters, exits = {}, {}
    raw_lineage = (0, [])
    for rnd in range(1, args.rounds + 1):
        order = names[(rnd - 1) % len(names):] + names[:(rnd - 1) % len(names)]
        for name in order:
            cfg = CONFIGS[name]
            store = args.store_dir / f"store-{rnd}-{name}"
            shutil.copytree(template, store)
            server = start_server(binary, f"r{rnd}-{name}", store, cfg, env)
            try:
                server.check_infer("mlp", expect_version=1)
                url = server.public + "/v2/models/mlp/infer"
                max_queue = 0.0
                for c in args.connections:
                    run_wrk(url, c, args.warmup)
                    sampler = QueueSampler(server)
                    sampler.start()
                    cpu_before, t0 = thread_cpu(server.proc.pid), time.monotonic()
                    r = run_wrk(url, c, args.duration)
                    cpu = cpu_by_name(cpu_before, thread_cpu(server.proc.pid))
                    elapsed = time.monotonic() - t0
                    max_queue = max(max_queue, sampler.finish())
                    r["round"] = rnd
                    r["cpu_by_thread"] = {k: v / elapsed for k, v in cpu.items()}  # cores busy
                    r["cpu_us_per_req"] = sum(cpu.values()) / r["requests"] * 1e6
                    r["cores"] = sum(cpu.values()) / elapsed
                    results[(name, c)].append(r)
                    log(f"round {rnd} {name:18} c={c}: {r['rps']:8.0f} req/s  p50 {fmt_us(r['p50_us']):>9}  "
                        f"p99 {fmt_us(r['p99_us']):>9}  server CPU {r['cpu_us_per_req']:.0f} us/req")
                # Let the lineage writer catch up (every request and shadow run has its record, or
                # nothing moved for 2 s) before reading its counters.
                last, still_since = -1.0, time.monotonic()
                while cfg["lineage"]:
                    m = server.metrics()
                    written = metric_sum(m, "switchyard_lineage_records_written_total")
                    expected = (metric_sum(m, "switchyard_requests_total", model="mlp")
                                + metric_sum(m, "switchyard_shadow_requests_total", result="ok")
                                + metric_sum(m, "switchyard_shadow_requests_total", result="error"))
                    if written != last:
                        last, still_since = written, time.monotonic()
                    if written >= expected or time.monotonic() - still_since > 2:
                        break
                    time.sleep(0.1)
                text = server.metrics_text()
                m = parse_prometheus(text)
                requests = metric_sum(m, "switchyard_requests_total", model="mlp")
                shadow_ok = metric_sum(m, "switchyard_shadow_requests_total", result="ok")
                bname = "switchyard_lineage_batch_write_duration_seconds"
                counters[(rnd, name)] = {
                    "requests": requests,
                    "written": metric_sum(m, "switchyard_lineage_records_written_total"),
                    "blocked": metric_sum(m, "switchyard_lineage_blocked_total"),
                    "dropped": metric_sum(m, "switchyard_lineage_records_dropped_total"),
                    "write_errors": metric_sum(m, "switchyard_lineage_write_errors_total"),
                    "max_queue": max_queue,
                    "batches": metric_sum(m, bname + "_count"),
                    "batch_sum": metric_sum(m, bname + "_sum"),
                    "batch_p99": histogram_quantile(m, bname, 0.99),
                    "shadow_ok": shadow_ok,
                    "shadow_dropped": metric_sum(m, "switchyard_shadow_requests_total", result="dropped"),
                    "shadow_error": metric_sum(m, "switchyard_shadow_requests_total", result="error"),
                }
                k = counters[(rnd, name)]
                k["shadow_share"] = (k["shadow_ok"] + k["shadow_dropped"] + k["shadow_error"]) / requests if requests else 0
                # The raw switchyard_lineage_* lines of the last lineage-on server, for the report.
                raw = [line for line in text.splitlines() if line.startswith("switchyard_lineage")]
                (WORK / f"metrics-r{rnd}-{name}.txt").write_text(text)
                if name == "lineage-on":
                    raw_lineage = (rnd, raw)
            finally:
                exits[(rnd, name)] = server.stop()
                shutil.rmtree(store, ignore_errors=True)
            if exits[(rnd, name)] != 0:
                log(f"WARNING: server r{rnd}-{name} exited with {exits[(rnd, name)]} on SIGTERM:\n{server.stderr_tail()}")
            if cfg["shadow"] and counters[(rnd, name)]["shadow_ok"] == 0:
                die(f"server r{rnd}-{name}: no shadow run succeeded; the shadow configuration did not take effect")
            if cfg["lineage"] and counters[(rnd, name)]["written"] == 0:
                die(f"server r{rnd}-{name}: no lineage record was written")

    mach["load_end"] = loadavg()
    finished = datetime.datetime.now(datetime.timezone.utc)
    text, verdicts = report(args, mach, binary_desc, ort, results, counters, exits, started, finished)
    text += (f"\n## Raw `switchyard_lineage_*` lines: round {raw_lineage[0]}'s lineage-on server, at its end\n\n"
             "Counters never incremented (`blocked`, `dropped`, `write_errors` at 0) are not exported.\n\n"
             "```\n" + "\n".join(raw_lineage[1]) + "\n```\n")
    write_results(args.out, text)
    for line, ok in verdicts:
        log(("ok:      " if ok else "WARNING: ") + line)
    log(f"server logs in {rel(WORK)}/")


if __name__ == "__main__":
    main()
