//! The one mapping from errors to HTTP status and the stable body `{"error": "..."}`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::control::ControlError;
use crate::engine::{InferError, InputError};
use crate::pipeline::PipelineError;
use protocol::v2::decode::DecodeError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The path exists; `allow` lists the methods it takes (sent as `Allow`).
    #[error("method {method} is not allowed on {path} (allowed: {allow})")]
    MethodNotAllowed { method: String, path: String, allow: &'static str },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The endpoint wants a bearer token; the message says which.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Not allowed here, whatever the credentials (e.g. feedback on an exposed port with no
    /// token configured).
    #[error("{0}")]
    Forbidden(String),
    /// The client sent more than its rate allows; retry after `retry_after` seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u32 },
    /// The client did not send its request in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// The request's deadline passed before its answer was ready.
    #[error("{0}")]
    Timeout(String),
    /// Refused with evidence (e.g. promotion gates): 409 with `detail` merged into the body.
    #[error("{message}")]
    Refused { message: String, detail: serde_json::Value },
    /// The request is valid but conflicts with the current state (e.g. nothing to roll back to).
    #[error("{0}")]
    Conflict(String),
    /// Overloaded or not ready; `retry_after` seconds when retrying soon makes sense.
    #[error("{message}")]
    Unavailable { message: String, retry_after: Option<u32> },
    /// The model itself failed on this input (ONNX Runtime error).
    #[error("{0}")]
    ModelFailed(String),
    /// A remote version's upstream failed, refused or answered something that is not a v2
    /// response.
    #[error("{0}")]
    BadGateway(String),
    /// A fault of ours. The detail is logged; the client gets a generic message.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict(_) | ApiError::Refused { .. } => StatusCode::CONFLICT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::ModelFailed(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The short class recorded in metrics and lineage.
    pub fn class(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Conflict(_) => "conflict",
            ApiError::Refused { .. } => "refused",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Timeout(_) => "timeout",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::ModelFailed(_) => "model_error",
            ApiError::Internal(_) => "internal",
            ApiError::BadGateway(_) => "upstream_error",
        }
    }

    /// Builds the response: status, `{"error": message}`, and `Retry-After` when set.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let status = self.status();
        let retry_after = match &self {
            ApiError::Unavailable { retry_after, .. } => *retry_after,
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let mut body = serde_json::json!({ "error": self.to_string() });
        if let (ApiError::Refused { detail: serde_json::Value::Object(extra), .. }, Some(map)) =
            (&self, body.as_object_mut())
        {
            map.extend(extra.clone());
        }
        let mut response = super::json_response(status, &body);
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = &self {
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        match e {
            ControlError::UnknownModel { .. } => ApiError::NotFound(message),
            ControlError::VersionNotLoaded { .. }
            | ControlError::VersionFailed { .. }
            | ControlError::AlreadyChampion { .. }
            | ControlError::IsShadow { .. }
            | ControlError::NoPreviousChampion { .. }
            | ControlError::PreviousNotLoaded { .. } => ApiError::Conflict(message),
            ControlError::GatesFailed { gates, .. } => {
                ApiError::Refused { message, detail: serde_json::json!({ "gates": gates }) }
            }
            ControlError::InvalidWeights { .. } => ApiError::BadRequest(message),
            ControlError::Registry { .. } => ApiError::Unavailable { message, retry_after: Some(1) },
        }
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Engine(e) => ApiError::from(e),
            PipelineError::VersionNotServed { .. } => ApiError::NotFound(e.to_string()),
            PipelineError::Input(_)
            | PipelineError::UnknownOutput { .. }
            | PipelineError::BadParameter(_)
            | PipelineError::OutOfProfile { .. } => ApiError::BadRequest(e.to_string()),
            PipelineError::DeadlineExceeded { .. } => ApiError::Timeout(e.to_string()),
            PipelineError::NoVersion { .. } | PipelineError::VersionUnavailable { .. } => {
                ApiError::Unavailable { message: e.to_string(), retry_after: e.retry_after() }
            }
        }
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        match e {
            InferError::QueueFull { .. } => ApiError::Unavailable { message: e.to_string(), retry_after: Some(1) },
            InferError::Stopped { .. } => ApiError::Unavailable { message: e.to_string(), retry_after: Some(1) },
            InferError::Model(_) => ApiError::ModelFailed(e.to_string()),
            InferError::Upstream(u) => match u.kind.status() {
                400 => ApiError::BadRequest(u.to_string()),
                503 => ApiError::Unavailable { message: u.to_string(), retry_after: Some(1) },
                504 => ApiError::Timeout(u.to_string()),
                _ => ApiError::BadGateway(u.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let r = ApiError::NotFound("unknown model 'x'".into()).into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = ApiError::Unavailable { message: "full".into(), retry_after: Some(1) }.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let e = ApiError::Internal("secret path /x".into());
        assert_eq!(e.to_string(), "internal error");
    }
}
