//! The KServe v2 / Open Inference Protocol: request decoding, response encoding, metadata bodies.
//! Pure functions over bytes and values; no I/O here.

pub mod decode;
pub mod encode;
pub mod json_data;
pub mod metadata;
pub mod request_scan;
