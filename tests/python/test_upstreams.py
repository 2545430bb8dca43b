"""Remote versions against real upstream v2 servers: MLServer 1.7 and KServe 0.21's Python model
server (installed from PyPI by benches/peers/setup.sh, serving the mlp_v1 fixture with ONNX
Runtime) and another Switchyard. tritonclient talks to the gateway only; the answers must be the
upstream's exactly, JSON and binary tensors, over HTTP and gRPC, routed and pinned, with
`model_version` naming the gateway's version and lineage naming the upstream."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from conftest import MODELS, REPO, assert_tensor_equal, mlp_input, ort_run, register, run_cli

PEERS = REPO / "benches" / "peers"
READY_TIMEOUT_S = 120.0


def peer_python(name: str) -> str:
    """The peer's venv python: from SWITCHYARD_PEER_<NAME> (scripts/test.sh sets it), else by
    running the idempotent setup script under a lock (pytest-xdist workers share it)."""
    given = os.environ.get(f"SWITCHYARD_PEER_{name.upper()}")
    if given:
        return given
    lock = REPO / "benches" / ".cache" / "peers.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        out = subprocess.run(["bash", str(PEERS / "setup.sh"), name], capture_output=True, text=True, check=False)
    line = (out.stdout.strip().splitlines() or ["- -"])[-1].split()
    if len(line) != 2 or line[1] == "-":
        pytest.fail(f"cannot install {name} from PyPI:\n{out.stderr[-3000:]}", pytrace=False)
    return line[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer:
    """An upstream model server process (its own process group), stopped at teardown."""

    def __init__(self, name: str, cmd: list[str], work: Path, port: int):
        self.name, self.url = name, f"http://127.0.0.1:{port}"
        self.log = work / f"{name}.log"
        env = dict(os.environ, PYTHONPATH=str(PEERS), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                if requests.get(f"{self.url}/v2/models/mlp/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{name} did not get ready:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_mlserver(work: Path) -> Peer:
    port = free_port()
    repo = work / "mlserver-repo"
    (repo / "mlp").mkdir(parents=True)
    (repo / "settings.json").write_text(json.dumps(
        {"host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port()}))
    # MLServer declares a model's signature only as its settings say: as an operator writes it.
    (repo / "mlp" / "model-settings.json").write_text(json.dumps({
        "name": "mlp", "implementation": "mlserver_runtime.OnnxModel",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}],
        "parameters": {"uri": str(MODELS / "mlp_v1.onnx"), "version": "1"}}))
    python = peer_python("mlserver")
    return Peer("mlserver", [str(Path(python).parent / "mlserver"), "start", str(repo)], work, port)


def start_kserve(work: Path) -> Peer:
    port = free_port()
    cmd = [peer_python("kserve"), str(PEERS / "kserve_server.py"), "--http_port", str(port),
           "--grpc_port", str(free_port()), f"--onnx=mlp={MODELS / 'mlp_v1.onnx'}"]
    return Peer("kserve", cmd, work, port)


@pytest.fixture(params=["mlserver", "kserve", "switchyard"])
def upstream(request, tmp_path, server):
    """(name, base URL, the upstream version to register or None, the version it says answered)
    of an upstream serving mlp_v1 as model `mlp`; the session's Switchyard serves mlp v1..v3,
    so a remote version of it names version 1."""
    if request.param == "switchyard":
        yield request.param, server.public, "1", "1"
        return
    peer = (start_mlserver if request.param == "mlserver" else start_kserve)(tmp_path)
    try:
        yield request.param, peer.url, None, "1" if request.param == "mlserver" else None
    finally:
        peer.stop()


def infer_http(url: str, x: np.ndarray, *, binary: bool, version: str = "") -> httpclient.InferResult:
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("output", binary_data=binary)
    try:
        return client.infer("mlp", [inp], outputs=[out], model_version=version)
    finally:
        client.close()


def test_tritonclient_gets_the_upstreams_exact_outputs(upstream, tmp_path, start_extra_server):
    name, url, pinned, answered = upstream
    store = tmp_path / "store"
    register(store, "mlp", MODELS / "mlp_v2.onnx")  # v1: local, another model
    args = ["models", "register", "--store", str(store), "--model", "mlp", "--upstream", url, "--json"]
    if pinned:
        args += ["--upstream-version", pinned]
    remote = json.loads(run_cli(*args).stdout)
    expected = {"url": url, "model": "mlp", **({"version": pinned} if pinned else {})}
    assert remote["version"] == 2 and remote["upstream"] == expected, remote
    gw = start_extra_server(store, [{"name": "mlp", "versions": [1, 2], "routing": {"champion": 2, "backup": [1]}}],
                            server={"grpc_listen": "127.0.0.1:0"}, name=f"via-{name}")
    x = mlp_input(3, seed=11)
    want = ort_run(MODELS / "mlp_v1.onnx", {"input": x})["output"]
    # The upstream's own answer, asked directly (plain JSON: tritonclient sends no content type,
    # which KServe refuses).
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    path = f"/v2/models/mlp/versions/{pinned}/infer" if pinned else "/v2/models/mlp/infer"
    out = requests.post(f"{url}{path}", json=body, timeout=30).json()["outputs"][0]
    direct = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
    for binary in (False, True):
        for version in ("", "2"):  # routed to the champion, and pinned
            res = infer_http(gw.public, x, binary=binary, version=version)
            got = res.as_numpy("output")
            np.testing.assert_array_equal(got, direct, err_msg=f"{name} binary={binary} version={version!r}")
            assert_tensor_equal(got, want, "output")
            assert res.get_response()["model_version"] == "2"
    # Binary tensors to the upstream (Triton's extension), where the server takes them.
    if name != "mlserver":
        args = ["models", "register", "--store", str(store), "--model", "mlp", "--upstream", url, "--upstream-binary",
                "--json"] + (["--upstream-version", pinned] if pinned else [])
        binary_version = json.loads(run_cli(*args).stdout)
        assert binary_version["version"] == 3 and binary_version["upstream"]["binary"] is True, binary_version
        reloaded = start_extra_server(store, [{"name": "mlp", "versions": [1, 2, 3], "routing": {"champion": 3}}],
                                      name=f"binary-{name}")
        res = infer_http(reloaded.public, x, binary=True)
        np.testing.assert_array_equal(res.as_numpy("output"), direct, err_msg=f"{name} over binary tensors")
        assert res.get_response()["model_version"] == "3"
    # gRPC clients reach a REST-only upstream: the gateway translates.
    grpc = grpcclient.InferenceServerClient(url=gw.grpc_host_port)
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    res = grpc.infer("mlp", [inp])
    grpc.close()
    np.testing.assert_array_equal(res.as_numpy("output"), direct)
    assert res.get_response().model_version == "2"

    # The lineage record names the upstream and the version it said answered.
    rid = requests.post(f"{gw.public}/v2/models/mlp/infer", json={"inputs": [
        {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}).headers["x-request-id"]
    deadline = time.monotonic() + 10
    while True:
        r = requests.get(f"{gw.admin}/admin/lineage/{rid}")
        if r.status_code == 200:
            break
        assert r.status_code == 404 and time.monotonic() < deadline, r.text
        time.sleep(0.05)
    record = r.json()["records"][0]
    assert record["upstream"] == {"url": url, "model": "mlp", "version": answered}, record


def test_an_upstream_without_a_declared_signature_is_refused_at_registration(tmp_path):
    """KServe and MLServer declare no inputs unless told; registering such a model says what is
    missing and writes nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            body = json.dumps({"name": "mlp", "versions": ["1"], "platform": "", "inputs": [], "outputs": []}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", port), Handler, bind_and_activate=False)
    srv.socket = listener
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        store = tmp_path / "store"
        proc = subprocess.run([str(REPO / "target" / "debug" / "switchyard") if not os.environ.get("SWITCHYARD_BIN")
                               else os.environ["SWITCHYARD_BIN"], "models", "register", "--store", str(store),
                               "--model", "mlp", "--upstream", f"http://127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        assert "declares no inputs or no outputs" in proc.stderr, proc.stderr
        assert not (store / "registry.db").exists() or "mlp" not in run_cli(
            "models", "list", "--store", str(store)).stdout
    finally:
        srv.shutdown()
