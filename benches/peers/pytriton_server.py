"""Triton Inference Server 2.51 (embedded in the nvidia-pytriton 0.6.0 wheel) for the side-by-side
bench: one model per ONNX file, its inference callable running one ONNX Runtime session (1
intra-op and 1 inter-op thread, like Switchyard's default engine). Triton's native ONNX Runtime
backend is not in the wheel; PyTriton's proxy Python backend hands each batch to this process.
Model configs are PyTriton's defaults (dynamic batcher on, max_batch_size 4); Triton listens on
127.0.0.1 only.

    python pytriton_server.py --http-port P --grpc-port G --metrics-port M --onnx=NAME=PATH ..."""

import argparse
import logging
import os
import sysconfig

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

NP = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(double)": np.float64}


def make_infer(session):
    outputs = [o.name for o in session.get_outputs()]

    @batch
    def infer(**inputs):
        return dict(zip(outputs, session.run(outputs, inputs)))

    return infer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--grpc-port", type=int, required=True)
    p.add_argument("--metrics-port", type=int, required=True)
    p.add_argument("--onnx", action="append", default=[], help="NAME=PATH")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # Triton's Python-backend stub embeds libpython3.X.so from the dynamic loader's search path:
    # on Debian that is the system's 3.11.2, whose _thread module is older than this venv's
    # standard library (pyenv 3.11.7 here) and the model fails to initialize
    # ("'_thread.RLock' object has no attribute '_recursion_count'"). Put this interpreter's own
    # libpython first for tritonserver and the stubs it starts.
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and sysconfig.get_config_var("Py_ENABLE_SHARED"):
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [libdir, os.environ.get("LD_LIBRARY_PATH")]))
    config = TritonConfig(http_address="127.0.0.1", http_port=args.http_port, grpc_address="127.0.0.1",
                          grpc_port=args.grpc_port, metrics_port=args.metrics_port, allow_metrics=False)
    with Triton(config=config) as triton:
        for spec in args.onnx:
            name, _, path = spec.partition("=")
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            # Shapes without the batch dimension (PyTriton adds it when batching is on).
            inputs = [Tensor(name=i.name, dtype=NP[i.type], shape=tuple(i.shape[1:])) for i in session.get_inputs()]
            outputs = [Tensor(name=o.name, dtype=NP[o.type], shape=tuple(o.shape[1:])) for o in session.get_outputs()]
            triton.bind(model_name=name, infer_func=make_infer(session), inputs=inputs, outputs=outputs,
                        config=ModelConfig())
        triton.serve()


if __name__ == "__main__":
    main()
