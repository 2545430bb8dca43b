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
#[cfg(test)]
pub(crate) mod testing;
mod validate;
mod worker;

pub use instance::{InferError, InferOutcome, LoadError, ModelInstance, build_session};
pub use runtime::{Runtime, RuntimeError};
pub use stats::{InstanceStats, StatsSnapshot};
pub use validate::{InputError, validate_inputs};
// The settings a version runs with are configuration (the `settings` crate); the engine reads them.
pub use settings::engine::{Device, EngineSettings, Execution, INLINE_BELOW};

/// What turns a registered artifact into a running version. The serving layer loads through it,
/// so the layers above the engine can be tested with a double instead of ONNX Runtime.
#[derive(Debug, Clone, Copy)]
pub enum Loader {
    /// ONNX Runtime sessions (the only loader outside tests).
    Onnx(&'static Runtime),
    /// `testing::Script`s chosen by the artifact's bytes (see `engine::testing`).
    #[cfg(test)]
    Scripted,
}

impl Loader {
    /// Loads one version from its verified artifact bytes. Blocking (ONNX Runtime builds and warms
    /// sessions): call it from a blocking context.
    pub fn load(
        self,
        model: &str,
        version: u32,
        sha256: &str,
        bytes: &[u8],
        settings: EngineSettings,
    ) -> Result<ModelInstance, LoadError> {
        match self {
            Loader::Onnx(runtime) => ModelInstance::load(runtime, model, version, sha256, bytes, settings),
            #[cfg(test)]
            Loader::Scripted => testing::load(model, version, sha256, bytes, settings),
        }
    }

    /// The ONNX Runtime this loader builds sessions with (none for the test double).
    pub fn runtime(self) -> Option<&'static Runtime> {
        match self {
            Loader::Onnx(runtime) => Some(runtime),
            #[cfg(test)]
            Loader::Scripted => None,
        }
    }

    /// Reads a model file's signature (opening it as the engine would): what a registration
    /// records, refused when the engine cannot load the file. Blocking.
    pub fn signature(self, bytes: &[u8]) -> Result<model_store::Signature, LoadError> {
        match self {
            Loader::Onnx(runtime) => {
                let session = build_session(runtime, bytes, &EngineSettings::default())?;
                convert::signature_of(&session).map_err(LoadError::Signature)
            }
            #[cfg(test)]
            Loader::Scripted => match bytes.starts_with(b"refuse") {
                true => Err(LoadError::Session("the test loader refuses this artifact".to_owned())),
                false => Ok(testing::echo_signature()),
            },
        }
    }
}
