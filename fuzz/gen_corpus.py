#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets:

  fuzz/corpus/v2_decode/     v2 infer requests: JSON bodies from tests/fixtures/expected/*.json
                             ("inputs" of each case, wrapped as {"inputs": [...]}), hand-made
                             variants, and binary-tensor requests (JSON header + raw bytes),
                             each prefixed with the mode byte of fuzz_targets/v2_decode.rs.
  fuzz/corpus/config_parse/  configs/*.toml and the config strings of
                             settings/src/tests.rs, plus edge cases.
  fuzz/corpus/json_data/     tensor data as clients write it (the "data" arrays of the v2
                             seeds' JSON requests), and numbers at the edges of the fast reader.
  fuzz/corpus/grpc_decode/   gRPC ModelInferRequest messages (protobuf, written by the small
                             encoder below): every fixture case raw and typed, and refusals.

Deterministic; run from anywhere:  python3 fuzz/gen_corpus.py
It rewrites every target's directory (removing files it did not write), so the corpus stays exactly
what this script produces. Plain Python 3, no packages needed.
"""

import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"

# ---------------------------------------------------------------------------------------------
# v2_decode: mode byte, then payload (see fuzz_targets/v2_decode.rs).
MODE_JSON = 0  # header length: none
MODE_LEN16 = 1  # u16 LE header length, then body
MODE_RAW_HEADER = 2  # n, n raw header-value bytes, then body
MODE_SPLIT_FF = 3  # header, 0xFF, binary (header length = offset of the 0xFF)


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_seed(obj) -> bytes:
    return bytes([MODE_JSON]) + compact(obj)


def binary_request(header_obj, binary: bytes) -> tuple[bytes, bytes]:
    return compact(header_obj), binary


def len16_seed(header: bytes, binary: bytes) -> bytes:
    assert len(header) < 1 << 16
    return bytes([MODE_LEN16]) + struct.pack("<H", len(header)) + header + binary


def split_seed(header: bytes, binary: bytes) -> bytes:
    return bytes([MODE_SPLIT_FF]) + header + b"\xff" + binary


def raw_header_seed(header_value: bytes, body: bytes) -> bytes:
    assert len(header_value) < 256
    return bytes([MODE_RAW_HEADER, len(header_value)]) + header_value + body


# struct format of one element, per fixed-size datatype
PACK = {
    "BOOL": "?",
    "UINT8": "B",
    "INT8": "b",
    "UINT16": "H",
    "INT16": "h",
    "FP16": "e",
    "UINT32": "I",
    "INT32": "i",
    "FP32": "f",
    "UINT64": "Q",
    "INT64": "q",
    "FP64": "d",
}


def pack(datatype: str, values) -> bytes:
    if datatype == "BYTES":
        out = b""
        for v in values:
            b = v.encode() if isinstance(v, str) else bytes(v)
            out += struct.pack("<I", len(b)) + b
        return out
    return struct.pack("<%d%s" % (len(values), PACK[datatype]), *values)


def binary_input(name, datatype, shape, values):
    raw = pack(datatype, values)
    spec = {"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": len(raw)}}
    return spec, raw


def v2_seeds() -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}

    # JSON bodies from the fixtures (the mlp-family models share inputs: keep one copy).
    seen = set()
    fixture_inputs = {}
    for path in sorted((ROOT / "tests" / "fixtures" / "expected").glob("*.json")):
        doc = json.loads(path.read_text())
        cases = [c["inputs"] for c in doc["cases"]]
        if "failing_inputs" in doc:
            cases.append(doc["failing_inputs"])
        for i, inputs in enumerate(cases):
            key = json.dumps(inputs, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            fixture_inputs[f"{path.stem}-{i}"] = inputs
            seeds[f"json-{path.stem}-{i}"] = json_seed({"inputs": inputs})

    mixed = fixture_inputs["mixed-0"]
    # Request-level fields: id, parameters, outputs.
    seeds["json-id-params-outputs"] = json_seed(
        {
            "id": "req-42",
            "parameters": {"binary_data_output": True, "timeout": 1000},
            "inputs": mixed,
            "outputs": [
                {"name": "weighted", "parameters": {"binary_data": False}},
                {"name": "count"},
                {"name": "any_large", "parameters": {"binary_data": True}},
            ],
        }
    )
    seeds["json-numeric-id"] = json_seed({"id": 7, "inputs": [{"name": "x", "datatype": "INT32", "shape": [2], "data": [1, -1]}]})
    # Nested data, as clients may send it row by row.
    seeds["json-nested-data"] = json_seed(
        {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 2, 1], "data": [[[1.5], [2]], [[-3e300], [4e-300]]]}]}
    )
    seeds["json-empty-shapes"] = json_seed(
        {
            "inputs": [
                {"name": "scalar", "datatype": "FP16", "shape": [], "data": 65504},
                {"name": "empty", "datatype": "UINT64", "shape": [0, 5], "data": []},
                {"name": "s", "datatype": "BYTES", "shape": [3], "data": ["", "héllo", "\u0000"]},
            ]
        }
    )
    # Requests the decoder refuses, one per kind of error.
    seeds["json-err-duplicate-input"] = json_seed(
        {"inputs": [{"name": "a", "datatype": "BOOL", "shape": [1], "data": [True]}] * 2}
    )
    seeds["json-err-duplicate-output"] = json_seed(
        {"inputs": [{"name": "a", "datatype": "BOOL", "shape": [1], "data": [False]}], "outputs": [{"name": "o"}, {"name": "o"}]}
    )
    seeds["json-err-classification"] = json_seed(
        {"inputs": [], "outputs": [{"name": "o", "parameters": {"classification": 3}}]}
    )
    seeds["json-err-bad-values"] = json_seed(
        {
            "inputs": [
                {"name": "u8", "datatype": "UINT8", "shape": [3], "data": [0, 256, -1]},
                {"name": "f", "datatype": "FP32", "shape": [1], "data": ["1.0"]},
            ]
        }
    )
    seeds["json-err-shape"] = json_seed(
        {"inputs": [{"name": "x", "datatype": "INT8", "shape": [-1, 9223372036854775807], "data": [1]}]}
    )
    seeds["json-err-both-data"] = json_seed(
        {"inputs": [{"name": "x", "datatype": "INT16", "shape": [1], "data": [1], "parameters": {"binary_data_size": 2}}]}
    )
    seeds["json-err-unknown-datatype"] = json_seed({"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1], "data": [1]}]})
    seeds["json-err-bad-param"] = json_seed({"parameters": {"binary_data_output": "yes"}, "inputs": []})
    seeds["json-err-syntax"] = bytes([MODE_JSON]) + b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1.0'

    # Binary tensor extension: one tensor per datatype, all in one request (via both modes).
    tensors = [
        binary_input("b", "BOOL", [1, 4], [True, False, True, True]),
        binary_input("u8", "UINT8", [1, 4], [0, 255, 99, 212]),
        binary_input("i8", "INT8", [1, 4], [-128, 127, -26, 56]),
        binary_input("u16", "UINT16", [1, 4], [0, 65535, 568, 682]),
        binary_input("i16", "INT16", [1, 4], [-32768, 32767, 288, -359]),
        binary_input("f16", "FP16", [1, 4], [-2.5, 3.875, 0.75, 0.0]),
        binary_input("u32", "UINT32", [1, 4], [0, 4294967295, 37852, 37737]),
        binary_input("i32", "INT32", [1, 4], [-2147483648, 2147483646, 73, -987]),
        binary_input("f32", "FP32", [1, 4], [-0.390625, -0.546875, 0.140625, 0.625]),
        binary_input("u64", "UINT64", [1, 4], [0, 18446744073709551615, 9223372036854775809, 83561]),
        binary_input("i64", "INT64", [1, 4], [-4611686018427387904, 1152921504606846977, -230, 929]),
        binary_input("f64", "FP64", [1, 4], [0.3154296875, -1.19140625, -1.419921875, -0.9775390625]),
        binary_input("text", "BYTES", [2], ["hello", ""]),
    ]
    for spec, raw in tensors:
        header, binary = binary_request({"inputs": [spec]}, raw)
        seeds[f"bin-{spec['name']}"] = len16_seed(header, binary)
    header, binary = binary_request({"inputs": [s for s, _ in tensors]}, b"".join(r for _, r in tensors))
    seeds["bin-all-dtypes"] = len16_seed(header, binary)
    seeds["split-all-dtypes"] = split_seed(header, binary)

    # Binary and JSON inputs mixed in one request, with binary outputs asked for.
    ids, ids_raw = binary_input("ids", "INT64", [1, 8], [4, 1, 5, 5, 3, 3, 3, 5])
    mask, mask_raw = binary_input("mask", "BOOL", [1, 8], [1, 0, 1, 1, 1, 0, 0, 1])
    values = {"name": "values", "datatype": "FP32", "shape": [1, 8], "data": [0.5] * 8}
    header, binary = binary_request(
        {
            "id": "mixed-binary",
            "parameters": {"binary_data_output": True},
            "inputs": [ids, values, mask],
            "outputs": [{"name": "weighted", "parameters": {"binary_data": True}}],
        },
        ids_raw + mask_raw,
    )
    seeds["bin-mixed-json-and-binary"] = len16_seed(header, binary)
    seeds["split-mixed-json-and-binary"] = split_seed(header, binary)

    # A batch-3 FP32 request as a client library sends it (mlp signature).
    mlp = next(i[0] for i in fixture_inputs.values() if i[0]["name"] == "input" and i[0]["shape"] == [3, 64])
    spec, raw = binary_input("input", "FP32", mlp["shape"], mlp["data"])
    header, binary = binary_request({"inputs": [spec], "outputs": [{"name": "output"}]}, raw)
    seeds["split-mlp-batch3"] = split_seed(header, binary)

    # Binary requests the decoder refuses.
    spec, raw = binary_input("x", "FP32", [2], [1.0, 2.0])
    header = compact({"inputs": [spec]})
    seeds["bin-err-trailing"] = len16_seed(header, raw + b"\x00")
    seeds["bin-err-too-short"] = len16_seed(header, raw[:-1])
    seeds["split-err-size-mismatch"] = split_seed(
        compact({"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "parameters": {"binary_data_size": 8}}]}), raw
    )
    seeds["bin-err-bool-byte"] = len16_seed(
        compact({"inputs": [{"name": "b", "datatype": "BOOL", "shape": [2], "parameters": {"binary_data_size": 2}}]}), b"\x01\x02"
    )
    bad_bytes = struct.pack("<I", 10) + b"abc"
    seeds["bin-err-bytes-prefix"] = len16_seed(
        compact({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(bad_bytes)}}]}),
        bad_bytes,
    )
    seeds["bin-err-negative-size"] = len16_seed(
        compact({"inputs": [{"name": "t", "datatype": "UINT8", "shape": [1], "parameters": {"binary_data_size": -1}}]}), b"\x00"
    )
    huge = compact(
        {"inputs": [{"name": "h", "datatype": "FP64", "shape": [4611686018427387904, 4], "parameters": {"binary_data_size": 8}}]}
    )
    seeds["bin-err-huge-shape"] = len16_seed(huge, b"\x00" * 8)

    # The header value itself: whitespace, signs, overflow, not a number, not UTF-8.
    spec, raw = binary_input("x", "UINT16", [1], [7])
    header = compact({"inputs": [spec]})
    body = header + raw
    for name, value in [
        ("padded", b" %d\t" % len(header)),
        ("plus", b"+%d" % len(header)),
        ("zero", b"0"),
        ("negative", b"-1"),
        ("overflow", b"99999999999999999999999999"),
        ("too-large", b"%d" % (len(body) + 1)),
        ("empty", b""),
        ("not-utf8", b"\xff\xfe12"),
        ("hex", b"0x10"),
    ]:
        seeds[f"hdr-{name}"] = raw_header_seed(value, body)
    return seeds


# ---------------------------------------------------------------------------------------------
# config_parse: the whole input is the TOML text.

# The strings of settings/src/tests.rs (copied; keep in step when tests change).
TESTS_GOOD = """
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[store]
path = "/tmp/store"

[[model]]
name = "mlp"
versions = ["champion", 2, "3"]
[model.engine]
instances = 2
max_batch = 8
batch_delay_us = 200
"""

TESTS_BAD = """
colour = "blue"
[server]
listen = "nowhere"
bogus = 1
[[model]]
name = "a"
versions = [0, "Bad Alias"]
[[model]]
name = "b"
versions = [1, 1]
default_version = 4
[model.engine]
device = "tpu"
instances = 0
[[model]]
name = "c"
versions = [1]
unknown = true
"""

TESTS_STRINGS = {
    "tests-good": TESTS_GOOD,
    "tests-lists-every-problem": TESTS_BAD,
    "tests-duplicate-models": "[store]\npath='s'\n[[model]]\nname='m'\nversions=[1]\n[[model]]\nname='m'\nversions=[2]\n",
    "tests-no-models": "[store]\npath='s'\n",
    "tests-syntax-unclosed-table": "[server",
    "tests-syntax-model-not-array": "model = 3\n[store]\npath='x'",
    "tests-syntax-nul": "\u0000",
    "tests-syntax-unclosed-array": '[[model]]\nname = "m"\nversions = [1',
    "tests-relative-store": '[store]\npath = "store"\n[[model]]\nname = "m"\nversions = [1]\n',
    "tests-routing-good": "[store]\npath='s'\n[[model]]\nname='m'\nversions=[4]\n[model.routing]\nchampion='champion'\n"
    "challengers={ 2 = 12.5 }\nshadows={ 3 = 10 }\nbackup=[1]\nsticky_header='X-User-Id'\n",
    "tests-routing-bad": "[store]\npath='s'\n[[model]]\nname='m'\ndefault_version=1\nversions=[1]\n[model.routing]\n"
    "challengers={ 2 = 70, 3 = 40, 1 = 5 }\nshadows={ 2 = 150 }\nsticky_header='bad header'\n",
    "tests-lineage-custom": TESTS_GOOD
    + '\n[model.lineage]\ninput_sha256 = true\n[lineage]\nenabled = false\ncapacity = 10\non_full = "drop"\n',
    "tests-lineage-unknown-field": TESTS_GOOD + '\n[lineage]\ncapacity = 0\non_full = "sometimes"\nbatch = 3\n',
    "tests-lineage-bad-values": TESTS_GOOD + '\n[lineage]\ncapacity = 0\non_full = "sometimes"\n',
    "tests-guard-good": TESTS_GOOD + '\n[model.guard]\nwindow = "10s"\np99_ms = 50\ninterval = "500ms"\n',
    "tests-guard-bad": TESTS_GOOD
    + '\n[model.guard]\nwindow = "soon"\ninterval = "2h"\np99_ms = -1\nmax_error_rate = 1.5\nmin_requests = 0\n',
    "tests-guard-no-threshold": TESTS_GOOD + '\n[model.guard]\nwindow = "10s"\n',
}

# Edge cases of validation the tests do not spell out.
EXTRA_CONFIGS = {
    "edge-admin-token": TESTS_GOOD.replace("[store]", 'admin_token = "0123456789abcdef0123"\n[store]', 1),
    "edge-admin-token-short": TESTS_GOOD.replace("[store]", 'admin_token = "short token"\n[store]', 1),
    "edge-server-limits": TESTS_GOOD.replace(
        "[store]",
        "max_body_bytes = 18446744073709551615\nworker_threads = 0\nmax_connections = 1000001\n"
        'max_header_bytes = 8191\nrequest_timeout = "99999999999999999999s"\n[store]',
        1,
    ),
    "edge-durations": TESTS_GOOD
    + '\n[model.guard]\nwindow = "1h 1ns"\ninterval = "9223372036854775807s"\ncooldown = "1d"\nmax_error_rate = nan\n',
    "edge-float-specials": "[store]\npath='s'\n[[model]]\nname='m'\nversions=[1]\n[model.routing]\nchampion=1\n"
    "challengers={ 2 = nan, 3 = inf, 4 = -0.0, alias = 1e308 }\nshadows={ 5 = -inf }\n"
    "[model.guard]\np99_ms = inf\n",
    "edge-selectors": "[store]\npath='s'\n[[model]]\nname='m.v-1_x'\n"
    "versions=[4294967295, 4294967296, '00', '4294967296', 'a-b_c', '', 1.5, true, [1], {a=1}]\n"
    "default_version='a-b_c'\n",
    "edge-cuda-device": TESTS_GOOD + '\ndevice = "cuda:0"\n',
    "edge-bad-device": TESTS_GOOD + '\ndevice = "cuda:-1"\n',
    "edge-model-names": "[store]\npath='s'\n[[model]]\nname='..'\nversions=[1]\n[[model]]\nname='-x'\nversions=[1]\n"
    "[[model]]\nversions=[1]\n[[model]]\nname='" + "a" * 129 + "'\nversions=[]\n",
    "edge-sections-wrong-type": "server = 1\nstore = 'x'\nruntime = []\nlineage = true\n",
    "edge-runtime": '[runtime]\nonnxruntime = "/opt/ort/libonnxruntime.so"\n' + TESTS_GOOD,
    "edge-inline-tables": "store = { path = 's' }\nmodel = [{ name = 'm', versions = [1], engine = { max_batch = 4096 } }]\n",
    "edge-promotion": TESTS_GOOD
    + "\n[model.promotion]\nmin_gain = { auc = 0.005, f1 = nan }\nmax_drift = { accuracy = -1 }\n"
    "max_p99_ms = inf\nmax_error_rate = 2\nmin_shadow_agreement = 0.95\nmin_online_accuracy = -0.0\nmin_requests = 0\n",
    "edge-unicode": "[store]\npath = \"st\u00f6re/\u2603\"\n[[model]]\nname = \"m\u00e9\"\nversions = [\"\u00e9\"]\n",
}


def config_seeds() -> dict[str, bytes]:
    seeds = {}
    for path in sorted((ROOT / "configs").glob("*.toml")):
        seeds[f"configs-{path.stem}"] = path.read_bytes()
    for name, text in {**TESTS_STRINGS, **EXTRA_CONFIGS}.items():
        seeds[name] = text.encode()
    return seeds


def json_data_seeds(v2: dict[str, bytes]) -> dict[str, bytes]:
    seeds = {}
    for name, body in v2.items():
        if body[0] != MODE_JSON:
            continue
        try:
            request = json.loads(body[1:])
        except ValueError:
            continue
        inputs = request.get("inputs") if isinstance(request, dict) else None
        for i, tensor in enumerate(inputs if isinstance(inputs, list) else []):
            if isinstance(tensor, dict) and "data" in tensor:
                seeds[f"{name}-{i}"] = compact(tensor["data"])
    edges = [
        "[0.10000000149011612, 3.4028234663852886e+38, 1.1754943508222875e-38]",  # f32 values via repr
        "[[1e22, 1e-22], [1e23, 1e-23]]",  # the last exact powers of ten, and the first not
        "[18446744073709551615, 18446744073709551616, -9223372036854775808, -9223372036854775809]",
        "[-0, -0.0, 0e5, 1E+2, 2.5e-3, 123456789012345678.9]",
        "[ [ true , false ] , [ ] , [[ 7 ]] ]",
        "[1,]", "[01]", "[1.]", "[1e]", "[\"1\", null]",
    ]
    for i, text in enumerate(edges):
        seeds[f"edge-{i}"] = text.encode()
    return seeds


# ---------------------------------------------------------------------------------------------
# grpc_decode: protobuf-encoded inference.ModelInferRequest (proto/grpc_service.proto).


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32/int64 are 10-byte two's complement
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, messages, packed repeated scalars)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def pb_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


# Typed contents: datatype -> (InferTensorContents field, how each element is written).
TYPED = {
    "BOOL": (1, lambda v: varint(int(v))),
    "INT8": (2, varint), "INT16": (2, varint), "INT32": (2, varint),
    "INT64": (3, varint),
    "UINT8": (4, varint), "UINT16": (4, varint), "UINT32": (4, varint),
    "UINT64": (5, varint),
    "FP32": (6, lambda v: struct.pack("<f", v)),
    "FP64": (7, lambda v: struct.pack("<d", v)),
}  # fmt: skip


def grpc_input(name: str, datatype: str, shape, contents: bytes | None = None) -> bytes:
    msg = pb_field(1, name.encode()) + pb_field(2, datatype.encode()) + pb_field(3, b"".join(map(varint, shape)))
    if contents is not None:
        msg += pb_field(5, contents)
    return msg


def typed_contents(datatype: str, values) -> bytes | None:
    if datatype == "BYTES":
        return b"".join(pb_field(8, v.encode() if isinstance(v, str) else bytes(v)) for v in values)
    if datatype not in TYPED:
        return None  # FP16 has no typed field
    field, enc = TYPED[datatype]
    return pb_field(field, b"".join(enc(v) for v in values))


def grpc_request(inputs: list[bytes], raw: list[bytes] = (), model="m", version="", extra=b"") -> bytes:
    msg = pb_field(1, model.encode()) + (pb_field(2, version.encode()) if version else b"")
    msg += b"".join(pb_field(5, i) for i in inputs) + b"".join(pb_field(7, r) for r in raw)
    return msg + extra


def grpc_param(key: str, value: bytes) -> bytes:
    """A map<string, InferParameter> entry; `value` is the encoded InferParameter."""
    return pb_field(1, key.encode()) + pb_field(2, value)


def grpc_seeds() -> dict[str, bytes]:
    seeds: dict[str, bytes] = {}
    for path in sorted((ROOT / "tests" / "fixtures" / "expected").glob("*.json")):
        for i, case in enumerate(json.loads(path.read_text())["cases"][:2]):
            tensors = case["inputs"]
            raw = [pack(t["datatype"], t["data"]) for t in tensors]
            heads = [grpc_input(t["name"], t["datatype"], t["shape"]) for t in tensors]
            seeds[f"raw-{path.stem}-{i}"] = grpc_request(heads, raw, model=path.stem)
            typed = [(t, typed_contents(t["datatype"], t["data"])) for t in tensors]
            if all(c is not None for _, c in typed):
                inputs = [grpc_input(t["name"], t["datatype"], t["shape"], c) for t, c in typed]
                seeds[f"typed-{path.stem}-{i}"] = grpc_request(inputs, model=path.stem)
    f32 = lambda *v: typed_contents("FP32", v)  # noqa: E731
    timeout = grpc_param("timeout", pb_varint(2, 5000))
    output = pb_field(1, b"y") + pb_field(2, grpc_param("binary_data", pb_varint(1, 1)))
    seeds["params-outputs-id"] = grpc_request(
        [grpc_input("x", "FP32", [1, 2], f32(1.0, 2.0))],
        extra=pb_field(3, b"req-1") + pb_field(4, timeout) + pb_field(6, output),
    )
    seeds["err-raw-short"] = grpc_request([grpc_input("x", "FP32", [2, 2])], [pack("FP32", [1.0, 2.0])])
    seeds["err-raw-count"] = grpc_request(
        [grpc_input("a", "INT32", [1]), grpc_input("b", "INT32", [1])], [pack("INT32", [7])]
    )
    seeds["err-raw-and-typed"] = grpc_request([grpc_input("x", "FP32", [1], f32(1.0))], [pack("FP32", [1.0])])
    seeds["err-bytes-prefix"] = grpc_request([grpc_input("s", "BYTES", [2])], [struct.pack("<I", 99) + b"ab"])
    seeds["err-huge-shape"] = grpc_request([grpc_input("x", "FP64", [1 << 62, 4])], [b"\0" * 8])
    seeds["err-negative-dim"] = grpc_request([grpc_input("x", "FP32", [-1, 2], f32(1.0, 2.0))])
    seeds["err-int8-range"] = grpc_request([grpc_input("x", "INT8", [2], typed_contents("INT32", [1, 300]))])
    seeds["err-wrong-field"] = grpc_request([grpc_input("x", "INT64", [1], f32(1.0))])
    seeds["err-fp16-typed"] = grpc_request([grpc_input("x", "FP16", [1], f32(1.0))])
    seeds["err-duplicate"] = grpc_request([grpc_input("x", "FP32", [1], f32(1.0))] * 2)
    nan = varint(4 << 3 | 1) + struct.pack("<d", float("nan"))  # InferParameter.double_param
    seeds["err-nan-param"] = grpc_request([grpc_input("x", "FP32", [1], f32(1.0))], extra=pb_field(4, grpc_param("p", nan)))
    return seeds


def write(target: str, seeds: dict[str, bytes]) -> None:
    out = CORPUS / target
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name, data in sorted(seeds.items()):
        (out / name).write_bytes(data)
    print(f"{out.relative_to(ROOT)}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")


if __name__ == "__main__":
    v2 = v2_seeds()
    write("v2_decode", v2)
    write("config_parse", config_seeds())
    write("json_data", json_data_seeds(v2))
    write("grpc_decode", grpc_seeds())
