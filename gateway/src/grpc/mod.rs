//! gRPC front end: the v2 / Open Inference Protocol's `inference.GRPCInferenceService` (Triton's
//! definition, what tritonclient.grpc and perf_analyzer -i grpc speak), `grpc.health.v1.Health`
//! and server reflection, on a listener of its own (`[server] grpc_listen`). Inference runs
//! through the same pipeline as REST; messages and their conversion live in `protocol::grpc`.

mod error;
mod infer;
mod server;
mod service;
#[cfg(test)]
mod tests;

use tonic::metadata::MetadataMap;

pub use error::GrpcError;
pub use server::{Limits, Services, serve};
pub use service::Inference;

use crate::pipeline::Metadata;

/// The tonic service (server and client) generated from `proto/grpc_service.proto`, on the
/// messages of `protocol::grpc::inference`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/inference.rs"));
}

/// The encoded descriptors of the `inference` package, served by reflection.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/inference_descriptor.bin"));

/// Metadata carrying the request id (the lineage key) in both directions, as over REST.
pub const REQUEST_ID: &str = "x-request-id";

impl Metadata for MetadataMap {
    /// ASCII metadata only (`-bin` keys are never routing keys).
    fn get(&self, name: &str) -> Option<&[u8]> {
        MetadataMap::get(self, name).map(|v| v.as_bytes())
    }
}
