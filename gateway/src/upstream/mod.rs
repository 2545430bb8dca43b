//! The client of remote versions' upstreams: other v2 servers (Triton, KServe, MLServer, another
//! Switchyard) that answer a version instead of a model file run here.
//!
//! One [`Host`] per upstream base URL, shared by every version it serves: a pooled keep-alive
//! HTTP/1.1 client with a connect timeout, a bound on requests in flight, a retry budget for
//! requests whose connection failed before they were sent, and a health task that checks the
//! upstream's ready endpoint and ejects it after `eject_after` consecutive failures (requests to
//! an ejected upstream fail at once with 503, so the guard sees them and trips to a backup)
//! until a check passes again. [`Remote`] is one version on a host: what the engine runs.

mod host;
mod metadata;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use model_store::{Signature, Upstream};
use protocol::tensor::Tensor;
use serde_json::{Map, Value};
use settings::UpstreamConfig;
use tokio::time::Instant;

pub use host::Host;
pub use metadata::read_signature;

/// The largest upstream answer read, in bytes; a larger one is refused (502), never buffered.
pub const MAX_ANSWER_BYTES: usize = 1 << 30;

/// Why an upstream did not answer a request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("upstream {upstream}: {message}")]
pub struct UpstreamError {
    /// The upstream as `url/v2/models/…`, for people.
    pub upstream: String,
    pub kind: ErrorKind,
    pub message: String,
}

/// What went wrong, as metrics count it and as the status the gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No connection could be made (refused, unreachable, connect timeout): the request was
    /// never sent, so sending it elsewhere is safe. 502.
    Connect,
    /// The connection failed after the request was sent (reset, closed before an answer): 502.
    Reset,
    /// The upstream answered with an error status: 400 stays 400, anything else is 502.
    Status(u16),
    /// The answer is not a v2 inference response, or too large: 502.
    Malformed,
    /// No answer within the request's deadline: 504.
    Timeout,
    /// Ejected by its health checks: 503 at once.
    Ejected,
}

impl ErrorKind {
    /// The label of `switchyard_upstream_errors_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Reset => "reset",
            ErrorKind::Status(s) if s < 500 => "status_4xx",
            ErrorKind::Status(_) => "status_5xx",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Ejected => "ejected",
        }
    }

    /// The HTTP-equivalent status the gateway answers with.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Status(400) => 400,
            ErrorKind::Timeout => 504,
            ErrorKind::Ejected => 503,
            ErrorKind::Connect | ErrorKind::Reset | ErrorKind::Status(_) | ErrorKind::Malformed => 502,
        }
    }

    /// Whether the upstream never received the request, so another version may answer it.
    pub fn never_sent(self) -> bool {
        matches!(self, ErrorKind::Connect | ErrorKind::Ejected)
    }
}

/// One remote version: the upstream model it is answered by, on its shared host.
#[derive(Debug)]
pub struct Remote {
    pub upstream: Arc<Upstream>,
    host: Arc<Host>,
    infer_uri: http::Uri,
}

/// An upstream's answer to one request.
#[derive(Debug)]
pub struct RemoteAnswer {
    pub outputs: Vec<Tensor>,
    /// The version the upstream says answered (its response's `model_version`).
    pub model_version: Option<String>,
    /// Time waiting for a slot under `max_concurrency`.
    pub queue: Duration,
    /// Time from sending the request to the end of the answer.
    pub round_trip: Duration,
}

impl Remote {
    /// Connects a version to its upstream: the shared host (made on first use), and the
    /// upstream's signature of the model, which must be `registered` (what registration read).
    /// A changed signature fails the load with both shown.
    pub async fn connect(
        upstream: &Upstream,
        registered: &Signature,
        config: &UpstreamConfig,
    ) -> Result<Remote, UpstreamError> {
        let host = Host::shared(&upstream.url, upstream.protocol, config);
        let declared = metadata::signature(&host, upstream, config).await?;
        if declared != *registered {
            return Err(host.error(
                upstream,
                ErrorKind::Malformed,
                format!(
                    "the upstream's signature changed since registration: registered {}, the upstream now declares {}",
                    metadata::describe(registered),
                    metadata::describe(&declared)
                ),
            ));
        }
        let infer_uri = format!("{}{}/infer", upstream.url, upstream.model_path())
            .parse()
            .map_err(|e| host.error(upstream, ErrorKind::Malformed, format!("bad URL: {e}")))?;
        Ok(Remote { upstream: Arc::new(upstream.clone()), host, infer_uri })
    }

    /// Sends `inputs` to the upstream and decodes its outputs, within `deadline` (passed on as
    /// the v2 `timeout` parameter, in microseconds). A request whose connection failed before
    /// it was sent is retried while the host's retry budget allows.
    pub async fn infer(&self, inputs: &[Tensor], deadline: Instant) -> Result<RemoteAnswer, UpstreamError> {
        let host = &self.host;
        if host.ejected() {
            return Err(
                self.fail(ErrorKind::Ejected, "ejected after failing its health checks; waiting for one to pass")
            );
        }
        let waited = Instant::now();
        let _slot = host.slot().await;
        let queue = waited.elapsed();
        let sent = Instant::now();
        let mut retried = false;
        let response = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.fail(ErrorKind::Timeout, "the deadline passed before the request was sent"));
            }
            let mut parameters = Map::new();
            parameters.insert("timeout".to_owned(), Value::from(remaining.as_micros() as u64));
            let binary = self.upstream.binary;
            if binary {
                parameters.insert("binary_data_output".to_owned(), Value::Bool(true));
            }
            let encoded = protocol::v2::encode::encode_request(None, inputs, &parameters, binary);
            let mut request = Request::builder().method(Method::POST).uri(self.infer_uri.clone());
            request = match encoded.json_len {
                Some(len) => request
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .header("inference-header-content-length", len),
                None => request.header(header::CONTENT_TYPE, "application/json"),
            };
            let request = request.body(Full::new(encoded.body)).expect("a request of a checked URI and plain headers");
            match tokio::time::timeout_at(deadline, host.client().request(request)).await {
                Err(_) => return Err(self.fail(ErrorKind::Timeout, "no answer within the request's deadline")),
                Ok(Ok(response)) => break response,
                Ok(Err(e)) if e.is_connect() => {
                    host.connect_failed();
                    if retried || !host.try_retry() {
                        return Err(self.fail(ErrorKind::Connect, format!("cannot connect: {}", error_chain(&e))));
                    }
                    retried = true;
                }
                Ok(Err(e)) => {
                    return Err(self.fail(ErrorKind::Reset, format!("connection failed: {}", error_chain(&e))));
                }
            }
        };
        let status = response.status();
        let header_length = response.headers().get("inference-header-content-length").cloned();
        let read = Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect();
        let body = match tokio::time::timeout_at(deadline, read).await {
            Err(_) => return Err(self.fail(ErrorKind::Timeout, "the answer did not arrive within the deadline")),
            Ok(Err(e)) => return Err(self.fail(ErrorKind::Malformed, format!("cannot read the answer: {e}"))),
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        host.answered();
        if status != StatusCode::OK {
            return Err(
                self.fail(ErrorKind::Status(status.as_u16()), format!("answered {status}: {}", error_text(&body)))
            );
        }
        let decoded = protocol::v2::decode::decode_response(&body, header_length.as_ref().map(|v| v.as_bytes()))
            .map_err(|e| self.fail(ErrorKind::Malformed, format!("not a v2 inference response: {e}")))?;
        let round_trip = sent.elapsed();
        host.record(round_trip);
        Ok(RemoteAnswer { outputs: decoded.outputs, model_version: decoded.model_version, queue, round_trip })
    }

    /// The host's shared state (health, figures), for views and tests.
    pub fn host(&self) -> &Host {
        &self.host
    }

    fn fail(&self, kind: ErrorKind, message: impl Into<String>) -> UpstreamError {
        self.host.error(&self.upstream, kind, message.into())
    }
}

/// An error and its causes, as one line (hyper's errors keep the useful part in `source`).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An upstream's error body as people read it: v2's `{"error": "…"}`, else the text (cut short).
fn error_text(body: &Bytes) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body)
        && let Some(Value::String(message)) = map.get("error")
    {
        return message.clone();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(no body)".to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
