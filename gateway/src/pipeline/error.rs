//! Why the pipeline did not produce an answer. Protocol-free: each front end maps these to its
//! own statuses (`http::error` for REST). `status` is the HTTP-equivalent code that metrics and
//! lineage record, whatever the protocol.

use crate::engine::{InferError, InputError};

/// A request the pipeline could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// No version of the model is loaded to answer an unpinned request.
    #[error("model '{model}' has no loaded version to answer with (champion {champion} is not loaded)")]
    NoVersion { model: String, champion: u32 },
    /// The pinned version is not one the model serves; `loaded` says what it serves.
    #[error("model '{model}' has no loaded version {version} (loaded: {loaded})")]
    VersionNotServed { model: String, version: u32, loaded: String },
    /// The pinned version is configured but failed to load.
    #[error("version {version} of model '{model}' is not available: {reason}")]
    VersionUnavailable { model: String, version: u32, reason: String },
    /// The inputs do not fit the version's signature.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The request asks for an output the model does not have.
    #[error("unknown output '{name}' (the model has {known})")]
    UnknownOutput { name: String, known: String },
    /// A value is outside the version's training range and the model refuses such inputs.
    #[error(
        "input '{input}' feature {feature}: {value} is outside the training range (bound {bound}); this model refuses out-of-profile requests"
    )]
    OutOfProfile { input: String, feature: usize, value: f64, bound: f64 },
    /// A request parameter the pipeline reads is malformed.
    #[error("{0}")]
    BadParameter(String),
    /// The deadline passed before the version answered.
    #[error("no answer from model '{model}' version {version} within the deadline of {budget_ms} ms")]
    DeadlineExceeded { model: String, version: u32, budget_ms: u128 },
    /// The engine refused (overloaded, stopping) or the model failed on these inputs.
    #[error(transparent)]
    Engine(#[from] InferError),
}

impl PipelineError {
    /// The HTTP-equivalent status, as recorded in metrics and lineage.
    pub fn status(&self) -> u16 {
        match self {
            PipelineError::VersionNotServed { .. } => 404,
            PipelineError::Input(_)
            | PipelineError::UnknownOutput { .. }
            | PipelineError::BadParameter(_)
            | PipelineError::OutOfProfile { .. } => 400,
            PipelineError::DeadlineExceeded { .. } => 504,
            PipelineError::NoVersion { .. } | PipelineError::VersionUnavailable { .. } => 503,
            PipelineError::Engine(InferError::QueueFull { .. } | InferError::Stopped { .. }) => 503,
            PipelineError::Engine(InferError::Model(_)) => 500,
            PipelineError::Engine(InferError::Upstream(e)) => e.kind.status(),
        }
    }

    /// The short class recorded in metrics and lineage (the same words `http::error` uses).
    pub fn class(&self) -> &'static str {
        match self.status() {
            400 => "bad_request",
            404 => "not_found",
            504 => "timeout",
            500 => "model_error",
            502 => "upstream_error",
            _ => "unavailable",
        }
    }

    /// Seconds after which a retry makes sense, for errors where one does.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            PipelineError::Engine(InferError::QueueFull { .. } | InferError::Stopped { .. }) => Some(1),
            _ => None,
        }
    }
}
