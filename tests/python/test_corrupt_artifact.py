"""A stored artifact whose bytes no longer match its sha256 is refused at load, never served:
that version answers 503 naming both hashes, the model's other versions keep serving."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tritonclient.http as httpclient

from conftest import MODELS, artifact_path, assert_answers_valid, assert_tensor_equal, mlp_input, ort_run, register


@pytest.fixture
def corrupt_store(tmp_path):
    store = tmp_path / "store"
    v1 = register(store, "mlp", MODELS / "mlp_v1.onnx")
    v2 = register(store, "mlp", MODELS / "mlp_v2.onnx")
    assert (v1["version"], v2["version"]) == (1, 2)
    path = artifact_path(store, v2["sha256"])
    assert path.is_file(), f"artifact not at {path}"
    data = bytearray(path.read_bytes())
    assert hashlib.sha256(data).hexdigest() == v2["sha256"]
    data[len(data) // 2] ^= 0x01  # one bit of one byte
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    actual = hashlib.sha256(data).hexdigest()
    assert actual != v2["sha256"]
    return store, v1["sha256"], v2["sha256"], actual


def body(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}


def test_corrupt_version_refused_others_serve(start_extra_server, corrupt_store):
    store, sha1, expected, actual = corrupt_store
    srv = start_extra_server(store, [{"name": "mlp", "versions": [1, 2], "default_version": 1}], name="corrupt")

    # v1 answers, correctly.
    x = mlp_input(3, seed=11)
    for path in ("/v2/models/mlp/infer", "/v2/models/mlp/versions/1/infer"):
        r = srv.post(path, json=body(x))
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == "1"
        assert r.headers["x-model-sha256"] == sha1
        out = r.json()["outputs"][0]
        got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
        assert_tensor_equal(got, ort_run(MODELS / "mlp_v1.onnx", {"input": x})["output"], "output")

    # v2 is refused with 503, naming both hashes.
    r = srv.post("/v2/models/mlp/versions/2/infer", json=body(x))
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/json")
    message = r.json()["error"]
    assert expected in message, message
    assert actual in message, message
    assert "corrupt" in message.lower(), message
    # Its metadata, readiness and config say the same.
    assert srv.get("/v2/models/mlp/versions/2/ready").status_code == 503
    assert srv.get("/v2/models/mlp/versions/2").status_code == 503
    client = httpclient.InferenceServerClient(url=srv.host_port)
    try:
        assert client.is_model_ready("mlp", "1") is True
        assert client.is_model_ready("mlp", "2") is False
        assert client.is_server_ready() is True  # the default version (1) serves
    finally:
        client.close()

    # The process stays up and keeps serving.
    assert srv.alive()
    assert_answers_valid(srv)

    # The admin port shows why.
    r = srv.admin_get("/admin/models")
    assert r.status_code == 200
    (mlp,) = r.json()
    versions = {v["version"]: v for v in mlp["versions"]}
    assert versions[1]["state"] == "ready" and versions[1]["sha256"] == sha1
    assert versions[2]["state"] == "failed"
    assert versions[2]["sha256"] == expected
    assert actual in versions[2]["reason"] and "corrupt" in versions[2]["reason"].lower()
    # Stats list only what serves.
    stats = srv.get("/v2/models/mlp/stats").json()["model_stats"]
    assert [s["version"] for s in stats] == ["1"]


def test_corrupt_default_version_makes_server_unready(start_extra_server, corrupt_store):
    """When the default version is the corrupt one, unpinned requests get 503 and the server is
    not ready, while pinned requests to the good version still work."""
    store, sha1, expected, actual = corrupt_store
    srv = start_extra_server(store, [{"name": "mlp", "versions": [1, 2], "default_version": 2}], name="corrupt-default")
    r = srv.get("/v2/health/ready")
    assert r.status_code == 503 and r.json() == {"ready": False}
    assert srv.get("/v2/health/live").status_code == 200
    r = srv.post("/v2/models/mlp/infer", json=body(mlp_input(1)))
    assert r.status_code == 503, r.text
    assert "mlp" in r.json()["error"], r.text
    # Pinned to the corrupt version: both hashes.
    r = srv.post("/v2/models/mlp/versions/2/infer", json=body(mlp_input(1)))
    assert r.status_code == 503, r.text
    assert expected in r.json()["error"] and actual in r.json()["error"], r.text
    assert_answers_valid(srv)  # pinned v1
