"""The real KServe v2 client (tritonclient.http) against the real binary: health, metadata,
JSON and binary tensors in both directions, every datatype, stats, request ids. Results are
compared with onnxruntime run in-process on the same .onnx files."""

from __future__ import annotations

import re
import uuid

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import (
    MODELS,
    assert_tensor_equal,
    load_expected,
    mlp_input,
    ort_run,
    to_numpy,
)


@pytest.fixture(scope="module")
def client(server):
    c = httpclient.InferenceServerClient(url=server.host_port, connection_timeout=30.0, network_timeout=30.0)
    yield c
    c.close()


def infer(client, model, inputs: dict[str, np.ndarray], *, binary_in: bool, binary_out: bool, version=None, **kw):
    """Sends `inputs` (name -> array) asking for every output of `model`, via tritonclient."""
    meta = client.get_model_metadata(model)
    req_inputs = []
    for name, arr in inputs.items():
        dt = next(i["datatype"] for i in meta["inputs"] if i["name"] == name)
        inp = httpclient.InferInput(name, list(arr.shape), dt)
        inp.set_data_from_numpy(arr, binary_data=binary_in)
        req_inputs.append(inp)
    outputs = [httpclient.InferRequestedOutput(o["name"], binary_data=binary_out) for o in meta["outputs"]]
    return client.infer(
        model, req_inputs, model_version="" if version is None else str(version), outputs=outputs, **kw
    )


# --------------------------------------------------------------------------------------------
# Health and metadata


def test_server_live_and_ready(client):
    assert client.is_server_live()
    assert client.is_server_ready()


@pytest.mark.parametrize(
    "model,version", [("mlp", ""), ("mlp", "1"), ("mlp", "2"), ("mlp", "3"), ("mixed", ""), ("dtypes", "1")]
)
def test_model_ready(client, model, version):
    assert client.is_model_ready(model, version) is True


@pytest.mark.parametrize("model,version", [("nope", ""), ("mlp", "4"), ("mlp", "0")])
def test_model_not_ready(client, model, version):
    assert client.is_model_ready(model, version) is False


def test_server_metadata(client):
    meta = client.get_server_metadata()
    assert meta["name"] == "switchyard"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", meta["version"]), meta
    assert {"binary_tensor_data", "statistics", "model_configuration"} <= set(meta["extensions"])


def test_model_metadata_mlp(client, server):
    meta = client.get_model_metadata("mlp")
    assert meta["name"] == "mlp"
    assert meta["versions"] == ["1", "2", "3"]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}]
    pinned = client.get_model_metadata("mlp", "3")
    assert pinned["inputs"] == meta["inputs"]


def test_model_metadata_mixed_and_dtypes(client):
    mixed = client.get_model_metadata("mixed")
    assert {(i["name"], i["datatype"]) for i in mixed["inputs"]} == {
        ("ids", "INT64"),
        ("values", "FP32"),
        ("mask", "BOOL"),
    }
    assert {(o["name"], o["datatype"]) for o in mixed["outputs"]} == {
        ("weighted", "FP32"),
        ("count", "INT64"),
        ("any_large", "BOOL"),
    }
    dtypes = client.get_model_metadata("dtypes")
    case = load_expected("dtypes")["cases"][0]
    want = {(t["name"], t["datatype"]) for t in case["inputs"]}
    assert {(i["name"], i["datatype"]) for i in dtypes["inputs"]} == want


def test_model_metadata_unknown_model(client):
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("nope")
    assert "nope" in str(e.value)


def test_model_config(client):
    cfg = client.get_model_config("mlp")
    assert cfg["name"] == "mlp"
    assert cfg["max_batch_size"] == 8  # [model.engine] max_batch
    assert cfg["input"][0]["name"] == "input"
    assert cfg["input"][0]["data_type"] == "TYPE_FP32"
    assert cfg["input"][0]["dims"] == [64]  # batch dimension left out, as Triton does
    assert cfg["output"][0]["dims"] == [10]
    dcfg = client.get_model_config("dtypes")
    assert dcfg["max_batch_size"] == 1  # default engine settings: batching off


# --------------------------------------------------------------------------------------------
# mlp: every JSON/binary combination, default and pinned versions, batch 1 and 3

VERSION_FILES = {1: "mlp_v1.onnx", 2: "mlp_v2.onnx", 3: "mlp_v3.onnx"}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("version", [None, 1, 3], ids=["default", "v1", "v3"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json_out", "bin_out"])
@pytest.mark.parametrize("binary_in", [False, True], ids=["json_in", "bin_in"])
def test_mlp_infer(client, server, binary_in, binary_out, version, batch):
    x = mlp_input(batch, seed=batch * 10 + (version or 0))
    result = infer(client, "mlp", {"input": x}, binary_in=binary_in, binary_out=binary_out, version=version)
    answered = 2 if version is None else version
    response = result.get_response()
    assert response["model_name"] == "mlp"
    assert response["model_version"] == str(answered)
    assert response["parameters"]["model_sha256"] == server.sha256[("mlp", answered)]
    out = result.get_output("output")
    assert out["datatype"] == "FP32"
    assert ("binary_data_size" in out.get("parameters", {})) == binary_out
    got = result.as_numpy("output")
    want = ort_run(MODELS / VERSION_FILES[answered], {"input": x})["output"]
    assert got.dtype == np.float32
    assert_tensor_equal(got, want, "output")


def test_mlp_versions_differ(client):
    """Guards the comparisons above: the three versions give clearly different outputs."""
    x = mlp_input(1, seed=5)
    outs = [infer(client, "mlp", {"input": x}, binary_in=True, binary_out=True, version=v).as_numpy("output") for v in (1, 2, 3)]
    assert np.max(np.abs(outs[0] - outs[1])) > 1e-2
    assert np.max(np.abs(outs[1] - outs[2])) > 1e-2


def test_mlp_matches_fixture_expected(client):
    """The server agrees with the reference outputs stored in tests/fixtures/expected."""
    for v in (1, 2, 3):
        for case in load_expected(f"mlp_v{v}")["cases"]:
            x = to_numpy(case["inputs"][0])
            got = infer(client, "mlp", {"input": x}, binary_in=True, binary_out=False, version=v).as_numpy("output")
            assert_tensor_equal(got, to_numpy(case["outputs"][0]), f"mlp v{v} output")


def test_mlp_requested_output_subset_and_mixed_binary(client):
    """Per-output binary_data overrides: JSON for one request, binary for the other."""
    x = mlp_input(3, seed=7)
    inp = httpclient.InferInput("input", [3, 64], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    for binary in (True, False):
        out = httpclient.InferRequestedOutput("output", binary_data=binary)
        res = client.infer("mlp", [inp], model_version="1", outputs=[out])
        assert ("binary_data_size" in res.get_output("output").get("parameters", {})) == binary
        assert_tensor_equal(res.as_numpy("output"), ort_run(MODELS / "mlp_v1.onnx", {"input": x})["output"], "output")


# --------------------------------------------------------------------------------------------
# mixed and dtypes: several inputs/outputs, every datatype


def _case_ids(stem):
    return [f"batch{c['inputs'][0]['shape'][0]}" for c in load_expected(stem)["cases"]]


@pytest.mark.parametrize("case_index", [0, 1], ids=_case_ids("mixed"))
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_mixed_model(client, binary, case_index):
    case = load_expected("mixed")["cases"][case_index]
    inputs = {t["name"]: to_numpy(t) for t in case["inputs"]}
    assert {a.dtype for a in inputs.values()} == {np.dtype(np.int64), np.dtype(np.float32), np.dtype(np.bool_)}
    result = infer(client, "mixed", inputs, binary_in=binary, binary_out=binary)
    assert result.get_response()["model_version"] == "1"
    reference = ort_run(MODELS / "mixed.onnx", inputs)
    for want in case["outputs"]:
        got = result.as_numpy(want["name"])
        assert got is not None, f"output {want['name']} missing"
        assert result.get_output(want["name"])["datatype"] == want["datatype"]
        assert_tensor_equal(got, to_numpy(want), want["name"])
        assert_tensor_equal(got, reference[want["name"]], want["name"] + " (vs onnxruntime)")


@pytest.mark.parametrize("case_index", [0, 1], ids=_case_ids("dtypes"))
@pytest.mark.parametrize("binary_out", [False, True], ids=["json_out", "bin_out"])
@pytest.mark.parametrize("binary_in", [False, True], ids=["json_in", "bin_in"])
def test_dtypes_model(client, binary_in, binary_out, case_index):
    case = load_expected("dtypes")["cases"][case_index]
    inputs = {t["name"]: to_numpy(t) for t in case["inputs"]}
    # The edges that a float64 round trip would lose.
    assert inputs["u64"].max() == np.iinfo(np.uint64).max
    result = infer(client, "dtypes", inputs, binary_in=binary_in, binary_out=binary_out)
    reference = ort_run(MODELS / "dtypes.onnx", inputs)
    for want in case["outputs"]:
        name = want["name"]
        out = result.get_output(name)
        assert out is not None, f"output {name} missing"
        assert out["datatype"] == want["datatype"], name
        assert out["shape"] == want["shape"], name
        got = result.as_numpy(name)
        if want["datatype"] == "BYTES":
            texts = [x.decode("utf-8") if isinstance(x, bytes) else x for x in got.ravel()]
            assert texts == want["data"], name
            assert texts == [str(s) for s in reference[name].ravel()], name
            continue
        expected = to_numpy(want)
        assert got.dtype == expected.dtype, f"{name}: {got.dtype} != {expected.dtype}"
        assert_tensor_equal(got, expected, name)
        assert_tensor_equal(got, reference[name], name + " (vs onnxruntime)")


def test_dtypes_json_integers_are_exact(server):
    """JSON output of 64-bit integers must not pass through float64 (UINT64 max, INT64 > 2^53)."""
    case = load_expected("dtypes")["cases"][1]
    r = server.post("/v2/models/dtypes/infer", json={"inputs": case["inputs"]})
    assert r.status_code == 200, r.text
    by_name = {o["name"]: o for o in r.json()["outputs"]}
    for name in ("u64_out", "i64_out", "u32_out", "i32_out"):
        want = next(o for o in case["outputs"] if o["name"] == name)
        assert by_name[name]["data"] == want["data"], name
        assert all(isinstance(v, int) for v in by_name[name]["data"]), name


# --------------------------------------------------------------------------------------------
# Stats, request ids, metrics


def _stats(client, model, version):
    s = client.get_inference_statistics(model, version)["model_stats"]
    assert len(s) == 1 and s[0]["name"] == model and s[0]["version"] == version, s
    return s[0]


def test_stats_count_inferences(client):
    before = _stats(client, "mlp", "3")
    rows = 0
    for batch in (1, 3, 2, 1):
        infer(client, "mlp", {"input": mlp_input(batch)}, binary_in=True, binary_out=True, version=3)
        rows += batch
    after = _stats(client, "mlp", "3")
    success = after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    assert success == 4
    assert after["inference_count"] - before["inference_count"] == rows
    executions = after["execution_count"] - before["execution_count"]
    assert 1 <= executions <= 4
    assert after["inference_stats"]["success"]["ns"] > before["inference_stats"]["success"]["ns"]
    assert after["inference_stats"]["compute_infer"]["count"] > before["inference_stats"]["compute_infer"]["count"]
    assert after["last_inference"] >= before["last_inference"] and after["last_inference"] > 0
    # Other versions are not charged.
    all_versions = client.get_inference_statistics("mlp")["model_stats"]
    assert sorted(s["version"] for s in all_versions) == ["1", "2", "3"]


def test_stats_all_models(client):
    names = {(s["name"], s["version"]) for s in client.get_inference_statistics()["model_stats"]}
    assert {("mlp", "1"), ("mlp", "2"), ("mlp", "3"), ("mixed", "1"), ("dtypes", "1"), ("slow", "1"), ("faulty", "1")} <= names


def test_request_id_echoed_in_body(client):
    rid = f"req-{uuid.uuid4()}"
    result = infer(client, "mlp", {"input": mlp_input(1)}, binary_in=True, binary_out=True, request_id=rid)
    assert result.get_response()["id"] == rid


def test_request_id_header_and_version_headers(server):
    rid = f"hdr-{uuid.uuid4()}"
    x = mlp_input(1)
    body = {"id": "body-id", "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": x.ravel().tolist()}]}
    r = server.post("/v2/models/mlp/versions/3/infer", json=body, headers={"x-request-id": rid})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == rid
    assert r.headers["x-model-version"] == "3"
    assert r.headers["x-model-sha256"] == server.sha256[("mlp", 3)]
    assert r.json()["id"] == "body-id"
    assert r.json()["model_version"] == "3"
    # Without a client id, one is generated, and differs per request.
    a = server.post("/v2/models/mlp/infer", json=body).headers.get("x-request-id")
    b = server.post("/v2/models/mlp/infer", json=body).headers.get("x-request-id")
    assert a and b and a != b
    # Errors carry it too.
    r = server.post("/v2/models/nope/infer", json=body, headers={"x-request-id": rid})
    assert r.status_code == 404 and r.headers["x-request-id"] == rid


def test_metrics_count_requests(server, client):
    def count(text):
        m = re.search(
            r'^switchyard_requests_total\{model="mlp",version="1",route="pinned",status="200"\} (\d+)$', text, re.M
        )
        return int(m[1]) if m else 0

    before = count(server.admin_get("/metrics").text)
    for _ in range(3):
        infer(client, "mlp", {"input": mlp_input(1)}, binary_in=True, binary_out=True, version=1)
    r = server.admin_get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert count(r.text) == before + 3


def test_metrics_model_info(server):
    """One info gauge per loaded version (regression: it was once recorded before the Prometheus
    recorder existed, and never appeared)."""
    text = server.admin_get("/metrics").text
    for v in (1, 2, 3):
        sha = server.sha256[("mlp", v)]
        pattern = rf'^switchyard_model_info\{{[^}}]*model="mlp"[^}}]*version="{v}"[^}}]*sha256="{sha}"[^}}]*\}} 1$'
        assert re.search(pattern, text, re.M), f"switchyard_model_info for mlp v{v} missing from /metrics"


def test_admin_models(server):
    r = server.admin_get("/admin/models")
    assert r.status_code == 200
    models = {m["name"]: m for m in r.json()}
    assert set(models) == {"mlp", "mixed", "dtypes", "slow", "faulty"}
    mlp = models["mlp"]
    # The version unpinned requests go to: "default_version", or "routing.champion" once routing exists.
    default = mlp["default_version"] if "default_version" in mlp else mlp["routing"]["champion"]
    assert default == 2
    assert [(v["version"], v["state"], v["sha256"]) for v in mlp["versions"]] == [
        (v, "ready", server.sha256[("mlp", v)]) for v in (1, 2, 3)
    ]
    assert all(v["instances"] == 2 for v in mlp["versions"])
