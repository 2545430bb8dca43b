//! Recording a finished run, once and the same way for the run that answered and for shadow
//! runs: the version's metrics, its guard window, its lineage record.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use policy::router::Choice;
use protocol::request_id::RequestId;

use super::Outcome;
use crate::lineage::{Committed, Comparison, How, LineageSink, Prediction, Run};
use crate::serving::LoadedVersion;

/// One finished run of a version.
#[derive(Debug)]
pub(super) struct Finished<'a> {
    pub loaded: &'a LoadedVersion,
    pub role: Role,
    pub request_id: RequestId,
    /// When the request arrived (shadow runs carry their request's arrival).
    pub arrived: SystemTime,
    /// From arrival (the run that answered) or from the start of the run (shadow) to its end.
    pub total: Duration,
    pub queue: Duration,
    pub compute: Duration,
    pub input_sha256: Option<[u8; 32]>,
    /// Remote versions: the version the upstream says answered.
    pub upstream_version: Option<String>,
    /// The request's slice, when the model has slices (runs that answered only).
    pub slice: Option<SliceRun>,
    pub outcome: Outcome,
}

/// A request's slice: its value (for lineage) and the figures of its label on this version.
#[derive(Debug)]
pub(super) struct SliceRun {
    pub raw: String,
    pub metrics: std::sync::Arc<crate::telemetry::slices::SliceMetrics>,
}

/// What the run was to its request.
#[derive(Debug)]
pub(super) enum Role {
    /// It answered; why its version was chosen, and what a single-row answer predicted.
    Answered { choice: Choice, prediction: Option<Prediction> },
    /// A mirrored copy after version `of` answered, and how its outputs compared.
    Shadow { of: u32, comparison: Option<Comparison> },
}

/// Records `run`: metrics, guard window, lineage (handed to the writer before returning). The
/// returned `Committed` resolves when the record is committed (at once unless
/// `[lineage] ack = "after_commit"`).
pub(super) async fn record(sink: Option<&LineageSink>, run: Finished<'_>) -> Committed {
    let loaded = run.loaded;
    let status = run.outcome.status;
    let ok = (200..300).contains(&status);
    match &run.role {
        Role::Answered { choice, .. } => {
            loaded.metrics.record_request(choice.decision.route, status, run.total);
            loaded.metrics.queue_depth.set(loaded.instance.queue_depth() as f64);
            if ok {
                loaded.metrics.queue.record(run.queue.as_secs_f64());
                loaded.metrics.compute.record(run.compute.as_secs_f64());
            }
        }
        Role::Shadow { comparison, .. } => shadow_metrics(loaded, ok, comparison.as_ref()),
    }
    if let Some(slice) = &run.slice {
        slice.metrics.requests.increment(1);
        if status >= 500 {
            slice.metrics.errors.increment(1);
        }
        slice.metrics.duration.record(run.total.as_secs_f64());
        if ok || status >= 500 {
            slice.metrics.window.record(Instant::now(), status >= 500);
        }
    }
    // The guard judges what the version did: answers and server-side failures, not clients' 4xx.
    if ok || status >= 500 {
        loaded.window.load().record(Instant::now(), run.total, status >= 500);
    }
    let Some(sink) = sink else { return Committed::none() };
    let inst = &loaded.instance;
    let (how, prediction, comparison) = match run.role {
        Role::Answered { choice, prediction } => (How::Answered(choice), prediction, None),
        Role::Shadow { of, comparison } => (How::Shadow { of }, None, comparison),
    };
    let record = Run {
        request_id: run.request_id,
        arrived: run.arrived,
        model: std::sync::Arc::clone(&inst.model),
        version: inst.version,
        sha256: std::sync::Arc::clone(&inst.sha256),
        how,
        input_sha256: run.input_sha256,
        queue: run.queue,
        compute: run.compute,
        total: run.total,
        status,
        error_class: run.outcome.error_class,
        prediction,
        comparison,
        upstream: inst
            .upstream()
            .map(|u| crate::lineage::Answerer { upstream: std::sync::Arc::clone(u), version: run.upstream_version }),
        slice: run.slice.map(|s| s.raw),
    };
    sink.submit(record).await
}

/// A run that ended without an answer before another version took the request over (a remote
/// version whose upstream could not be reached): counted in its metrics and guard window, so
/// the guard sees the failure; the request's one lineage record is the answering run's.
pub(super) fn count_unanswered(loaded: &LoadedVersion, choice: &Choice, status: u16, took: Duration) {
    loaded.metrics.record_request(choice.decision.route, status, took);
    loaded.window.load().record(Instant::now(), took, true);
}

/// A shadow run's figures: its result count and, when it answered, how it compared.
fn shadow_metrics(loaded: &LoadedVersion, ok: bool, comparison: Option<&Comparison>) {
    let (model, version) = (loaded.instance.model.to_string(), loaded.instance.version.to_string());
    metrics::counter!("switchyard_shadow_requests_total",
        "model" => model.clone(), "version" => version.clone(), "result" => if ok { "ok" } else { "error" })
    .increment(1);
    let Some(c) = comparison else { return };
    loaded.shadow_rows.fetch_add(c.argmax_rows, Ordering::Relaxed);
    loaded.shadow_agree.fetch_add(c.argmax_agree, Ordering::Relaxed);
    metrics::histogram!("switchyard_shadow_max_abs_diff", "model" => model.clone(), "version" => version.clone())
        .record(c.max_abs_diff);
    metrics::counter!("switchyard_shadow_argmax_rows_total", "model" => model.clone(), "version" => version.clone(), "agree" => "true")
        .increment(c.argmax_agree);
    metrics::counter!("switchyard_shadow_argmax_rows_total", "model" => model, "version" => version, "agree" => "false")
        .increment(c.argmax_rows - c.argmax_agree);
}
