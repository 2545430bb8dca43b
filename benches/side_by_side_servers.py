"""Servers, load and measurement for the side-by-side bench (benches/side_by_side.py): the
models and their request bodies, starting Switchyard / bare / the peers and checking them, wrk
and perf_analyzer points, in-process ORT runs, process-tree CPU from /proc, and the perf profile."""

import csv
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as c  # noqa: E402

WORK = c.TMP / "side_by_side"
MODELS_DIR = c.BENCHES / ".cache" / "models"
RUST = c.BENCHES / "rust"
PEERS_DIR = c.BENCHES / "peers"
TEST_VENV_PY = c.ROOT / ".cache" / "venv" / "bin" / "python"

# Where the models run: "cpu", or "cuda:N" for a GPU run (a `--features cuda` Switchyard, an
# onnxruntime-gpu library and an inproc built with `--features cuda`; see benches/README.md).
DEVICE = c.env_default("BENCH_DEVICE", "cpu")
if DEVICE != "cpu" and not re.fullmatch(r"cuda:\d+", DEVICE):
    c.die(f"BENCH_DEVICE={DEVICE!r} must be cpu or cuda:N")

ALL_PEERS = ["mlserver", "kserve", "triton"]
BATCH_DELAY_US = 500
BATCH_MAX = 16


def floats(n):
    return [round((i % 64) / 64, 6) for i in range(n)]


MODELS = {
    "mlp": {
        "file": c.FIXTURES / "models" / "mlp_v1.onnx",
        "input": "input", "datatype": "FP32", "shape": [1, 64], "data": floats(64),
        "output": "output", "out_shape": [1, 10],
        "what": "tests/fixtures/models/mlp_v1.onnx: Gemm(64→256), Relu, Gemm(256→10); [1,64] FP32 → [1,10]",
    },
    "encoder": {
        "file": MODELS_DIR / "encoder_s1.onnx",
        "input": "input_ids", "datatype": "INT64", "shape": [1, 32], "data": [(i * 131 + 7) % 1000 for i in range(32)],
        "output": "embedding", "out_shape": [1, 256],
        "what": "benches/.cache/models/encoder_s1.onnx: 4-layer transformer encoder (hidden 256, 4 heads, "
                "FFN 1024, vocabulary 8192), [1,32] INT64 token ids → [1,256] mean-pooled embedding",
    },
    "wide": {
        "file": MODELS_DIR / "wide_mlp.onnx",
        "input": "input", "datatype": "FP32", "shape": [1, 512], "data": floats(512),
        "output": "output", "out_shape": [1, 16],
        "what": "benches/.cache/models/wide_mlp.onnx: Gemm(512→2048), Relu, Gemm(2048→2048), Relu, "
                "Gemm(2048→16); [1,512] FP32 → [1,16]",
    },
}


def json_body(model):
    m = MODELS[model]
    data = ",".join(("%.6f" % x) if m["datatype"] == "FP32" else str(x) for x in m["data"])
    return ('{"inputs":[{"name":"%s","shape":%s,"datatype":"%s","data":[%s]}]}'
            % (m["input"], json.dumps(m["shape"]), m["datatype"], data)).encode()


def binary_body(model):
    """A request like perf_analyzer's: binary input, binary outputs asked for."""
    m = MODELS[model]
    raw = struct.pack("<%d%s" % (len(m["data"]), "f" if m["datatype"] == "FP32" else "q"), *m["data"])
    head = json.dumps({"inputs": [{"name": m["input"], "shape": m["shape"], "datatype": m["datatype"],
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "parameters": {"binary_data_output": True}}).encode()
    return head, raw


def http(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Process-tree CPU (the peers run several processes: MLServer's workers, tritonserver + stubs)


def tree_pids(root):
    children = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu(root):
    total = 0.0
    for pid in tree_pids(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return total


def thread_cpu(pid):
    """{thread name: CPU seconds} summed over the threads of one process, from /proc."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        f = stat[stat.rindex(")") + 2:].split()
        out[comm] = out.get(comm, 0.0) + (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return out


def tree_rss_kib(root):
    total = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


# --------------------------------------------------------------------------------------------
# Servers


class Proc:
    """A server process of ours: name, base URL, the models it serves, whether perf_analyzer
    can drive it, and how to stop it."""

    def __init__(self, name, cmd, work, env=None, cwd=None):
        self.name = name
        self.stdout_path = work / f"{name}.stdout"
        self.stderr_path = work / f"{name}.stderr"
        self._out, self._err = open(self.stdout_path, "w"), open(self.stderr_path, "w")
        self.proc = subprocess.Popen(c.pinned(cmd), stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                     env=env, cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid
        c.RUNNING.add(self.proc)
        self.url = None
        self.failed = None  # why this server could not be measured

    def tail(self, n=15):
        text = self.stderr_path.read_text(errors="replace") + self.stdout_path.read_text(errors="replace")
        return "\n".join(text.strip().splitlines()[-n:])

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)  # its own session: the peers' worker processes too
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait()
        c.RUNNING.discard(self.proc)
        self._out.close()
        self._err.close()
        return self.proc.returncode


def wait_ready(srv, models, timeout):
    """Polls GET /v2/models/{m}/ready for every model; sets srv.failed on timeout or exit."""
    deadline = time.monotonic() + timeout
    pending = list(models)
    while pending and time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            srv.failed = f"exited with {srv.proc.returncode} before it was ready: {srv.tail(3)}"
            return False
        try:
            if http("GET", f"{srv.url}/v2/models/{pending[0]}/ready", timeout=5)[0] == 200:
                pending.pop(0)
                continue
        except OSError:
            pass
        time.sleep(0.5)
    if pending:
        srv.failed = f"not ready within {timeout} s (models {pending} not ready): {srv.tail(3)}"
        return False
    return True


def switchyard_config(path, store, models, engine=None, lineage=True, device=None):
    text = f"""[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[store]
path = "{store}"

[lineage]
enabled = {"true" if lineage else "false"}
"""
    engine = dict(engine or {})
    device = device or DEVICE
    if device != "cpu":
        engine["device"] = json.dumps(device)
    for name, versions in models:
        text += f"\n[[model]]\nname = \"{name}\"\nversions = {json.dumps(versions)}\n"
        if engine:
            text += "[model.engine]\n" + "".join(f"{k} = {v}\n" for k, v in engine.items())
    path.write_text(text)
    return path


def register(binary, env, store, model, file):
    out = subprocess.run([str(binary), "models", "register", "--store", str(store), "--model", model,
                          "--file", str(file), "--json"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        c.die(f"registering {file} as {model} failed")
    return json.loads(out.stdout.strip().splitlines()[-1])["version"]


class Switchyard(Proc):
    def __init__(self, binary, name, config, env):
        super().__init__(name, [str(binary), "serve", "--config", str(config)], WORK, env=env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = self.stdout_path.read_text()
            if "switchyard listening" in text:
                m = re.search(r"public=(http://127\.0\.0\.1:\d+) admin=(http://127\.0\.0\.1:\d+)", text)
                if not m:
                    c.die(f"{name}: unexpected listening line: {text!r}")
                self.url, self.admin = m.group(1), m.group(2)
                return
            if self.proc.poll() is not None:
                c.die(f"{name} exited with {self.proc.returncode} before listening:\n{self.tail()}")
            time.sleep(0.05)
        c.die(f"{name} did not print its listening line within 120 s:\n{self.tail()}")


def start_peer(peer, python, models):
    """Starts a peer serving `models` ({name: onnx path}); returns a Proc (not yet ready)."""
    port, grpc = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(PEERS_DIR), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    if peer == "mlserver":
        d = WORK / "mlserver-repo"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        (d / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": port, "grpc_port": grpc, "metrics_port": free_port()}))
        for name, path in models.items():
            (d / name).mkdir()
            (d / name / "model-settings.json").write_text(json.dumps({
                "name": name, "implementation": "mlserver_runtime.OnnxModel",
                "parameters": {"uri": str(path), "version": "1"}}))
        cmd = [str(Path(python).parent / "mlserver"), "start", str(d)]
    elif peer == "kserve":
        cmd = [python, str(PEERS_DIR / "kserve_server.py"), "--http_port", str(port), "--grpc_port", str(grpc)]
        cmd += [f"--onnx={name}={path}" for name, path in models.items()]
    elif peer == "triton":
        cmd = [python, str(PEERS_DIR / "pytriton_server.py"), "--http-port", str(port), "--grpc-port", str(grpc),
               "--metrics-port", str(free_port())]
        cmd += [f"--onnx={name}={path}" for name, path in models.items()]
    else:
        raise ValueError(peer)
    srv = Proc(peer, cmd, WORK, env=env, cwd=str(WORK))
    srv.url = f"http://127.0.0.1:{port}"
    return srv


def check_answer(srv, model, reference):
    """One JSON request; the output must match Switchyard's (same model file). Returns None or why not."""
    try:
        status, _, body = http("POST", f"{srv.url}/v2/models/{model}/infer", json_body(model),
                               {"Content-Type": "application/json"})
    except OSError as e:
        return f"check request failed: {e}"
    if status != 200:
        return f"check request answered {status}: {body[:300]!r}"
    try:
        out = next(o for o in json.loads(body)["outputs"] if o["name"] == MODELS[model]["output"])
        data = [float(x) for x in out["data"]]
    except (ValueError, KeyError, StopIteration, TypeError) as e:
        return f"unexpected answer ({e}): {body[:300]!r}"
    if reference is not None:
        if len(data) != len(reference) or any(abs(a - b) > 1e-4 + 1e-3 * abs(b) for a, b in zip(data, reference)):
            return f"output differs from Switchyard's: {data[:4]}… vs {reference[:4]}…"
    return None


def start_bare(binary_dir, sy, model, threads):
    """Captures Switchyard's answers for `model` (JSON and binary requests, metadata) and starts
    `bare` with them."""
    d = WORK / f"bare-{model}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    status, headers, body = http("POST", f"{sy.url}/v2/models/{model}/infer", json_body(model),
                                 {"Content-Type": "application/json"})
    if status != 200:
        c.die(f"switchyard answered {status} to the capture request: {body[:300]!r}")
    (d / "infer.json").write_bytes(body)
    head, raw = binary_body(model)
    status, bheaders, bbody = http("POST", f"{sy.url}/v2/models/{model}/infer", head + raw,
                                   {"Content-Type": "application/octet-stream",
                                    "Inference-Header-Content-Length": str(len(head))})
    if status != 200:
        c.die(f"switchyard answered {status} to the binary capture request: {bbody[:300]!r}")
    (d / "infer.bin").write_bytes(f"{bheaders.get('inference-header-content-length', len(bbody))}\n".encode() + bbody)
    cmd = [str(binary_dir / "bare"), "--listen", "127.0.0.1:0", "--threads", str(threads),
           "--response", str(d / "infer.json"), "--binary-response", str(d / "infer.bin")]
    for k, v in headers.items():
        if k.startswith("x-"):
            cmd += ["--header", f"{k}:{v}"]
    for path in ("/v2", f"/v2/models/{model}", f"/v2/models/{model}/config", "/v2/health/ready",
                 "/v2/health/live", f"/v2/models/{model}/ready"):
        status, _, got = http("GET", sy.url + path)
        if status != 200:
            continue
        if path == "/v2":  # no statistics extension: perf_analyzer would poll stats bare does not have
            doc = json.loads(got)
            doc["extensions"] = [e for e in doc.get("extensions", []) if e != "statistics"]
            doc["name"] = "bare"
            got = json.dumps(doc).encode()
        f = d / ("get" + path.replace("/", "_") + ".json")
        f.write_bytes(got)
        cmd += ["--get", f"{path}={f}"]
    srv = Proc(f"bare-{model}", cmd, WORK)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not srv.url:
        text = srv.stdout_path.read_text()
        if "bare listening " in text:
            srv.url = text.split("bare listening ", 1)[1].split()[0]
        elif srv.proc.poll() is not None:
            c.die(f"bare exited with {srv.proc.returncode}:\n{srv.tail()}")
        else:
            time.sleep(0.05)
    if not srv.url:
        c.die("bare did not print its listening line")
    srv.response_bytes = len(body)
    return srv


# --------------------------------------------------------------------------------------------
# Load


def lua_for(model):
    path = WORK / f"post-{model}.lua"
    if not path.exists():
        path.write_text(f"-- wrk script: POST one v2 request for {model} (same body every time)\n"
                        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                        f"wrk.body = [[{json_body(model).decode()}]]\n")
    return path


class Results:
    def __init__(self):
        self.points = []  # dicts: model, server, tool, c, rps, p50_us, p99_us, ...
        self.notes = {}  # (server, tool) -> why not measured

    def add(self, **kw):
        self.points.append(kw)
        extra = f"  server CPU {kw['cpu_us']:.0f} us/req" if kw.get("cpu_us") else ""
        c.log(f"{kw['model']:8} {kw['server']:22} {kw['tool']:13} c={kw['c']:<3} {kw['rps']:9.0f} req/s  "
              f"p50 {c.fmt_us(kw['p50_us']):>9}  p99 {c.fmt_us(kw['p99_us']):>9}{extra}")

    def get(self, model, server, tool, conc):
        for p in self.points:
            if (p["model"], p["server"], p["tool"], p["c"]) == (model, server, tool, conc):
                return p
        return None

    def series(self, model, server, tool):
        return sorted((p for p in self.points if (p["model"], p["server"], p["tool"]) == (model, server, tool)),
                      key=lambda p: p["c"])


def wrk_point(res, srv, model, conc, args):
    url = f"{srv.url}/v2/models/{model}/infer"
    lua = lua_for(model)
    try:
        c.run_wrk(url, conc, args.warmup, lua=lua, strict=False)
        cpu0, th0 = tree_cpu(srv.pid), thread_cpu(srv.pid)
        r = c.run_wrk(url, conc, args.duration, lua=lua, strict=False)
        cpu, th1 = tree_cpu(srv.pid) - cpu0, thread_cpu(srv.pid)
    except SystemExit:
        srv.failed = srv.failed or f"wrk failed at c={conc}"
        res.notes[(srv.name, "wrk")] = srv.failed
        return None
    errors = r["non2xx"] + sum(r["socket_errors"])
    # Switchyard's engine threads are named sy-<model>-v<version>-<instance>: their CPU per request
    # is the compute cost, comparable with in-process ORT's CPU per call.
    engine = sum(v - th0.get(k, 0.0) for k, v in th1.items() if k.startswith("sy-"))
    res.add(model=model, server=srv.label, tool="wrk (JSON)", c=conc, rps=r["rps"], p50_us=r["p50_us"],
            p99_us=r["p99_us"], errors=errors, cpu_us=cpu / r["requests"] * 1e6 if r["requests"] else None,
            cores=cpu / r["elapsed_s"],
            engine_us=engine / r["requests"] * 1e6 if r["requests"] and srv.label.startswith("switchyard") else None,
            threads={k: (v - th0.get(k, 0.0)) / r["requests"] * 1e6 for k, v in th1.items()} if r["requests"] else {})
    if errors:
        c.log(f"WARNING: {srv.label} {model} c={conc}: {r['non2xx']} non-2xx, socket errors {r['socket_errors']}")
    return r


def pa_point(res, pa, srv, model, conc, args):
    """One perf_analyzer pass at one concurrency (binary tensors, zero-filled inputs)."""
    key = (srv.label, "perf_analyzer")
    if key in res.notes:
        return None
    out_csv = WORK / f"pa-{srv.label}-{model}-{conc}.csv"
    out_csv.unlink(missing_ok=True)
    host = srv.url.split("://", 1)[1]
    cmd = [pa, "-m", model, "-u", host, "-i", "http", "--concurrency-range", f"{conc}:{conc}",
           "--measurement-interval", str(args.pa_window_ms), "--stability-percentage", "300",
           "--max-trials", "4", "--input-data", "zero", "-f", str(out_csv)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=WORK)
    except subprocess.TimeoutExpired:
        res.notes[key] = f"perf_analyzer did not finish within 90 s at c={conc}"
        return None
    if proc.returncode != 0 or not out_csv.exists():
        lines = [ln for ln in (proc.stdout + proc.stderr).strip().splitlines() if ln.strip()]
        why = " / ".join(lines[-2:])[:300]
        res.notes[key] = f"perf_analyzer exited {proc.returncode}: {why}"
        c.log(f"{srv.label}: perf_analyzer not usable: {res.notes[key]}")
        return None
    with out_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Concurrency", "").strip()]
    if not rows:
        res.notes[key] = "perf_analyzer wrote no result row"
        return None
    row = rows[0]
    res.add(model=model, server=srv.label, tool="perf_analyzer (binary)", c=conc,
            rps=float(row["Inferences/Second"]), p50_us=float(row["p50 latency"]),
            p99_us=float(row["p99 latency"]), errors=0, cpu_us=None, cores=None)
    return row


def inproc(binary_dir, ort, model_file, threads, batch, args, int_max=1000):
    cmd = [str(binary_dir / "inproc"), "--model", str(model_file), "--ort", ort, "--threads", str(threads),
           "--batch", str(batch), "--duration", str(args.duration), "--warmup", str(args.warmup),
           "--intra-op", "1", "--int-max", str(int_max), "--device", DEVICE]
    proc = subprocess.run(c.pinned(cmd), capture_output=True, text=True, timeout=args.duration + args.warmup + 120)
    if proc.returncode != 0:
        c.die(f"inproc failed:\n{proc.stderr}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["cpu_us_per_call"] = r["cpu_cores"] / r["calls_per_s"] * 1e6 if r["calls_per_s"] else None
    c.log(f"inproc {Path(model_file).name} threads {threads} batch {batch}: {r['calls_per_s']:.0f} calls/s, "
          f"p50 {r['p50_us']:.0f} us, CPU {r['cpu_us_per_call']:.0f} us/call ({r['cpu_cores']:.2f} cores)")
    return r


def rotated(items, k):
    k %= max(1, len(items))
    return items[k:] + items[:k]


# --------------------------------------------------------------------------------------------
# perf profile of Switchyard under load


# Where a sample's time goes, judged on its whole call stack (leaf to root, as perf script prints
# it): the first bucket one of whose markers appears in any frame wins, so a syscall is counted
# under the user-space code that made it. Order matters: metrics recorded inside the handler count
# as metrics, the model run inside the engine thread as ONNX Runtime.
BUCKETS = [
    ("ONNX Runtime `Session::run` (the model itself)", ("ort::session::run",)),
    ("lineage (SQLite writer thread, sqlx encoding)", ("gateway::lineage", "sqlx_", "sqlite3")),
    ("metrics (per-request handle lookup, labels, recording)",
     ("metrics::", "metrics_exporter_prometheus", "metrics_util", "labels_with_status")),
    ("v2 request decode (JSON → tensors)", ("gateway::v2::decode",)),
    ("v2 response encode", ("gateway::v2::encode",)),
    ("handoff between I/O and engine threads (channels, wake-ups)",
     ("oneshot", "crossbeam_channel", "tokio::sync::mpsc")),
    ("engine thread, the rest (tensor conversion, bookkeeping)", ("gateway::engine",)),
    ("request handler, the rest (routing, deadline, headers, request id)", ("gateway::http::public",)),
    ("hyper: read, parse, write (with their socket syscalls)", ("hyper::",)),
    ("tokio scheduler: park, unpark, epoll, context switches", ("tokio::runtime", "epoll_wait", "mio::")),
]


def stack_samples(data):
    """[(thread name, [frame symbols, leaf first])] from `perf script` (fast with --no-inline)."""
    out = subprocess.run(["perf", "script", "-i", str(data), "--no-inline", "-F", "comm,tid,ip,sym"],
                         capture_output=True, text=True).stdout
    samples, cur = [], None
    for line in out.splitlines():
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = None
        elif not line[0].isspace():
            cur = (line.split()[0], [])
        elif cur is not None:
            parts = line.split(None, 1)
            cur[1].append(parts[1].strip() if len(parts) > 1 else "?")
    if cur:
        samples.append(cur)
    return samples


def buckets_of(samples):
    """[(bucket, % of samples)], every sample in exactly one bucket."""
    counts = {}
    for comm, stack in samples:
        name = next((b for b, marks in BUCKETS if any(m in f for f in stack for m in marks)), None)
        if name is None:
            name = "kernel / libc, no gateway frame (allocator, scheduler)" if comm.startswith(("switchyard", "sy-")) \
                else "other"
        counts[name] = counts.get(name, 0) + 1
    n = max(1, len(samples))
    return sorted(((k, 100 * v / n) for k, v in counts.items()), key=lambda kv: -kv[1])


def callees_of(samples, target, top=12):
    """[(direct callee of the first frame containing `target`, % of all samples)]."""
    counts, n = {}, max(1, len(samples))
    for _, stack in samples:
        for i, f in enumerate(stack):
            if target in f:
                callee = stack[i - 1] if i > 0 else "(its own code)"
                counts[callee] = counts.get(callee, 0) + 1
                break
    return sorted(((k, 100 * v / n) for k, v in counts.items()), key=lambda kv: -kv[1])[:top]


def profile(sy, model, conc, seconds=6):
    """perf record (DWARF call graphs) on the gateway while wrk runs at `conc`: self time by
    symbol, thread and object; inclusive time of the gateway's functions; every sample sorted
    into a cost bucket by its call stack; the direct callees of the request handler and of the
    engine thread's loop."""
    data = WORK / "perf.data"
    url = f"{sy.url}/v2/models/{model}/infer"
    # DWARF call graphs: the release binary has no frame pointers, so -g alone stops at the first frame.
    rec = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph", "dwarf,16384", "-p", str(sy.pid),
                            "-o", str(data), "--", "sleep", str(seconds)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    c.RUNNING.add(rec)
    time.sleep(0.3)
    c.run_wrk(url, conc, seconds, lua=lua_for(model), strict=False)
    try:
        rec.wait(timeout=60)
    finally:
        c.RUNNING.discard(rec)
    if rec.returncode != 0 or not data.exists():
        return None, f"perf record failed: {rec.stderr.read()[-300:] if rec.stderr else ''}"

    def table(sort, limit, children=False):
        # --no-inline: resolving inlined frames takes minutes on this machine.
        out = subprocess.run(["perf", "report", "-i", str(data), "--children" if children else "--no-children",
                              "--no-inline", "--stdio", "-g", "none", "--sort", sort, "--percent-limit", str(limit)],
                             capture_output=True, text=True)
        rows = []
        for line in out.stdout.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            line = re.sub(r"\s+-\s+-\s*$", "", line)  # the IPC columns perf adds (no PMU in a VM: "-")
            parts = line.split(None, 2 if children else 1)
            if children and len(parts) == 3 and parts[0].endswith("%"):
                rows.append((float(parts[0].rstrip("%")), parts[2].strip()))  # children %, self %, name
            elif len(parts) == 2 and parts[0].endswith("%"):
                rows.append((float(parts[0].rstrip("%")), parts[1].strip()))
        return rows

    syms = []
    for pc, rest in table("dso,symbol", 0):
        dso, _, sym = rest.partition(" ")
        syms.append((pc, dso, sym.strip().replace("[.] ", "").replace("[k] ", "").strip()))
    threads = table("comm", 1)
    dsos = table("dso", 0.5)
    # Inclusive time of the gateway's own functions (and its crates'): where the per-request work is.
    keep = ("gateway::", "model_store::", "hyper::proto::h1::dispatch", "poll_read_head", "poll_flush",
            "poll_write_vectored", "sqlite3_step", "malloc", "free", "serde_json::de::from_trait")
    inclusive = [(pc, name.replace("[.] ", "").replace("[k] ", "").strip())
                 for pc, name in table("symbol", 1.0, children=True) if any(k in name for k in keep)]
    samples = stack_samples(data)
    return {"symbols": syms[:25], "all_symbols": syms, "threads": threads, "dsos": dsos,
            "inclusive": inclusive[:30], "samples": len(samples), "buckets": buckets_of(samples),
            "handler": callees_of(samples, "gateway::http::public::infer::"),
            "engine": callees_of(samples, "gateway::engine::worker::Worker::run", 8)}, None
