//! Generates the tonic service (server and client) of `inference.GRPCInferenceService` from
//! `proto/*.proto`, on the messages `protocol::grpc` already holds, and writes the encoded
//! descriptor set that server reflection serves. protox parses the .proto files in Rust: no
//! protoc is needed to build.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    for file in ["grpc_service.proto", "model_config.proto"] {
        println!("cargo:rerun-if-changed={dir}/{file}");
    }
    let fds = protox::compile(["grpc_service.proto"], [dir])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("inference_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .extern_path(".inference", "::protocol::grpc::inference")
        .compile_fds(fds)?;
    Ok(())
}
