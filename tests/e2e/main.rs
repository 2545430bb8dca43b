//! End-to-end tests: the real `switchyard` binary on 127.0.0.1:0 with the committed ONNX fixtures.

// Tests drive a separate process from plain threads; sleeping there blocks nothing async.
#![allow(clippy::disallowed_methods)]

mod alerts;
mod card;
mod cli;
mod drift;
mod feedback;
mod grpc;
mod guard;
mod import;
mod lifecycle;
mod limits;
mod lineage;
mod lineage_cli;
mod promotion;
mod reload;
mod routing;
mod serving;
mod slices;
mod support;
mod upstream;
