//! The running gateway's shared state: the serving snapshot, the store, the metrics handle and
//! the HTTP limits. Built once at start-up; tests build one without any socket.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use model_store::ModelStore;

use crate::config::Config;
use crate::serving::ServingState;

/// Shared by every request handler.
#[derive(Debug)]
pub struct App {
    /// What serves requests now. A request loads it once and keeps that snapshot throughout.
    pub serving: ArcSwap<ServingState>,
    pub store: Arc<ModelStore>,
    pub metrics: PrometheusHandle,
    /// Request bodies above this size get 413.
    pub max_body_bytes: usize,
}

impl App {
    /// Wraps a built serving state.
    pub fn new(config: &Config, store: Arc<ModelStore>, serving: ServingState) -> App {
        App {
            serving: ArcSwap::from_pointee(serving),
            store,
            metrics: metrics_handle(),
            max_body_bytes: config.server.max_body_bytes,
        }
    }
}

/// Latency buckets in seconds: 50 µs to 10 s, dense where inference lives (sub-millisecond to
/// tens of milliseconds) so p99 read from the histogram is close to the true value.
const LATENCY_BUCKETS: [f64; 22] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Shadow-vs-primary output differences: from float noise to a different model.
const DIFF_BUCKETS: [f64; 10] = [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0];

const BATCH_BUCKETS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// Installs the process-wide Prometheus recorder once and returns its handle. Histograms, not
/// summaries, so percentiles aggregate across replicas.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("switchyard_batch_size".to_owned()), &BATCH_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("switchyard_shadow_max_abs_diff".to_owned()), &DIFF_BUCKETS)
                })
                .expect("bucket lists are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding); then ours only renders.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only its own");
            }
            describe_metrics();
            handle
        })
        .clone()
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("switchyard_requests_total", "Inference requests answered, by model, version, route and status.");
    describe_histogram!(
        "switchyard_request_duration_seconds",
        Unit::Seconds,
        "Time from receiving an inference request to its response, by model, version and route."
    );
    describe_histogram!("switchyard_queue_duration_seconds", Unit::Seconds, "Time requests waited for a session.");
    describe_histogram!("switchyard_compute_duration_seconds", Unit::Seconds, "Time of the ONNX Runtime call.");
    describe_histogram!("switchyard_batch_size", "Rows per ONNX Runtime call.");
    describe_gauge!("switchyard_queue_depth", "Requests waiting for a session, per version.");
    describe_counter!(
        "switchyard_shadow_requests_total",
        "Mirrored requests by shadow version and result (ok, error, dropped)."
    );
    describe_histogram!(
        "switchyard_shadow_max_abs_diff",
        "Largest absolute difference between shadow and primary outputs."
    );
    describe_counter!(
        "switchyard_shadow_argmax_rows_total",
        "Rows compared between shadow and primary, by argmax agreement."
    );
    describe_gauge!("switchyard_model_info", "1 for each loaded version, labelled with its sha256 and stage.");
}
