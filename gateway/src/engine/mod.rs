//! Inference engine: one `ModelInstance` per loaded version, owning a pool of ONNX Runtime
//! sessions behind a bounded queue: on dedicated worker threads (`Execution::Workers`, the
//! default for models that are not tiny; async code only ever enqueues), or run by the request's
//! own thread (`Execution::Inline`, for models of tens of microseconds). `Execution::Auto`, the
//! default, picks one of the two when the version loads.

pub mod convert;
mod inline;
mod instance;
pub mod runtime;
mod stats;
mod validate;
mod worker;

pub use instance::{InferError, InferOutcome, LoadError, ModelInstance, build_session};
pub use runtime::{Runtime, RuntimeError};
pub use stats::{InstanceStats, StatsSnapshot};
pub use validate::{InputError, validate_inputs};
// The settings a version runs with are configuration (the `settings` crate); the engine reads them.
pub use settings::engine::{Device, EngineSettings, Execution, INLINE_BELOW};
