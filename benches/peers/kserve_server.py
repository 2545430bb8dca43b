"""KServe 0.21 Python model server for the side-by-side bench: one kserve.Model per ONNX file, each
with one ONNX Runtime session (1 intra-op and 1 inter-op thread, like Switchyard's default
engine), served by kserve.ModelServer with its defaults except the ports, the REST listener's
address (127.0.0.1: KServe hard-codes 0.0.0.0, so uvicorn.Config is patched) and no gRPC server
(it would listen on [::]; the bench only speaks REST). The bench never listens beyond loopback.

    python kserve_server.py --http_port P --grpc_port G --onnx=NAME=PATH [--onnx=NAME=PATH ...]

Other flags go to KServe's own argument parser."""

import argparse
import sys
import uuid

import numpy as np
import onnxruntime as ort
import uvicorn

import kserve
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.utils.utils import from_np_dtype


_uvicorn_config_init = uvicorn.Config.__init__


def _loopback_config(self, *args, **kwargs):
    kwargs["host"] = "127.0.0.1"
    _uvicorn_config_init(self, *args, **kwargs)


uvicorn.Config.__init__ = _loopback_config


ONNX_TO_V2 = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
    "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL", "tensor(string)": "BYTES",
}


class OnnxModel(Model):
    def __init__(self, name: str, path: str):
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(self.path, so, providers=["CPUExecutionProvider"])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.ready = True
        return self.ready

    # The v2 model metadata (GET /v2/models/NAME): what clients, and a gateway registering this
    # model as a remote version, read its signature from. KServe declares none by default.
    def _types(self, tensors):
        return [{"name": t.name, "datatype": ONNX_TO_V2[t.type],
                 "shape": [d if isinstance(d, int) else -1 for d in t.shape]} for t in tensors]

    async def get_input_types(self):
        return self._types(self.session.get_inputs())

    async def get_output_types(self):
        return self._types(self.session.get_outputs())

    async def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        feeds = {i.name: i.as_numpy() for i in payload.inputs}
        results = self.session.run(self.output_names, feeds)
        outputs = []
        for name, value in zip(self.output_names, results):
            out = InferOutput(name=name, shape=list(value.shape), datatype=from_np_dtype(value.dtype))
            out.set_data_from_numpy(np.ascontiguousarray(value), binary_data=False)
            outputs.append(out)
        # The response needs an id: the request's, else a fresh one (as Switchyard makes).
        return InferResponse(response_id=payload.id or str(uuid.uuid4()), model_name=self.name, infer_outputs=outputs)


def main():
    ours = argparse.ArgumentParser(add_help=False)
    ours.add_argument("--onnx", action="append", default=[], help="NAME=PATH")
    args, rest = ours.parse_known_args()
    sys.argv = [sys.argv[0]] + rest
    models = []
    for spec in args.onnx:
        name, _, path = spec.partition("=")
        models.append(OnnxModel(name, path))
    if not models:
        sys.exit("kserve_server.py: give at least one --onnx=NAME=PATH")
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    kargs, _ = parser.parse_known_args()
    ModelServer(http_port=kargs.http_port, grpc_port=kargs.grpc_port, enable_grpc=False).start(models)


if __name__ == "__main__":
    main()
