#!/usr/bin/env python3
"""Soak benchmark (`make bench-soak`): SOAK_SECONDS (default 600) of steady load with a config
reload every SOAK_RELOAD_EVERY (default 30) seconds; does memory stay flat and does every request
succeed?

One gateway serves `mlp` (version 1 champion, version 2 challenger; lineage on, as in
production) under an open-loop generator at SOAK_RATE requests per second (default 200: moderate
for mlp, which serves thousands per second here). Every 30 s a thread rewrites the config with
version 2's weight changed and calls POST {admin}/admin/reload. Every 5 s: the server's resident
memory (VmRSS from /proc/PID/status), threads, open fds, and its request counters.

Reported: unexpected errors (any non-2xx answer or failed connection: must be zero), RSS at start
(before load), after warm-up (the first sample at or after 60 s) and at the end, the slope of RSS
(MB per minute, least squares over the samples after the first minute), requests served, reloads
done (ok / refused), latency per minute, and an SVG plot of RSS (benches/results/soak-rss.svg).
The bench writes its results, then exits non-zero on any error or refused reload.

Writes benches/results/soak.md and prints it. Stdlib only. Options and environment:
  SWITCHYARD_BIN=path      use this binary instead of building target/release/switchyard
  SOAK_SECONDS=600         SOAK_RATE=200         SOAK_RELOAD_EVERY=30    SOAK_SAMPLE_EVERY=5
"""

import argparse
import datetime
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "soak"
PATH = "/v2/models/mlp/infer"
V2_WEIGHTS = [20, 10, 30, 15, 25, 5, 40]
WARMUP_S = 60.0


def config_toml(store, v2_weight):
    return c.config_head("soak.py", store, lineage=True) + f"""
[[model]]
name = "mlp"
[model.engine]
instances = 1
[model.routing]
champion = 1
challengers = {{ 2 = {v2_weight} }}
"""


class Watcher(threading.Thread):
    """Samples the server every `sample_every` s and reloads it every `reload_every` s."""

    def __init__(self, server, store, t0, seconds, sample_every, reload_every):
        super().__init__(daemon=True)
        self.server, self.store, self.t0, self.seconds = server, store, t0, seconds
        self.sample_every, self.reload_every = sample_every, reload_every
        self.stop_event = threading.Event()
        self.samples = []  # dicts: t, rss_kib, threads, fds, requests, non200
        self.reloads = []  # (t, v2 weight, HTTP status, seconds the call took)
        self.failure = None

    def sample(self):
        t = time.monotonic() - self.t0
        ps = self.server.proc_status()
        m = self.server.metrics()
        ps["t"] = t
        ps["requests"] = c.metric_sum(m, "switchyard_requests_total", model="mlp")
        ps["non200"] = sum(v for (n, l), v in m.items()
                           if n == "switchyard_requests_total" and dict(l).get("status") != "200")
        ps["lineage_written"] = c.metric_sum(m, "switchyard_lineage_records_written_total")
        self.samples.append(ps)

    def run(self):
        try:
            next_sample = self.sample_every
            next_reload = self.reload_every
            i = 1
            while not self.stop_event.is_set():
                now = time.monotonic() - self.t0
                if now >= next_reload and now < self.seconds:
                    weight = V2_WEIGHTS[i % len(V2_WEIGHTS)]
                    i += 1
                    c.write_atomic(self.server.config_path, config_toml(self.store, weight))
                    t1 = time.monotonic()
                    status, doc = self.server.reload("bench-soak")
                    self.reloads.append((now, weight, status, time.monotonic() - t1))
                    if status != 200:
                        c.log(f"reload answered {status}: {doc}")
                    next_reload += self.reload_every
                if now >= next_sample:
                    self.sample()
                    next_sample += self.sample_every
                    if not self.server.alive():
                        self.failure = "the server exited"
                        return
                self.stop_event.wait(max(0.01, min(next_sample, next_reload) - (time.monotonic() - self.t0)))
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.failure = f"{type(e).__name__}: {e}"

    def finish(self):
        self.stop_event.set()
        self.join(timeout=60)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"), help="switchyard binary (skips the build)")
    p.add_argument("--seconds", type=int, default=c.env_default("SOAK_SECONDS", 600, int))
    p.add_argument("--rate", type=float, default=c.env_default("SOAK_RATE", 200.0, float))
    p.add_argument("--reload-every", type=float, default=c.env_default("SOAK_RELOAD_EVERY", 30.0, float))
    p.add_argument("--sample-every", type=float, default=c.env_default("SOAK_SAMPLE_EVERY", 5.0, float))
    p.add_argument("--out", default=str(c.RESULTS / "soak.md"))
    p.add_argument("--svg", default=None, help="default: soak-rss.svg beside --out")
    args = p.parse_args()
    svg_path = Path(args.svg) if args.svg else Path(args.out).with_name(Path(args.out).stem + "-rss.svg")
    binary, binary_desc, ort, env = c.start_bench("bench-soak", args.bin, WORK, wrk=False)
    store = c.register(binary, env, WORK / "store", [("mlp", f"mlp_v{v}", v) for v in (1, 2)])
    mach = c.machine()
    started = datetime.datetime.now(datetime.timezone.utc)
    cfg = WORK / "gateway.toml"
    cfg.write_text(config_toml(store, V2_WEIGHTS[0]))
    server = c.Server(binary, "soak", cfg, WORK, env)
    server.check_infer("mlp")
    start_proc = server.proc_status()
    c.log(f"server pid {server.pid} at {server.public}; {args.rate:g} req/s for {args.seconds} s, a reload "
          f"every {args.reload_every:g} s; RSS at start {start_proc['rss_kib'] / 1024:.1f} MiB")

    t0 = time.monotonic()
    watcher = Watcher(server, store, t0, args.seconds, args.sample_every, args.reload_every)
    watcher.sample()
    watcher.samples[0]["t"] = 0.0
    watcher.start()
    last_log = [0.0]

    def progress(res):
        now = time.monotonic() - t0
        if now - last_log[0] >= 60:
            last_log[0] = now
            bad = sum(1 for s in res.status if s != 200)
            rss = watcher.samples[-1]["rss_kib"] / 1024 if watcher.samples else 0
            c.log(f"{now:5.0f} s: {len(res)} answered, {bad} not 200; RSS {rss:.1f} MiB; "
                  f"{sum(1 for r in watcher.reloads if r[2] == 200)} reloads ok")

    res = c.open_loop(server.host, server.port, PATH, c.BODY, args.rate, args.seconds, timeout=10.0,
                      progress=progress)
    watcher.finish()
    if watcher.failure:
        c.die(f"the sampling/reload thread failed: {watcher.failure}\n{server.stderr_tail()}")
    watcher.sample()  # the end
    elapsed = time.monotonic() - t0
    health = {"ready": server.ready_status()}
    try:
        health["infer"] = server.request("POST", server.public + PATH, c.BODY)[0]
    except OSError as e:
        health["infer"] = f"error: {e}"
    (WORK / "metrics-end.txt").write_text(server.metrics_text())
    final = server.metrics()
    health["exit"] = server.stop()
    mach["load_end"] = c.loadavg()
    finished = datetime.datetime.now(datetime.timezone.utc)
    (WORK / "raw.json").write_text(json.dumps({
        "samples": watcher.samples, "reloads": watcher.reloads, "start": start_proc, "health": health,
        "sched": res.sched, "latency": res.latency, "status": res.status, "send_lag": res.send_lag,
        "errors": res.errors, "connections_opened": res.connections_opened}))
    svg = rss_svg(watcher.samples, watcher.reloads, args.seconds)
    svg_path.parent.mkdir(parents=True, exist_ok=True)
    svg_path.write_text(svg)
    text, verdicts, failures = report(args, mach, binary_desc, ort, res, watcher, start_proc, final, health,
                                      elapsed, svg_path, Path(args.out), started, finished)
    c.write_results(args.out, text)
    c.log(f"wrote {c.rel(svg_path)}")
    for line, ok in verdicts:
        c.log(("ok:      " if ok else "WARNING: ") + line)
    if failures:
        c.die("the soak found problems:\n  " + "\n  ".join(failures))


def rss_fit(samples, seconds):
    """(slope MB/min, intercept MB, fitted samples) over the samples after the warm-up."""
    cut = WARMUP_S if seconds >= 2 * WARMUP_S else seconds / 4
    pts = [(s["t"] / 60, s["rss_kib"] / 1024) for s in samples if s["t"] >= cut]
    fit = c.linear_fit([x for x, _ in pts], [y for _, y in pts])
    return fit, cut, pts


STEP_MIB = 1.0


def rss_steps(samples, res, cut):
    """Rises of more than STEP_MIB between consecutive samples after `cut`, with context."""
    out = []
    for i in range(1, len(samples)):
        a, b = samples[i - 1], samples[i]
        rise = (b["rss_kib"] - a["rss_kib"]) / 1024
        if a["t"] < cut or rise <= STEP_MIB:
            continue
        t0, t1 = a["t"], b["t"]
        idx = [k for k, x in enumerate(res.sched) if t0 - 5 <= x < t1]
        near = [x["fds"] or 0 for x in samples if t0 - 10 <= x["t"] <= t1 + 10]
        out.append({"t": t1, "rise": rise, "fds0": a["fds"], "fds1": b["fds"], "fds_max": max(near) if near else None,
                    "lag": max(res.send_lag[max(0, int((t0 - 5) * res.rate)):int(t1 * res.rate)], default=None),
                    "slowest": max((res.latency[k] for k in idx), default=None)})
    return out


def rss_fit_late(samples, seconds):
    """(slope MiB/min, intercept) over the second half of the run: a step early on (a burst of
    connections, the lineage page cache filling) weighs on the whole-run fit; a leak keeps rising."""
    pts = [(s["t"] / 60, s["rss_kib"] / 1024) for s in samples if s["t"] >= seconds / 2]
    return c.linear_fit([x for x, _ in pts], [y for _, y in pts]), len(pts)


def rss_svg(samples, reloads, seconds):
    """A hand-written SVG: RSS (MiB) over time, reloads as ticks, the fitted line dashed."""
    W, H, ml, mr, mt, mb = 720, 300, 60, 20, 42, 45
    pw, ph = W - ml - mr, H - mt - mb
    ts = [s["t"] for s in samples]
    ys = [s["rss_kib"] / 1024 for s in samples]
    tmax = max(max(ts), seconds, 1.0)
    lo, hi = min(ys), max(ys)
    pad = max(1.0, (hi - lo) * 0.15)
    lo, hi = max(0.0, lo - pad), hi + pad
    X = lambda t: ml + pw * t / tmax  # noqa: E731
    Y = lambda y: mt + ph * (1 - (y - lo) / (hi - lo))  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="11">',
           f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>',
           f'<text x="{ml}" y="16" font-size="13">switchyard resident memory (VmRSS, MiB) during the soak</text>',
           f'<text x="{ml}" y="31" font-size="10" fill="#555">blue: samples; ticks on the axis: config reloads '
           '(green ok, red refused); red dashed: least-squares fit after the warm-up</text>']
    # grid and axes
    step = nice_step(hi - lo, 5)
    y = (int(lo / step) + 1) * step
    while y < hi:
        out.append(f'<line x1="{ml}" y1="{Y(y):.1f}" x2="{ml + pw}" y2="{Y(y):.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{ml - 6}" y="{Y(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
        y += step
    tstep = nice_step(tmax / 60, 10) * 60
    t = 0.0
    while t <= tmax + 1e-9:
        out.append(f'<line x1="{X(t):.1f}" y1="{mt + ph}" x2="{X(t):.1f}" y2="{mt + ph + 4}" stroke="black"/>')
        out.append(f'<text x="{X(t):.1f}" y="{mt + ph + 16}" text-anchor="middle">{t / 60:g}</text>')
        t += tstep
    out.append(f'<text x="{ml + pw / 2}" y="{H - 8}" text-anchor="middle">minutes</text>')
    out.append(f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{mt + ph}" stroke="black"/>')
    out.append(f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" stroke="black"/>')
    for r in reloads:
        colour = "#2a7" if r[2] == 200 else "#d22"
        out.append(f'<line x1="{X(r[0]):.1f}" y1="{mt + ph - 8}" x2="{X(r[0]):.1f}" y2="{mt + ph}" stroke="{colour}"/>')
    fit, cut, _ = rss_fit(samples, seconds)
    out.append(f'<line x1="{X(cut):.1f}" y1="{mt}" x2="{X(cut):.1f}" y2="{mt + ph}" stroke="#bbb" '
               'stroke-dasharray="2,3"/>')
    out.append(f'<text x="{X(cut) + 3:.1f}" y="{mt + 10}" fill="#888">warm-up ends</text>')
    pts = " ".join(f"{X(t):.1f},{Y(y):.1f}" for t, y in zip(ts, ys))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f5fbf" stroke-width="1.5"/>')
    if fit:
        slope, icpt = fit
        x0, x1 = cut, tmax
        out.append(f'<line x1="{X(x0):.1f}" y1="{Y(icpt + slope * x0 / 60):.1f}" x2="{X(x1):.1f}" '
                   f'y2="{Y(icpt + slope * x1 / 60):.1f}" stroke="#c33" stroke-dasharray="6,4"/>')
        out.append(f'<text x="{ml + pw - 4}" y="{mt + ph - 14}" text-anchor="end" fill="#c33">'
                   f'slope {slope:+.3f} MiB/min</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def nice_step(span, n):
    raw = max(span, 1e-9) / n
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def report(args, mach, binary_desc, ort, res, watcher, start_proc, final, health, elapsed, svg_path, out_path,
           started, finished):
    L = []
    w = L.append
    S = watcher.samples
    ok_idx = res.where(lambda s: s == 200)
    bad = [(res.sched[i], res.status[i]) for i in res.where(lambda s: s is not None and s != 200)]
    errors = res.errors
    reload_ok = sum(1 for r in watcher.reloads if r[2] == 200)
    reload_refused = sum(1 for r in watcher.reloads if r[2] == 422)
    reload_other = len(watcher.reloads) - reload_ok - reload_refused
    m_ok = c.metric_sum(final, "switchyard_config_reloads_total", result="ok")
    m_err = c.metric_sum(final, "switchyard_config_reloads_total", result="error")
    server_non200 = S[-1]["non200"]
    fit, cut, pts = rss_fit(S, args.seconds)
    warm = next((s for s in S if s["t"] >= cut), S[-1])
    rss = lambda s: s["rss_kib"] / 1024  # noqa: E731
    lat = [res.latency[i] for i in ok_idx]
    failures = []
    if bad:
        failures.append(f"{len(bad)} non-200 answers, e.g. {bad[:5]}")
    if errors:
        failures.append(f"{len(errors)} connection errors or timeouts, e.g. {errors[:3]}")
    if server_non200:
        failures.append(f"the gateway counted {server_non200:.0f} non-200 answers")
    if reload_refused or reload_other:
        failures.append(f"{reload_refused} reloads refused and {reload_other} answered otherwise")
    if health["ready"] != 200 or health["infer"] != 200 or health["exit"] != 0:
        failures.append(f"afterwards: ready {health['ready']}, request {health['infer']}, exit {health['exit']}")

    span = f"{args.seconds // 60} minutes" if args.seconds % 60 == 0 else f"{args.seconds} seconds"
    w(f"# Soak: {span} of steady load with a config reload every {args.reload_every:g} s")
    w("")
    w("Generated by `make bench-soak` (`benches/soak.py`); see `benches/README.md`.")
    w("")
    L.extend(c.machine_lines(mach, binary_desc, ort, started, finished,
                             f"open-loop asyncio generator in `benches/common.py`, Python {mach['python']}"))
    w("## Setup")
    w("")
    w("- one gateway: model `mlp` (input [1,64] FP32), `champion = 1`, `challengers = { 2 = w }`, "
      "`[model.engine] instances = 1`, `[lineage] enabled = true` (every request's lineage record written to "
      "the store's SQLite database, as in production), every other key at its default")
    w(f"- load: open loop at {args.rate:g} requests/s (evenly spaced, keep-alive connections, a new one when none "
      f"is idle) for {args.seconds} s — moderate for mlp, which serves thousands per second on this machine")
    w(f"- every {args.reload_every:g} s: the config file rewritten (atomically) with version 2's weight taken "
      f"from {V2_WEIGHTS} %, then `POST /admin/reload`")
    w(f"- every {args.sample_every:g} s: VmRSS, threads (/proc/PID/status), open fds (/proc/PID/fd), and the "
      "admin port's `switchyard_requests_total`")
    w("")
    w("## Results")
    w("")
    zero = not bad and not errors and not server_non200
    w(f"- unexpected errors: **{len(bad)} non-200 answers, {len(errors)} connection errors/timeouts** "
      f"(gateway's counters: {server_non200:.0f} non-200). Target 0: **{'met' if zero else 'NOT met'}**.")
    w(f"- requests served: **{len(ok_idx)}** answered 200 of {len(res)} sent ({len(ok_idx) / elapsed:.1f}/s over "
      f"{elapsed:.0f} s); the gateway counted {S[-1]['requests']:.0f} mlp requests (the check request included); "
      f"lineage records written: {S[-1]['lineage_written']:.0f}")
    hname = "switchyard_request_duration_seconds"
    g99 = c.histogram_quantile(final, hname, 0.99, model="mlp")
    g999 = c.histogram_quantile(final, hname, 0.999, model="mlp")
    slow_half = c.metric_sum(final, hname + "_count", model="mlp") - sum(
        v for le, v in c.histogram_buckets(final, hname, model="mlp") if le == 0.5)
    w(f"- latency of the 200s (from each request's scheduled time): p50 {c.fmt_s(c.percentile(lat, 50))}, "
      f"p99 {c.fmt_s(c.percentile(lat, 99))}, p99.9 {c.fmt_s(c.percentile(lat, 99.9))}, max "
      f"{c.fmt_s(max(lat) if lat else None)}. Inside the gateway (`{hname}`, from the request read to its "
      f"response): p99 {c.fmt_s(g99)}, p99.9 {c.fmt_s(g999)}, {slow_half:.0f} request(s) over 0.5 s. The "
      f"generator sent late by p99 {c.fmt_s(c.percentile(res.send_lag, 99))}, max "
      f"{c.fmt_s(max(res.send_lag) if res.send_lag else None)}, and opened {res.connections_opened} connections "
      "(a new one whenever every open one was waiting for an answer)")
    took = sorted(r[3] for r in watcher.reloads)
    w(f"- reloads: **{reload_ok} ok, {reload_refused} refused** ({reload_other} other) by `POST /admin/reload`; "
      f"`switchyard_config_reloads_total` at the end: ok {m_ok:.0f}, error {m_err:.0f} (the file watcher's own "
      f"reloads included); the admin call took p50 {c.fmt_s(c.percentile(took, 50))}, max "
      f"{c.fmt_s(took[-1] if took else None)}")
    w("")
    w("| RSS | MiB | threads | open fds |")
    w("|---|---:|---:|---:|")
    w(f"| at start (serving, before load) | {start_proc['rss_kib'] / 1024:.1f} | {start_proc['threads']} | "
      f"{start_proc['fds']} |")
    w(f"| after warm-up (t = {warm['t']:.0f} s) | {rss(warm):.1f} | {warm['threads']} | {warm['fds']} |")
    w(f"| at the end (t = {S[-1]['t']:.0f} s) | {rss(S[-1]):.1f} | {S[-1]['threads']} | {S[-1]['fds']} |")
    w(f"| highest sample | {max(rss(s) for s in S):.1f} | {max(s['threads'] for s in S)} | "
      f"{max(s['fds'] or 0 for s in S)} |")
    w("")
    if fit:
        slope = fit[0]
        per_req = slope * 1024 * 1024 / (args.rate * 60)
        w(f"- **RSS slope after warm-up: {slope:+.3f} MiB per minute** (least squares over the {len(pts)} samples "
          f"from t = {cut:.0f} s); at {args.rate:g} req/s that would be {per_req:+.1f} bytes per request. "
          f"End − after warm-up: {rss(S[-1]) - rss(warm):+.1f} MiB over {(S[-1]['t'] - warm['t']) / 60:.1f} min.")
    else:
        w("- RSS slope: not enough samples after the warm-up to fit a line")
    late, n_late = rss_fit_late(S, args.seconds)
    if late:
        w(f"- RSS slope over the second half of the run (t ≥ {args.seconds / 2:.0f} s, {n_late} samples): "
          f"**{late[0]:+.3f} MiB per minute**. A leak shows in both slopes; a one-off step (a burst of connections "
          "during a stall, SQLite's page cache filling) only in the first.")
    if len(S) > 1:
        jump, at = max(((S[i]["rss_kib"] - S[i - 1]["rss_kib"]) / 1024, S[i]["t"]) for i in range(1, len(S)))
        near = [s for s in S if abs(s["t"] - at) <= 15]
        w(f"- largest rise between two samples: {jump:+.1f} MiB at t = {at:.0f} s (open fds around then: "
          f"{', '.join(str(s['fds']) for s in near)})")
    steps = rss_steps(S, res, cut)
    if steps:
        stepped = sum(st["rise"] for st in steps)
        total = rss(S[-1]) - rss(warm)
        w(f"- after the warm-up, {stepped:+.1f} MiB of the {total:+.1f} MiB came in {len(steps)} step(s) of more than "
          f"{STEP_MIB:g} MiB between two samples, the rest ({total - stepped:+.1f} MiB) gradually. Each step, with "
          "what the server and the generator were doing in the 5 s before it:")
        w("")
        w("| t | RSS rise | open fds (previous → this sample) | generator send lag max | slowest answer scheduled in the interval |")
        w("|---:|---:|---|---:|---:|")
        for st in steps:
            w(f"| {st['t']:.0f} s | {st['rise']:+.1f} MiB | {st['fds0']} → {st['fds1']} (max nearby {st['fds_max']}) | "
              f"{c.fmt_s(st['lag'])} | {c.fmt_s(st['slowest'])} |")
        w("")
        w("  A step that comes with a jump in open fds and a late generator is a burst of connections: the "
          "generator (or the server) stalled, requests piled up, each went out on a new connection, and the "
          "memory those connections used stays with the process after they close (the allocator keeps it). "
          "A leak would rise with requests or reloads, between steps too.")
    w(f"- plot: [`{svg_path.name}`]({os.path.relpath(svg_path, out_path.parent)})")
    w("")
    w(f"![RSS over the soak]({os.path.relpath(svg_path, out_path.parent)})")
    w("")
    if failures:
        w("## FAILED")
        w("")
        for f in failures:
            w(f"- {f}")
        w("")
    w(f"Afterwards: /v2/health/ready {health['ready']}, one request {health['infer']}; exit on SIGTERM "
      f"{health['exit']}.")
    w("")
    w("## Per minute")
    w("")
    w("| minute | sent | 200 | other | p50 | p99 | max | generator send lag max | RSS at end of minute | threads | fds (max of the minute's samples) | reloads (ok) |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in range(0, int(-(-args.seconds // 60))):
        idx = [i for i, x in enumerate(res.sched) if m * 60 <= x < (m + 1) * 60]
        ok = [res.latency[i] for i in idx if res.status[i] == 200]
        last = [s for s in S if s["t"] <= (m + 1) * 60 + 0.5]
        s = last[-1] if last else S[0]
        rl = [r for r in watcher.reloads if m * 60 <= r[0] < (m + 1) * 60]
        lag = [res.send_lag[i] for i in range(min(len(res.send_lag), (m + 1) * int(args.rate * 60)))
               if i >= m * int(args.rate * 60)]
        fds = [x["fds"] or 0 for x in S if m * 60 < x["t"] <= (m + 1) * 60 + 0.5]
        w(f"| {m + 1} | {len(idx)} | {len(ok)} | {len(idx) - len(ok)} | {c.fmt_s(c.percentile(ok, 50))} | "
          f"{c.fmt_s(c.percentile(ok, 99))} | {c.fmt_s(max(ok) if ok else None)} | "
          f"{c.fmt_s(max(lag) if lag else None)} | {rss(s):.1f} MiB | "
          f"{s['threads']} | {max(fds) if fds else s['fds']} | {len(rl)} ({sum(1 for r in rl if r[2] == 200)}) |")
    w("")
    w("## RSS samples")
    w("")
    w("Seconds: MiB, every sample (" + f"{len(S)}" + "):")
    w("")
    w("```")
    line = []
    for s in S:
        line.append(f"{s['t']:.0f}:{rss(s):.1f}")
        if len(line) == 10:
            w("  ".join(line))
            line = []
    if line:
        w("  ".join(line))
    w("```")
    w("")
    verdicts = [("no unexpected errors", zero), ("no refused reloads", not (reload_refused or reload_other))]
    if fit:
        verdicts.append((f"RSS slope {fit[0]:+.3f} MiB/min after warm-up", True))
    if late:
        verdicts.append((f"RSS slope {late[0]:+.3f} MiB/min over the second half", True))
    return "\n".join(L), verdicts, failures


if __name__ == "__main__":
    main()
