//! Switchyard's protocol layer, the bottom of the gateway's layers: tensors, request ids and the
//! KServe v2 codecs (REST in `v2`; gRPC messages and their conversion in `grpc`). It knows
//! nothing of tokio, hyper, tonic, ONNX Runtime or the registry (cargo enforces it: none of them
//! is a dependency), so the fuzz targets and micro-benchmarks link it alone, and every layer
//! above may use it.

pub mod grpc;
pub mod request_id;
pub mod tensor;
pub mod v2;
