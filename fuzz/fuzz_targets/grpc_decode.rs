//! Fuzzes the gRPC request conversion: arbitrary bytes decoded by prost as a
//! `ModelInferRequest` (what tonic hands the service), then `protocol::grpc::decode_request`.
//! Neither may panic, whatever it accepts must be self-consistent, and the answer encoder must
//! carry the accepted tensors back: encoded raw, then decoded again as inputs, they come out the
//! same, byte for byte.
//!
//! Input format: the message's protobuf encoding, as it travels in a gRPC frame (without the
//! 5-byte frame header). `fuzz/gen_corpus.py` writes the seeds in `fuzz/corpus/grpc_decode/`.

#![no_main]

#[path = "common/accepted.rs"]
mod accepted;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use protocol::grpc::inference::ModelInferRequest;
use protocol::grpc::inference::model_infer_request::InferInputTensor;
use protocol::grpc::{Parameters, decode_request, encode_response};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = ModelInferRequest::decode(data) else { return };
    let Ok(decoded) = decode_request(msg) else { return };
    let request = decoded.request;
    accepted::check(&request);
    // The inputs as an answer's outputs: typed must not panic; raw must decode back the same.
    let parameters = Parameters { model_sha256: "", model_version: 1, route: "pinned" };
    let _ = encode_response("m", request.id.clone(), parameters, request.inputs.clone(), false);
    let raw = encode_response("m", request.id.clone(), parameters, request.inputs.clone(), true);
    let again = ModelInferRequest {
        inputs: raw
            .outputs
            .iter()
            .map(|o| InferInputTensor {
                name: o.name.clone(),
                datatype: o.datatype.clone(),
                shape: o.shape.clone(),
                ..Default::default()
            })
            .collect(),
        raw_input_contents: raw.raw_output_contents.iter().map(|b| b.clone().into()).collect(),
        ..Default::default()
    };
    let back = decode_request(again).expect("an encoded answer decodes as a request");
    let reencoded = encode_response("m", None, parameters, back.request.inputs, true);
    assert_eq!(reencoded.raw_output_contents, raw.raw_output_contents, "raw contents changed in a round trip");
});
