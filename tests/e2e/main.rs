//! End-to-end tests: the real `switchyard` binary on 127.0.0.1:0 with the committed ONNX fixtures.

mod cli;
mod lifecycle;
mod serving;
mod support;
