//! The one mapping from the gRPC front end's errors (its own and the pipeline's) to gRPC status
//! codes, and to the HTTP-equivalent outcome that metrics and lineage record.

use tonic::{Code, Status};

use crate::engine::InferError;
use crate::pipeline::PipelineError;

/// A gRPC request that got no answer.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("unknown model '{0}'")]
    UnknownModel(String),
    /// The request named a version that is not a number ≥ 1, or one the model does not serve.
    #[error("model '{model}' has no version '{version}'")]
    NoSuchVersion { model: String, version: String },
    /// The version asked for is configured but failed to load.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Decode(#[from] protocol::grpc::DecodeError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl GrpcError {
    /// The gRPC status code: the protocol's statuses for what the pipeline and the decoder
    /// refuse, as the REST front end's HTTP statuses are for REST.
    pub fn code(&self) -> Code {
        match self {
            GrpcError::UnknownModel(_) | GrpcError::NoSuchVersion { .. } => Code::NotFound,
            GrpcError::Unavailable(_) => Code::Unavailable,
            GrpcError::Decode(_) => Code::InvalidArgument,
            GrpcError::Pipeline(e) => match e {
                PipelineError::VersionNotServed { .. } => Code::NotFound,
                PipelineError::Input(_)
                | PipelineError::UnknownOutput { .. }
                | PipelineError::BadParameter(_)
                | PipelineError::OutOfProfile { .. } => Code::InvalidArgument,
                PipelineError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
                PipelineError::NoVersion { .. }
                | PipelineError::VersionUnavailable { .. }
                | PipelineError::Engine(InferError::QueueFull { .. } | InferError::Stopped { .. }) => Code::Unavailable,
                PipelineError::Engine(InferError::Model(_)) => Code::Internal,
                PipelineError::Engine(InferError::Upstream(u)) => match u.kind.status() {
                    400 => Code::InvalidArgument,
                    504 => Code::DeadlineExceeded,
                    // A failing or unreachable upstream is what UNAVAILABLE means to a client.
                    _ => Code::Unavailable,
                },
            },
        }
    }

    /// The HTTP-equivalent status and class recorded for the run (the same numbers as REST).
    pub fn recorded(&self) -> (u16, &'static str) {
        match self {
            GrpcError::Pipeline(e) => (e.status(), e.class()),
            GrpcError::Decode(_) => (400, "bad_request"),
            GrpcError::UnknownModel(_) | GrpcError::NoSuchVersion { .. } => (404, "not_found"),
            GrpcError::Unavailable(_) => (503, "unavailable"),
        }
    }

    /// The status answered: its code and this error's message.
    pub fn to_status(&self) -> Status {
        Status::new(self.code(), self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_errors_get_the_protocols_codes() {
        let deadline = PipelineError::DeadlineExceeded { model: "m".into(), version: 1, budget_ms: 5 };
        let cases = [
            (
                GrpcError::from(PipelineError::VersionNotServed { model: "m".into(), version: 9, loaded: "1".into() }),
                Code::NotFound,
                404,
            ),
            (GrpcError::from(PipelineError::BadParameter("x".into())), Code::InvalidArgument, 400),
            (GrpcError::from(deadline), Code::DeadlineExceeded, 504),
            (GrpcError::from(PipelineError::NoVersion { model: "m".into(), champion: 1 }), Code::Unavailable, 503),
            (
                GrpcError::from(PipelineError::Engine(InferError::QueueFull {
                    model: "m".into(),
                    version: 1,
                    capacity: 4,
                })),
                Code::Unavailable,
                503,
            ),
            (GrpcError::from(PipelineError::Engine(InferError::Model("boom".into()))), Code::Internal, 500),
            (GrpcError::UnknownModel("m".into()), Code::NotFound, 404),
            (GrpcError::from(protocol::grpc::DecodeError::DuplicateInput("x".into())), Code::InvalidArgument, 400),
        ];
        for (e, code, status) in cases {
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.recorded().0, status, "{e}");
            assert_eq!(e.to_status().message(), e.to_string());
        }
    }
}
