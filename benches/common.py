"""Shared helpers for the benches under benches/ (Python 3, stdlib only).

What every bench needs: the binary (built, or `SWITCHYARD_BIN` / `--bin`), ONNX Runtime, wrk, a
store with fixtures registered, `switchyard serve` on loopback with port 0 (its `switchyard
listening public=... admin=...` line read back), wrk runs with a Lua POST script and their
latency output parsed, an open-loop load generator (fixed arrival rate, asyncio + raw sockets),
the admin port's Prometheus text parsed, per-process CPU and memory from /proc, and the machine
facts every results file starts with.

Any setup problem ends the bench with `die()`: a message, a non-zero exit, and every server or
wrk this process started stopped (see `install_exit_handlers`).
"""

import asyncio
import atexit
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
RESULTS = BENCHES / "results"
LUA_POST = BENCHES / "lua" / "post.lua"
FIXTURES = ROOT / "tests" / "fixtures"
TMP = RESULTS / "tmp"  # ignored by git

# The request every bench sends: one [1,64] FP32 row, values i/64 (what benches/lua/post.lua sends).
# mlp_v1..v3 and slow share this signature.
BODY = (
    '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":['
    + ",".join("%.6f" % (i / 64) for i in range(64))
    + "]}]}"
).encode()

RUNNING = set()  # servers and wrk processes to stop on exit
_TAG = ["bench"]


# --------------------------------------------------------------------------------------------
# Process plumbing


def set_tag(tag):
    _TAG[0] = tag


def log(msg):
    print(f"[{_TAG[0]} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log("ERROR: " + msg)
    sys.exit(1)


def env_default(name, default, cast=str):
    value = os.environ.get(name)
    return cast(value) if value not in (None, "") else default


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


def install_exit_handlers():
    """SIGTERM/SIGINT end the bench through sys.exit, so atexit stops the servers it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    atexit.register(stop_all)


def start_bench(tag, bin_arg, work, wrk=True):
    """The start every bench shares: log tag, exit handlers (servers and wrk stopped on any
    exit), the bench itself moved to the load generators' CPUs when BENCH_SERVER_CPUS is set, wrk
    installed when `wrk`, `work` emptied, the binary copied there, ONNX Runtime found.
    Returns (binary, its description for the results, ORT library path, server environment)."""
    set_tag(tag)
    install_exit_handlers()
    place_load_generators()
    if wrk:
        ensure_wrk()
    fresh_dir(work)
    binary, binary_desc = pick_binary(bin_arg, work)
    ort = onnxruntime()
    return binary, binary_desc, ort, server_env(ort)


def venv_python():
    """The test venv's python (numpy, onnx, selenium, ...), set up by scripts/setup-python.sh
    when missing."""
    venv = ROOT / ".cache" / "venv" / "bin" / "python"
    if not venv.is_file():
        subprocess.run([str(ROOT / "scripts" / "setup-python.sh")], check=True, stdout=subprocess.DEVNULL)
    return venv


def process_cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh_dir(path):
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def sh(*cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def write_atomic(path, text):
    """Writes `text` to `path` through a rename, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# CPU placement: servers on their own cores, load generators on the rest
#
# By default every process shares every core, as on the 2-core machine the benches were written
# on. On a machine with cores to spare, BENCH_SERVER_CPUS (a taskset list, e.g. "0-1") pins every
# server under test and the in-process ONNX Runtime run to those CPUs, and the bench itself with
# everything it starts besides (wrk, perf_analyzer, the Python peers' clients) to BENCH_LOAD_CPUS
# (default: all the others), so the load generator no longer takes the server's cores.


def cpu_set(spec, what):
    """{0, 1, 4} from a taskset-style list "0-1,4"; a malformed or empty one ends the bench."""
    cpus = set()
    try:
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        die(f"{what}={spec!r} is not a CPU list like 0-1,4")
    if not cpus:
        die(f"{what}={spec!r} names no CPU")
    return cpus


def server_cpus():
    """The CPUs the servers under test are pinned to (a set), or None when not pinned."""
    spec = os.environ.get("BENCH_SERVER_CPUS", "").strip()
    if not spec:
        return None
    cpus = cpu_set(spec, "BENCH_SERVER_CPUS")
    if not cpus <= set(range(os.cpu_count() or 1)):
        die(f"BENCH_SERVER_CPUS={spec!r} names CPUs this machine does not have ({os.cpu_count()} CPUs)")
    return cpus


def load_cpus():
    """The CPUs the load generators run on when the servers are pinned (None when they are not)."""
    srv = server_cpus()
    if srv is None:
        return None
    spec = os.environ.get("BENCH_LOAD_CPUS", "").strip()
    cpus = cpu_set(spec, "BENCH_LOAD_CPUS") if spec else set(range(os.cpu_count() or 1)) - srv
    if not cpus:
        die("BENCH_SERVER_CPUS leaves no CPU for the load generators; set BENCH_LOAD_CPUS")
    if cpus & srv:
        die("BENCH_LOAD_CPUS and BENCH_SERVER_CPUS overlap")
    return cpus


def place_load_generators():
    """Moves this process (and so everything it starts unpinned) to the load generators' CPUs."""
    cpus = load_cpus()
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
        log(f"servers pinned to CPUs {cpu_text(server_cpus())}; load generators on {cpu_text(cpus)}")


def pinned(cmd):
    """`cmd` to start a server under test: through `taskset -c` when BENCH_SERVER_CPUS is set
    (taskset execs the command, so the process id is the server's)."""
    cpus = server_cpus()
    return ["taskset", "-c", cpu_text(cpus)] + list(cmd) if cpus is not None else list(cmd)


def server_cpu_count():
    """How many CPUs a server under test may use: the pinned set, else the machine's."""
    cpus = server_cpus()
    return len(cpus) if cpus is not None else os.cpu_count() or 1


def cpu_text(cpus):
    return ",".join(str(c) for c in sorted(cpus))


def placement_line():
    """One results line saying where servers and load generators ran."""
    srv = server_cpus()
    if srv is None:
        return "- placement: servers and load generators share every core (BENCH_SERVER_CPUS unset)"
    return (f"- placement: servers under test (and in-process ONNX Runtime) pinned to CPUs {cpu_text(srv)} "
            f"({len(srv)} of {os.cpu_count()}); the bench, wrk and perf_analyzer on CPUs {cpu_text(load_cpus())}")


# --------------------------------------------------------------------------------------------
# Setup: binary, ONNX Runtime, wrk, store


def pick_binary(bin_arg, work):
    """Returns (path to a private copy of the binary under `work`, description for the results).

    `bin_arg` (from --bin or SWITCHYARD_BIN) skips the build. Otherwise `cargo build --release -p
    gateway`; when that fails and target/release/switchyard exists, that binary is used and the
    description says so."""
    if bin_arg:
        src = Path(bin_arg).resolve()
        if not src.is_file() or not os.access(src, os.X_OK):
            die(f"SWITCHYARD_BIN={src} is not an executable file")
        how = f"`SWITCHYARD_BIN={src}` (not built by this run)"
    else:
        src = ROOT / "target" / "release" / "switchyard"
        log("building: cargo build --release -p gateway (about 5 minutes on a busy 2-core machine)")
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
    # A private copy: a concurrent rebuild of target/ must not change the binary mid-bench.
    Path(work).mkdir(parents=True, exist_ok=True)
    dst = Path(work) / "switchyard"
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


def server_env(ort):
    env = dict(os.environ, ORT_DYLIB_PATH=ort)
    env.pop("RUST_LOG", None)
    env.pop("SWITCHYARD_ADMIN_TOKEN", None)  # the benches call the admin API without a token
    return env


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


def register(binary, env, store, entries):
    """Registers fixtures into `store`: entries of (model, fixture stem, expected version), e.g.
    ("mlp", "mlp_v1", 1), in order."""
    for model, stem, version in entries:
        out = subprocess.run(
            [str(binary), "models", "register", "--store", str(store), "--model", model,
             "--file", str(FIXTURES / "models" / f"{stem}.onnx"),
             "--manifest", str(FIXTURES / "manifests" / f"{stem}.toml"), "--json"],
            capture_output=True, text=True, env=env,
        )
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            die(f"registering {stem}.onnx as model {model} failed")
        got = json.loads(out.stdout.strip().splitlines()[-1])
        if got.get("version") != version:
            die(f"{stem}.onnx registered as {model} version {got.get('version')}, expected {version}")
    return store


# --------------------------------------------------------------------------------------------
# Server


def config_head(written_by, store, lineage, worker_threads=None):
    """What every bench config starts with: `[server]` on loopback with ports chosen by the OS
    (and `worker_threads` when given), `[store]`, and `[lineage] enabled`. The `[[model]]`
    tables follow."""
    threads = f"worker_threads = {worker_threads}\n" if worker_threads else ""
    return f"""# written by benches/{written_by}
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{threads}
[store]
path = "{store}"

[lineage]
enabled = {"true" if lineage else "false"}
"""


class MaxSampler(threading.Thread):
    """Scrapes a server's admin /metrics every `interval` seconds until `finish()`, keeping the
    highest value of the samples named `name` matching `labels` (summed), e.g. a queue depth."""

    def __init__(self, server, interval, name, **labels):
        super().__init__(daemon=True)
        self.server, self.interval, self.name, self.labels = server, interval, name, labels
        self.stop_event, self.max_value, self.samples = threading.Event(), 0.0, 0

    def run(self):
        while not self.stop_event.wait(self.interval):
            try:
                value = metric_sum(self.server.metrics(), self.name, **self.labels)
            except OSError:
                continue  # a scrape that failed under load; the next one counts
            self.max_value = max(self.max_value, value)
            self.samples += 1

    def finish(self):
        """Stops the scraping; returns the highest value seen."""
        self.stop_event.set()
        self.join()
        return self.max_value



class Server:
    """`switchyard serve --config CONFIG` with its stdout/stderr in `work`; waits for the
    `switchyard listening public=... admin=...` line (ports chosen by the OS)."""

    def __init__(self, binary, name, config_path, work, env):
        self.name = name
        self.config_path = Path(config_path)
        self.stdout_path = Path(work) / f"{name}.stdout"
        self.stderr_path = Path(work) / f"{name}.stderr"
        self._out = open(self.stdout_path, "w")
        self._err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            pinned([str(binary), "serve", "--config", str(self.config_path)]),
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err, env=env,
        )
        self.pid = self.proc.pid
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
        self.host, self.port = "127.0.0.1", int(self.public.rsplit(":", 1)[1])

    def alive(self):
        return self.proc.poll() is None

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

    def request(self, method, url, body=None, timeout=10):
        """(status, headers as a lower-cased dict, body bytes); HTTP errors are answers too."""
        req = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/json"} if body is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def check_infer(self, model, expect_version=None):
        """One request, which must answer 200 with a [1,10] output (from `expect_version`, if
        given); returns the version that answered."""
        try:
            status, headers, body = self.request("POST", f"{self.public}/v2/models/{model}/infer", BODY)
        except OSError as e:
            die(f"server {self.name}: check request failed: {e}")
        if status != 200:
            die(f"server {self.name}: check request answered {status}: {body[:500]!r}")
        doc = json.loads(body)
        version = headers.get("x-model-version")
        if doc["outputs"][0]["shape"] != [1, 10] or (expect_version is not None and version != str(expect_version)):
            die(f"server {self.name}: unexpected check answer version={version}: {body[:500]!r}")
        return version

    def ready_status(self):
        try:
            return self.request("GET", self.public + "/v2/health/ready")[0]
        except OSError as e:
            return f"error: {e}"

    def reload(self, actor="bench"):
        """POST {admin}/admin/reload: (HTTP status, JSON answer)."""
        status, _, body = self.request("POST", self.admin + "/admin/reload",
                                       json.dumps({"actor": actor}).encode(), timeout=60)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {"raw": body[:500].decode(errors="replace")}

    def metrics_text(self):
        with urllib.request.urlopen(self.admin + "/metrics", timeout=10) as r:
            return r.read().decode()

    def metrics(self):
        return parse_prometheus(self.metrics_text())

    def proc_status(self):
        """{"rss_kib", "threads", "fds"} of the server process, from /proc."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_kib"] = int(line.split()[1])
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
        try:
            out["fds"] = len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            out["fds"] = None
        return out

    def thread_sched(self, prefix=""):
        """Summed /proc/PID/task/*/schedstat of the threads whose name starts with `prefix`:
        (seconds on a CPU, seconds runnable but waiting for a CPU, timeslices). The waiting time
        is what a loaded machine takes from the gateway."""
        cpu = wait = slices = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                if not (task / "comm").read_text().strip().startswith(prefix):
                    continue
                a, b, n = (task / "schedstat").read_text().split()[:3]
            except OSError:
                continue  # the thread ended
            cpu, wait, slices = cpu + int(a), wait + int(b), slices + int(n)
        return cpu / 1e9, wait / 1e9, slices

    def cpu_seconds(self):
        """User + system CPU seconds of the whole process so far."""
        return process_cpu_seconds(self.pid)


# --------------------------------------------------------------------------------------------
# Prometheus text


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


def metric_delta(before, after):
    """after - before, sample by sample (counters and histogram buckets over an interval)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def histogram_buckets(samples, name, **match):
    """[(le, cumulative count)], summed over the series matching the labels, sorted by le."""
    want = set(match.items())
    by_le = {}
    for (n, labels), v in samples.items():
        if n != name + "_bucket" or not want <= labels:
            continue
        le = dict(labels)["le"]
        le = float("inf") if le == "+Inf" else float(le)
        by_le[le] = by_le.get(le, 0.0) + v
    return sorted(by_le.items())


def histogram_quantile(samples, name, q, **match):
    """Prometheus-style quantile: linear interpolation inside the bucket that holds it (the
    bucket's upper bound when it is the last finite one). None without observations."""
    buckets = histogram_buckets(samples, name, **match)
    if not buckets or buckets[-1][1] <= 0:
        return None
    target = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= target:
            if le == float("inf"):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (target - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return None


# --------------------------------------------------------------------------------------------
# wrk

UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def run_wrk(url, connections, duration, lua=LUA_POST, threads=None, timeout="5s", strict=True):
    """One wrk run with `--latency`; returns parse_wrk()'s dict. `strict`: any non-2xx response or
    socket error ends the bench."""
    threads = threads or min(2, connections)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", timeout,
           "--latency", "-s", str(lua), url]
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
    return parse_wrk(out, strict)


def parse_wrk(out, strict=True):
    def need(pattern):
        m = re.search(pattern, out, re.M)
        if not m:
            die(f"could not find /{pattern}/ in wrk's output:\n{out}")
        return m

    r = {"raw": out}
    r["rps"] = float(need(r"^Requests/sec:\s+([\d.]+)").group(1))
    r["requests"] = int(need(r"^\s*(\d+) requests in ").group(1))
    secs = need(r"^\s*\d+ requests in ([\d.]+)(us|ms|s|m|h),").groups()
    r["elapsed_s"] = float(secs[0]) * UNITS[secs[1]] / 1e6
    dist = out[need(r"^\s*Latency Distribution").end():]
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", dist, re.M)
        if not m:
            die(f"no {pct}% line in wrk's latency distribution:\n{out}")
        r[f"p{pct}_us"] = float(m.group(1)) * UNITS[m.group(2)]
    m = re.search(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m|h)", out, re.M)
    r["max_us"] = float(m.group(1)) * UNITS[m.group(2)] if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = tuple(int(x) for x in m.groups()) if m else (0, 0, 0, 0)
    if strict and r["non2xx"]:
        die(f"wrk saw {r['non2xx']} non-2xx responses:\n{out}")
    if strict and any(r["socket_errors"]):
        die(f"wrk saw socket errors (connect, read, write, timeout) = {r['socket_errors']}:\n{out}")
    if r["requests"] == 0:
        die(f"wrk completed no requests:\n{out}")
    return r


# --------------------------------------------------------------------------------------------
# Open-loop load generator


class OpenLoopResult:
    """Per request: scheduled offset from the start (s), latency from the *scheduled* send time
    (s; so a late generator or a slow server both count, no coordinated omission), service time
    from the actual write of the request (s; None on error), status (int,
    or None on a transport error), Retry-After header (or None), x-model-version (or None)."""

    def __init__(self):
        self.sched, self.latency, self.status, self.retry_after, self.version = [], [], [], [], []
        self.service = []  # from the request's actual write to the end of its response (s)
        self.errors = []  # (offset, message) for transport errors and timeouts
        self.send_lag = []  # how late the generator itself issued each request (s)
        self.stale_retries = 0  # reused keep-alive connections the server had closed; retried
        self.connections_opened = 0
        self.duration = 0.0
        self.rate = 0.0

    def __len__(self):
        return len(self.status)

    def where(self, pred):
        return [i for i, s in enumerate(self.status) if pred(s)]


def open_loop(host, port, path, body, rate, duration, timeout=10.0, progress=None):
    """Offers `rate` requests per second for `duration` seconds, evenly spaced, whatever the
    server does: each request goes out at its scheduled time on an idle keep-alive connection, or
    a new one when none is idle (the number of connections is not bounded, as with real
    independent clients). Runs its own asyncio loop; returns an OpenLoopResult.
    `progress(result)`, if given, is called about once a second from the loop."""
    return asyncio.run(_open_loop(host, port, path, body, rate, duration, timeout, progress))


async def _read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers


async def _open_loop(host, port, path, body, rate, duration, timeout, progress):
    loop = asyncio.get_running_loop()
    res = OpenLoopResult()
    res.rate, res.duration = rate, duration
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    idle = []  # (reader, writer, last used)
    # hyper closes a keep-alive connection that sends no request head for 10 s (the gateway's
    # header_read_timeout): connections idle for longer than this are not reused.
    max_idle = 5.0

    async def one(sched_abs, offset):
        conn = None
        while idle:
            r, w, used = idle.pop()
            if loop.time() - used < max_idle and not w.is_closing():
                conn = (r, w)
                break
            w.close()
        for attempt in (0, 1):
            reused = conn is not None
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                    res.connections_opened += 1
                r, w = conn
                sent = loop.time()
                w.write(request)
                await w.drain()
                status, headers = await _read_response(r)
                done = loop.time()
                if headers.get("connection", "").lower() == "close":
                    w.close()
                else:
                    idle.append((r, w, done))
                res.sched.append(offset)
                res.latency.append(done - sched_abs)
                res.service.append(done - sent)
                res.status.append(status)
                res.retry_after.append(headers.get("retry-after"))
                res.version.append(headers.get("x-model-version"))
                return
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                if conn is not None:
                    conn[1].close()
                conn = None
                if reused and attempt == 0 and (not isinstance(e, asyncio.IncompleteReadError) or not e.partial):
                    res.stale_retries += 1  # the server closed an idle connection: not its error
                    continue
                error = f"{type(e).__name__}: {e}"
            except OSError as e:
                if conn is not None:
                    conn[1].close()
                error = f"{type(e).__name__}: {e}"
            break
        res.sched.append(offset)
        res.latency.append(loop.time() - sched_abs)
        res.service.append(None)
        res.status.append(None)
        res.retry_after.append(None)
        res.version.append(None)
        res.errors.append((offset, error))

    async def bounded(sched_abs, offset):
        try:
            await asyncio.wait_for(one(sched_abs, offset), timeout)
        except asyncio.TimeoutError:
            res.sched.append(offset)
            res.latency.append(loop.time() - sched_abs)
            res.service.append(None)
            res.status.append(None)
            res.retry_after.append(None)
            res.version.append(None)
            res.errors.append((offset, f"timeout after {timeout} s"))

    tasks = set()
    n = int(rate * duration)
    start = loop.time() + 0.05
    next_progress = start + 1.0
    for i in range(n):
        sched = start + i / rate
        delay = sched - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        now = loop.time()
        res.send_lag.append(max(0.0, now - sched))
        task = asyncio.create_task(bounded(sched, sched - start))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if progress and now >= next_progress:
            next_progress += 1.0
            progress(res)
    if tasks:
        await asyncio.gather(*list(tasks))
    for _, w, _ in idle:
        w.close()
    return res


# --------------------------------------------------------------------------------------------
# Statistics


def percentile(xs, q):
    """Nearest-rank percentile (q in 0..100) of a list; None when empty."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def linear_fit(xs, ys):
    """(slope, intercept) of the least-squares line; None with fewer than 2 distinct x."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope, my - slope * mx


# --------------------------------------------------------------------------------------------
# Machine description and report helpers


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--", "gateway", "model-store", "Cargo.toml",
                                 "Cargo.lock"], cwd=ROOT, capture_output=True, text=True).stdout
    except OSError:  # no git where the bench runs (a copy of the tree on another machine)
        status = ""
    dirty = [line[3:] for line in status.splitlines() if line.strip()]
    mem = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(os.cpu_count()),  # the machine's, not this process's (pinned) share
        "cpu": cpu,
        "mem": mem,
        "kernel": sh("uname", "-sr"),
        "python": sys.version.split()[0],
        "commit": sh("git", "rev-parse", "HEAD"),
        "subject": sh("git", "log", "-1", "--format=%s")[:100],
        "dirty": dirty,
        "wrk": (sh("wrk", "--version").splitlines() or ["?"])[0].split(" Copyright")[0],
        "load_start": loadavg(),
    }


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_lines(mach, binary_desc, ort, started, finished, generator):
    """The '## Machine' section every results file starts with."""
    L = ["## Machine", ""]
    L.append(f"- date: {started:%Y-%m-%d}, measured {started:%H:%M:%S} → {finished:%H:%M:%S} UTC")
    L.append(f"- nproc: {mach['nproc']}; CPU: {mach['cpu']}; memory {mach['mem']}; {mach['kernel']}")
    L.append(f"- load average (1/5/15 min) at start: {mach['load_start']}; at end: {mach.get('load_end', '?')}")
    L.append(f"- git commit: `{mach['commit']}` ({mach['subject']})")
    if mach["dirty"]:
        shown = ", ".join(f"`{p}`" for p in mach["dirty"][:8])
        more = f" and {len(mach['dirty']) - 8} more" if len(mach["dirty"]) > 8 else ""
        L.append(f"- working tree: **uncommitted changes** under gateway/ or model-store/ when the bench ran "
                 f"(the binary may include them): {shown}{more}")
    else:
        L.append("- working tree: no uncommitted changes under gateway/, model-store/, Cargo.*")
    L.append(f"- binary: {binary_desc}")
    L.append(f"- ONNX Runtime: `{rel(ort)}`; load generator: {generator}")
    L.append(placement_line())
    L.append("")
    if server_cpus() is None:
        L.append(f"**This machine is shared and noisy** ({mach['nproc']} cores; the load generator and the "
                 "gateway share them, and other people's builds and tests ran beside this bench — see the load "
                 "averages above): read differences of tens of percent in latency as possibly noise.")
    else:
        L.append("The servers had their own cores and the load generator others (see placement above); the "
                 "load averages above say what else ran.")
    L.append("")
    return L


def rel(path):
    path = str(path)
    return os.path.relpath(path, ROOT) if path.startswith(str(ROOT)) else path


def fmt_us(us):
    if us is None:
        return "–"
    return f"{us / 1000:.3f} ms" if us < 10_000 else f"{us / 1000:.1f} ms"


def fmt_s(secs):
    return "–" if secs is None else fmt_us(secs * 1e6)


def write_results(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
    log(f"wrote {rel(path)}")
