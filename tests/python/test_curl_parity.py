"""Plain JSON inference with `curl` (no client library): every case of every fixture in
tests/fixtures/expected/*.json, compared with onnxruntime run in-process on the same file
(and with the stored reference outputs)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from conftest import EXPECTED, MODELS, assert_tensor_equal, ort_run, to_numpy

# fixture stem -> URL path of the model (mlp versions pinned).
ROUTES = {
    "mlp_v1": "/v2/models/mlp/versions/1/infer",
    "mlp_v2": "/v2/models/mlp/versions/2/infer",
    "mlp_v3": "/v2/models/mlp/versions/3/infer",
    "mixed": "/v2/models/mixed/infer",
    "dtypes": "/v2/models/dtypes/infer",
    "slow": "/v2/models/slow/infer",
    "faulty": "/v2/models/faulty/infer",
}


def _cases():
    found = sorted(p.stem for p in EXPECTED.glob("*.json"))
    assert set(found) == set(ROUTES), f"fixtures and ROUTES disagree: {found}"
    for stem in found:
        doc = json.loads((EXPECTED / f"{stem}.json").read_text())
        for i, case in enumerate(doc["cases"]):
            yield pytest.param(stem, doc["model_file"], case, id=f"{stem}-case{i}")


def curl_json(url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    """POSTs `body` with curl; returns (status, headers, parsed JSON body)."""
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is not installed")
    args = [curl, "-sS", "--max-time", "30", "-X", "POST", url, "-H", "Content-Type: application/json",
            "--data-binary", "@-", "-D", "-", "-o", "-"]  # fmt: skip
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    proc = subprocess.run(args, input=json.dumps(body).encode(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    head, _, payload = proc.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, hdrs, json.loads(payload)


def output_array(out: dict) -> np.ndarray:
    """A JSON output tensor as numpy, integers exact (Python json keeps big ints)."""
    return to_numpy(out)


@pytest.mark.parametrize("stem,model_file,case", list(_cases()))
def test_curl_json_matches_onnxruntime(server, stem, model_file, case):
    status, headers, body = curl_json(server.public + ROUTES[stem], {"inputs": case["inputs"]}, {"x-request-id": f"curl-{stem}"})
    assert status == 200, body
    assert headers["x-request-id"] == f"curl-{stem}"
    assert headers["content-type"].startswith("application/json")
    if stem.startswith("mlp_v"):
        assert body["model_version"] == stem[-1]
        assert headers["x-model-version"] == stem[-1]
        assert headers["x-model-sha256"] == server.sha256[("mlp", int(stem[-1]))]
    else:
        assert body["model_version"] == "1"
    got = {o["name"]: o for o in body["outputs"]}
    want_names = [o["name"] for o in case["outputs"]]
    assert sorted(got) == sorted(want_names)

    reference = ort_run(MODELS / model_file, {t["name"]: to_numpy(t) for t in case["inputs"]})
    for want in case["outputs"]:
        name = want["name"]
        out = got[name]
        assert out["datatype"] == want["datatype"], name
        assert out["shape"] == want["shape"], name
        if want["datatype"] == "BYTES":
            assert out["data"] == want["data"], name
            assert out["data"] == [str(s) for s in reference[name].ravel()], name
            continue
        if want["datatype"] in ("UINT64", "INT64", "UINT32", "INT32"):
            assert all(isinstance(v, int) for v in out["data"]), f"{name}: integers sent as floats"
        arr = output_array(out)
        assert_tensor_equal(arr, reference[name], f"{stem}/{name} vs onnxruntime")
        assert_tensor_equal(arr, to_numpy(want), f"{stem}/{name} vs stored reference")


def test_curl_unpinned_mlp_is_default_version(server):
    """Without a version, mlp is answered by default_version 2."""
    case = json.loads((EXPECTED / "mlp_v2.json").read_text())["cases"][1]
    status, headers, body = curl_json(server.public + "/v2/models/mlp/infer", {"inputs": case["inputs"]})
    assert status == 200
    assert body["model_version"] == "2" and headers["x-model-version"] == "2"
    reference = ort_run(MODELS / "mlp_v2.onnx", {"input": to_numpy(case["inputs"][0])})["output"]
    assert_tensor_equal(output_array(body["outputs"][0]), reference, "output")
