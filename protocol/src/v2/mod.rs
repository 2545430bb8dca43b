//! The KServe v2 / Open Inference Protocol over REST: request decoding (the general decoder and
//! the one-pass reader of the common JSON request), response encoding. Pure functions over bytes
//! and values; no I/O here.

pub mod decode;
pub mod encode;
pub mod json_data;
pub mod request_scan;
