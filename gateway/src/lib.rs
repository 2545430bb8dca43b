//! Switchyard's gateway: serves versioned ONNX models over KServe v2.
//!
//! Where things live: `config` (the TOML file, validated), `engine` (ONNX Runtime sessions on
//! worker threads), `serving` (the loaded versions, one swappable snapshot), `v2` (protocol
//! codec), `http` (listeners and handlers), `app` (shared state and metrics), `lineage` (per-request records, written off the request
//! path), `router` (traffic split), `guard` (latency and error-rate judgement), `control` (every change of
//! what is served: guard trips, operator actions, reloads), `cli` (commands).

pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod engine;
pub mod guard;
pub mod http;
pub mod lineage;
pub mod promotion;
pub mod request_id;
pub mod router;
pub mod serving;
pub mod telemetry;
pub mod tensor;
pub mod v2;
