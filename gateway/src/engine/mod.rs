//! Inference engine: one `ModelInstance` per loaded version, owning a pool of ONNX Runtime
//! sessions behind a bounded queue: on dedicated worker threads (`Execution::Workers`, the
//! default; async code only ever enqueues), or run by the request's own thread
//! (`Execution::Inline`, for models of tens of microseconds).

pub mod convert;
mod inline;
mod instance;
pub mod runtime;
mod stats;
mod validate;
mod worker;

use std::time::Duration;

pub use instance::{InferError, InferOutcome, LoadError, ModelInstance, build_session};
pub use runtime::{Runtime, RuntimeError};
pub use stats::{InstanceStats, StatsSnapshot};
pub use validate::{InputError, validate_inputs};

/// Where a version's sessions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// CUDA device ordinal; needs the `cuda` cargo feature.
    Cuda(i32),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Which threads run a version's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Execution {
    /// One worker thread per session takes requests from the version's queue (and can batch
    /// them). The request's thread only enqueues and awaits the answer.
    #[default]
    Workers,
    /// The request's own thread runs the model on a session it borrows: no hand-off between
    /// threads, but that thread serves nothing else meanwhile. For small, fast models; no
    /// dynamic batching.
    Inline,
}

impl Execution {
    pub fn as_str(self) -> &'static str {
        match self {
            Execution::Workers => "workers",
            Execution::Inline => "inline",
        }
    }
}

/// How one version is run; validated from the `[model.engine]` config table.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    pub device: Device,
    /// Sessions (and, with `Execution::Workers`, worker threads) for the version; each serves
    /// one call at a time.
    pub instances: usize,
    /// Which threads run the sessions.
    pub execution: Execution,
    /// ONNX Runtime intra-op threads per session.
    pub intra_op_threads: usize,
    /// Most rows stacked into one ORT call by the dynamic batcher; 1 turns batching off.
    pub max_batch: usize,
    /// How long the batcher waits for more requests after the first one of a batch.
    pub batch_delay: Duration,
    /// Requests waiting for a session; when full, new requests are refused at once (503).
    pub queue_capacity: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            device: Device::Cpu,
            instances: 1,
            execution: Execution::Workers,
            intra_op_threads: 1,
            max_batch: 1,
            batch_delay: Duration::ZERO,
            queue_capacity: 1024,
        }
    }
}
