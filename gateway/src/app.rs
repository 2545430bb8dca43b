//! What the front ends share: the control plane (which owns the serving snapshot), the request
//! pipeline, the store, the metrics handle and the request limits, and the facts every protocol
//! answers alike (readiness, extensions, batching). Built once at start-up; tests build one
//! without any socket.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use model_store::ModelStore;
use settings::Config;

use crate::control::Control;
use crate::lineage::LineageSink;
use crate::pipeline::Pipeline;
use crate::serving::{LoadedVersion, ServedModel, ServingState};
use crate::telemetry;

/// Protocol extensions the server implements (`GET /v2`, gRPC `ServerMetadata`).
pub const EXTENSIONS: [&str; 3] = ["binary_tensor_data", "model_configuration", "statistics"];

/// Whether the server is ready: it serves a model, and every model's champion is loaded.
pub fn server_ready(state: &ServingState) -> bool {
    !state.models.is_empty() && state.models.values().all(|m| m.ready(m.routing.champion).is_some())
}

/// Triton's `max_batch_size` for a version: > 0 when it batches along a dynamic first dimension
/// (whose `dims` then leave that dimension out), 0 otherwise.
pub fn max_batch_size(model: &ServedModel, shown: &LoadedVersion) -> usize {
    if shown.instance.batchable { model.max_batch.max(1) } else { 0 }
}

/// Shared by every request handler.
#[derive(Debug)]
pub struct App {
    /// Owns what is served and every change of it; requests read its snapshot.
    pub control: Arc<Control>,
    pub store: Arc<ModelStore>,
    pub metrics: PrometheusHandle,
    /// Runs inference requests, whichever front end they came through.
    pub pipeline: Pipeline,
    /// Request bodies above this size get 413.
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive (the request's deadline from arrival).
    pub request_timeout: Duration,
    /// Bearer token the admin port requires, if any.
    pub admin_token: Option<String>,
    /// Who may post feedback on the public port, and how often.
    pub feedback: FeedbackAccess,
}

/// Who may post ground truth on the public port (it decides promotions): a bearer token, the
/// feedback token or the admin token; with neither configured, anyone, but only while the
/// public port listens on loopback. Each client address is rate-limited either way.
#[derive(Debug)]
pub struct FeedbackAccess {
    pub tokens: Vec<String>,
    /// No token is configured and the public port is on loopback: feedback needs none.
    pub open: bool,
    pub limiter: crate::limiter::RateLimiter,
}

impl App {
    /// The front ends' view of a running control plane. `lineage` comes from `lineage::start`
    /// (or is `None`).
    pub fn new(control: Arc<Control>, config: &Config, lineage: Option<LineageSink>) -> App {
        App {
            store: Arc::clone(control.store()),
            control,
            metrics: telemetry::metrics_handle(),
            max_body_bytes: config.server.max_body_bytes,
            request_timeout: config.server.request_timeout,
            admin_token: config.server.admin_token.clone(),
            feedback: FeedbackAccess {
                tokens: config.server.feedback_token.iter().chain(&config.server.admin_token).cloned().collect(),
                open: config.server.feedback_token.is_none()
                    && config.server.admin_token.is_none()
                    && config.server.listen.ip().is_loopback(),
                limiter: crate::limiter::RateLimiter::new(
                    config.server.feedback_rate,
                    2.0 * config.server.feedback_rate,
                ),
            },
            pipeline: Pipeline::new(lineage, config.server.request_timeout),
        }
    }
}
