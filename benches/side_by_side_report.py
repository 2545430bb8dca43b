"""Report for the side-by-side bench (benches/side_by_side.py): the markdown results file and
the SVG plot of throughput against p99."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402
from side_by_side_servers import ALL_PEERS, BATCH_MAX, MODELS  # noqa: E402

# --------------------------------------------------------------------------------------------
# SVG plot: throughput (x) against p99 (y), one panel per model, one line per server


COLORS = {"switchyard": "#d62728", "bare": "#7f7f7f", "mlserver": "#1f77b4", "kserve": "#2ca02c",
          "triton": "#9467bd", "switchyard lineage off": "#e377c2", "switchyard workers": "#bcbd22", "switchyard batch off": "#ff7f0e", "switchyard batch on": "#8b0000",
          "inproc": "#000000"}


def tick(v):
    return f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"


def svg_plot(res, panels, title):
    W, H, ML, MR, MT, MB = 440, 360, 62, 12, 34, 46
    total_w = W * len(panels)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{H + 70}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{total_w}" height="{H + 70}" fill="white"/>',
           f'<text x="10" y="16" font-size="13" font-weight="bold">{title}</text>']
    legend = []
    for i, (model, servers, ptitle, limits) in enumerate(panels):
        x0 = i * W
        pts = [(srv, [p for p in res.series(model, srv, "wrk (JSON)") if p["rps"] > 0 and p["p99_us"] > 0])
               for srv in servers]
        pts = [(s, ps) for s, ps in pts if ps]
        allp = [p for _, ps in pts for p in ps]
        if not allp:
            continue
        xs = [p["rps"] for p in allp] + [x for _, x in limits if x > 0]
        ys = [p["p99_us"] / 1000 for p in allp]
        lx0, lx1 = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)) + 1e-9)
        ly0, ly1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)) + 1e-9)
        lx1, ly1 = max(lx1, lx0 + 1), max(ly1, ly0 + 1)
        pw, ph = W - ML - MR, H - MT - MB

        def X(v):
            return x0 + ML + (math.log10(v) - lx0) / (lx1 - lx0) * pw

        def Y(v):
            return MT + 20 + ph - (math.log10(v) - ly0) / (ly1 - ly0) * ph

        out.append(f'<text x="{x0 + ML}" y="{MT + 12}" font-weight="bold">{ptitle}</text>')
        out.append(f'<rect x="{x0 + ML}" y="{MT + 20}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
        xm = (1, 2, 5) if lx1 - lx0 <= 3 else (1,)
        ym = (1, 2, 5) if ly1 - ly0 <= 3 else (1,)
        for e in range(lx0, lx1 + 1):
            for m in xm:
                v = m * 10 ** e
                if v < 10 ** lx0 or v > 10 ** lx1:
                    continue
                out.append(f'<line x1="{X(v):.1f}" y1="{MT + 20}" x2="{X(v):.1f}" y2="{MT + 20 + ph}" stroke="#ddd"/>')
                out.append(f'<text x="{X(v):.1f}" y="{MT + 34 + ph}" text-anchor="middle">{tick(v)}</text>')
        for e in range(ly0, ly1 + 1):
            for m in ym:
                v = m * 10 ** e
                if v < 10 ** ly0 or v > 10 ** ly1:
                    continue
                out.append(f'<line x1="{x0 + ML}" y1="{Y(v):.1f}" x2="{x0 + ML + pw}" y2="{Y(v):.1f}" stroke="#ddd"/>')
                out.append(f'<text x="{x0 + ML - 4}" y="{Y(v) + 4:.1f}" text-anchor="end">{tick(v)}</text>')
        for j, (label, x) in enumerate(limits):
            if x <= 0:
                continue
            out.append(f'<line x1="{X(x):.1f}" y1="{MT + 20}" x2="{X(x):.1f}" y2="{MT + 20 + ph}" stroke="#000" '
                       'stroke-dasharray="4,3"/>')
            out.append(f'<text x="{X(x) - 3:.1f}" y="{MT + 30 + 11 * j}" text-anchor="end" font-size="9">{label}</text>')
        out.append(f'<text x="{x0 + ML + pw / 2}" y="{MT + 50 + ph}" text-anchor="middle">throughput (req/s, log)</text>')
        out.append(f'<text x="{x0 + 14}" y="{MT + 20 + ph / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 {x0 + 14} {MT + 20 + ph / 2})">p99 latency (ms, log)</text>')
        for srv, ps in pts:
            col = COLORS.get(srv, "#17becf")
            if srv not in legend:
                legend.append(srv)
            path = " ".join(f"{X(p['rps']):.1f},{Y(p['p99_us'] / 1000):.1f}" for p in ps)
            out.append(f'<polyline points="{path}" fill="none" stroke="{col}" stroke-width="1.8"/>')
            for p in ps:
                out.append(f'<circle cx="{X(p["rps"]):.1f}" cy="{Y(p["p99_us"] / 1000):.1f}" r="3" fill="{col}">'
                           f'<title>{srv} c={p["c"]}: {p["rps"]:.0f} req/s, p99 {p["p99_us"] / 1000:.2f} ms</title></circle>')
                out.append(f'<text x="{X(p["rps"]) + 4:.1f}" y="{Y(p["p99_us"] / 1000) - 4:.1f}" font-size="8" '
                           f'fill="{col}">{p["c"]}</text>')
    lx = 10
    for srv in legend:
        col = COLORS.get(srv, "#17becf")
        out.append(f'<rect x="{lx}" y="{H + 44}" width="12" height="4" fill="{col}"/>')
        out.append(f'<text x="{lx + 16}" y="{H + 50}">{srv}</text>')
        lx += 24 + 7 * len(srv)
    out.append(f'<text x="10" y="{H + 66}" font-size="9">wrk, JSON body; small numbers by the points are the '
               'concurrency (connections); dashed: in-process ONNX Runtime, 1 thread (calls/s, or rows/s at batch '
               f'{BATCH_MAX}). Lower right is better.</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Report


def pct(x):
    return "–" if x is None else f"{x:.2f}"


def verdict(ok):
    return "–" if ok is None else ("**met**" if ok else "**missed**")


def report(args, mach, bin_desc, ort, res, ctx, started, finished):
    L = []
    w = L.append
    w("# Side by side: Switchyard, its limits, and its peers")
    w("")
    w("Generated by `make bench` (`benches/side_by_side.py`); see `benches/README.md`. "
      + ("**Smoke run (`BENCH_QUICK=1`): short points, few concurrencies.**" if args.quick else ""))
    w("")
    L.extend(c.machine_lines(mach, bin_desc, ort, started, finished,
                             f"{mach['wrk']}; perf_analyzer from tritonclient 2.51.0"))
    w(f"Each point: a {args.warmup} s warm-up then a {args.duration} s measured run. At each concurrency the servers "
      "ran in an order rotated from level to level. One run, no repetitions: treat single-point differences "
      "of 10–20% as noise. " + ("The load generator runs on the same cores as the server under test."
                                 if c.server_cpus() is None else
                                 "The load generator runs on cores of its own (see placement above)."))
    w("")
    w("## Setup")
    w("")
    if ctx.get("device", "cpu") != "cpu":
        w(f"- **device: `{ctx['device']}`** ({ctx.get('gpu', 'GPU not described')}): Switchyard's models run with "
          f"`[model.engine] device = \"{ctx['device']}\"` (CUDA execution provider) and inproc with "
          f"`--device {ctx['device']}`; ONNX Runtime is the onnxruntime-gpu build. No peers (they run on CPU) and "
          "no memory phase (host RSS says nothing about GPU memory).")
    for name, m in MODELS.items():
        w(f"- **{name}**: {m['what']}")
    w("- **inproc** (`benches/rust/inproc`): threads × own `Session` (graph optimisation level 3, 1 intra-op and "
      "1 inter-op thread, as Switchyard builds them), `run` in a loop; the same threads (1) and batch (1) as "
      "Switchyard's default engine (`instances = 1`, `intra_op_threads = 1`, `max_batch = 1`)")
    w(f"- **bare** (`benches/rust/bare`): hyper 1 + hyper-util auto builder, keep-alive, TCP_NODELAY, "
      f"{ctx['bare_threads']} tokio worker threads (the runtime size Switchyard runs with by default here); reads "
      f"each request body whole and answers Switchyard's own captured response ({ctx.get('bare_bytes', '?')} bytes "
      "of JSON for mlp, plus its `x-model-*` / `x-request-id` headers)")
    w("- **switchyard**: `[lineage] enabled = true` (the default), one `[[model]]` per model with `versions = [1]`, "
      "nothing else set (so `worker_threads`, `instances`, `execution = \"auto\"`, `max_batch`, … at their "
      "defaults: `auto` runs the tiny model inline, one session per server thread, and the encoder on a worker "
      "thread); on the tiny model also **switchyard lineage off** (the same with `[lineage] enabled = false`), to "
      "show what the lineage record costs, and **switchyard workers** (the same with `[model.engine] execution = "
      "\"workers\"`: one worker thread runs the model, the request's thread hands it over) — no target is "
      "judged on either")
    for peer in args.peers:
        w(f"- **{peer}**: " + ctx["peer_desc"].get(peer, "not run"))
    w("- load: wrk (`-t min(2,c) -c c --latency`, a fixed JSON body per model) for every server; "
      "perf_analyzer 2.51 (`--concurrency-range c:c`, binary tensors, `--input-data zero`, "
      f"{args.pa_window_ms} ms windows, ≤ 4 trials, stable when 3 windows' throughput and mean latency are within "
      "300%: a loose criterion, this machine is too noisy for a tight one) where the server answers its "
      "metadata/config calls")
    w("")
    if ctx["peer_fail"]:
        w("Not measured:")
        w("")
        for k, v in ctx["peer_fail"].items():
            w(f"- {k}: {v}")
        w("")
    if res.notes:
        w("Load tool not usable against:")
        w("")
        for (srv, tool), why in sorted(res.notes.items()):
            w(f"- {srv} with {tool}: {why}")
        w("")

    # Targets
    w("## Targets")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")
    for name, measured, ok in ctx["targets"]:
        w(f"| {name} | {measured} | {verdict(ok)} |")
    w("")
    if ctx.get("p99_note"):
        w(ctx["p99_note"])
        w("")

    # Tables
    for model, title in (("mlp", "Tiny model (`mlp`): overhead-bound"),
                         ("encoder", "Medium model (`encoder`): compute-bound"),
                         ("wide", "Batchable model (`wide`): dynamic batching off and on")):
        pts = [p for p in res.points if p["model"] == model]
        if not pts and model not in ctx["inproc"]:
            continue
        w(f"## {title}")
        w("")
        for label, r in ctx["inproc"].get(model, []):
            w(f"- in-process ORT, {label}: **{r['calls_per_s']:.0f} calls/s** ({r['rows_per_s']:.0f} rows/s), "
              f"p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs; CPU {r['cpu_us_per_call']:.0f} µs per call "
              f"({r['cpu_cores']:.2f} cores busy: the rest of the time this one thread waited for a core)")
        w("")
        ref_name = ctx["ratio_ref"].get(model)
        w("| server | load | c | req/s | p50 | p99 | server CPU / req | of which engine | Switchyard÷this req/s | Switchyard÷this p99 |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        order = []
        for p in pts:
            if (p["server"], p["tool"]) not in order:
                order.append((p["server"], p["tool"]))
        order.sort(key=lambda st: (st[1], 0 if st[0].startswith("switchyard") else 1, st[0]))
        for srv, tool in order:
            for p in res.series(model, srv, tool):
                sy = res.get(model, ref_name, tool, p["c"]) if ref_name else None
                r1 = sy["rps"] / p["rps"] if sy and srv != ref_name and p["rps"] else None
                r2 = sy["p99_us"] / p["p99_us"] if sy and srv != ref_name and p["p99_us"] else None
                err = f" ({p['errors']} errors)" if p.get("errors") else ""
                w(f"| {srv} | {tool} | {p['c']} | {p['rps']:.0f}{err} | {c.fmt_us(p['p50_us'])} | {c.fmt_us(p['p99_us'])} | "
                  f"{'–' if not p.get('cpu_us') else '%.0f µs' % p['cpu_us']} | "
                  f"{'–' if not p.get('engine_us') else '%.0f µs' % p['engine_us']} | {pct(r1)} | {pct(r2)} |")
        w("")
        w("Server CPU / req: user + system CPU of the server's whole process tree over the measured run, per "
          "request wrk counted (from /proc); *of which engine*: Switchyard's ONNX Runtime worker threads "
          "(`sy-<model>-v1-0`), the cost comparable with in-process ORT's CPU per call.")
        w("")
        if model == "encoder" and ctx.get("encoder_fractions"):
            w("Throughput as a fraction of in-process ORT (1 thread, batch 1), at each server's best concurrency "
              "(wrk), measured two ways: wall-clock req/s ÷ calls/s (what the target asks; on this shared "
              "machine it mostly measures how much CPU each got from the scheduler — a lone inproc thread "
              "competes with every other runnable thread on the machine), and CPU time (in-process CPU per "
              "call ÷ the server's CPU per request: the share of the server's CPU that is model compute, "
              "i.e. the throughput fraction it would reach on dedicated cores bound by CPU).")
            w("")
            w("| server | best req/s | at c | wall-clock ÷ in-process | CPU: in-process ÷ whole server | CPU: in-process ÷ engine thread |")
            w("|---|---:|---:|---:|---:|---:|")
            for srv, best, conc, frac, cpu_frac, eng_frac in ctx["encoder_fractions"]:
                w(f"| {srv} | {best:.0f} | {conc} | {frac:.3f} | {pct(cpu_frac)} | {pct(eng_frac)} |")
            w("")
    # Memory
    mem = ctx.get("memory")
    if mem:
        w("## Memory: 10 versions of the encoder")
        w("")
        w("One Switchyard serving model `encoder` with versions 1–10 (`encoder_s1..10.onnx`, same architecture, "
          "seeds 1–10), lineage on, defaults otherwise; RSS (`VmRSS`) after every version answered one request.")
        w("")
        w("| | MB |")
        w("|---|---:|")
        w(f"| sum of the 10 artifacts | {mem['artifacts'] / 1e6:.1f} |")
        w(f"| RSS with 10 versions loaded | {mem['rss'] / 1e6:.1f} |")
        w(f"| RSS of a Switchyard with version 1 only (same config otherwise) | {mem['rss1'] / 1e6:.1f} |")
        w(f"| limit: 1.5 × artifacts + 64 MB | {mem['limit'] / 1e6:.1f} |")
        w(f"| RSS ÷ artifacts | {mem['rss'] / mem['artifacts']:.2f} |")
        w("")
    prof = ctx.get("profile")
    if prof:
        w(f"## Where Switchyard's time goes (perf, {prof['what']})")
        w("")
        if prof.get("error"):
            w(prof["error"])
        else:
            w(f"`perf record -F 499 --call-graph dwarf -p PID` on the gateway while wrk ran ({prof.get('samples', '?')} "
              "samples). First every sample sorted by what its call stack was doing (the first matching row, top "
              "down, wins; a syscall counts under the code that made it):")
            w("")
            w("| where | % of samples |")
            w("|---|---:|")
            for name, pc in prof.get("buckets", []):
                w(f"| {name} | {pc:.1f} |")
            w("")
            for key, what in (("handler", "`gateway::http::public::infer` (the request handler, on the I/O threads)"),
                              ("engine", "`gateway::engine::worker::Worker::run` (the engine thread)")):
                if prof.get(key):
                    w(f"Direct callees of {what}, % of all samples:")
                    w("")
                    w("| % | callee |")
                    w("|---:|---|")
                    for name, pc in prof[key]:
                        w(f"| {pc:.1f} | `{name[:120]}` |")
                    w("")
            w("Self time (`perf report --no-children --sort dso,symbol`, the top 25), then by thread and by object:")
            w("")
            w("| self % | object | symbol |")
            w("|---:|---|---|")
            for pc, dso, sym in prof["symbols"]:
                w(f"| {pc:.1f} | `{dso}` | `{sym[:110]}` |")
            w("")
            w("| thread | % of samples |")
            w("|---|---:|")
            for pc, comm in prof["threads"]:
                w(f"| `{comm}` | {pc:.1f} |")
            w("")
            w("| object | % of samples |")
            w("|---|---:|")
            for pc, dso in prof["dsos"]:
                w(f"| `{dso}` | {pc:.1f} |")
            w("")
            if prof.get("inclusive"):
                w("Inclusive time (a function with everything it calls; `perf report --children`, ≥ 1% of samples) of "
                  "the gateway's functions, hyper's dispatcher and socket I/O, SQLite and the allocator:")
                w("")
                w("| incl. % | function |")
                w("|---:|---|")
                for pc, name in prof["inclusive"]:
                    w(f"| {pc:.1f} | `{name[:140]}` |")
                w("")
            if prof.get("summary"):
                w(prof["summary"])
                w("")
    w("## Plot")
    w("")
    w(f"`{ctx['svg_name']}` beside this file: throughput against p99 per server (wrk, JSON), one panel per model.")
    w("")
    w(f"Run time: {ctx['runtime']:.0f} s in all (measuring {ctx['measure_time']:.0f} s).")
    w("")
    return "\n".join(L)


def group_profile(symbols):
    """Buckets of self time by where it is spent (object and symbol name)."""
    buckets = {}
    for pc, dso, sym in symbols:
        s = sym.lower()
        if "kernel" in dso:
            k = "kernel (syscalls, TCP loopback, scheduling)"
        elif "onnxruntime" in dso:
            k = "ONNX Runtime (libonnxruntime.so)"
        elif "libc" in dso:
            k = "libc (memcpy, malloc, …)"
        elif any(x in s for x in ("serde", "json", "ryu", "itoa", "decode", "encode")):
            k = "JSON/v2 encode and decode"
        elif any(x in s for x in ("sqlite", "lineage")):
            k = "lineage (SQLite)"
        elif any(x in s for x in ("hyper", "h2::", "http::", "httparse")):
            k = "hyper / HTTP"
        elif "tokio" in s:
            k = "tokio runtime"
        else:
            k = "other user-space"
        buckets[k] = buckets.get(k, 0.0) + pc
    return sorted(buckets.items(), key=lambda kv: -kv[1])
