"""Bad requests over raw HTTP (requests): each gets the right status and a JSON body
{"error": "..."} that names the problem, and the server answers a valid request right after."""

from __future__ import annotations

import json
import socket
import struct
import time

import numpy as np
import pytest
import requests

from conftest import (
    MODELS,
    assert_answers_valid,
    assert_tensor_equal,
    load_expected,
    mlp_input,
    mlp_json_body,
    ort_run,
    register,
)

MLP = "/v2/models/mlp/infer"


def check_error(r: requests.Response, status: int, *needles: str) -> str:
    """Asserts the status and the {"error": message} body; every needle is in the message."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    message = body["error"]
    assert isinstance(message, str) and message
    for needle in needles:
        assert needle.lower() in message.lower(), f"{needle!r} not in error message {message!r}"
    return message


def binary_request(x: np.ndarray, *, size: int | None = None, name: str = "input", datatype: str = "FP32", shape=None):
    """A binary-extension body: (headers, body) with a binary_data_size of `size` (default: right)."""
    raw = x.tobytes()
    header = {
        "inputs": [
            {
                "name": name,
                "datatype": datatype,
                "shape": list(x.shape) if shape is None else shape,
                "parameters": {"binary_data_size": len(raw) if size is None else size},
            }
        ]
    }
    head = json.dumps(header).encode()
    return {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}, head + raw


def mlp_tensor(**overrides):
    t = mlp_json_body(1)["inputs"][0]
    t.update(overrides)
    return t


# --------------------------------------------------------------------------------------------
# 400: the request itself


def test_malformed_json(healthy):
    r = healthy.post(MLP, data=b'{"inputs": [{"name": "input", ', headers={"Content-Type": "application/json"})
    check_error(r, 400, "json")
    assert_answers_valid(healthy)


def test_not_an_object(healthy):
    r = healthy.post(MLP, data=b"[1, 2, 3]", headers={"Content-Type": "application/json"})
    check_error(r, 400, "json")
    assert_answers_valid(healthy)


def test_missing_inputs_field(healthy):
    r = healthy.post(MLP, json={"outputs": [{"name": "output"}]})
    check_error(r, 400, "inputs")
    assert_answers_valid(healthy)


def test_unknown_datatype_name(healthy):
    r = healthy.post(MLP, json={"inputs": [mlp_tensor(datatype="FLOAT32")]})
    check_error(r, 400, "input", "FLOAT32", "datatype")
    assert_answers_valid(healthy)


def test_datatype_mismatching_model(healthy):
    t = mlp_tensor(datatype="INT32", data=[1] * 64)
    r = healthy.post(MLP, json={"inputs": [t]})
    check_error(r, 400, "'input'", "FP32", "INT32")
    assert_answers_valid(healthy)


def test_datatype_mismatch_binary(healthy):
    headers, body = binary_request(np.zeros((1, 64), dtype=np.float64), datatype="FP64")
    r = healthy.post(MLP, data=body, headers=headers)
    check_error(r, 400, "'input'", "FP32", "FP64")
    assert_answers_valid(healthy)


@pytest.mark.parametrize("shape", [[1, 63], [64], [1, 1, 64]], ids=["cols", "rank1", "rank3"])
def test_wrong_shape(healthy, shape):
    n = int(np.prod(shape))
    r = healthy.post(MLP, json={"inputs": [mlp_tensor(shape=shape, data=[0.5] * n)]})
    msg = check_error(r, 400, "'input'", "shape")
    assert str(shape) in msg, msg  # the shape that was sent, e.g. [1, 63]
    assert_answers_valid(healthy)


def test_negative_shape(healthy):
    r = healthy.post(MLP, json={"inputs": [mlp_tensor(shape=[-1, 64])]})
    check_error(r, 400, "'input'", "shape")
    assert_answers_valid(healthy)


@pytest.mark.parametrize("count", [63, 65, 0])
def test_data_length_mismatch(healthy, count):
    r = healthy.post(MLP, json={"inputs": [mlp_tensor(data=[0.25] * count)]})
    msg = check_error(r, 400, "'input'", "64")
    assert str(count) in msg
    assert_answers_valid(healthy)


def test_non_numeric_element(healthy):
    data = [0.0] * 64
    data[5] = "zero"
    r = healthy.post(MLP, json={"inputs": [mlp_tensor(data=data)]})
    check_error(r, 400, "'input'", "element 5")
    assert_answers_valid(healthy)


def test_missing_input(healthy):
    r = healthy.post("/v2/models/mixed/infer", json={"inputs": load_expected("mixed")["cases"][0]["inputs"][:2]})
    check_error(r, 400, "missing input", "mask")
    assert_answers_valid(healthy)


def test_unknown_input(healthy):
    extra = mlp_tensor(name="bogus")
    r = healthy.post(MLP, json={"inputs": [mlp_tensor(), extra]})
    check_error(r, 400, "unknown input", "bogus")
    assert_answers_valid(healthy)


def test_duplicate_input(healthy):
    r = healthy.post(MLP, json={"inputs": [mlp_tensor(), mlp_tensor()]})
    check_error(r, 400, "'input'", "more than once")
    assert_answers_valid(healthy)


def test_unknown_output_name(healthy):
    body = mlp_json_body(1)
    body["outputs"] = [{"name": "no_such_output"}]
    r = healthy.post(MLP, json=body)
    check_error(r, 400, "no_such_output", "output")
    assert_answers_valid(healthy)


def test_invalid_utf8_bytes(healthy):
    """BYTES elements must be UTF-8 for ONNX string tensors (binary extension lets a client send any bytes)."""
    case = load_expected("dtypes")["cases"][0]
    inputs = [t for t in case["inputs"] if t["name"] != "text"]
    raw = struct.pack("<I", 2) + b"\xff\xfe"
    inputs.append({"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(raw)}})
    head = json.dumps({"inputs": inputs}).encode()
    r = healthy.post(
        "/v2/models/dtypes/infer", data=head + raw, headers={"Inference-Header-Content-Length": str(len(head))}
    )
    check_error(r, 400, "'text'", "utf-8")
    assert_answers_valid(healthy)


# --------------------------------------------------------------------------------------------
# 400: the binary extension


def test_binary_valid_control(healthy):
    """The helper's well-formed binary request is accepted (so the failures below are real)."""
    x = mlp_input(2, seed=3)
    headers, body = binary_request(x)
    r = healthy.post("/v2/models/mlp/versions/1/infer", data=body, headers=headers)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
    assert_tensor_equal(got, ort_run(MODELS / "mlp_v1.onnx", {"input": x})["output"], "output")


def test_binary_data_size_past_end_of_body(healthy):
    x = mlp_input(1)
    headers, body = binary_request(x)
    r = healthy.post(MLP, data=body[:-16], headers=headers)  # 16 bytes short of the 256 declared
    check_error(r, 400, "'input'", "binary_data_size", "256")
    assert_answers_valid(healthy)


def test_binary_data_size_wrong_for_shape(healthy):
    x = mlp_input(1)
    headers, body = binary_request(x, size=128)  # 128 bytes claimed, 256 sent
    r = healthy.post(MLP, data=body[:-128], headers=headers)
    check_error(r, 400, "'input'", "128", "256")
    assert_answers_valid(healthy)


def test_header_length_larger_than_body(healthy):
    headers, body = binary_request(mlp_input(1))
    headers["Inference-Header-Content-Length"] = str(len(body) + 100)
    r = healthy.post(MLP, data=body, headers=headers)
    check_error(r, 400, "Inference-Header-Content-Length", str(len(body) + 100))
    assert_answers_valid(healthy)


@pytest.mark.parametrize("value", ["abc", "-5", "12.5", ""], ids=["alpha", "negative", "fraction", "empty"])
def test_non_numeric_header_length(healthy, value):
    headers, body = binary_request(mlp_input(1))
    headers["Inference-Header-Content-Length"] = value
    r = healthy.post(MLP, data=body, headers=headers)
    check_error(r, 400, "Inference-Header-Content-Length")
    assert_answers_valid(healthy)


def test_trailing_binary_data(healthy):
    headers, body = binary_request(mlp_input(1))
    r = healthy.post(MLP, data=body + b"\0" * 8, headers=headers)
    check_error(r, 400, "8 bytes")
    assert_answers_valid(healthy)


def test_both_data_and_binary(healthy):
    t = mlp_tensor(parameters={"binary_data_size": 256})
    head = json.dumps({"inputs": [t]}).encode()
    r = healthy.post(MLP, data=head + b"\0" * 256, headers={"Inference-Header-Content-Length": str(len(head))})
    check_error(r, 400, "'input'", "binary_data_size")
    assert_answers_valid(healthy)


# --------------------------------------------------------------------------------------------
# 404, 405


def test_unknown_model(healthy):
    r = healthy.post("/v2/models/no_such_model/infer", json=mlp_json_body(1))
    check_error(r, 404, "no_such_model")
    r = healthy.get("/v2/models/no_such_model")
    check_error(r, 404, "no_such_model")
    assert_answers_valid(healthy)


@pytest.mark.parametrize("version", ["4", "99", "0", "latest"])
def test_unknown_version(healthy, version):
    r = healthy.post(f"/v2/models/mlp/versions/{version}/infer", json=mlp_json_body(1))
    check_error(r, 404, "mlp", version)
    r = healthy.get(f"/v2/models/mlp/versions/{version}/ready")
    assert r.status_code == 404
    assert_answers_valid(healthy)


def test_unknown_endpoint(healthy):
    check_error(healthy.get("/v2/models/mlp/bogus"), 404, "/v2/models/mlp/bogus")
    check_error(healthy.get("/v1/models"), 404)
    assert_answers_valid(healthy)


def test_wrong_method(healthy):
    check_error(healthy.get(MLP), 405, "GET")
    check_error(requests.delete(healthy.public + "/v2/models/mlp", timeout=30), 405, "DELETE")
    assert_answers_valid(healthy)


# --------------------------------------------------------------------------------------------
# The model failing inside ONNX Runtime


def test_faulty_model_failure_then_recovery(healthy):
    expected = load_expected("faulty")
    failing = expected["failing_inputs"]
    before = healthy.get("/v2/models/faulty/versions/1/stats").json()["model_stats"][0]
    r = healthy.post("/v2/models/faulty/infer", json={"inputs": failing})
    assert 500 <= r.status_code < 600
    msg = check_error(r, r.status_code)
    assert any(w in msg.lower() for w in ("reshape", "onnx", "model", "fail")), msg
    after = healthy.get("/v2/models/faulty/versions/1/stats").json()["model_stats"][0]
    assert after["inference_stats"]["fail"]["count"] == before["inference_stats"]["fail"]["count"] + 1
    # A normal request to the same model right after succeeds, with the right values.
    for case in expected["cases"]:
        r = healthy.post("/v2/models/faulty/infer", json={"inputs": case["inputs"]})
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        got = np.array(out["data"], dtype=np.float32).reshape(out["shape"])
        x = np.array(case["inputs"][0]["data"], dtype=np.float32).reshape(case["inputs"][0]["shape"])
        assert_tensor_equal(got, ort_run(MODELS / "faulty.onnx", {"input": x})["output"], "output")
    assert_answers_valid(healthy)


def test_faulty_failure_never_gives_neighbours_wrong_data(healthy):
    """Failing requests mixed with good ones under load: every bad one fails, and no good one is
    ever answered with wrong data (whether it succeeds is test_faulty_failure_isolated_in_batch)."""
    import concurrent.futures as cf

    expected = load_expected("faulty")
    good = expected["cases"][0]
    bad = expected["failing_inputs"]

    def send(inputs):
        return healthy.post("/v2/models/faulty/infer", json={"inputs": inputs})

    with cf.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, bad if i % 4 == 0 else good["inputs"]) for i in range(16)]
        results = [(i, f.result()) for i, f in enumerate(futures)]
    want = np.array(good["outputs"][0]["data"], dtype=np.float32)
    for i, r in results:
        if i % 4 == 0:
            assert r.status_code >= 500, r.text
        elif r.status_code == 200:
            got = np.array(r.json()["outputs"][0]["data"], dtype=np.float32)
            assert np.max(np.abs(got - want)) <= 1e-5
        else:
            check_error(r, r.status_code)
    assert_answers_valid(healthy)


@pytest.fixture(scope="module")
def faulty_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("faulty") / "store"
    register(store, "faulty", MODELS / "faulty.onnx")
    register(store, "mlp", MODELS / "mlp_v1.onnx")
    return store


def test_faulty_failure_isolated_in_batch(start_extra_server, faulty_store):
    """A good request that is batched with a failing one still gets its own correct answer."""
    srv = start_extra_server(
        faulty_store,
        [
            # One session and a long batch window: requests sent together are batched together.
            {"name": "faulty", "versions": [1], "engine": {"instances": 1, "max_batch": 8, "batch_delay_us": 300_000}},
            {"name": "mlp", "versions": [1]},
        ],
        name="poison",
    )
    expected = load_expected("faulty")
    good, bad = expected["cases"][0], expected["failing_inputs"]
    good_out = np.array(good["outputs"][0]["data"], dtype=np.float32)

    def stats():
        return srv.get("/v2/models/faulty/versions/1/stats").json()["model_stats"][0]

    def send_pair(first, second):
        import concurrent.futures as cf

        with cf.ThreadPoolExecutor(2) as pool:
            a = pool.submit(srv.post, "/v2/models/faulty/infer", json={"inputs": first})
            time.sleep(0.05)
            b = pool.submit(srv.post, "/v2/models/faulty/infer", json={"inputs": second})
            return a.result(), b.result()

    # Control: two good requests sent together run as one batch, and both succeed.
    before = stats()
    r1, r2 = send_pair(good["inputs"], good["inputs"])
    if (r1.status_code, r2.status_code) != (200, 200):
        pytest.fail(f"control pair failed: {r1.text} {r2.text}")
    if stats()["execution_count"] - before["execution_count"] != 1:
        pytest.fail("the control pair was not batched into one execution")

    # A bad request, then a good one, in the same batch window.
    r_bad, r_good = send_pair(bad, good["inputs"])
    assert r_bad.status_code >= 500, r_bad.text
    assert r_good.status_code == 200, f"good request failed because of its batch neighbour: {r_good.text}"
    got = np.array(r_good.json()["outputs"][0]["data"], dtype=np.float32)
    assert np.max(np.abs(got - good_out)) <= 1e-5


# --------------------------------------------------------------------------------------------
# 413: body over the limit (its own server, [server] max_body_bytes = 4096)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("small") / "store"
    register(store, "mlp", MODELS / "mlp_v1.onnx")
    return store


def test_body_over_limit(start_extra_server, small_store):
    srv = start_extra_server(small_store, [{"name": "mlp", "versions": [1]}], server={"max_body_bytes": 4096}, name="limit")
    # Under the limit: a batch of 3 in binary is 768 bytes of data plus a small header.
    headers, body = binary_request(mlp_input(3))
    assert len(body) < 4096
    r = srv.post(MLP, data=body, headers=headers)
    assert r.status_code == 200, r.text
    # Over it, with Content-Length.
    big = mlp_json_body(32)
    raw = json.dumps(big).encode()
    assert len(raw) > 4096
    r = srv.post(MLP, data=raw, headers={"Content-Type": "application/json"})
    check_error(r, 413, "4096")
    assert_answers_valid(srv)
    # Over it, chunked (no Content-Length): refused while reading.
    r = srv.post(MLP, data=(raw[i : i + 1000] for i in range(0, len(raw), 1000)))
    check_error(r, 413, "4096")
    assert_answers_valid(srv)


def test_raw_socket_garbage(healthy):
    """Garbage on the socket closes that connection only."""
    host, port = healthy.host_port.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x02\x00garbage that is not HTTP\r\n\r\n")
        try:
            s.recv(4096)
        except OSError:
            pass
    assert_answers_valid(healthy)
