//! The engine's test double: versions answered by a plain function on the caller's thread, with
//! no ONNX Runtime, so serving, control, the request pipeline and the handlers are unit-tested
//! without it. End-to-end tests use the real engine and real models.
//!
//! `Loader::Scripted` picks the behaviour from the artifact's bytes, so a test registers
//! "artifacts" in a real model store and loads them through the real serving code:
//! - `b"refuse..."`: the load fails (as ONNX Runtime refusing a model would);
//! - anything else: an echo model, `input` (FP32, `[-1, 4]`) → `output`, the same values; an
//!   input holding a NaN fails the run (a model error on some inputs).

use std::sync::Arc;
use std::time::Duration;

use model_store::{Signature, TensorSpec};
use protocol::tensor::{Tensor, TensorData};

use super::{EngineSettings, InferError, InferOutcome, LoadError, ModelInstance};

/// A scripted version's answer to its inputs: outputs, or the failure of the run.
type Answer = dyn Fn(Vec<Tensor>) -> Result<Vec<Tensor>, InferError> + Send + Sync;

/// What a scripted version does with its inputs.
#[derive(Clone)]
pub struct Script(Arc<Answer>);

impl Script {
    pub fn new(f: impl Fn(Vec<Tensor>) -> Result<Vec<Tensor>, InferError> + Send + Sync + 'static) -> Script {
        Script(Arc::new(f))
    }

    pub(super) fn run(&self, inputs: Vec<Tensor>) -> Result<InferOutcome, InferError> {
        let outputs = (self.0)(inputs)?;
        Ok(InferOutcome {
            outputs,
            queue: Duration::ZERO,
            compute: Duration::from_micros(1),
            batch_rows: 1,
            upstream_version: None,
        })
    }
}

/// The signature of the echo model: one FP32 input of four columns, one output alike.
pub fn echo_signature() -> Signature {
    let spec = |name: &str| TensorSpec { name: name.to_owned(), datatype: "FP32".to_owned(), shape: vec![-1, 4] };
    Signature { inputs: vec![spec("input")], outputs: vec![spec("output")] }
}

/// `input` back as `output`; a NaN anywhere fails the run.
pub fn echo() -> Script {
    Script::new(|mut inputs| {
        let mut t = inputs.pop().ok_or_else(|| InferError::Model("no input".to_owned()))?;
        if let TensorData::Fp32(values) = &t.data
            && values.iter().any(|v| v.is_nan())
        {
            return Err(InferError::Model("NaN in the input".to_owned()));
        }
        t.name = "output".to_owned();
        Ok(vec![t])
    })
}

/// `Loader::Scripted`: see the module's documentation.
pub(super) fn load(
    model: &str,
    version: u32,
    sha256: &str,
    bytes: &[u8],
    settings: EngineSettings,
) -> Result<ModelInstance, LoadError> {
    if bytes.starts_with(b"refuse") {
        return Err(LoadError::Session("the test loader refuses this artifact".to_owned()));
    }
    Ok(ModelInstance::scripted(model, version, sha256, echo_signature(), settings, echo()))
}
