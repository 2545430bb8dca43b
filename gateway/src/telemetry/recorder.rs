//! The process's Prometheus recorder: installed once, with fixed histogram buckets, its
//! metrics described, and an upkeep thread so unscraped samples do not pile up.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: 50 µs to 10 s, dense where inference lives (sub-millisecond to
/// tens of milliseconds) so p99 read from the histogram is close to the true value.
const LATENCY_BUCKETS: [f64; 22] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Shadow-vs-primary output differences: from float noise to a different model.
const DIFF_BUCKETS: [f64; 10] = [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0];

const BATCH_BUCKETS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// How often the recorder's histogram samples are folded into their buckets (see
/// [`metrics_handle`]).
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Installs the process-wide Prometheus recorder once and returns its handle. Histograms, not
/// summaries, so percentiles aggregate across replicas.
///
/// The recorder keeps every histogram sample (8 bytes, plus its share of a block) until an
/// upkeep folds them into the buckets. A scrape does that, but a gateway nobody scrapes would
/// grow without bound (measured: about 1.2 MB/s at 15,000 req/s on the tiny model), and a scrape
/// after a long gap would fold millions of samples on a request-serving thread. So a thread of
/// its own, `switchyard-metrics`, runs the upkeep every `METRICS_UPKEEP_INTERVAL`: what the
/// recorder holds stays at about a second of traffic, and the folding never runs on a tokio
/// worker. It lives as long as the recorder, i.e. the process.
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
            zero_counters();
            let upkeep = handle.clone();
            spawn_every("switchyard-metrics", METRICS_UPKEEP_INTERVAL, move || upkeep.run_upkeep());
            handle
        })
        .clone()
}

/// Runs `f` every `interval` on a detached thread named `name`, for the rest of the process. A
/// thread that cannot be started is logged, not fatal: the work it would do also happens on
/// demand (for the metrics upkeep, at every scrape).
#[expect(clippy::disallowed_methods, reason = "a thread of its own that does nothing but wait between runs")]
fn spawn_every(name: &str, interval: Duration, f: impl Fn() + Send + 'static) {
    let spawned = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        loop {
            std::thread::sleep(interval);
            f();
        }
    });
    if let Err(e) = spawned {
        tracing::error!(thread = name, error = %e, "could not start a background thread");
    }
}

/// Counters of rare events start at 0 rather than appearing with their first event, so rates and
/// alerting rules over them (deploy/prometheus/rules.yml) have a series from the first scrape.
fn zero_counters() {
    for reason in ["full", "closed", "write_failed", "invalid"] {
        metrics::counter!("switchyard_lineage_records_dropped_total", "reason" => reason).increment(0);
    }
    for result in ["ok", "error", "unreadable"] {
        metrics::counter!("switchyard_config_reloads_total", "result" => result).increment(0);
    }
    metrics::counter!("switchyard_lineage_write_errors_total").increment(0);
    metrics::counter!("switchyard_routing_persist_errors_total").increment(0);
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
    describe_gauge!(
        "switchyard_routing_weight_ratio",
        "Share of a model's requests routed (champion, challenger) or mirrored (shadow) to a version; backups 0."
    );
    describe_counter!("switchyard_lineage_records_written_total", "Lineage records committed to the registry.");
    describe_counter!(
        "switchyard_lineage_records_dropped_total",
        "Lineage records lost, by reason: full (buffer full, policy drop), closed (after shutdown), write_failed (store failing past the shutdown deadline), invalid (refused by the store)."
    );
    describe_counter!(
        "switchyard_lineage_blocked_total",
        "Requests that waited for room in a full lineage buffer (policy block)."
    );
    describe_gauge!("switchyard_lineage_queue_depth", "Lineage records waiting to be written.");
    describe_counter!("switchyard_lineage_write_errors_total", "Failed attempts to write a lineage batch.");
    describe_gauge!("switchyard_lineage_store_healthy", "0 while lineage writes are failing, else 1.");
    describe_counter!(
        "switchyard_guard_trips_total",
        "Guard verdicts by model, the version judged (from), where its traffic went (to; none for shadows) and the threshold breached."
    );
    describe_gauge!(
        "switchyard_guard_no_healthy_backup",
        "1 while a model's champion breaches its guard and no backup is healthy."
    );
    describe_counter!(
        "switchyard_feedback_total",
        "Feedback items by model, version, kind (label, value, outcome) and result (stored, duplicate)."
    );
    describe_counter!(
        "switchyard_slice_requests_total",
        "Requests answered per slice ([model.slices]): the top_k busiest slice values by name, the rest as other."
    );
    describe_counter!("switchyard_slice_errors_total", "Requests per slice that ended in a server error (5xx).");
    describe_histogram!(
        "switchyard_slice_request_duration_seconds",
        Unit::Seconds,
        "Time from arrival to answer per slice, as switchyard_request_duration_seconds."
    );
    describe_gauge!(
        "switchyard_slice_online_accuracy_ratio",
        "Share of labelled feedback a version predicted right on one of the top slices, all time."
    );
    describe_histogram!(
        "switchyard_upstream_request_duration_seconds",
        Unit::Seconds,
        "Round trip of requests to a remote version's upstream, by upstream URL."
    );
    describe_counter!(
        "switchyard_upstream_errors_total",
        "Failed requests to an upstream by kind: connect, reset, status_4xx, status_5xx, malformed, timeout, ejected."
    );
    describe_gauge!("switchyard_upstream_in_flight", "Requests in flight to an upstream.");
    describe_gauge!("switchyard_upstream_healthy", "1 while an upstream is not ejected by its health checks.");
    describe_counter!("switchyard_upstream_ejections_total", "Times an upstream was ejected by its health checks.");
    describe_counter!(
        "switchyard_upstream_retries_total",
        "Requests sent again because their connection could not be made (within the retry budget)."
    );
    describe_gauge!(
        "switchyard_online_accuracy_ratio",
        "Share of labelled feedback the version predicted right, all time or over the last hour (window)."
    );
    describe_gauge!(
        "switchyard_online_mae",
        "Mean absolute error of the version's predictions against value feedback."
    );
    describe_gauge!(
        "switchyard_online_rmse",
        "Root mean squared error of the version's predictions against value feedback."
    );
    describe_counter!("switchyard_config_reloads_total", "Config reloads by result: ok, error, unreadable.");
    describe_counter!(
        "switchyard_routing_persist_errors_total",
        "Routing changes applied but not persisted to the registry."
    );
    describe_gauge!(
        "switchyard_drift_psi",
        "Population stability index of a profiled input feature over the drift window, against the training deciles."
    );
    describe_gauge!(
        "switchyard_out_of_range_ratio",
        "Share of a profiled input feature's live values outside the training range, over the drift window."
    );
    describe_counter!(
        "switchyard_capture_total",
        "Captured payloads by model and result: captured, dropped, write_failed."
    );
    describe_counter!(
        "switchyard_alerts_total",
        "Alerts by sink, kind and result: sent, rejected, failed, dropped, deduplicated."
    );
    describe_histogram!(
        "switchyard_lineage_batch_write_duration_seconds",
        Unit::Seconds,
        "Time to commit one batch of lineage records."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    #[test]
    #[expect(clippy::disallowed_methods, reason = "a test thread polling a counter")]
    fn spawn_every_keeps_running_its_work() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        spawn_every("test-every", Duration::from_millis(5), move || {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        // Not a timing test: the deadline only stops a broken loop from hanging the suite.
        let deadline = Instant::now() + Duration::from_secs(30);
        while runs.load(Ordering::Relaxed) < 3 {
            assert!(Instant::now() < deadline, "ran {} times in 30 s", runs.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
