//! Generates the gRPC messages (`protocol::grpc::inference`) from `proto/*.proto` with prost.
//! The .proto files are parsed by protox, in Rust: no protoc is needed to build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    for file in ["grpc_service.proto", "model_config.proto"] {
        println!("cargo:rerun-if-changed={dir}/{file}");
    }
    let fds = protox::compile(["grpc_service.proto"], [dir])?;
    prost_build::Config::new()
        // Raw inputs as `Bytes`: slices of the received message, not copies of it.
        .bytes([".inference.ModelInferRequest.raw_input_contents"])
        .compile_fds(fds)?;
    Ok(())
}
