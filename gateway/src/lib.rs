//! Switchyard's gateway: serves versioned ONNX models over KServe v2.
//!
//! The layers below it are crates of their own: `protocol` (tensors, request ids, the v2
//! codec), `settings` (the config file), `policy` (routing, guard judgement, promotion gates),
//! `model-store` (artifacts, registry, lineage store). Here, bottom to top: `engine` (ONNX
//! Runtime sessions on worker threads), `telemetry` (metric handles), `serving` (the loaded
//! versions, one swappable snapshot), `lineage` (per-request records, written off the request
//! path), `control` (every change of what is served: guard trips, operator actions, reloads),
//! `guard` (the task that judges and asks control to act), `app` (shared state), `http`
//! (listeners and handlers), `cli` (commands). `docs/architecture.md` draws the layers.

pub mod app;
pub mod cli;
pub mod control;
pub mod engine;
pub mod http;
pub mod lineage;
pub mod pipeline;
pub mod serving;
pub mod telemetry;
