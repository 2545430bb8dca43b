//! What the front ends share: the control plane (which owns the serving snapshot), the request
//! pipeline, the store, the metrics handle and the request limits. Built once at start-up; tests
//! build one without any socket.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use model_store::ModelStore;
use settings::Config;

use crate::control::Control;
use crate::lineage::LineageSink;
use crate::pipeline::Pipeline;
use crate::telemetry;

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
            pipeline: Pipeline::new(lineage, config.server.request_timeout),
        }
    }
}
