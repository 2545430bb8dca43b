#!/usr/bin/env python3
"""Overload benchmark (`make bench-overload`): past capacity, does the gateway shed the excess
quickly with 503 + Retry-After and keep the requests it accepts fast?

Model `slow` (the mlp_v1 signature, ~20 ms of compute per call on one thread) with
`[model.engine] instances = 1` and a small `queue_capacity` (default 4), so capacity is about one
request per compute time and queueing is plain to see.

1. Capacity: wrk (closed loop) at 1, 2, ... connections, OVERLOAD_SWEEP_SECONDS each; the knee is
   the fewest connections whose throughput (2xx/s) is within OVERLOAD_KNEE (default 3%) of the
   best of the sweep: there, the model is saturated. Capacity = the best throughput; the
   reference latency = wrk's p99 at the knee.
2. Overload: an open-loop generator (asyncio, raw HTTP/1.1 on keep-alive connections, a new
   connection whenever none is idle) offers OVERLOAD_FACTOR (default 3) x capacity, evenly spaced,
   for OVERLOAD_SECONDS. Open loop is the honest way to offer a fixed rate: a request is sent at its
   time whatever the earlier ones are doing, and its latency counts from that time.
   For each queue capacity in OVERLOAD_QUEUES (default "4,1"), on a fresh server.
3. Health afterwards: /v2/health/ready answers 200, one request answers 200, the queue is empty.

Reported: accepted requests' p99 vs the p99 at capacity (target <= 2x), the share shed with 503 and
whether every 503 carried Retry-After, how fast a 503 comes back (p99), goodput, health after.
The bench writes its results, then exits non-zero when a response was neither 200 nor 503, a
connection failed, a 503 lacked Retry-After, or the gateway was unhealthy afterwards.

Writes benches/results/overload.md and prints it. Stdlib only. Options and environment:
  SWITCHYARD_BIN=path         use this binary instead of building target/release/switchyard
  OVERLOAD_SWEEP=1,2,3,4      wrk connection counts for the capacity sweep
  OVERLOAD_SWEEP_SECONDS=10   OVERLOAD_KNEE=0.03   OVERLOAD_FACTOR=3   OVERLOAD_SECONDS=30
  OVERLOAD_QUEUES=4,1         queue_capacity of each overload run (the first is the headline)
"""

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "overload"
PATH = "/v2/models/slow/infer"


def config_toml(store, queue_capacity):
    return c.config_head("overload.py", store, lineage=False) + f"""
[[model]]
name = "slow"
versions = [1]
[model.engine]
instances = 1
queue_capacity = {queue_capacity}
"""


def start_server(binary, store, queue_capacity, env, name):
    cfg = WORK / f"{name}.toml"
    cfg.write_text(config_toml(store, queue_capacity))
    server = c.Server(binary, name, cfg, WORK, env)
    server.check_infer("slow", expect_version=1)
    return server


WORKER = "sy-slow-v1"  # the worker thread's name prefix (sy-<model>-v<version>-<i>)


def drain(server):
    """Lets the queue empty between runs: a wrk run that ends leaves the requests of its closed
    connections queued until the worker takes (and skips) them, and they would take queue slots
    from the next run. One request, answered, has waited behind all of them. (The
    `switchyard_queue_depth` gauge cannot tell: it is set when a request is answered, so it keeps
    its last value while idle, and requests abandoned by their clients never update it.)"""
    time.sleep(0.5)
    server.check_infer("slow", expect_version=1)


def sched_per_request(before, after, requests):
    """Worker thread's CPU and run-queue wait per request served (s), from two thread_sched()."""
    if not requests:
        return None, None
    return (after[0] - before[0]) / requests, (after[1] - before[1]) / requests


def server_times(before, after):
    d = c.metric_delta(before, after)
    n = c.metric_sum(d, "switchyard_compute_duration_seconds_count", model="slow")
    s = c.metric_sum(d, "switchyard_compute_duration_seconds_sum", model="slow")
    return {
        "compute_mean_s": s / n if n else None,
        "compute_p50_s": c.histogram_quantile(d, "switchyard_compute_duration_seconds", 0.5, model="slow"),
        "queue_p99_s": c.histogram_quantile(d, "switchyard_queue_duration_seconds", 0.99, model="slow"),
        "by_status": {dict(l)["status"]: v for (name, l), v in d.items()
                      if name == "switchyard_requests_total" and dict(l).get("model") == "slow" and v},
    }


def overload_run(binary, store, env, q, rate, seconds):
    server = start_server(binary, store, q, env, f"overload-q{q}")
    c.run_wrk(server.public + PATH, 1, 2)  # warm-up
    before = server.metrics()
    poller = c.MaxSampler(server, 0.25, "switchyard_queue_depth", model="slow")
    poller.start()
    cpu0, t0, sched0 = server.cpu_seconds(), time.monotonic(), server.thread_sched(WORKER)

    def progress(res):
        if len(res) and int(time.monotonic() - t0) % 10 == 0:
            ok = sum(1 for s in res.status if s == 200)
            c.log(f"  q={q}: {len(res)} answered, {ok} ok, {len(res) - ok} not")

    res = c.open_loop(server.host, server.port, PATH, c.BODY, rate, seconds, timeout=30.0, progress=progress)
    elapsed = time.monotonic() - t0
    cpu = server.cpu_seconds() - cpu0
    max_depth = poller.finish()
    after = server.metrics()
    worker_cpu, worker_wait = sched_per_request(sched0, server.thread_sched(WORKER),
                                                sum(1 for s in res.status if s == 200))
    if not server.alive():
        c.die(f"the server exited during the overload run (q={q}):\n{server.stderr_tail()}")
    # Health afterwards: the queue drains, then ready and one real request.
    time.sleep(1.0)
    health = {"ready": server.ready_status()}
    try:
        status, headers, body = server.request("POST", server.public + PATH, c.BODY)
        health["infer"] = status
        health["infer_version"] = headers.get("x-model-version")
    except OSError as e:
        health["infer"] = f"error: {e}"
    end = server.metrics()
    health["queue_depth"] = c.metric_sum(end, "switchyard_queue_depth", model="slow")
    health["proc"] = server.proc_status()
    health["exit"] = server.stop()
    return {"q": q, "rate": rate, "res": res, "cores": cpu / elapsed, "max_depth": max_depth,
            "server": server_times(before, after), "health": health, "poll_samples": poller.samples,
            "worker_cpu": worker_cpu, "worker_wait": worker_wait}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"), help="switchyard binary (skips the build)")
    p.add_argument("--sweep", default=c.env_default("OVERLOAD_SWEEP", "1,2,3,4"))
    p.add_argument("--sweep-seconds", type=int, default=c.env_default("OVERLOAD_SWEEP_SECONDS", 10, int))
    p.add_argument("--knee", type=float, default=c.env_default("OVERLOAD_KNEE", 0.03, float))
    p.add_argument("--factor", type=float, default=c.env_default("OVERLOAD_FACTOR", 3.0, float))
    p.add_argument("--seconds", type=int, default=c.env_default("OVERLOAD_SECONDS", 30, int))
    p.add_argument("--queues", default=c.env_default("OVERLOAD_QUEUES", "4,1"))
    p.add_argument("--out", default=str(c.RESULTS / "overload.md"))
    args = p.parse_args()
    args.sweep = [int(x) for x in str(args.sweep).split(",") if x.strip()]
    args.queues = [int(x) for x in str(args.queues).split(",") if x.strip()]
    binary, binary_desc, ort, env = c.start_bench("bench-overload", args.bin, WORK)
    store = c.register(binary, env, WORK / "store", [("slow", "slow", 1)])
    mach = c.machine()
    started = datetime.datetime.now(datetime.timezone.utc)

    # 1. Capacity sweep, on a server with the headline queue capacity.
    q0 = args.queues[0]
    server = start_server(binary, store, q0, env, f"sweep-q{q0}")
    url = server.public + PATH
    c.run_wrk(url, 1, 3)  # warm-up
    sweep = []
    for conns in args.sweep:
        drain(server)
        before, sched0 = server.metrics(), server.thread_sched(WORKER)
        r = c.run_wrk(url, conns, args.sweep_seconds, threads=1, timeout="10s", strict=False)
        if any(r["socket_errors"]):
            c.die(f"wrk saw socket errors at c={conns} during the capacity sweep:\n{r['raw']}")
        r["conns"] = conns
        r["ok_rps"] = (r["requests"] - r["non2xx"]) / r["elapsed_s"]
        r["server"] = server_times(before, server.metrics())
        r["worker_cpu"], r["worker_wait"] = sched_per_request(sched0, server.thread_sched(WORKER),
                                                              r["requests"] - r["non2xx"])
        sweep.append(r)
        c.log(f"sweep c={conns}: {r['ok_rps']:6.1f} ok/s  p50 {c.fmt_us(r['p50_us']):>9}  p99 "
              f"{c.fmt_us(r['p99_us']):>9}  non-2xx {r['non2xx']}  compute mean "
              f"{c.fmt_s(r['server']['compute_mean_s'])} (worker CPU {c.fmt_s(r['worker_cpu'])}, waiting for a "
              f"CPU {c.fmt_s(r['worker_wait'])})")
    sweep_exit = server.stop()
    best = max(r["ok_rps"] for r in sweep)
    knee = next(r for r in sweep if r["ok_rps"] >= (1 - args.knee) * best)
    capacity = best
    rate = args.factor * capacity
    c.log(f"capacity {capacity:.1f} req/s (knee at c={knee['conns']}, p99 {c.fmt_us(knee['p99_us'])}); "
          f"offering {rate:.1f} req/s open loop for {args.seconds} s per queue capacity {args.queues}")

    # 2 + 3. Overload runs, each on a fresh server, then health.
    runs = [overload_run(binary, store, env, q, rate, args.seconds) for q in args.queues]
    mach["load_end"] = c.loadavg()
    finished = datetime.datetime.now(datetime.timezone.utc)
    text, verdicts, failures = report(args, mach, binary_desc, ort, sweep, sweep_exit, knee, capacity, runs,
                                      started, finished)
    c.write_results(args.out, text)
    for line, ok in verdicts:
        c.log(("ok:      " if ok else "WARNING: ") + line)
    if failures:
        c.die("the gateway misbehaved under overload:\n  " + "\n  ".join(failures))


def summarize(run, p99_cap):
    res = run["res"]
    lat = res.latency
    ok = [lat[i] for i in res.where(lambda s: s == 200)]
    shed = res.where(lambda s: s == 503)
    shed_lat = [lat[i] for i in shed]
    shed_svc = [res.service[i] for i in shed]
    other = [res.status[i] for i in res.where(lambda s: s not in (200, 503, None))]
    with_ra = sum(1 for i in shed if res.retry_after[i] == "1")
    s = {
        "n": len(res), "ok": len(ok), "shed": len(shed), "other": other, "errors": res.errors,
        "ok_p50": c.percentile(ok, 50), "ok_p99": c.percentile(ok, 99), "ok_max": max(ok) if ok else None,
        "shed_p50": c.percentile(shed_lat, 50), "shed_p99": c.percentile(shed_lat, 99),
        "shed_max": max(shed_lat) if shed_lat else None, "with_ra": with_ra,
        "shed_svc_p50": c.percentile(shed_svc, 50), "shed_svc_p99": c.percentile(shed_svc, 99),
        "retry_after_values": sorted({res.retry_after[i] for i in shed}, key=str),
        "lag_p99": c.percentile(res.send_lag, 99), "lag_max": max(res.send_lag) if res.send_lag else None,
        "goodput": len(ok) / res.duration,
    }
    s["ratio"] = s["ok_p99"] / (p99_cap / 1e6) if s["ok_p99"] else None
    # Second by second after the first 5 s (the queue filling), to show the steady state.
    steady = [lat[i] for i in res.where(lambda st: st == 200) if res.sched[i] >= 5.0]
    s["ok_p99_steady"] = c.percentile(steady, 99)
    return s


def report(args, mach, binary_desc, ort, sweep, sweep_exit, knee, capacity, runs, started, finished):
    L = []
    w = L.append
    w("# Overload: shedding past capacity on the `slow` fixture")
    w("")
    w("Generated by `make bench-overload` (`benches/overload.py`); see `benches/README.md`.")
    w("")
    L.extend(c.machine_lines(mach, binary_desc, ort, started, finished,
                             f"{mach['wrk']} (capacity sweep); open-loop asyncio generator in "
                             f"`benches/common.py`, Python {mach['python']} (overload)"))
    w("## Setup")
    w("")
    w("- model `slow` (input [1,64] FP32; mlp_v1's answer after ~20 ms of single-threaded compute, measured "
      "on a quiet machine), `[model.engine] instances = 1` (one session, one worker thread), "
      f"`queue_capacity` = {', '.join(str(q) for q in args.queues)} (the first is the headline), "
      "`[lineage] enabled = false`, everything else at its default")
    w(f"- capacity: wrk `-t1 -c{{{','.join(str(x) for x in args.sweep)}}}`, {args.sweep_seconds} s each, "
      f"`--latency`, on one server with queue_capacity {args.queues[0]}; knee = the fewest connections within "
      f"{args.knee * 100:g}% of the best throughput")
    w(f"- overload: open loop at {args.factor:g} × capacity, {args.seconds} s, evenly spaced arrivals, each on "
      "an idle keep-alive connection or a new one; latency from each request's *scheduled* time to the end "
      "of its response (so neither a late generator nor a slow server hides time); a fresh server per queue "
      "capacity, after a 2 s wrk warm-up")
    w("")
    w("## Capacity (closed loop, wrk)")
    w("")
    w("| connections | 2xx/s | p50 | p90 | p99 | max | non-2xx | compute mean (gateway) | worker CPU per request | worker waiting for a CPU per request | queue wait p99 (gateway) |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sweep:
        mark = " **(knee)**" if r is knee else ""
        w(f"| {r['conns']}{mark} | {r['ok_rps']:.1f} | {c.fmt_us(r['p50_us'])} | {c.fmt_us(r['p90_us'])} | "
          f"{c.fmt_us(r['p99_us'])} | {c.fmt_us(r['max_us'])} | {r['non2xx']} | "
          f"{c.fmt_s(r['server']['compute_mean_s'])} | {c.fmt_s(r['worker_cpu'])} | {c.fmt_s(r['worker_wait'])} | "
          f"{c.fmt_s(r['server']['queue_p99_s'])} |")
    w("")
    w("Compute mean: the gateway's `switchyard_compute_duration_seconds` (wall time of the ONNX Runtime call). "
      f"Worker CPU / waiting: from `/proc/PID/task/TID/schedstat` of the `{WORKER}-0` thread over the run, per "
      "request answered: time it ran on a CPU, and time it was runnable but waiting for one (the share of the "
      "compute wall time this machine's other load took).")
    if any(r["non2xx"] for r in sweep):
        w("")
        w("Non-2xx in the sweep are 503s (queue full) at connection counts near `queue_capacity`: the worker "
          "answers a request, then goes back for the next job; if the answered client's next request arrives "
          "before the worker has taken the next job off the queue (easily, when the worker thread is preempted "
          "on a loaded machine), it finds the queue full and gets a 503 — and wrk's closed loop re-sends at "
          "once, so one such window can produce many 503s. Those runs' throughput counts only the 2xx.")
    w("")
    compute = statistics.median([r["server"]["compute_mean_s"] for r in sweep if r["server"]["compute_mean_s"]])
    w(f"Capacity: **{capacity:.1f} req/s** (best of the sweep); knee at **{knee['conns']} connection(s)**, "
      f"whose p99 is the reference: **{c.fmt_us(knee['p99_us'])}**. The model's compute time here "
      f"(gateway's `switchyard_compute_duration_seconds`, median of the runs' means): "
      f"{c.fmt_s(compute)} — on this loaded machine it is not the ~20 ms it takes on a quiet core. "
      f"The sweep's server exited with {sweep_exit}.")
    w("")
    verdicts, failures = [], []
    sums = [(run, summarize(run, knee["p99_us"])) for run in runs]
    w(f"## Overload (open loop at {args.factor:g} × capacity = {runs[0]['rate']:.1f} req/s offered)")
    w("")
    w("| queue_capacity | sent | 200 | 503 | shed share | other / conn. errors | goodput (200/s) | accepted p50 | accepted p99 | accepted p99 after 5 s | accepted max | **p99 / p99 at capacity** | 503 p50 | 503 p99 | 503 with `Retry-After: 1` | max queue depth seen (gauge) | gateway cores |")
    w("|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for run, s in sums:
        w(f"| {run['q']} | {s['n']} | {s['ok']} | {s['shed']} | {s['shed'] / s['n'] * 100:.1f}% | "
          f"{len(s['other'])} / {len(s['errors'])} | {s['goodput']:.1f} | {c.fmt_s(s['ok_p50'])} | "
          f"{c.fmt_s(s['ok_p99'])} | {c.fmt_s(s['ok_p99_steady'])} | {c.fmt_s(s['ok_max'])} | "
          f"**{s['ratio']:.2f}** | {c.fmt_s(s['shed_p50'])} | {c.fmt_s(s['shed_p99'])} | "
          f"{s['with_ra']} / {s['shed']} | {run['max_depth']:.0f} | {run['cores']:.2f} |")
    w("")
    for i, (run, s) in enumerate(sums):
        head = "headline" if i == 0 else "comparison"
        ok = s["ratio"] is not None and s["ratio"] <= 2.0
        if i == 0:
            verdicts.append((f"q={run['q']}: accepted p99 / p99 at capacity = {s['ratio']:.2f} (target <= 2)", ok))
        w(f"- queue_capacity {run['q']} ({head}): accepted p99 {c.fmt_s(s['ok_p99'])} = **{s['ratio']:.2f} ×** the "
          f"p99 at capacity; target ≤ 2×: **{'met' if ok else 'NOT met'}**. "
          f"{s['shed'] / s['n'] * 100:.1f}% shed with 503 (expected about {(1 - 1 / args.factor) * 100:.0f}% at "
          f"{args.factor:g}× capacity), goodput {s['goodput']:.1f}/s = {s['goodput'] / capacity * 100:.0f}% of capacity; "
          f"a 503 came back in p50 {c.fmt_s(s['shed_p50'])}, p99 {c.fmt_s(s['shed_p99'])}, max {c.fmt_s(s['shed_max'])} "
          f"from its scheduled time (from the moment it was actually written: p50 {c.fmt_s(s['shed_svc_p50'])}, "
          f"p99 {c.fmt_s(s['shed_svc_p99'])}; the difference is the generator's own lateness).")
        if s["with_ra"] != s["shed"]:
            failures.append(f"q={run['q']}: {s['shed'] - s['with_ra']} of {s['shed']} 503s lacked `Retry-After: 1` "
                            f"(values seen: {s['retry_after_values']})")
        if s["other"]:
            failures.append(f"q={run['q']}: {len(s['other'])} responses neither 200 nor 503: "
                            f"{sorted(set(s['other']))}")
        if s["errors"]:
            failures.append(f"q={run['q']}: {len(s['errors'])} connection errors or timeouts, e.g. {s['errors'][:3]}")
    w("")
    w("Expected shape: with one session of compute time S and a queue of Q, an accepted request waits for at "
      "most Q requests ahead of it plus the one being computed, so under sustained overload (the queue "
      "always nearly full) its latency approaches (Q + 1) × S, while closed-loop wrk at the knee sees about "
      "knee × S. The ratio is therefore about (Q + 1) / knee, set by `queue_capacity` and not by the "
      "gateway's own overhead: a 2× target needs Q + 1 ≤ 2 × knee. Here, with the knee at "
      f"{knee['conns']} connection(s) and S ≈ {compute * 1e3:.0f} ms (the median compute mean above):")
    w("")
    for run, s in sums:
        w(f"- Q = {run['q']}: (Q+1)·S ≈ {(run['q'] + 1) * compute * 1e3:.0f} ms, expected ratio ≈ "
          f"{(run['q'] + 1) / knee['conns']:.1f}; measured accepted p50 {c.fmt_s(s['ok_p50'])}, p99 "
          f"{c.fmt_s(s['ok_p99'])}, ratio {s['ratio']:.2f}.")
    w("")
    w("## Generator and gateway checks")
    w("")
    w("| queue_capacity | connections opened | stale keep-alive retries | send lag p99 / max | gateway 200 / 503 (counters) | worker CPU / waiting per 200 | ready after | request after | queue depth after | RSS after | threads after | exit on SIGTERM |")
    w("|---:|---:|---:|---|---|---|---|---|---:|---:|---:|---:|")
    for run, s in sums:
        h, res, by = run["health"], run["res"], run["server"]["by_status"]
        w(f"| {run['q']} | {res.connections_opened} | {res.stale_retries} | {c.fmt_s(s['lag_p99'])} / "
          f"{c.fmt_s(s['lag_max'])} | {by.get('200', 0):.0f} / {by.get('503', 0):.0f} | "
          f"{c.fmt_s(run['worker_cpu'])} / {c.fmt_s(run['worker_wait'])} | {h['ready']} | "
          f"{h['infer']} (v{h.get('infer_version')}) | {h['queue_depth']:.0f} | {h['proc']['rss_kib'] / 1024:.1f} MiB | "
          f"{h['proc']['threads']} | {h['exit']} |")
        if h["ready"] != 200 or h["infer"] != 200 or h["queue_depth"] != 0 or h["exit"] != 0:
            failures.append(f"q={run['q']}: unhealthy afterwards: ready {h['ready']}, request {h['infer']}, "
                            f"queue depth {h['queue_depth']}, exit {h['exit']}")
        if by.get("503", 0) != s["shed"] or by.get("200", 0) != s["ok"]:
            w("")
            w(f"  (q={run['q']}: the gateway's counters and the client's tallies differ: "
              f"{by} vs 200={s['ok']} 503={s['shed']})")
    w("")
    w("Queue depth (gauge): the highest `switchyard_queue_depth` seen by scraping every 0.25 s during the run; "
      "the gateway sets it when it answers a request, to the number waiting at that moment. After: scraped "
      "right after the health request was answered.")
    w("")
    w("Send lag: how late the generator issued requests against their schedule (its own CPU starvation); "
      "it is included in every latency above. The gateway's counters are `switchyard_requests_total` over "
      "the run and should equal the client's tallies.")
    w("")
    if failures:
        w("## FAILED")
        w("")
        for f in failures:
            w(f"- {f}")
        w("")
    verdicts.append(("health after overload, 503s with Retry-After, no other statuses", not failures))
    w("## Every 5 seconds (headline run)")
    w("")
    run, s = sums[0]
    res = run["res"]
    w("| seconds | sent | 200 | 503 | accepted p99 | 503 p99 |")
    w("|---:|---:|---:|---:|---:|---:|")
    step = 5
    for t in range(0, int(res.duration), step):
        idx = [i for i, x in enumerate(res.sched) if t <= x < t + step]
        ok = [res.latency[i] for i in idx if res.status[i] == 200]
        sh = [res.latency[i] for i in idx if res.status[i] == 503]
        w(f"| {t}–{t + step} | {len(idx)} | {len(ok)} | {len(sh)} | {c.fmt_s(c.percentile(ok, 99))} | "
          f"{c.fmt_s(c.percentile(sh, 99))} |")
    w("")
    return "\n".join(L), verdicts, failures


if __name__ == "__main__":
    main()
