"""tritonclient.grpc (and Triton's own generated stubs, for typed contents) against the real
binary's gRPC listener: health, metadata, config, inference with raw and typed tensors, unary and
streaming, pinned and routed versions, every datatype, errors with their status codes. Outputs are
compared with onnxruntime run in-process on the same .onnx files, to 1e-5."""

from __future__ import annotations

import collections
import queue

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from conftest import MODELS, assert_tensor_equal, load_expected, mlp_input, ort_run, to_numpy

VERSION_FILES = {1: "mlp_v1.onnx", 2: "mlp_v2.onnx", 3: "mlp_v3.onnx"}


@pytest.fixture(scope="module")
def client(server):
    c = grpcclient.InferenceServerClient(url=server.grpc_host_port)
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.grpc_host_port)
    yield service_pb2_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def mlp_inputs(x: np.ndarray) -> list:
    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return [inp]


def typed_mlp_request(x: np.ndarray, version: str = "", request_id: str = "") -> service_pb2.ModelInferRequest:
    req = service_pb2.ModelInferRequest(model_name="mlp", model_version=version, id=request_id)
    tensor = req.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    tensor.contents.fp32_contents.extend(x.ravel().tolist())
    return req


def param(response, key: str) -> str:
    return response.parameters[key].string_param


# --------------------------------------------------------------------------------------------
# Health, metadata, config


def test_health_and_metadata(client, server):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    assert client.is_model_ready("mlp", "3")
    assert not client.is_model_ready("mlp", "4")
    assert not client.is_model_ready("nope")
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "switchyard"
    assert {"binary_tensor_data", "statistics", "model_configuration"} <= set(meta["extensions"])
    m = client.get_model_metadata("mlp", as_json=True)
    assert m["versions"] == ["1", "2", "3"]
    assert m["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "64"]}]
    # The same answer as REST's config endpoint, through protobuf.
    config = client.get_model_config("mlp", as_json=True)["config"]
    rest = server.get("/v2/models/mlp/config").json()
    assert config["max_batch_size"] == rest["max_batch_size"] == 8
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    assert [int(d) for d in config["input"][0]["dims"]] == rest["input"][0]["dims"] == [64]
    assert "dynamic_batching" in config
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("nope")
    assert e.value.status() == "StatusCode.NOT_FOUND"
    stats = client.get_inference_statistics("mlp", as_json=True)["model_stats"]
    assert [s["version"] for s in stats] == ["1", "2", "3"]


# --------------------------------------------------------------------------------------------
# Unary inference


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 3])
def test_mlp_raw_pinned_matches_onnxruntime(client, server, version, batch):
    x = mlp_input(batch, seed=version * 10 + batch)
    res = client.infer("mlp", mlp_inputs(x), model_version=str(version), request_id=f"py-grpc-{version}-{batch}")
    got = res.as_numpy("output")
    assert_tensor_equal(got, ort_run(MODELS / VERSION_FILES[version], {"input": x})["output"], "output")
    r = res.get_response()
    assert r.model_version == str(version)
    assert r.id == f"py-grpc-{version}-{batch}"
    assert param(r, "route") == "pinned"
    assert param(r, "model_sha256") == server.sha256[("mlp", version)]


def test_mlp_typed_contents_answer_typed(stub):
    x = mlp_input(2, seed=5)
    response, call = stub.ModelInfer.with_call(typed_mlp_request(x, "1"), metadata=[("x-request-id", "py-typed")])
    assert not response.raw_output_contents
    out = response.outputs[0]
    got = np.array(out.contents.fp32_contents, dtype=np.float32).reshape(list(out.shape))
    assert_tensor_equal(got, ort_run(MODELS / "mlp_v1.onnx", {"input": x})["output"], "output")
    md = dict(call.initial_metadata())
    assert (md["x-model-version"], md["x-model-route"], md["x-request-id"]) == ("1", "pinned", "py-typed")


def test_mlp_default_version_answers(client):
    x = mlp_input(1, seed=8)
    r = client.infer("mlp", mlp_inputs(x))
    assert r.get_response().model_version == "2"  # the session config's default_version
    assert_tensor_equal(r.as_numpy("output"), ort_run(MODELS / "mlp_v2.onnx", {"input": x})["output"], "output")


@pytest.mark.parametrize("case_index", [0, 1])
def test_dtypes_model_every_datatype(client, case_index):
    case = load_expected("dtypes")["cases"][case_index]
    inputs = {t["name"]: to_numpy(t) for t in case["inputs"]}
    req = []
    for t in case["inputs"]:
        inp = grpcclient.InferInput(t["name"], t["shape"], t["datatype"])
        inp.set_data_from_numpy(inputs[t["name"]])
        req.append(inp)
    res = client.infer("dtypes", req)
    reference = ort_run(MODELS / "dtypes.onnx", inputs)
    for want in case["outputs"]:
        got = res.as_numpy(want["name"])
        assert_tensor_equal(got, to_numpy(want), want["name"])
        assert_tensor_equal(got, reference[want["name"]], want["name"] + " (vs onnxruntime)")


def test_routed_split_names_each_answer(server, start_extra_server):
    """An 80/20 champion/challenger split through tritonclient.grpc: each answer says which
    version and route served it, and its outputs are that version's."""
    srv = start_extra_server(
        server.store,
        [{"name": "mlp", "versions": [1, 2], "routing": {"champion": 1, "challengers": {2: 20}}}],
        server={"grpc_listen": "127.0.0.1:0"},
        name="routed",
    )
    c = grpcclient.InferenceServerClient(url=srv.grpc_host_port)
    x = mlp_input(1, seed=3)
    want = {v: ort_run(MODELS / VERSION_FILES[v], {"input": x})["output"] for v in (1, 2)}
    counts = collections.Counter()
    for _ in range(300):
        res = c.infer("mlp", mlp_inputs(x))
        r = res.get_response()
        version = int(r.model_version)
        assert param(r, "route") == ("champion" if version == 1 else "challenger")
        assert_tensor_equal(res.as_numpy("output"), want[version], f"v{version}")
        counts[version] += 1
    c.close()
    share = 100.0 * counts[2] / 300
    assert abs(share - 20.0) <= 8.0, counts


# --------------------------------------------------------------------------------------------
# Streaming


def test_stream_answers_in_order_raw(client):
    answers: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    xs = [mlp_input(1, seed=40 + i) for i in range(3)]
    try:
        for i, x in enumerate(xs):
            client.async_stream_infer("mlp", mlp_inputs(x), model_version="1", request_id=f"stream-{i}")
        got = [answers.get(timeout=30) for _ in xs]
    finally:
        client.stop_stream()
    for i, ((result, error), x) in enumerate(zip(got, xs)):
        assert error is None, error
        assert result.get_response().id == f"stream-{i}"
        assert_tensor_equal(result.as_numpy("output"), ort_run(MODELS / "mlp_v1.onnx", {"input": x})["output"], "out")


def test_stream_typed_with_an_error_in_the_middle(stub):
    xs = [mlp_input(1, seed=60 + i) for i in range(3)]
    reqs = [typed_mlp_request(x, "3", f"typed-{i}") for i, x in enumerate(xs)]
    reqs.insert(1, service_pb2.ModelInferRequest(model_name="nope", id="typed-bad"))
    replies = list(stub.ModelStreamInfer(iter(reqs), timeout=30))
    assert [r.infer_response.id for r in replies] == ["typed-0", "typed-bad", "typed-1", "typed-2"]
    assert replies[1].error_message == "unknown model 'nope'"
    for reply, x in zip([replies[0], replies[2], replies[3]], xs):
        assert reply.error_message == ""
        out = reply.infer_response.outputs[0]
        got = np.array(out.contents.fp32_contents, dtype=np.float32).reshape(list(out.shape))
        assert_tensor_equal(got, ort_run(MODELS / "mlp_v3.onnx", {"input": x})["output"], "output")


# --------------------------------------------------------------------------------------------
# Errors: the right status, and the server stays up


def test_errors_get_their_status_codes(client, stub, healthy):
    def status_of(fn) -> str:
        with pytest.raises(InferenceServerException) as e:
            fn()
        return e.value.status()

    x = mlp_input(1)
    assert status_of(lambda: client.infer("nope", mlp_inputs(x))) == "StatusCode.NOT_FOUND"
    assert status_of(lambda: client.infer("mlp", mlp_inputs(x), model_version="9")) == "StatusCode.NOT_FOUND"
    wrong = grpcclient.InferInput("input", [1, 64], "FP64")
    wrong.set_data_from_numpy(x.astype(np.float64))
    assert status_of(lambda: client.infer("mlp", [wrong])) == "StatusCode.INVALID_ARGUMENT"
    # Raw contents shorter than the shape says.
    req = typed_mlp_request(x)
    req.inputs[0].ClearField("contents")
    req.raw_input_contents.append(x.tobytes()[:100])
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw contents are 100 bytes" in e.value.details()
    # The client's deadline: slow takes ~20 ms a call.
    slow = grpcclient.InferInput("input", [1, 64], "FP32")
    slow.set_data_from_numpy(x)
    assert status_of(lambda: client.infer("slow", [slow], client_timeout=0.001)) == "StatusCode.DEADLINE_EXCEEDED"
    r = client.infer("mlp", mlp_inputs(x), model_version="1")
    assert_tensor_equal(r.as_numpy("output"), ort_run(MODELS / "mlp_v1.onnx", {"input": x})["output"], "output")


def test_hostile_messages_and_the_size_limit(server, stub, start_extra_server):
    """Bytes that are no protobuf, and messages over [server] max_body_bytes, unary and streamed:
    refused with a status, and the server stays up."""
    channel = grpc.insecure_channel(server.grpc_host_port)
    raw_call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    for garbage in [b"\xff\xff\xff\xff", b"\x2a\x05\x0a\x01", bytes(range(256))]:
        with pytest.raises(grpc.RpcError) as e:
            raw_call(garbage, timeout=10)
        assert e.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT), e.value
    channel.close()
    assert stub.ServerLive(service_pb2.ServerLiveRequest()).live

    srv = start_extra_server(
        server.store,
        [{"name": "mlp", "versions": [1]}],
        server={"grpc_listen": "127.0.0.1:0", "max_body_bytes": 65536},
        name="small",
    )
    c = grpcclient.InferenceServerClient(url=srv.grpc_host_port)
    big = mlp_inputs(np.zeros((300, 64), np.float32))  # 76,800 bytes of raw contents
    with pytest.raises(InferenceServerException) as e:
        c.infer("mlp", big)
    assert e.value.status() == "StatusCode.RESOURCE_EXHAUSTED", e.value
    assert "max_body_bytes" in e.value.message()
    answers: queue.Queue = queue.Queue()
    c.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        c.async_stream_infer("mlp", big)
        result, error = answers.get(timeout=30)
    finally:
        c.stop_stream()
    assert result is None and "RESOURCE_EXHAUSTED" in str(error.status()), error
    x = mlp_input(1)
    want = ort_run(MODELS / "mlp_v1.onnx", {"input": x})["output"]
    assert_tensor_equal(c.infer("mlp", mlp_inputs(x)).as_numpy("output"), want, "output")
    c.close()


# --------------------------------------------------------------------------------------------
# The wire contract: what the server says its protos are (through reflection) against
# tritonclient's own copy of Triton's protos


def _varint(data: bytes, at: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[at]
        n |= (b & 0x7F) << shift
        at += 1
        if not b & 0x80:
            return n, at
        shift += 7


def _fields(data: bytes):
    """(number, value) of each field of a protobuf message; length-delimited values as bytes."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at : at + length], at + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = data[at : at + size], at + size
        else:
            raise ValueError(f"wire type {wire}")
        yield number, value


def test_reflected_protos_match_tritonclients(server):
    """Every message, field (name, number, type), enum value and method the server declares
    through reflection is the one tritonclient's compiled copy of Triton's protos has."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    channel = grpc.insecure_channel(server.grpc_host_port)
    call = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
    symbol, dependency = b"inference.GRPCInferenceService", b"model_config.proto"
    requests = [
        bytes([4 << 3 | 2, len(symbol)]) + symbol,  # ServerReflectionRequest.file_containing_symbol
        bytes([3 << 3 | 2, len(dependency)]) + dependency,  # .file_by_filename (what clients ask next)
    ]
    responses = list(call(iter(requests), timeout=10))
    channel.close()
    files = []
    for response in responses:
        for number, value in _fields(response):
            if number == 4:  # file_descriptor_response
                files += [v for n, v in _fields(value) if n == 1]
    names = set()
    pool = descriptor_pool.Default()  # tritonclient.grpc imported service_pb2 and model_config_pb2 into it
    problems = []
    checked = []

    def check_message(full: str, m) -> None:
        upstream = pool.FindMessageTypeByName(full)
        for f in m.field:
            checked.append(f"{full}.{f.name}")
            u = upstream.fields_by_name.get(f.name)
            if u is None or (u.number, u.type) != (f.number, f.type):
                problems.append(f"{full}.{f.name}: ours {f.number}/{f.type}, upstream {u and (u.number, u.type)}")
        for nested in m.nested_type:
            check_message(f"{full}.{nested.name}", nested)
        for e in m.enum_type:
            check_enum(f"{full}.{e.name}", e)

    def check_enum(full: str, e) -> None:
        upstream = pool.FindEnumTypeByName(full)
        problems.extend(f"{full}.{v.name}" for v in e.value if upstream.values_by_name[v.name].number != v.number)

    for raw in files:
        fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
        names.add(fd.name)
        for m in fd.message_type:
            check_message(f"{fd.package}.{m.name}", m)
        for e in fd.enum_type:
            check_enum(f"{fd.package}.{e.name}", e)
        for s in fd.service:
            upstream = pool.FindServiceByName(f"{fd.package}.{s.name}")
            for m in s.method:
                u = upstream.methods_by_name[m.name]
                ours = (m.input_type.lstrip("."), m.output_type.lstrip("."), m.client_streaming, m.server_streaming)
                theirs = (u.input_type.full_name, u.output_type.full_name, u.client_streaming, u.server_streaming)
                if ours != theirs:
                    problems.append(f"{s.name}.{m.name}: {ours} != {theirs}")
    assert names == {"grpc_service.proto", "model_config.proto"}, names
    assert not problems, "\n".join(problems)
    assert len(checked) > 100 and "inference.ModelInferRequest.InferInputTensor.contents" in checked, checked
