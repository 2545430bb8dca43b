#!/usr/bin/env python3
"""Side-by-side benchmark (`make bench`): Switchyard against its limits and its peers, on the same
machine, the same models and the same load.

Servers, all on 127.0.0.1:
  inproc      benches/rust: ONNX Runtime in process, N threads each with its own Session (1
              intra-op thread) calling run() in a loop: the compute limit (not a server)
  bare        benches/rust: a bare hyper 1 server answering every POST with Switchyard's own
              response for that request (captured at start): the HTTP limit
  switchyard  the real `switchyard serve`, lineage on, every other setting at its default
              (on the tiny model also "switchyard lineage off": the same with [lineage] enabled =
              false, to show what the lineage record costs, and "switchyard workers": the same with
              [model.engine] execution = "workers" (the default "auto" runs the tiny model inline,
              one session per server thread: this shows what the hand-off would cost); no target is
              judged on either)
  mlserver    MLServer 1.7.1 with a 30-line ONNX Runtime runtime (benches/peers/)
  kserve      KServe 0.21's Python model server with the same (benches/peers/)
  triton      Triton Inference Server 2.51 through the nvidia-pytriton wheel, its Python backend
              calling ONNX Runtime (benches/peers/)
Every peer uses one ONNX Runtime session with 1 intra-op and 1 inter-op thread, like Switchyard's
default engine; peer venvs come from benches/peers/setup.sh (benches/.cache/peers-venv/).

Models (benches/generate_models.py writes the generated ones into benches/.cache/models/):
  mlp      tests/fixtures/models/mlp_v1.onnx, [1,64] FP32 -> [1,10]: overhead-bound
  encoder  a 4-layer transformer encoder, [1,32] INT64 ids -> [1,256]: a few ms of compute
  wide     a 512-2048-2048-16 MLP: batching pays (Switchyard with dynamic batching off and on)

Load: wrk with a JSON body (every server; concurrency 1,2,4,8,16), and Triton's perf_analyzer
with binary tensors where the server answers it (concurrency 1,2,4,8,16, one pass per level). At
each concurrency the servers are measured in an order rotated from level to level, so a drift in
the machine's load falls on all of them. Also: resident memory of a Switchyard holding 10
versions of the encoder, and, when a tiny-model target is missed, a `perf` profile of Switchyard
under load.

Writes benches/results/side_by_side.md and benches/results/side_by_side.svg (throughput against
p99), prints the markdown. Stdlib only (the bench tools it runs have their own environments).
This file runs the phases and judges the targets; side_by_side_servers.py starts the servers and
takes the measurements, side_by_side_report.py writes the markdown and the SVG.
Options and environment:
  SWITCHYARD_BIN=path   use this binary instead of building target/release/switchyard
  BENCH_QUICK=1         smoke run: 2 s points, concurrency 1 and 8, perf_analyzer at 1 only
  BENCH_DURATION=5      seconds per measured point        BENCH_WARMUP=1  seconds of warm-up per point
  BENCH_CONCURRENCY=1,2,4,8,16                           BENCH_PEERS=mlserver,kserve,triton (or none)
  BENCH_PERF=auto       profile Switchyard with perf: auto (when a tiny target is missed), 1, 0
  BENCH_SERVER_CPUS=0-1 pin the servers and in-process ORT to these CPUs, the load generators to the
                        others (BENCH_LOAD_CPUS to choose them); default: everything shares every core
  BENCH_DEVICE=cuda:0   run the models on a GPU (needs a `--features cuda` binary, onnxruntime-gpu's
                        library and BENCH_TOOLS from `cargo build --release --features cuda` in
                        benches/rust); results go to side_by_side_cuda.md, peers default to none
                        (they run on CPU) and the memory phase is skipped (host RSS says nothing there)
  BENCH_TOOLS=dir       prebuilt inproc and bare (skips building benches/rust, e.g. where cargo is absent)
  BENCH_PYTHON=path     the Python that runs generate_models.py (needs numpy and onnx; default: the
                        test venv, .cache/venv, set up when missing)
  BENCH_PERF_ANALYZER=0 skip perf_analyzer (its setup needs the package registries)
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402
from side_by_side_report import group_profile, pct, report, svg_plot  # noqa: E402
from side_by_side_servers import (  # noqa: E402
    ALL_PEERS, BATCH_DELAY_US, BATCH_MAX, DEVICE, MODELS, MODELS_DIR, PEERS_DIR, RUST, TEST_VENV_PY, WORK, Results,
    Switchyard, check_answer, http, inproc, json_body, lua_for, pa_point, profile, register, rotated,
    start_bare, start_peer, switchyard_config, tree_rss_kib, wait_ready, wrk_point,
)

# --------------------------------------------------------------------------------------------
# Setup


def setup_tools(args):
    """Builds benches/rust (inproc, bare), generates the models, installs peers and perf_analyzer."""
    prebuilt = os.environ.get("BENCH_TOOLS")
    if prebuilt:
        tools = Path(prebuilt)
        c.log(f"using prebuilt inproc and bare from BENCH_TOOLS={tools}")
    else:
        features = ["--features", "inproc/cuda"] if DEVICE != "cpu" else []
        c.log("building benches/rust (inproc, bare): cargo build --release --locked " + " ".join(features))
        b = subprocess.run(["cargo", "build", "--release", "--locked"] + features, cwd=RUST, capture_output=True,
                           text=True)
        if b.returncode != 0:
            sys.stderr.write(b.stderr[-3000:])
            c.die("building benches/rust failed")
        tools = RUST / "target" / "release"
    # Private copies, like the gateway binary: a rebuild during the bench changes nothing.
    bindir = WORK / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for t in ("inproc", "bare"):
        if not (tools / t).is_file():
            c.die(f"{tools / t} is missing")
        shutil.copy2(tools / t, bindir / t)
    python = os.environ.get("BENCH_PYTHON") or str(TEST_VENV_PY)
    if not os.environ.get("BENCH_PYTHON") and not TEST_VENV_PY.exists():
        subprocess.run([str(c.ROOT / "scripts" / "setup-python.sh")], check=True, stdout=subprocess.DEVNULL)
    c.log("generating models (benches/generate_models.py; kept when already there)")
    g = subprocess.run([python, str(c.BENCHES / "generate_models.py")], capture_output=True, text=True)
    if g.returncode != 0:
        sys.stderr.write(g.stderr[-3000:])
        c.die("benches/generate_models.py failed")
    manifest = json.loads((MODELS_DIR / "manifest.json").read_text())
    peers = {}
    if args.peers:
        c.log("setting up peers (benches/peers/setup.sh; quick when already installed)")
        p = subprocess.run([str(PEERS_DIR / "setup.sh")], capture_output=True, text=True)
        for line in p.stdout.splitlines():
            name, _, py = line.partition(" ")
            peers["triton" if name == "pytriton" else name] = py.strip() if py.strip() != "-" else None
        if p.returncode != 0 and not peers:
            sys.stderr.write(p.stderr[-2000:])
    pa, pa_note = None, None
    if os.environ.get("BENCH_PERF_ANALYZER", "1") in ("0", "false", "none"):
        return bindir, manifest, peers, pa, "not run (BENCH_PERF_ANALYZER=0)"
    s = subprocess.run([str(c.ROOT / "scripts" / "setup-perf-analyzer.sh")], capture_output=True, text=True)
    if s.returncode == 0 and s.stdout.strip():
        pa = s.stdout.strip().splitlines()[-1]
    else:
        pa_note = "scripts/setup-perf-analyzer.sh failed: " + " / ".join(s.stderr.strip().splitlines()[-2:])
    return bindir, manifest, peers, pa, pa_note


# --------------------------------------------------------------------------------------------


def cpu_reference_check(binary, env, store, sy):
    """On a GPU run: the GPU Switchyard's answers must match a CPU Switchyard's on the same
    artifacts (within float tolerance), or the bench stops: a fast wrong answer measures nothing."""
    cpu = Switchyard(binary, "switchyard-cpu-reference",
                     switchyard_config(WORK / "switchyard-cpu.toml", store, [("mlp", [1]), ("encoder", [1])],
                                       device="cpu"), env)
    if not wait_ready(cpu, ["mlp", "encoder"], 120):
        c.die(f"switchyard on cpu: {cpu.failed}")
    for model in ("mlp", "encoder"):
        st, _, body = http("POST", f"{cpu.url}/v2/models/{model}/infer", json_body(model),
                           {"Content-Type": "application/json"})
        if st != 200:
            c.die(f"switchyard on cpu answered {st} for {model}: {body[:300]!r}")
        want = [float(x) for x in json.loads(body)["outputs"][0]["data"]]
        st, _, body = http("POST", f"{sy.url}/v2/models/{model}/infer", json_body(model),
                           {"Content-Type": "application/json"})
        got = [float(x) for x in json.loads(body)["outputs"][0]["data"]] if st == 200 else []
        # CUDA's matrix products round differently (TF32 on recent GPUs): ~1e-3 of the scale.
        scale = max(abs(x) for x in want)
        diff = max((abs(a - b) for a, b in zip(got, want)), default=float("inf")) if len(got) == len(want) else float("inf")
        if diff > 1e-2 * scale:
            c.die(f"switchyard on {DEVICE} disagrees with switchyard on cpu for {model}: max |diff| {diff:.3g} "
                  f"(scale {scale:.3g}); status {st}")
        c.log(f"{model}: switchyard on {DEVICE} answers as on cpu (max |diff| {diff:.2g}, scale {scale:.2g})")
    cpu.stop()


def memory_phase(binary, env, ctx):
    """Resident memory of a Switchyard holding 10 versions of the encoder (and of one holding 1)."""
    c.log("== memory: 10 encoder versions")
    mstore = WORK / "store-mem"
    files = [MODELS_DIR / f"encoder_s{s}.onnx" for s in range(1, 11)]
    for f in files:
        register(binary, env, mstore, "encoder", f)
    artifacts = sum(f.stat().st_size for f in files)
    rss = {}
    for n in (1, 10):
        m = Switchyard(binary, f"switchyard-mem-{n}",
                       switchyard_config(WORK / f"mem-{n}.toml", mstore, [("encoder", list(range(1, n + 1)))]), env)
        if not wait_ready(m, ["encoder"], 180):
            c.die(f"{m.name}: {m.failed}")
        for v in range(1, n + 1):
            st, _, body = http("POST", f"{m.url}/v2/models/encoder/versions/{v}/infer", json_body("encoder"),
                               {"Content-Type": "application/json"}, timeout=60)
            if st != 200:
                c.die(f"{m.name}: version {v} answered {st}: {body[:300]!r}")
        time.sleep(1.0)
        rss[n] = tree_rss_kib(m.pid) * 1024
        m.stop()
    ctx["memory"] = {"artifacts": artifacts, "rss": rss[10], "rss1": rss[1], "limit": 1.5 * artifacts + 64e6}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"))
    p.add_argument("--out", default=str(c.RESULTS / ("side_by_side.md" if DEVICE == "cpu" else "side_by_side_cuda.md")))
    args = p.parse_args()
    args.quick = c.env_default("BENCH_QUICK", "0") not in ("0", "", "false")
    args.duration = c.env_default("BENCH_DURATION", 2 if args.quick else 5, int)
    args.warmup = c.env_default("BENCH_WARMUP", 1, int)
    conc = c.env_default("BENCH_CONCURRENCY", "1,8" if args.quick else "1,2,4,8,16")
    args.conc = [int(x) for x in conc.split(",") if x.strip()]
    args.pa_conc = [1] if args.quick else args.conc
    args.pa_window_ms = 1000
    peers = c.env_default("BENCH_PEERS", ",".join(ALL_PEERS) if DEVICE == "cpu" else "none")
    args.peers = [] if peers.strip() in ("", "none") else [x.strip() for x in peers.split(",") if x.strip()]
    args.perf = c.env_default("BENCH_PERF", "auto")
    svg_path = Path(args.out).with_suffix(".svg")
    ctx_svg = svg_path.name

    t_start = time.monotonic()
    binary, bin_desc, ort, env = c.start_bench("side-by-side", args.bin, WORK)
    bindir, manifest, peer_py, pa, pa_note = setup_tools(args)
    mach = c.machine()
    started = datetime.datetime.now(datetime.timezone.utc)
    t_measure = time.monotonic()
    res = Results()
    ctx = {"svg_name": ctx_svg, "manifest": manifest, "inproc": {}, "targets": [], "peer_fail": {}, "peer_desc": {}, "ratio_ref": {}}
    if pa_note:
        ctx["peer_fail"]["perf_analyzer"] = pa_note
    ctx["bare_threads"] = c.server_cpu_count()

    # ---- Switchyard + peers for mlp and encoder, all started at once (the peers are slow to start).
    store = WORK / "store"
    for model in ("mlp", "encoder"):
        register(binary, env, store, model, MODELS[model]["file"])
    sy = Switchyard(binary, "switchyard", switchyard_config(WORK / "switchyard.toml", store,
                                                             [("mlp", [1]), ("encoder", [1])]), env)
    sy.label = "switchyard"
    if not wait_ready(sy, ["mlp", "encoder"], 120):
        c.die(f"switchyard: {sy.failed}")
    nolin_store = WORK / "store-lineage-off"
    register(binary, env, nolin_store, "mlp", MODELS["mlp"]["file"])
    sy_nolin = Switchyard(binary, "switchyard-lineage-off",
                          switchyard_config(WORK / "switchyard-lineage-off.toml", nolin_store, [("mlp", [1])],
                                            lineage=False), env)
    sy_nolin.label = "switchyard lineage off"
    if not wait_ready(sy_nolin, ["mlp"], 120):
        c.die(f"switchyard lineage off: {sy_nolin.failed}")
    workers_store = WORK / "store-workers"
    register(binary, env, workers_store, "mlp", MODELS["mlp"]["file"])
    sy_workers = Switchyard(binary, "switchyard-workers",
                            switchyard_config(WORK / "switchyard-workers.toml", workers_store, [("mlp", [1])],
                                              engine={"execution": '"workers"'}), env)
    sy_workers.label = "switchyard workers"
    if not wait_ready(sy_workers, ["mlp"], 120):
        c.die(f"switchyard workers: {sy_workers.failed}")
    peer_models = {"mlp": MODELS["mlp"]["file"], "encoder": MODELS["encoder"]["file"]}
    peers = []
    for peer in args.peers:
        py = peer_py.get(peer)
        if not py:
            ctx["peer_fail"][peer] = "its venv could not be installed (benches/peers/setup.sh)"
            continue
        srv = start_peer(peer, py, peer_models)
        srv.label = peer
        peers.append(srv)
    ctx["peer_desc"] = {
        "mlserver": "MLServer 1.7.1 (`mlserver start`, settings at their defaults but host/ports: one "
                    "parallel inference worker process), runtime `benches/peers/mlserver_runtime.py`",
        "kserve": "KServe 0.21 `kserve.ModelServer` (defaults but ports; binds 127.0.0.1), model "
                  "`benches/peers/kserve_server.py`",
        "triton": "Triton Inference Server 2.51.0 embedded in nvidia-pytriton 0.6.0, `benches/peers/pytriton_server.py` "
                  "(pytriton defaults: dynamic batcher, max_batch_size 4), inference callable running ONNX Runtime",
    }
    ref = {}
    for model in ("mlp", "encoder"):
        st, _, body = http("POST", f"{sy.url}/v2/models/{model}/infer", json_body(model), {"Content-Type": "application/json"})
        if st != 200:
            c.die(f"switchyard answered {st} for {model}: {body[:300]!r}")
        ref[model] = [float(x) for x in json.loads(body)["outputs"][0]["data"]]
    if DEVICE != "cpu":
        cpu_reference_check(binary, env, store, sy)
    live = []
    for srv in peers:
        if wait_ready(srv, ["mlp", "encoder"], 240):
            for model in ("mlp", "encoder"):
                why = check_answer(srv, model, ref[model])
                if why:
                    srv.failed = f"{model}: {why}"
                    break
        if srv.failed:
            ctx["peer_fail"][srv.name] = srv.failed
            c.log(f"WARNING: peer {srv.name} not measured: {srv.failed}")
            srv.stop()
        else:
            c.log(f"peer {srv.name} ready at {srv.url}")
            live.append(srv)
    bare = start_bare(bindir, sy, "mlp", ctx["bare_threads"])
    bare.label = "bare"
    ctx["bare_bytes"] = bare.response_bytes
    why = check_answer(bare, "mlp", ref["mlp"])
    if why:
        c.die(f"bare: {why}")

    # ---- Tiny model
    c.log("== mlp (tiny)")
    r = inproc(bindir, ort, MODELS["mlp"]["file"], 1, 1, args)
    ctx["inproc"]["mlp"] = [("1 thread, batch 1", r)]
    tiny_servers = [sy, bare, sy_nolin, sy_workers] + live
    ctx["ratio_ref"]["mlp"] = "switchyard"
    for i, conc in enumerate(args.conc):
        for srv in rotated(tiny_servers, i):
            if not srv.failed:
                wrk_point(res, srv, "mlp", conc, args)
    if pa:
        pa_servers = [sy, bare] + live
        for i, conc in enumerate(args.pa_conc):
            for srv in rotated(pa_servers, i):
                if not srv.failed:
                    pa_point(res, pa, srv, "mlp", conc, args)
    bare.stop()
    sy_nolin.stop()
    sy_workers.stop()

    # ---- Medium model
    c.log("== encoder (medium)")
    r = inproc(bindir, ort, MODELS["encoder"]["file"], 1, 1, args)
    ctx["inproc"]["encoder"] = [("1 thread, batch 1", r)]
    ctx["ratio_ref"]["encoder"] = "switchyard"
    med_servers = [sy] + live
    for i, conc in enumerate(args.conc):
        for srv in rotated(med_servers, i):
            if not srv.failed:
                wrk_point(res, srv, "encoder", conc, args)
    if pa:
        for i, conc in enumerate(args.pa_conc):
            for srv in rotated(med_servers, i):
                if not srv.failed and (srv.label, "perf_analyzer") not in res.notes:
                    pa_point(res, pa, srv, "encoder", conc, args)
    enc_inproc = r["calls_per_s"]
    enc_cpu = r["cpu_us_per_call"]
    fractions = []
    for srv in med_servers:
        ser = res.series("encoder", srv.label, "wrk (JSON)")
        if ser:
            best = max(ser, key=lambda p: p["rps"])
            fractions.append((srv.label, best["rps"], best["c"], best["rps"] / enc_inproc,
                              enc_cpu / best["cpu_us"] if best.get("cpu_us") else None,
                              enc_cpu / best["engine_us"] if best.get("engine_us") else None))
    ctx["encoder_fractions"] = fractions

    # Profile while the tiny-model servers are still up? Done below, on a fresh Switchyard, when needed.
    for srv in live:
        srv.stop()

    # ---- Batchable model: Switchyard with batching off and on
    c.log("== wide (batchable)")
    r1 = inproc(bindir, ort, MODELS["wide"]["file"], 1, 1, args)
    r16 = inproc(bindir, ort, MODELS["wide"]["file"], 1, BATCH_MAX, args)
    ctx["inproc"]["wide"] = [("1 thread, batch 1", r1), (f"1 thread, batch {BATCH_MAX}", r16)]
    wstore = WORK / "store-wide"
    register(binary, env, wstore, "wide", MODELS["wide"]["file"])
    off = Switchyard(binary, "switchyard-batch-off",
                     switchyard_config(WORK / "wide-off.toml", wstore, [("wide", [1])]), env)
    off.label = "switchyard batch off"
    on = Switchyard(binary, "switchyard-batch-on",
                    switchyard_config(WORK / "wide-on.toml", wstore, [("wide", [1])],
                                      {"max_batch": BATCH_MAX, "batch_delay_us": BATCH_DELAY_US}), env)
    on.label = "switchyard batch on"
    for srv in (off, on):
        if not wait_ready(srv, ["wide"], 120):
            c.die(f"{srv.name}: {srv.failed}")
    ctx["ratio_ref"]["wide"] = "switchyard batch on"
    for i, conc in enumerate(args.conc):
        for srv in rotated([off, on], i):
            wrk_point(res, srv, "wide", conc, args)
    for srv in (off, on):
        srv.stop()

    # ---- Memory: 10 versions of the encoder (host RSS; skipped on a GPU)
    ctx["device"] = DEVICE
    if DEVICE != "cpu":
        ctx["gpu"] = c.sh("nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
        ctx["memory"] = None
    else:
        memory_phase(binary, env, ctx)

    # ---- Targets
    T = ctx["targets"]

    def wrk(model, server, conc):
        return res.get(model, server, "wrk (JSON)", conc)

    def add(name, measured, ok):
        T.append((name, measured, ok))

    hi = 8 if 8 in args.conc else max(args.conc)
    s8, b8 = wrk("mlp", "switchyard", hi), wrk("mlp", "bare", hi)
    tiny_missed = False
    if s8 and b8:
        q = s8["rps"] / b8["rps"]
        add(f"tiny, c={hi}: Switchyard req/s ≥ 0.8 × bare hyper", f"{s8['rps']:.0f} / {b8['rps']:.0f} = {q:.2f}", q >= 0.8)
        tiny_missed |= q < 0.8
    i8 = wrk("mlp", "switchyard workers", hi)
    if i8 and b8:
        q = i8["rps"] / b8["rps"]
        add(f"(not a target) tiny, c={hi}: Switchyard with `execution = \"workers\"` req/s ÷ bare hyper",
            f"{i8['rps']:.0f} / {b8['rps']:.0f} = {q:.2f}", None)
    s1, b1 = wrk("mlp", "switchyard", 1), wrk("mlp", "bare", 1)
    if s1 and b1:
        q = s1["p50_us"] / b1["p50_us"]
        add("tiny, c=1: Switchyard p50 ≤ 1.5 × bare hyper",
            f"{c.fmt_us(s1['p50_us'])} / {c.fmt_us(b1['p50_us'])} = {q:.2f}", q <= 1.5)
        tiny_missed |= q > 1.5
    i1 = wrk("mlp", "switchyard workers", 1)
    if i1 and b1:
        q = i1["p50_us"] / b1["p50_us"]
        add("(not a target) tiny, c=1: Switchyard with `execution = \"workers\"` p50 ÷ bare hyper",
            f"{c.fmt_us(i1['p50_us'])} / {c.fmt_us(b1['p50_us'])} = {q:.2f}", None)
    for frac in fractions:
        if frac[0] == "switchyard":
            add("medium: Switchyard req/s ≥ 0.95 × in-process ORT (1 session, 1 thread; Switchyard's best c; "
                "wall clock)", f"{frac[1]:.0f} (c={frac[2]}) / {enc_inproc:.0f} = {frac[3]:.3f}", frac[3] >= 0.95)
            if frac[5] is not None:
                add("medium, CPU-time basis: in-process CPU per call ÷ Switchyard engine-thread CPU per request "
                    "≥ 0.95 (the engine thread is the bottleneck with 1 session)",
                    f"{enc_cpu:.0f} µs / {enc_cpu / frac[5]:.0f} µs = {frac[5]:.3f} (whole process: {pct(frac[4])})",
                    frac[5] >= 0.95)
    off16, on16 = wrk("wide", "switchyard batch off", max(args.conc)), wrk("wide", "switchyard batch on", max(args.conc))
    if off16 and on16:
        q = on16["rps"] / off16["rps"]
        add(f"batchable, c={max(args.conc)}: batching on ≥ 2 × batching off (req/s)",
            f"{on16['rps']:.0f} / {off16['rps']:.0f} = {q:.2f}", q >= 2)
        bound = BATCH_DELAY_US + 2 * r16["p50_us"]
        quiet = BATCH_DELAY_US + 2 * r16["cpu_us_per_call"]
        add(f"batchable, c={max(args.conc)}, batching on: p99 ≤ batch delay + 2 × one batch-{BATCH_MAX} run "
            f"(in-process p50, measured in this run: {BATCH_DELAY_US} µs + 2 × {r16['p50_us']:.0f} µs = "
            f"{bound / 1000:.2f} ms)",
            f"{c.fmt_us(on16['p99_us'])} (with the run's CPU time instead of its wall time, as on an idle core: "
            f"bound {quiet / 1000:.2f} ms)", on16["p99_us"] <= bound)
    for peer in ALL_PEERS:
        pp = wrk("mlp", peer, hi)
        who = peer + (" (C++ server, Python backend)" if peer == "triton" else "")
        if s8 and pp:
            q = s8["rps"] / pp["rps"]
            add(f"tiny, c={hi}: Switchyard req/s ≥ 25 × {who}", f"{s8['rps']:.0f} / {pp['rps']:.0f} = {q:.1f}", q >= 25)
            q = s8["p99_us"] / pp["p99_us"]
            add(f"tiny, c={hi}: Switchyard p99 ≤ 0.05 × {who}",
                f"{c.fmt_us(s8['p99_us'])} / {c.fmt_us(pp['p99_us'])} = {q:.3f}", q <= 0.05)
        elif peer in args.peers:
            add(f"tiny, c={hi}: Switchyard vs {peer}", "not measured: " + ctx["peer_fail"].get(peer, "?"), None)
    sy_frac = next((f for f in fractions if f[0] == "switchyard"), None)
    for frac in fractions:
        if frac[0] != "switchyard":
            add(f"medium: {frac[0]} throughput as a fraction of in-process ORT, beside Switchyard's "
                "(wall clock; CPU-time basis)",
                f"{frac[0]} {frac[3]:.3f}; {pct(frac[4])} — Switchyard "
                f"{sy_frac[3] if sy_frac else float('nan'):.3f}; {pct(sy_frac[4]) if sy_frac else '–'}", None)
    if s8 and b8:
        where = ("on this machine is mostly scheduling stalls (other processes' time slices on the shared cores)"
                 if c.server_cpus() is None else "includes the scheduling of the pinned servers' threads")
        ctx["p99_note"] = (f"p99 {where}: at c={hi} bare hyper's p99 was {c.fmt_us(b8['p99_us'])} against its p50 of "
                           f"{c.fmt_us(b8['p50_us'])}; Switchyard's {c.fmt_us(s8['p99_us'])} against "
                           f"{c.fmt_us(s8['p50_us'])}. The p99 ratios against the peers inherit that floor.")
    mem = ctx["memory"]
    if mem:
        add("memory: RSS with 10 encoder versions ≤ 1.5 × artifacts + 64 MB",
            f"{mem['rss'] / 1e6:.0f} MB ≤ {mem['limit'] / 1e6:.0f} MB (artifacts {mem['artifacts'] / 1e6:.0f} MB)",
            mem["rss"] <= mem["limit"])

    # ---- perf profile of Switchyard on the tiny model, when a tiny target was missed (or asked for)
    if args.perf == "1" or (args.perf == "auto" and tiny_missed):
        if shutil.which("perf"):
            c.log("profiling switchyard under wrk (tiny model) with perf")
            prof_sy = Switchyard(binary, "switchyard-perf", WORK / "switchyard.toml", env)
            wait_ready(prof_sy, ["mlp"], 120)
            c.run_wrk(f"{prof_sy.url}/v2/models/mlp/infer", hi, 1, lua=lua_for("mlp"), strict=False)
            prof, err = profile(prof_sy, "mlp", hi)
            prof_sy.stop()
            ctx["profile"] = prof or {"error": err}
            ctx["profile"]["what"] = f"tiny model, wrk c={hi}, 6 s"
            if prof:
                groups = group_profile(prof["all_symbols"])
                ctx["profile"]["summary"] = "All self time, grouped by object and symbol name: " + "; ".join(
                    f"{k} {v:.0f}%" for k, v in groups) + "."
        else:
            ctx["profile"] = {"error": "perf is not installed", "what": "skipped"}

    ctx["measure_time"] = time.monotonic() - t_measure
    ctx["runtime"] = time.monotonic() - t_start
    mach["load_end"] = c.loadavg()
    sy.stop()
    finished = datetime.datetime.now(datetime.timezone.utc)
    text = report(args, mach, bin_desc, ort, res, ctx, started, finished)
    lim = {m: [(f"in-process {lbl.split(',')[1].strip()}", r["rows_per_s"]) for lbl, r in ctx["inproc"].get(m, [])]
           for m in MODELS}
    svg = svg_plot(res, [("mlp", ["switchyard", "switchyard lineage off", "switchyard workers", "bare"] + ALL_PEERS, "mlp (tiny)", lim["mlp"]),
                         ("encoder", ["switchyard"] + ALL_PEERS, "encoder (medium)", lim["encoder"]),
                         ("wide", ["switchyard batch off", "switchyard batch on"], "wide (batchable)", lim["wide"])],
                   f"Switchyard side by side — {mach['cpu']}, {mach['nproc']} cores, {started:%Y-%m-%d}")
    svg_path.parent.mkdir(parents=True, exist_ok=True)
    svg_path.write_text(svg)
    (WORK / "points.json").write_text(json.dumps(res.points, indent=1))
    c.write_results(args.out, text)
    for name, measured, ok in ctx["targets"]:
        if ok is not None:
            c.log(("met:    " if ok else "MISSED: ") + f"{name}: {measured}")
    c.log(f"wrote {c.rel(svg_path)}; run time {ctx['runtime']:.0f} s; logs in {c.rel(WORK)}/")


if __name__ == "__main__":
    main()
