"""Generate the side-by-side bench's ONNX models (random weights) into benches/.cache/models/.

Run from the repository root (`make bench` does it):

    .cache/venv/bin/python benches/generate_models.py [--out DIR] [--check]

Needs numpy, onnx and onnxruntime (the project's test venv, `scripts/setup-python.sh`). Every
model uses opset 17 (default domain) and IR version 8, like tests/fixtures/generate.py, and is
deterministic (fixed seeds), so re-running gives byte-identical files; a file already there with
the expected sha256 of its own bytes is kept (the manifest records them). It writes:

  encoder_s{1..10}.onnx   the "medium" model: a small transformer encoder (MiniLM-like, but
      narrower so that one call costs a few milliseconds on one core here): 4 layers, hidden
      256, 4 heads, FFN 1024, vocabulary 8192, sequence 32 (5.3 M parameters, 21 MB, ~0.2
      GFLOP per row). Input "input_ids" INT64 [batch, 32] -> token + position embedding ->
      LayerNorm -> 4 x (self-attention, residual, LayerNorm, FFN with a sigmoid-GELU,
      residual, LayerNorm) -> mean over the sequence -> "embedding" FP32 [batch, 256]. The ten
      files have the same architecture and different random weights (seed 1..10): the memory
      check loads all ten as versions of one model.
  wide_mlp.onnx   the "batchable" model: "input" FP32 [batch, 512] -> Gemm(512->2048) -> Relu
      -> Gemm(2048->2048) -> Relu -> Gemm(2048->16) -> "output" FP32 [batch, 16] (5.3 M
      parameters, 21 MB). At batch 1 each call streams all the weights for little arithmetic,
      so a batch of 16 costs far less than 16 calls of one.
  manifest.json   per file: sha256, size, inputs, outputs, and a single-thread ORT timing
      (median CPU time over 30 calls at batch 1 and, for wide_mlp, batch 16), for reference.

The tiny model is the project's fixture tests/fixtures/models/mlp_v1.onnx (not copied).
With --check it also verifies each model against a numpy reference (slower).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benches" / ".cache" / "models"

OPSET = 17
IR_VERSION = 8

# Encoder ("medium") shape.
ENC_LAYERS = 4
ENC_HIDDEN = 256
ENC_HEADS = 4
ENC_FFN = 1024
ENC_VOCAB = 8192
ENC_SEQ = 32
ENC_SEEDS = range(1, 11)

# Wide MLP ("batchable") shape.
WIDE_IN, WIDE_HIDDEN, WIDE_OUT = 512, 2048, 16


def make_model(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="switchyard-benches",
        producer_version="1",
        doc_string=doc,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def median_ms(sess: ort.InferenceSession, feeds: dict, n: int = 30) -> float:
    """Median CPU time (not wall time: the machine may be shared) of one call, in ms."""
    for _ in range(3):
        sess.run(None, feeds)
    times = []
    for _ in range(n):
        t0 = time.process_time()
        sess.run(None, feeds)
        times.append(time.process_time() - t0)
    return float(np.median(times) * 1e3)


# --------------------------------------------------------------------------
# encoder
# --------------------------------------------------------------------------


def encoder_weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, f = ENC_HIDDEN, ENC_FFN

    def w(*shape, scale=None):
        scale = scale if scale is not None else 1.0 / np.sqrt(shape[0])
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    p = {
        "emb.token": w(ENC_VOCAB, h, scale=0.1),
        "emb.position": w(ENC_SEQ, h, scale=0.1),
        "emb.ln.gamma": np.ones(h, np.float32),
        "emb.ln.beta": np.zeros(h, np.float32),
    }
    for i in range(ENC_LAYERS):
        pre = f"layer{i}."
        for name in ("q", "k", "v", "o"):
            p[pre + name + ".weight"] = w(h, h)
            p[pre + name + ".bias"] = w(h, scale=0.02)
        p[pre + "ffn1.weight"] = w(h, f)
        p[pre + "ffn1.bias"] = w(f, scale=0.02)
        p[pre + "ffn2.weight"] = w(f, h)
        p[pre + "ffn2.bias"] = w(h, scale=0.02)
        for ln in ("ln1", "ln2"):
            p[pre + ln + ".gamma"] = (1.0 + rng.standard_normal(h) * 0.02).astype(np.float32)
            p[pre + ln + ".beta"] = (rng.standard_normal(h) * 0.02).astype(np.float32)
    return p


def encoder_model(seed: int) -> onnx.ModelProto:
    p = encoder_weights(seed)
    h, heads = ENC_HIDDEN, ENC_HEADS
    dh = h // heads
    inits = [numpy_helper.from_array(v, k) for k, v in p.items()]
    inits += [
        numpy_helper.from_array(np.array([0, 0, heads, dh], np.int64), "shape.split_heads"),
        numpy_helper.from_array(np.array([0, 0, h], np.int64), "shape.merge_heads"),
        numpy_helper.from_array(np.array(1.0 / np.sqrt(dh), np.float32), "attn.scale"),
        numpy_helper.from_array(np.array(1.702, np.float32), "gelu.k"),
    ]
    nodes = []

    def node(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    def linear(x, pre):
        return node("Add", [node("MatMul", [x, pre + ".weight"], pre + ".mm"), pre + ".bias"], pre + ".out")

    def layer_norm(x, pre):
        return node("LayerNormalization", [x, pre + ".gamma", pre + ".beta"], pre + ".out", axis=-1, epsilon=1e-5)

    tok = node("Gather", ["emb.token", "input_ids"], "emb.tok")
    x = layer_norm(node("Add", [tok, "emb.position"], "emb.sum"), "emb.ln")
    for i in range(ENC_LAYERS):
        pre = f"layer{i}."
        heads_of = {}
        for name in ("q", "k", "v"):
            y = node("Reshape", [linear(x, pre + name), "shape.split_heads"], pre + name + ".split")
            heads_of[name] = node("Transpose", [y], pre + name + ".heads", perm=[0, 2, 1, 3])
        kt = node("Transpose", [heads_of["k"]], pre + "k.t", perm=[0, 1, 3, 2])
        scores = node("Mul", [node("MatMul", [heads_of["q"], kt], pre + "qk"), "attn.scale"], pre + "scores")
        probs = node("Softmax", [scores], pre + "probs", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, heads_of["v"]], pre + "ctx")], pre + "ctx.t", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, "shape.merge_heads"], pre + "ctx.merged")
        x = layer_norm(node("Add", [x, linear(ctx, pre + "o")], pre + "res1"), pre + "ln1")
        f = linear(x, pre + "ffn1")
        f = node("Mul", [f, node("Sigmoid", [node("Mul", [f, "gelu.k"], pre + "gelu.kx")], pre + "gelu.sig")], pre + "gelu")
        x = layer_norm(node("Add", [x, linear(f, pre + "ffn2")], pre + "res2"), pre + "ln2")
    nodes.append(helper.make_node("ReduceMean", [x], ["embedding"], name="pool", axes=[1], keepdims=0))
    graph = helper.make_graph(
        nodes,
        "encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", ENC_SEQ])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", ENC_HIDDEN])],
        initializer=inits,
    )
    return make_model(graph, f"side-by-side bench: transformer encoder, random weights (seed {seed})")


def encoder_numpy(ids: np.ndarray, seed: int) -> np.ndarray:
    p = {k: v.astype(np.float64) for k, v in encoder_weights(seed).items()}
    h, heads = ENC_HIDDEN, ENC_HEADS
    dh = h // heads

    def ln(x, pre):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * p[pre + ".gamma"] + p[pre + ".beta"]

    def lin(x, pre):
        return x @ p[pre + ".weight"] + p[pre + ".bias"]

    b, s = ids.shape
    x = ln(p["emb.token"][ids] + p["emb.position"], "emb.ln")
    for i in range(ENC_LAYERS):
        pre = f"layer{i}."
        q, k, v = (lin(x, pre + n).reshape(b, s, heads, dh).transpose(0, 2, 1, 3) for n in "qkv")
        sc = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh)
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        ctx = (sc / sc.sum(-1, keepdims=True)) @ v
        x = ln(x + lin(ctx.transpose(0, 2, 1, 3).reshape(b, s, h), pre + "o"), pre + "ln1")
        f = lin(x, pre + "ffn1")
        f = f / (1.0 + np.exp(-1.702 * f))
        x = ln(x + lin(f, pre + "ffn2"), pre + "ln2")
    return x.mean(1).astype(np.float32)


# --------------------------------------------------------------------------
# wide MLP
# --------------------------------------------------------------------------


def wide_weights(seed: int = 7):
    rng = np.random.default_rng(seed)
    dims = [WIDE_IN, WIDE_HIDDEN, WIDE_HIDDEN, WIDE_OUT]
    out = []
    for a, b in zip(dims, dims[1:]):
        out.append((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32))
        out.append((rng.standard_normal(b) * 0.02).astype(np.float32))
    return out


def wide_model() -> onnx.ModelProto:
    ws = wide_weights()
    inits, nodes, x = [], [], "input"
    for i in range(3):
        w, b = ws[2 * i], ws[2 * i + 1]
        inits += [numpy_helper.from_array(w, f"fc{i + 1}.weight"), numpy_helper.from_array(b, f"fc{i + 1}.bias")]
        y = "output" if i == 2 else f"fc{i + 1}"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i + 1}.weight", f"fc{i + 1}.bias"], [y], name=f"fc{i + 1}"))
        if i < 2:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i + 1}"], name=f"relu{i + 1}"))
            x = f"relu{i + 1}"
    graph = helper.make_graph(
        nodes,
        "wide_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", WIDE_IN])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", WIDE_OUT])],
        initializer=inits,
    )
    return make_model(graph, "side-by-side bench: wide MLP 512-2048-2048-16, random weights (seed 7)")


def wide_numpy(x: np.ndarray) -> np.ndarray:
    w1, b1, w2, b2, w3, b3 = (w.astype(np.float64) for w in wide_weights())
    h = np.maximum(x @ w1 + b1, 0)
    h = np.maximum(h @ w2 + b2, 0)
    return (h @ w3 + b3).astype(np.float32)


# --------------------------------------------------------------------------


def io_desc(sess: ort.InferenceSession) -> dict:
    return {
        "inputs": [{"name": i.name, "type": i.type, "shape": i.shape} for i in sess.get_inputs()],
        "outputs": [{"name": o.name, "type": o.type, "shape": o.shape} for o in sess.get_outputs()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--check", action="store_true", help="compare every model with its numpy reference")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}

    builders = {f"encoder_s{s}.onnx": (lambda s=s: encoder_model(s)) for s in ENC_SEEDS}
    builders["wide_mlp.onnx"] = wide_model
    manifest = {}
    for name, build in builders.items():
        path = out / name
        entry = old.get(name)
        if entry and path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"] and not args.check:
            manifest[name] = entry
            continue
        t0 = time.perf_counter()
        data = build().SerializeToString()
        tmp = path.with_suffix(".onnx.partial")
        tmp.write_bytes(data)
        tmp.replace(path)
        sess = session(path)
        entry = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), **io_desc(sess)}
        rng = np.random.default_rng(0)
        if name.startswith("encoder"):
            ids = rng.integers(0, ENC_VOCAB, size=(1, ENC_SEQ), dtype=np.int64)
            entry["ort_ms_batch1"] = median_ms(sess, {"input_ids": ids})
            if args.check:
                seed = int(name.split("_s")[1].split(".")[0])
                ids3 = rng.integers(0, ENC_VOCAB, size=(3, ENC_SEQ), dtype=np.int64)
                got = sess.run(None, {"input_ids": ids3})[0]
                np.testing.assert_allclose(got, encoder_numpy(ids3, seed), rtol=1e-3, atol=1e-3)
        else:
            x1 = rng.standard_normal((1, WIDE_IN)).astype(np.float32)
            x16 = rng.standard_normal((16, WIDE_IN)).astype(np.float32)
            entry["ort_ms_batch1"] = median_ms(sess, {"input": x1})
            entry["ort_ms_batch16"] = median_ms(sess, {"input": x16})
            if args.check:
                got = sess.run(None, {"input": x16})[0]
                np.testing.assert_allclose(got, wide_numpy(x16), rtol=1e-3, atol=1e-3)
        manifest[name] = entry
        timing = ", ".join(f"{k[4:]} {v:.2f} ms" for k, v in entry.items() if k.startswith("ort_ms"))
        print(f"wrote {path} ({len(data) / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s; ORT 1 thread, CPU time: {timing})")
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
