//! What the front ends share: the control plane (which owns the serving snapshot), the store,
//! the metrics handle, the lineage sink and the request limits. Built once at start-up; tests
//! build one without any socket.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use model_store::ModelStore;
use settings::Config;
use tokio_util::task::TaskTracker;

use crate::control::Control;
use crate::lineage::LineageSink;
use crate::telemetry;

/// Shared by every request handler.
#[derive(Debug)]
pub struct App {
    /// Owns what is served and every change of it; requests read its snapshot.
    pub control: Arc<Control>,
    pub store: Arc<ModelStore>,
    pub metrics: PrometheusHandle,
    /// Request bodies above this size get 413.
    pub max_body_bytes: usize,
    /// Deadline of an inference request from arrival (a request's v2 `timeout` may shorten it).
    pub request_timeout: Duration,
    /// Bearer token the admin port requires, if any.
    pub admin_token: Option<String>,
    /// Where lineage records go; `None` when `[lineage] enabled = false`.
    pub lineage: Option<LineageSink>,
    /// Shadow runs in flight: shutdown waits for them so their records are written too.
    pub shadow_tasks: TaskTracker,
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
            lineage,
            shadow_tasks: TaskTracker::new(),
        }
    }
}
