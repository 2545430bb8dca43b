"""Fixtures for the end-to-end suite: the real `switchyard` binary, a store filled through its
CLI, and servers started with `switchyard serve` on ports picked by the OS (127.0.0.1 only).

Environment:
  SWITCHYARD_BIN   the binary (default: target/debug/switchyard; build with `cargo build -p gateway`)
  ORT_DYLIB_PATH   libonnxruntime.so (scripts/fetch-onnxruntime.sh prints it); required
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import re
import selectors
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
MODELS = FIXTURES / "models"
MANIFESTS = FIXTURES / "manifests"
EXPECTED = FIXTURES / "expected"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 30.0

LISTENING = re.compile(
    r"^switchyard listening public=(http://127\.0\.0\.1:\d+) admin=(http://127\.0\.0\.1:\d+)"
    r"(?: grpc=(http://127\.0\.0\.1:\d+))?$"  # the gRPC listener, when [server] grpc_listen is set
)

# What the session server serves: (model name, fixture file stem, manifest stem or None).
# mlp v1..v3 are registered in order, so their registry versions are 1, 2, 3.
REGISTRATIONS = [
    ("mlp", "mlp_v1", "mlp_v1"),
    ("mlp", "mlp_v2", "mlp_v2"),
    ("mlp", "mlp_v3", "mlp_v3"),
    ("mixed", "mixed", "mixed"),
    ("dtypes", "dtypes", "dtypes"),
    ("slow", "slow", "slow"),
    ("faulty", "faulty", "faulty"),
]

# Every server process this run started, so that none outlives pytest (even on a crash or ^C).
_LIVE: set[subprocess.Popen] = set()


def _kill_all() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _LIVE.discard(proc)


atexit.register(_kill_all)


# --------------------------------------------------------------------------------------------
# Locating the binary and the runtime


def switchyard_bin() -> Path:
    path = Path(os.environ.get("SWITCHYARD_BIN", REPO / "target" / "debug" / "switchyard"))
    if not path.is_absolute():
        path = REPO / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"switchyard binary not found at {path}: build it with `cargo build -p gateway` "
            "or point SWITCHYARD_BIN at it",
            pytrace=False,
        )
    return path


def ort_dylib() -> str:
    lib = os.environ.get("ORT_DYLIB_PATH", "")
    if not lib or not Path(lib).is_file():
        pytest.fail(
            f"ORT_DYLIB_PATH must name libonnxruntime.so (got {lib!r}); "
            "run `export ORT_DYLIB_PATH=$(scripts/fetch-onnxruntime.sh)`",
            pytrace=False,
        )
    return lib


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["ORT_DYLIB_PATH"] = ort_dylib()
    env.setdefault("RUST_BACKTRACE", "1")
    env["NO_COLOR"] = "1"
    return env


# --------------------------------------------------------------------------------------------
# CLI


def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Runs `switchyard ARGS`; fails the test with its stderr when it exits non-zero."""
    proc = subprocess.run(
        [str(switchyard_bin()), *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
        cwd=REPO,
    )
    if proc.returncode != 0:
        pytest.fail(f"switchyard {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}", pytrace=False)
    return proc


def register(store: Path, model: str, file: Path, manifest: Path | None = None) -> dict:
    """`switchyard models register --json`; returns {"model", "version", "sha256", "size", ...}."""
    args = ["models", "register", "--store", str(store), "--model", model, "--file", str(file), "--json"]
    if manifest is not None:
        args += ["--manifest", str(manifest)]
    out = json.loads(run_cli(*args).stdout)
    assert out["model"] == model
    assert isinstance(out["version"], int) and out["version"] >= 1
    assert re.fullmatch(r"[0-9a-f]{64}", out["sha256"]), out
    assert out["size"] == file.stat().st_size
    return out


def artifact_path(store: Path, sha256: str) -> Path:
    return store / "artifacts" / "sha256" / sha256[:2] / sha256


# --------------------------------------------------------------------------------------------
# Config files


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def config_toml(store: Path, models: list[dict], server: dict | None = None) -> str:
    """A serve config. `models`: [{"name", "versions", "default_version"?, "engine"?: {...},
    "routing"?: {...}}]."""
    srv = {"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", **(server or {})}
    lines = ["[server]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in srv.items()]
    lines += ["", "[store]", f"path = {toml_value(str(store))}"]
    for m in models:
        lines += ["", "[[model]]", f"name = {toml_value(m['name'])}", f"versions = {toml_value(m['versions'])}"]
        if "default_version" in m:
            lines.append(f"default_version = {toml_value(m['default_version'])}")
        if m.get("engine"):
            lines.append("[model.engine]")
            lines += [f"{k} = {toml_value(v)}" for k, v in m["engine"].items()]
        if m.get("routing"):
            lines.append("[model.routing]")
            lines += [f"{k} = {toml_value(v)}" for k, v in m["routing"].items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Server processes


@dataclasses.dataclass
class Server:
    """A running `switchyard serve`."""

    public: str
    admin: str
    store: Path
    config: Path
    proc: subprocess.Popen
    log: Path
    # (model, version) -> sha256 of what was registered.
    sha256: dict[tuple[str, int], str] = dataclasses.field(default_factory=dict)
    # The gRPC listener (http://host:port), when the config sets grpc_listen.
    grpc: str | None = None

    @property
    def grpc_host_port(self) -> str:
        assert self.grpc is not None, "this server has no gRPC listener"
        return self.grpc.removeprefix("http://")

    @property
    def host_port(self) -> str:
        return self.public.removeprefix("http://")

    @property
    def admin_host_port(self) -> str:
        return self.admin.removeprefix("http://")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return requests.get(self.public + path, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return requests.post(self.public + path, **kw)

    def admin_get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return requests.get(self.admin + path, **kw)


def start_server(config: Path, store: Path, log: Path) -> Server:
    """Starts `switchyard serve --config CONFIG` and waits for its listening line."""
    log_file = open(log, "wb")
    proc = subprocess.Popen(
        [str(switchyard_bin()), "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log_file,
        env=_env(),
        cwd=REPO,
        start_new_session=True,  # ^C in the terminal reaches pytest only; atexit kills the server
    )
    log_file.close()
    _LIVE.add(proc)
    try:
        line = _read_line(proc, START_TIMEOUT_S)
    except Exception:
        _LIVE.discard(proc)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        raise
    match = LISTENING.match(line)
    if not match:
        proc.kill()
        proc.wait(timeout=10)
        _LIVE.discard(proc)
        pytest.fail(f"unexpected first stdout line from serve: {line!r}\n{log.read_text(errors='replace')[-4000:]}")
    return Server(public=match[1], admin=match[2], store=store, config=config, proc=proc, log=log, grpc=match[3])


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    """First stdout line of `proc` within `timeout` seconds; fails with the log otherwise."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"serve printed no listening line within {timeout:.0f} s")
            if sel.select(timeout=min(left, 0.5)):
                chunk = os.read(fd, 4096)
                if not chunk:
                    rc = proc.wait(timeout=10)
                    raise RuntimeError(f"serve exited with {rc} before printing its listening line")
                buf += chunk
    return buf.split(b"\n", 1)[0].decode()


def stop_server(server: Server) -> int:
    """SIGTERM, then waits up to 30 s; kills it if it does not exit. Returns the exit code."""
    proc = server.proc
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            pytest.fail(f"serve did not exit within {STOP_TIMEOUT_S:.0f} s of SIGTERM:\n{server.log_tail()}")
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
        _LIVE.discard(proc)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def fixture_store(tmp_path_factory) -> tuple[Path, dict[tuple[str, int], str]]:
    """A store with every fixture model registered through the CLI, and their sha256s."""
    store = tmp_path_factory.mktemp("store") / "store"
    shas: dict[tuple[str, int], str] = {}
    for model, stem, manifest in REGISTRATIONS:
        out = register(store, model, MODELS / f"{stem}.onnx", MANIFESTS / f"{manifest}.toml" if manifest else None)
        shas[(model, out["version"])] = out["sha256"]
    assert [v for (m, v) in shas if m == "mlp"] == [1, 2, 3]
    return store, shas


SESSION_MODELS = [
    {
        "name": "mlp",
        "versions": [1, 2, 3],
        "default_version": 2,
        "engine": {"instances": 2, "max_batch": 8, "batch_delay_us": 200, "queue_capacity": 256},
    },
    {"name": "mixed", "versions": [1], "engine": {"max_batch": 4}},
    {"name": "dtypes", "versions": [1]},
    {"name": "slow", "versions": [1]},
    {"name": "faulty", "versions": [1], "engine": {"max_batch": 8, "batch_delay_us": 200}},
]


@pytest.fixture(scope="session")
def server(fixture_store, tmp_path_factory) -> Server:
    """The shared server: every fixture model, as in SESSION_MODELS, over REST and gRPC."""
    store, shas = fixture_store
    workdir = tmp_path_factory.mktemp("serve")
    config = workdir / "switchyard.toml"
    config.write_text(config_toml(store, SESSION_MODELS, {"grpc_listen": "127.0.0.1:0"}))
    srv = start_server(config, store, workdir / "serve.log")
    srv.sha256 = dict(shas)
    try:
        yield srv
    finally:
        rc = stop_server(srv)
    assert rc == 0, f"serve exited {rc} after SIGTERM (expected 0):\n{srv.log_tail()}"


@pytest.fixture
def healthy(server) -> Server:
    """The shared server, checked to be up before and after the test."""
    assert server.alive(), f"the shared server died:\n{server.log_tail()}"
    yield server
    assert server.alive(), f"the shared server died during the test:\n{server.log_tail()}"


@pytest.fixture
def start_extra_server(tmp_path) -> Callable[..., Server]:
    """Starts extra servers for one test: `start(store, models, server={...})`. Each is stopped
    with SIGTERM at teardown (and must exit 0); all are killed if anything goes wrong."""
    started: list[Server] = []

    def start(store: Path, models: list[dict], server: dict | None = None, name: str = "extra") -> Server:
        config = tmp_path / f"{name}-{len(started)}.toml"
        config.write_text(config_toml(store, models, server))
        srv = start_server(config, store, tmp_path / f"{name}-{len(started)}.log")
        started.append(srv)
        return srv

    yield start
    failures = []
    for srv in started:
        try:
            rc = stop_server(srv)
        except BaseException as e:  # keep stopping the others
            failures.append(f"{srv.public}: {e}")
            continue
        if rc != 0:
            failures.append(f"{srv.public}: exit code {rc} after SIGTERM\n{srv.log_tail()}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------------------------
# Reference data


def load_expected(stem: str) -> dict:
    return json.loads((EXPECTED / f"{stem}.json").read_text())


V2_TO_NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


def to_numpy(tensor: dict) -> np.ndarray:
    """A fixture tensor {"datatype", "shape", "data"} as numpy (BYTES as UTF-8 encoded bytes)."""
    dt = tensor["datatype"]
    if dt == "BYTES":
        arr = np.array([s.encode("utf-8") for s in tensor["data"]], dtype=np.object_)
    else:
        # Python ints are exact; numpy converts each without going through float.
        arr = np.array(tensor["data"], dtype=V2_TO_NUMPY[dt])
    return arr.reshape(tensor["shape"])


_SESSIONS: dict[Path, object] = {}


def ort_session(model_file: Path):
    """An in-process onnxruntime session on the same .onnx file the server loads."""
    import onnxruntime as ort

    if model_file not in _SESSIONS:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        _SESSIONS[model_file] = ort.InferenceSession(str(model_file), opts, providers=["CPUExecutionProvider"])
    return _SESSIONS[model_file]


def ort_run(model_file: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs onnxruntime in-process; BYTES inputs are given as bytes and passed as str."""
    sess = ort_session(model_file)
    feed = {}
    for name, arr in inputs.items():
        if arr.dtype == np.object_:
            arr = np.array([b.decode("utf-8") if isinstance(b, bytes) else b for b in arr.flat], dtype=object).reshape(
                arr.shape
            )
        feed[name] = arr
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feed)))


def assert_tensor_equal(actual: np.ndarray, expected: np.ndarray, name: str, atol: float = 1e-5) -> None:
    """Same shape; floats within `atol` (max abs diff), everything else exactly equal."""
    assert tuple(actual.shape) == tuple(expected.shape), f"{name}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind == "f":
        a = actual.astype(np.float64)
        e = expected.astype(np.float64)
        diff = float(np.max(np.abs(a - e))) if e.size else 0.0
        assert diff <= atol, f"{name}: max abs diff {diff} > {atol}\nactual={a.ravel()[:8]}\nexpected={e.ravel()[:8]}"
    elif expected.dtype == np.object_ or actual.dtype == np.object_:
        norm = lambda x: x.decode("utf-8") if isinstance(x, bytes) else str(x)  # noqa: E731
        assert [norm(x) for x in actual.ravel()] == [norm(x) for x in expected.ravel()], name
    else:
        assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
        assert np.array_equal(actual, expected), f"{name}: {actual.ravel()[:8]} != {expected.ravel()[:8]}"


def mlp_input(batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(batch, 64)).astype(np.float32)


def mlp_json_body(batch: int = 1, seed: int = 0) -> dict:
    x = mlp_input(batch, seed)
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}


def assert_answers_valid(srv: Server) -> None:
    """The server still answers a valid mlp request correctly."""
    assert srv.alive(), f"server exited:\n{srv.log_tail()}"
    x = mlp_input(2, seed=99)
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 64], "data": x.ravel().tolist()}]}
    r = srv.post("/v2/models/mlp/versions/1/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
    want = ort_run(MODELS / "mlp_v1.onnx", {"input": x})["output"]
    assert_tensor_equal(got, want, "output")
