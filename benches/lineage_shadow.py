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
import atexit
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
LUA = BENCHES / "lua" / "post.lua"
FIXTURES = ROOT / "tests" / "fixtures"
WORK = BENCHES / "results" / "tmp" / "lineage"  # ignored by git

CONFIGS = {
    "lineage-off": {"lineage": False, "shadow": False, "label": "lineage OFF, no shadow"},
    "lineage-on": {"lineage": True, "shadow": False, "label": "lineage ON, no shadow"},
    "lineage-on+shadow": {"lineage": True, "shadow": True, "label": "lineage ON, 10% shadow to v2"},
}

# The same body as benches/lua/post.lua sends.
BODY = (
    '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":['
    + ",".join("%.6f" % (i / 64) for i in range(64))
    + "]}]}"
).encode()

RUNNING = set()  # servers and wrk processes to stop on exit


def stop_all():
    """On any exit: SIGTERM whatever is still running (servers, wrk), then SIGKILL after 10 s."""
    procs = [proc for proc in list(RUNNING) if proc.poll() is None]
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log("ERROR: " + msg)
    sys.exit(1)


def env_default(name, default, cast=str):
    value = os.environ.get(name)
    return cast(value) if value not in (None, "") else default


# --------------------------------------------------------------------------------------------
# Setup: binary, ONNX Runtime, wrk, store


def pick_binary(args):
    """Returns (path to a private copy of the binary, description for the results file)."""
    if args.bin:
        src = Path(args.bin).resolve()
        if not os.access(src, os.X_OK):
            die(f"SWITCHYARD_BIN={src} is not an executable file")
        how = f"`SWITCHYARD_BIN={src}` (not built by this run)"
    else:
        src = ROOT / "target" / "release" / "switchyard"
        log("building: cargo build --release -p gateway")
        build = subprocess.run(
            ["cargo", "build", "--release", "-p", "gateway"], cwd=ROOT, capture_output=True, text=True
        )
        if build.returncode == 0:
            how = "`target/release/switchyard`, built by this run (`cargo build --release -p gateway`)"
        elif src.exists():
            tail = "\n".join(build.stderr.strip().splitlines()[-15:])
            log("WARNING: the build failed (someone's edit in progress?); using the existing binary.\n" + tail)
            how = "`target/release/switchyard` **left from an earlier build: this run's build failed**"
        else:
            sys.stderr.write(build.stderr)
            die("cargo build failed and there is no target/release/switchyard; set SWITCHYARD_BIN")
    # A private copy: a concurrent rebuild of target/ must not change the binary between servers.
    WORK.mkdir(parents=True, exist_ok=True)
    dst = WORK / "switchyard"
    shutil.copy2(src, dst)
    mtime = datetime.datetime.fromtimestamp(src.stat().st_mtime, datetime.timezone.utc)
    digest = hashlib.sha256(dst.read_bytes()).hexdigest()[:16]
    return dst, f"{how}; modified {mtime:%Y-%m-%d %H:%M:%S} UTC, sha256 {digest}…"


def onnxruntime():
    path = os.environ.get("ORT_DYLIB_PATH")
    if path and Path(path).is_file():
        return path
    out = subprocess.run([str(ROOT / "scripts" / "fetch-onnxruntime.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        die("scripts/fetch-onnxruntime.sh failed")
    return out.stdout.strip().splitlines()[-1]


def ensure_wrk():
    if shutil.which("wrk"):
        return
    log("wrk not found: apt-get install -y wrk")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "wrk"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "wrk"], env=env, check=True)
    if not shutil.which("wrk"):
        die("wrk is still missing after apt-get install")


def register_store(binary, env):
    store = WORK / "store-template"
    for v in (1, 2, 3):
        out = subprocess.run(
            [str(binary), "models", "register", "--store", str(store), "--model", "mlp",
             "--file", str(FIXTURES / "models" / f"mlp_v{v}.onnx"),
             "--manifest", str(FIXTURES / "manifests" / f"mlp_v{v}.toml"), "--json"],
            capture_output=True, text=True, env=env,
        )
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            die(f"registering mlp_v{v}.onnx failed")
        got = json.loads(out.stdout.strip().splitlines()[-1])
        if got.get("version") != v:
            die(f"mlp_v{v}.onnx registered as version {got.get('version')}, expected {v}")
    return store


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


# --------------------------------------------------------------------------------------------
# Server


class Server:
    def __init__(self, binary, name, store, cfg, env):
        self.name = name
        cfg_path = WORK / f"{name}.toml"
        cfg_path.write_text(config_toml(store, cfg))
        self.stdout_path = WORK / f"{name}.stdout"
        self.stderr_path = WORK / f"{name}.stderr"
        self._out = open(self.stdout_path, "w")
        self._err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(cfg_path)],
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err, env=env,
        )
        RUNNING.add(self.proc)
        self.public = self.admin = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = re.search(r"switchyard listening public=(\S+) admin=(\S+)", self.stdout_path.read_text())
            if m:
                self.public, self.admin = m.group(1), m.group(2)
                break
            if self.proc.poll() is not None:
                die(f"server {name} exited with {self.proc.returncode} before listening:\n{self.stderr_tail()}")
            time.sleep(0.05)
        else:
            self.stop()
            die(f"server {name} did not print its listening line within 60 s:\n{self.stderr_tail()}")
        for url in (self.public, self.admin):
            if not re.match(r"http://127\.0\.0\.1:\d+$", url):
                self.stop()
                die(f"server {name} is not on loopback: {url}")

    def stderr_tail(self, n=20):
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self):
        """SIGTERM, then wait for the graceful exit; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"WARNING: server {self.name} ignored SIGTERM for 30 s; killing it")
                self.proc.kill()
                self.proc.wait()
        RUNNING.discard(self.proc)
        self._out.close()
        self._err.close()
        return self.proc.returncode

    def check_infer(self):
        """One request, which must answer 200 with version 1's [1,10] output."""
        req = urllib.request.Request(
            self.public + "/v2/models/mlp/infer", data=BODY, method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, version, body = r.status, r.headers.get("x-model-version"), r.read()
        except urllib.error.HTTPError as e:
            die(f"server {self.name}: check request answered {e.code}: {e.read()[:500]!r}")
        except OSError as e:
            die(f"server {self.name}: check request failed: {e}")
        doc = json.loads(body)
        if status != 200 or version != "1" or doc["outputs"][0]["shape"] != [1, 10]:
            die(f"server {self.name}: unexpected check answer {status} version={version}: {body[:500]!r}")

    def metrics_text(self):
        with urllib.request.urlopen(self.admin + "/metrics", timeout=10) as r:
            return r.read().decode()

    def metrics(self):
        return parse_prometheus(self.metrics_text())


def parse_prometheus(text):
    """{(name, frozenset(labels)): value} for every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$", line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        try:
            samples[(m.group(1), labels)] = float(m.group(3))
        except ValueError:
            pass
    return samples


def metric_sum(samples, name, **match):
    want = set(match.items())
    return sum(v for (n, labels), v in samples.items() if n == name and want <= labels)


def histogram_quantile(samples, name, q):
    """Upper bound of the bucket that holds quantile q (Prometheus-style, no interpolation)."""
    buckets = sorted(
        (float("inf") if dict(labels)["le"] == "+Inf" else float(dict(labels)["le"]), v)
        for (n, labels), v in samples.items() if n == name + "_bucket"
    )
    if not buckets or buckets[-1][1] == 0:
        return None
    target = q * buckets[-1][1]
    for le, count in buckets:
        if count >= target:
            return le
    return None


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
# wrk

UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def run_wrk(url, connections, duration):
    threads = min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
           "--latency", "-s", str(LUA), url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    RUNNING.add(proc)
    try:
        out, _ = proc.communicate(timeout=duration + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        RUNNING.discard(proc)
    if proc.returncode != 0:
        die(f"wrk exited with {proc.returncode}:\n{out}")
    return parse_wrk(out)


def parse_wrk(out):
    def need(pattern):
        m = re.search(pattern, out, re.M)
        if not m:
            die(f"could not find /{pattern}/ in wrk's output:\n{out}")
        return m

    r = {"raw": out}
    r["rps"] = float(need(r"^Requests/sec:\s+([\d.]+)").group(1))
    r["requests"] = int(need(r"^\s*(\d+) requests in ").group(1))
    dist = out[need(r"^\s*Latency Distribution").end():]
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", dist, re.M)
        if not m:
            die(f"no {pct}% line in wrk's latency distribution:\n{out}")
        r[f"p{pct}_us"] = float(m.group(1)) * UNITS[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = tuple(int(x) for x in m.groups()) if m else (0, 0, 0, 0)
    if r["non2xx"]:
        die(f"wrk saw {r['non2xx']} non-2xx responses:\n{out}")
    if any(r["socket_errors"]):
        die(f"wrk saw socket errors (connect, read, write, timeout) = {r['socket_errors']}:\n{out}")
    if r["requests"] == 0:
        die(f"wrk completed no requests:\n{out}")
    return r


# --------------------------------------------------------------------------------------------
# Machine description


def sh(*cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    status = subprocess.run(["git", "status", "--porcelain", "--", "gateway", "model-store", "Cargo.toml",
                             "Cargo.lock"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = [line[3:] for line in status.splitlines() if line.strip()]
    return {
        "nproc": sh("nproc"),
        "cpu": cpu,
        "kernel": sh("uname", "-sr"),
        "commit": sh("git", "rev-parse", "HEAD"),
        "subject": sh("git", "log", "-1", "--format=%s")[:100],
        "dirty": dirty,
        "wrk": (sh("wrk", "--version").splitlines() or ["?"])[0].split(" Copyright")[0],
        "load_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


# --------------------------------------------------------------------------------------------
# Report


def fmt_us(us):
    return f"{us / 1000:.3f} ms" if us < 10_000 else f"{us / 1000:.1f} ms"


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
    w("## Machine")
    w("")
    w(f"- date: {started:%Y-%m-%d}, measured {started:%H:%M:%S} → {finished:%H:%M:%S} UTC")
    w(f"- nproc: {mach['nproc']}; CPU: {mach['cpu']}; {mach['kernel']}")
    w(f"- load average (1/5/15 min) at start: {mach['load_start']}; at end: {mach['load_end']}")
    w(f"- git commit: `{mach['commit']}` ({mach['subject']})")
    if mach["dirty"]:
        shown = ", ".join(f"`{p}`" for p in mach["dirty"][:8])
        more = f" and {len(mach['dirty']) - 8} more" if len(mach["dirty"]) > 8 else ""
        w(f"- working tree: **uncommitted changes** under gateway/ or model-store/ when the bench ran "
          f"(the binary may include them): {shown}{more}")
    else:
        w("- working tree: no uncommitted changes under gateway/, model-store/, Cargo.*")
    w(f"- binary: {binary_desc}")
    w(f"- ONNX Runtime: `{os.path.relpath(ort, ROOT) if ort.startswith(str(ROOT)) else ort}`; load generator: {mach['wrk']}")
    w("")
    w(f"**This machine is shared and noisy** ({mach['nproc']} cores, with wrk and the gateway on the same "
      "cores and other work beside them): differences of a few percent are within noise. Each "
      "figure is the median of the rounds; the per-round values are at the end.")
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
    w(f"- stores (the lineage database) under `{os.path.relpath(args.store_dir, ROOT) if str(args.store_dir).startswith(str(ROOT)) else args.store_dir}` "
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
    p.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"), help="switchyard binary (skips the build)")
    p.add_argument("--duration", type=int, default=env_default("BENCH_DURATION", 10, int))
    p.add_argument("--warmup", type=int, default=env_default("BENCH_WARMUP", 2, int))
    p.add_argument("--rounds", type=int, default=env_default("BENCH_ROUNDS", 3, int))
    p.add_argument("--connections", default=env_default("BENCH_CONNECTIONS", "8,1"))
    p.add_argument("--store-dir", default=env_default("BENCH_STORE_DIR", str(WORK)),
                   help="where the per-server store copies go (e.g. /dev/shm to take the disk out)")
    p.add_argument("--out", default=str(BENCHES / "results" / "lineage.md"))
    args = p.parse_args()
    args.store_dir = Path(args.store_dir).resolve()
    args.connections = [int(c) for c in str(args.connections).split(",") if c.strip()]

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    atexit.register(stop_all)

    ensure_wrk()
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    binary, binary_desc = pick_binary(args)
    ort = onnxruntime()
    env = dict(os.environ, ORT_DYLIB_PATH=ort)
    env.pop("RUST_LOG", None)
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
            server = Server(binary, f"r{rnd}-{name}", store, cfg, env)
            try:
                server.check_infer()
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

    mach["load_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    finished = datetime.datetime.now(datetime.timezone.utc)
    text, verdicts = report(args, mach, binary_desc, ort, results, counters, exits, started, finished)
    text += (f"\n## Raw `switchyard_lineage_*` lines: round {raw_lineage[0]}'s lineage-on server, at its end\n\n"
             "Counters never incremented (`blocked`, `dropped`, `write_errors` at 0) are not exported.\n\n"
             "```\n" + "\n".join(raw_lineage[1]) + "\n```\n")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    for line, ok in verdicts:
        log(("ok:      " if ok else "WARNING: ") + line)
    log(f"wrote {os.path.relpath(out, ROOT)}; server logs in {os.path.relpath(WORK, ROOT)}/")


if __name__ == "__main__":
    main()
