#!/usr/bin/env python3
"""Reload storm benchmark (`make bench-reload`): does a burst of config reloads hurt the latency
of the versions that keep serving?

One gateway serves `mlp` (version 1 champion, version 2 challenger at 20%) under wrk at 8
connections. Phases alternate, RELOAD_ROUNDS times:

  A (steady)  RELOAD_PHASE seconds of load, config untouched
  B (storm)   RELOAD_PHASE seconds of load while a thread, every RELOAD_INTERVAL seconds, rewrites
              the config file (version 2's weight changes every time; version 3 joins as a 10%
              challenger every other time, so every other reload loads and warms a new ONNX
              Runtime session and the next one unloads it) and calls POST {admin}/admin/reload.
              The gateway's file watcher may reload on its own as well; that is counted too.

After each B phase the baseline config is written back and reloaded, so every A phase serves
the same routing. Reported: p50/p99 of each phase (wrk, all requests; and, from the gateway's
request-duration histogram, versions 1 and 2 alone), the ratio B/A of p99 (target <= 1.5),
reloads ok/refused (`switchyard_config_reloads_total{result}`), and non-2xx responses (must be
zero: the bench exits non-zero when wrk saw any, after writing the results).

Writes benches/results/reload.md and prints it. Stdlib only. Options and environment:
  SWITCHYARD_BIN=path      use this binary instead of building target/release/switchyard
  RELOAD_ROUNDS=3          A/B rounds            RELOAD_PHASE=15   seconds per phase
  RELOAD_INTERVAL=0.5      seconds between reloads in a B phase
  RELOAD_CONNECTIONS=8     wrk connections (wrk -t2)
"""

import argparse
import datetime
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "reload"
V2_WEIGHTS = [10, 30, 20, 40, 15, 25]  # version 2's percent, cycled through by the storm
V3_WEIGHT = 10
BASELINE = {2: 20}


def config_toml(store, challengers):
    ch = ", ".join(f"{v} = {w}" for v, w in sorted(challengers.items()))
    return c.config_head("reload_storm.py", store, lineage=False) + f"""
[[model]]
name = "mlp"
[model.engine]
instances = 1
[model.routing]
champion = 1
challengers = {{ {ch} }}
"""


class Storm(threading.Thread):
    """Rewrites the config and POSTs /admin/reload every `interval` seconds until stopped."""

    def __init__(self, server, store, interval, counter):
        super().__init__(daemon=True)
        self.server, self.store, self.interval = server, store, interval
        self.counter = counter  # shared across phases, so v3 keeps alternating
        self.stop_event = threading.Event()
        self.calls = []  # (HTTP status, seconds the POST took, loaded, unloaded)
        self.failure = None

    def run(self):
        try:
            next_at = time.monotonic()
            while not self.stop_event.is_set():
                i = self.counter[0]
                self.counter[0] += 1
                challengers = {2: V2_WEIGHTS[i % len(V2_WEIGHTS)]}
                if i % 2 == 0:
                    challengers[3] = V3_WEIGHT
                c.write_atomic(self.server.config_path, config_toml(self.store, challengers))
                t0 = time.monotonic()
                status, doc = self.server.reload("bench-reload-storm")
                took = time.monotonic() - t0
                self.calls.append((status, took, doc.get("loaded", []), doc.get("unloaded", [])))
                if status != 200:
                    c.log(f"reload answered {status}: {doc}")
                next_at += self.interval
                self.stop_event.wait(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic() - self.interval)  # no catch-up bursts
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.failure = f"{type(e).__name__}: {e}"

    def finish(self):
        self.stop_event.set()
        self.join(timeout=120)
        if self.failure:
            c.die(f"the reload thread failed: {self.failure}")


def server_view(before, after):
    """Per-phase numbers from the gateway's own counters: requests and p50/p99 per version."""
    d = c.metric_delta(before, after)
    out = {}
    for v in ("1", "2", "3"):
        n = c.metric_sum(d, "switchyard_requests_total", model="mlp", version=v)
        p50 = c.histogram_quantile(d, "switchyard_request_duration_seconds", 0.50, model="mlp", version=v)
        p99 = c.histogram_quantile(d, "switchyard_request_duration_seconds", 0.99, model="mlp", version=v)
        out[v] = {"requests": n, "p50_s": p50, "p99_s": p99}
    out["non200"] = sum(val for (n, labels), val in d.items()
                        if n == "switchyard_requests_total" and dict(labels).get("status") != "200")
    out["reloads"] = {r: c.metric_sum(d, "switchyard_config_reloads_total", result=r)
                      for r in ("ok", "error", "unreadable")}
    return out


def restore_baseline(server, store):
    c.write_atomic(server.config_path, config_toml(store, BASELINE))
    status, doc = server.reload("bench-reload-baseline")
    if status != 200:
        c.die(f"restoring the baseline config: reload answered {status}: {doc}")
    m = server.metrics()
    loaded = sorted(dict(l)["version"] for (n, l), v in m.items()
                    if n == "switchyard_model_info" and dict(l).get("model") == "mlp" and v == 1)
    w2 = c.metric_sum(m, "switchyard_routing_weight_ratio", model="mlp", version="2")
    if loaded != ["1", "2"] or abs(w2 - 0.2) > 1e-9:
        c.die(f"after restoring the baseline, loaded versions {loaded} and v2 weight {w2}; expected [1, 2] and 0.2")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"), help="switchyard binary (skips the build)")
    p.add_argument("--rounds", type=int, default=c.env_default("RELOAD_ROUNDS", 3, int))
    p.add_argument("--phase", type=int, default=c.env_default("RELOAD_PHASE", 15, int))
    p.add_argument("--interval", type=float, default=c.env_default("RELOAD_INTERVAL", 0.5, float))
    p.add_argument("--connections", type=int, default=c.env_default("RELOAD_CONNECTIONS", 8, int))
    p.add_argument("--out", default=str(c.RESULTS / "reload.md"))
    args = p.parse_args()
    binary, binary_desc, ort, env = c.start_bench("bench-reload", args.bin, WORK)
    store = c.register(binary, env, WORK / "store", [("mlp", f"mlp_v{v}", v) for v in (1, 2, 3)])
    mach = c.machine()
    started = datetime.datetime.now(datetime.timezone.utc)
    cfg = WORK / "gateway.toml"
    cfg.write_text(config_toml(store, BASELINE))
    server = c.Server(binary, "reload", cfg, WORK, env)
    c.log(f"server pid {server.pid} at {server.public}; {args.rounds} rounds of A/B, {args.phase} s each: "
          f"~{args.rounds * 2 * (args.phase + 2) // 60 + 1} min")
    server.check_infer("mlp")
    url = server.public + "/v2/models/mlp/infer"
    c.run_wrk(url, args.connections, 3)  # warm-up

    phases = []  # dicts: round, kind, wrk, server, cpu, calls, proc
    counter = [0]
    failures = []
    for rnd in range(1, args.rounds + 1):
        for kind in ("A", "B"):
            before, cpu0, t0 = server.metrics(), server.cpu_seconds(), time.monotonic()
            proc0 = server.proc_status()
            storm = None
            if kind == "B":
                storm = Storm(server, store, args.interval, counter)
                storm.start()
            r = c.run_wrk(url, args.connections, args.phase, strict=False)
            if storm:
                storm.finish()
            elapsed = time.monotonic() - t0
            after = server.metrics()
            cpu = server.cpu_seconds() - cpu0
            ph = {"round": rnd, "kind": kind, "wrk": r, "server": server_view(before, after),
                  "cores": cpu / elapsed, "calls": storm.calls if storm else [], "proc0": proc0,
                  "proc1": server.proc_status()}
            phases.append(ph)
            if r["non2xx"] or any(r["socket_errors"]):
                failures.append(f"round {rnd} phase {kind}: wrk saw {r['non2xx']} non-2xx responses and "
                                f"socket errors (connect, read, write, timeout) {r['socket_errors']}")
            if not server.alive():
                c.die(f"the server exited during round {rnd} phase {kind}:\n{server.stderr_tail()}")
            s = ph["server"]
            extra = ""
            if kind == "B":
                ok = sum(1 for call in ph["calls"] if call[0] == 200)
                extra = (f"  reloads: {ok}/{len(ph['calls'])} admin calls ok, metrics ok={s['reloads']['ok']:.0f} "
                         f"error={s['reloads']['error']:.0f}")
                if ok == 0:
                    c.die(f"round {rnd}: no reload succeeded during the storm")
                restore_baseline(server, store)
            c.log(f"round {rnd} {kind}: {r['rps']:7.0f} req/s  p50 {c.fmt_us(r['p50_us']):>9}  "
                  f"p99 {c.fmt_us(r['p99_us']):>9}  non-2xx {r['non2xx']}{extra}")

    total_metrics = server.metrics_text()
    (WORK / "metrics-end.txt").write_text(total_metrics)
    end_proc = server.proc_status()
    exit_code = server.stop()
    mach["load_end"] = c.loadavg()
    finished = datetime.datetime.now(datetime.timezone.utc)
    text, verdicts = report(args, mach, binary_desc, ort, phases, c.parse_prometheus(total_metrics),
                            end_proc, exit_code, started, finished, failures)
    c.write_results(args.out, text)
    for line, ok in verdicts:
        c.log(("ok:      " if ok else "WARNING: ") + line)
    if failures:
        c.die("non-2xx responses or socket errors during the bench:\n  " + "\n  ".join(failures))


def report(args, mach, binary_desc, ort, phases, final, end_proc, exit_code, started, finished, failures):
    L = []
    w = L.append
    w("# Reload storm: latency of the serving versions while the config reloads every "
      f"{args.interval:g} s")
    w("")
    w("Generated by `make bench-reload` (`benches/reload_storm.py`); see `benches/README.md`.")
    w("")
    L.extend(c.machine_lines(mach, binary_desc, ort, started, finished, mach["wrk"]))
    w("## Setup")
    w("")
    w("- one gateway for the whole run: model `mlp` (input [1,64] FP32), `[model.engine] instances = 1` "
      "(one ONNX Runtime session and worker thread per version), `[lineage] enabled = false`, every "
      "other key at its default (`worker_threads`: 1 on this machine)")
    w("- baseline routing: `champion = 1`, `challengers = { 2 = 20 }`")
    w(f"- load: wrk `-t2 -c{args.connections}` `--latency`, the same [1,64] request "
      "(`benches/lua/post.lua`), through every phase; a 3 s warm-up run first")
    w(f"- {args.rounds} rounds of **A** (steady, {args.phase} s, config untouched) then **B** (storm, "
      f"{args.phase} s): every {args.interval:g} s the config file is rewritten (atomically, by rename) "
      f"with version 2's weight cycling through {V2_WEIGHTS} %, and on every other rewrite version 3 "
      f"added as a {V3_WEIGHT}% challenger (so one reload loads and warms a new session for v3, the next "
      "unloads it), then `POST /admin/reload`; the file watcher (polls every 0.5 s) may reload too")
    w("- after each B phase the baseline config is written back and reloaded, and checked (versions 1 and 2 "
      "loaded, v2 at 20%) before the next A phase")
    w("")

    A = [p for p in phases if p["kind"] == "A"]
    B = [p for p in phases if p["kind"] == "B"]
    med = lambda ps, f: statistics.median([f(p) for p in ps])  # noqa: E731
    a50, a99 = med(A, lambda p: p["wrk"]["p50_us"]), med(A, lambda p: p["wrk"]["p99_us"])
    b50, b99 = med(B, lambda p: p["wrk"]["p50_us"]), med(B, lambda p: p["wrk"]["p99_us"])
    ratio = b99 / a99
    per_round = [b["wrk"]["p99_us"] / a["wrk"]["p99_us"] for a, b in zip(A, B)]
    non2xx = sum(p["wrk"]["non2xx"] for p in phases)
    sock = sum(sum(p["wrk"]["socket_errors"]) for p in phases)
    server_non200 = sum(p["server"]["non200"] for p in phases)
    calls = [call for p in B for call in p["calls"]]
    ok_calls = sum(1 for call in calls if call[0] == 200)
    refused_calls = sum(1 for call in calls if call[0] == 422)
    other_calls = len(calls) - ok_calls - refused_calls
    reload_ok = c.metric_sum(final, "switchyard_config_reloads_total", result="ok")
    reload_err = c.metric_sum(final, "switchyard_config_reloads_total", result="error")
    reload_unreadable = c.metric_sum(final, "switchyard_config_reloads_total", result="unreadable")
    baseline_reloads = len(B)
    watcher = reload_ok + reload_err - len(calls) - baseline_reloads

    verdicts = []
    w("## Results")
    w("")
    w(f"Median over {args.rounds} rounds (wrk, every request of the phase, all versions):")
    w("")
    w("| phase | req/s | p50 | p99 | gateway cores busy |")
    w("|---|---:|---:|---:|---:|")
    w(f"| A (steady) | {med(A, lambda p: p['wrk']['rps']):.0f} | {c.fmt_us(a50)} | {c.fmt_us(a99)} | "
      f"{med(A, lambda p: p['cores']):.2f} |")
    w(f"| B (reload storm) | {med(B, lambda p: p['wrk']['rps']):.0f} | {c.fmt_us(b50)} | {c.fmt_us(b99)} | "
      f"{med(B, lambda p: p['cores']):.2f} |")
    w(f"| **B / A** | {med(B, lambda p: p['wrk']['rps']) / med(A, lambda p: p['wrk']['rps']):.2f} | "
      f"{b50 / a50:.2f} | **{ratio:.2f}** | |")
    w("")
    ok = ratio <= 1.5
    verdicts.append((f"p99 B/A = {ratio:.2f} (target <= 1.5)", ok))
    w(f"- **p99 during the storm / steady p99: {ratio:.2f}** (medians; per round: "
      + ", ".join(f"{x:.2f}" for x in per_round) + f"). Target ≤ 1.5: **{'met' if ok else 'NOT met'}**.")
    w(f"- non-2xx responses: **{non2xx}** (wrk), socket errors: {sock}; the gateway counted "
      f"{server_non200:.0f} non-200 answers. Target 0: **{'met' if non2xx == 0 and sock == 0 else 'NOT met'}**.")
    verdicts.append((f"non-2xx = {non2xx}, socket errors = {sock}", non2xx == 0 and sock == 0))
    took = sorted(call[1] for call in calls)
    w(f"- reloads: {len(calls)} `POST /admin/reload` calls during the storms: {ok_calls} answered 200, "
      f"{refused_calls} refused (422), {other_calls} other; the admin call took "
      f"p50 {c.fmt_s(c.percentile(took, 50))}, p99 {c.fmt_s(c.percentile(took, 99))}, "
      f"max {c.fmt_s(took[-1] if took else None)}. "
      f"`switchyard_config_reloads_total` at the end: ok {reload_ok:.0f}, error (refused) {reload_err:.0f}, "
      f"unreadable {reload_unreadable:.0f} — that includes the {baseline_reloads} baseline restores and "
      f"{watcher:.0f} reload(s) by the file watcher.")
    loads = sum(1 for call in calls if call[2])
    unloads = sum(1 for call in calls if call[3])
    w(f"- of the storm's reloads, {loads} loaded a version (v3) and {unloads} unloaded one.")
    w("")
    w("## Per version, from the gateway's histogram")
    w("")
    w("`switchyard_request_duration_seconds` (from receiving the request to its response, inside the "
      "gateway), per phase from the difference of two scrapes; quantiles interpolated inside the "
      "histogram's buckets (…, 0.5, 0.75, 1, 1.5, 2.5, 5, 7.5, 10 ms, …), so read them as ±1 bucket. "
      "Versions 1 and 2 are the ones serving throughout; version 3 only joins during storms. Medians "
      "over rounds:")
    w("")
    w("| phase | v1 requests | v1 p50 | v1 p99 | v2 requests | v2 p50 | v2 p99 | v3 requests | v3 p99 |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    srv = {}
    for name, ps in (("A (steady)", A), ("B (reload storm)", B)):
        row = []
        for v in ("1", "2", "3"):
            vals = [p["server"][v] for p in ps]
            n = statistics.median([x["requests"] for x in vals])
            p50s = [x["p50_s"] for x in vals if x["p50_s"] is not None]
            p99s = [x["p99_s"] for x in vals if x["p99_s"] is not None]
            q50 = statistics.median(p50s) if p50s else None
            q99 = statistics.median(p99s) if p99s else None
            srv[(name[0], v)] = q99
            row.append((n, q50, q99))
        w(f"| {name} | {row[0][0]:.0f} | {c.fmt_s(row[0][1])} | {c.fmt_s(row[0][2])} | {row[1][0]:.0f} | "
          f"{c.fmt_s(row[1][1])} | {c.fmt_s(row[1][2])} | {row[2][0]:.0f} | {c.fmt_s(row[2][2])} |")
    w("")
    for v in ("1", "2"):
        if srv.get(("A", v)) and srv.get(("B", v)):
            rv = srv[("B", v)] / srv[("A", v)]
            w(f"- version {v}: gateway-side p99 B/A = {rv:.2f}")
            verdicts.append((f"v{v} gateway-side p99 B/A = {rv:.2f} (supporting; weights move during B)", rv <= 1.5))
    w("")
    w("Read these per-version figures as supporting evidence, not the verdict: during B the weights move "
      f"(version 2 gets {min(V2_WEIGHTS)}–{max(V2_WEIGHTS)}% instead of 20%, version 1 the rest after version 3's "
      f"{V3_WEIGHT}% half the time), and each version has one session on one worker thread, so a version "
      "given twice the traffic queues more whatever the reloads do. Loading version 3 (building and warming "
      "an ONNX Runtime session on a blocking thread) also takes CPU from the two cores the workers, wrk and "
      "everyone else share.")
    w("")
    w("## Per phase")
    w("")
    w("| round | phase | req/s | p50 | p75 | p90 | p99 | max | non-2xx | reload calls ok / all | reloads ok / error (metrics) | gateway cores | RSS before → after | threads before → after |")
    w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|")
    for p in phases:
        r, s = p["wrk"], p["server"]
        calls_txt = (f"{sum(1 for x in p['calls'] if x[0] == 200)} / {len(p['calls'])}" if p["kind"] == "B" else "–")
        w(f"| {p['round']} | {p['kind']} | {r['rps']:.0f} | {c.fmt_us(r['p50_us'])} | {c.fmt_us(r['p75_us'])} | "
          f"{c.fmt_us(r['p90_us'])} | {c.fmt_us(r['p99_us'])} | {c.fmt_us(r['max_us'])} | {r['non2xx']} | {calls_txt} | "
          f"{s['reloads']['ok']:.0f} / {s['reloads']['error']:.0f} | {p['cores']:.2f} | "
          f"{p['proc0']['rss_kib'] / 1024:.1f} → {p['proc1']['rss_kib'] / 1024:.1f} MiB | "
          f"{p['proc0']['threads']} → {p['proc1']['threads']} |")
    w("")
    w(f"Reload counts per phase are deltas of `switchyard_config_reloads_total` over the phase (B includes the "
      f"file watcher's reloads; the baseline restore happens after the phase's last scrape). At the end: "
      f"RSS {end_proc['rss_kib'] / 1024:.1f} MiB, {end_proc['threads']} threads, {end_proc['fds']} open fds; "
      f"the server exited with {exit_code} on SIGTERM.")
    w("")
    if failures:
        w("## FAILED")
        w("")
        for f in failures:
            w(f"- {f}")
        w("")
        w("wrk's output of the failing phases:")
        w("")
        for p in phases:
            if p["wrk"]["non2xx"] or any(p["wrk"]["socket_errors"]):
                w(f"```\n# round {p['round']} phase {p['kind']}\n{p['wrk']['raw'].strip()}\n```")
        w("")
    return "\n".join(L), verdicts


if __name__ == "__main__":
    main()
