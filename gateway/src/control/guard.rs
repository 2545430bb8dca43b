//! The guard task: evaluates every guarded model on its `interval` (the judgement itself is
//! `policy::guard`) and hands verdicts to the control plane, honouring each model's `cooldown`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use policy::guard::{Verdict, evaluate};
use tokio::sync::watch;

use model_store::Event;

use super::Control;

/// Shortest pause between evaluation rounds, and longest (so config reloads are picked up).
const MIN_TICK: Duration = Duration::from_millis(10);
const MAX_TICK: Duration = Duration::from_secs(1);

/// Evaluates every guarded model on its interval until `stop` turns true.
pub async fn run(control: Arc<Control>, mut stop: watch::Receiver<bool>) {
    let mut last_eval: HashMap<String, Instant> = HashMap::new();
    let mut last_trip: HashMap<String, Instant> = HashMap::new();
    let mut last_report: HashMap<(String, u32), Instant> = HashMap::new();
    loop {
        let state = control.snapshot();
        let tick = state
            .models
            .values()
            .filter_map(|m| m.guard.as_ref().map(|g| g.interval))
            .min()
            .unwrap_or(MAX_TICK)
            .clamp(MIN_TICK, MAX_TICK);
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        export_drift(&control, &state, now);
        for model in state.models.values() {
            let Some(g) = &model.guard else { continue };
            if last_eval.get(&model.name).is_some_and(|t| now.duration_since(*t) < g.interval) {
                continue;
            }
            last_eval.insert(model.name.clone(), now);
            let cooling = last_trip.get(&model.name).is_some_and(|t| now.duration_since(*t) < g.cooldown);
            let verdict = evaluate(&model.name, g, &model.override_state(), |v| {
                model.ready(v).map(|l| l.window.load().stats(now))
            });
            if let (Some(max), Some(tracker)) = (g.max_error_rate, &model.slices) {
                slice_breaches(&control, model, tracker, max, g.min_requests, now);
            }
            if !matches!(verdict, Some(Verdict::NoHealthyBackup { .. })) {
                control.clear_alarm(&model.name);
            }
            let Some(verdict) = verdict else { continue };
            match verdict {
                Verdict::ShadowBreach { version, reason, detail } => {
                    let key = (model.name.clone(), version);
                    if last_report.get(&key).is_some_and(|t| now.duration_since(*t) < g.cooldown.max(g.window)) {
                        continue;
                    }
                    last_report.insert(key, now);
                    metrics::counter!("switchyard_guard_trips_total", "model" => model.name.clone(),
                        "from" => version.to_string(), "to" => "none", "reason" => reason.as_str())
                    .increment(1);
                    tracing::warn!(model = %model.name, version, %detail, "guard: shadow breaches its thresholds (routing unchanged: shadows take no live traffic)");
                    control.record_guard_event(&model.name, version, Event::GUARD_SHADOW_BREACH, detail).await;
                }
                _ if cooling => {}
                verdict => {
                    if control.apply_verdict(model, verdict).await {
                        last_trip.insert(model.name.clone(), now);
                    }
                }
            }
        }
    }
}

/// Sets each profiled version's drift figures (PSI and out-of-range share per feature) and
/// alerts a breach of `[model.validation] max_psi` (the alert queue de-duplicates repeats).
fn export_drift(control: &Control, state: &crate::serving::ServingState, now: Instant) {
    for model in state.models.values() {
        for loaded in model.ready_versions() {
            let Some(drift) = &loaded.drift else { continue };
            let stats = drift.window.stats(drift.origin, now);
            let version = loaded.instance.version.to_string();
            if let Some(max) = model.max_psi
                && stats.rows >= model.drift_min_rows
                && let Some((feature, psi)) = worst_feature(&stats.psi)
                && psi > max
            {
                control.drift_breach(&model.name, loaded.instance.version, &drift.input, feature, psi, max, stats.rows);
            }
            for (feature, (psi, out)) in stats.psi.iter().zip(&stats.out_of_range).enumerate() {
                let labels = [
                    ("model", model.name.clone()),
                    ("version", version.clone()),
                    ("input", drift.input.clone()),
                    ("feature", feature.to_string()),
                ];
                metrics::gauge!("switchyard_drift_psi", &labels).set(psi.unwrap_or(0.0));
                metrics::gauge!("switchyard_out_of_range_ratio", &labels).set(*out);
            }
        }
    }
}

/// The feature with the largest PSI, if any has one.
pub(super) fn worst_feature(psi: &[Option<f64>]) -> Option<(usize, f64)> {
    psi.iter().enumerate().filter_map(|(i, p)| p.map(|p| (i, p))).max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Alerts every top slice of a live version whose error rate over the guard window passes the
/// guard's `max_error_rate` (with at least `min_requests` in the slice): an average can hide one
/// market failing. Traffic does not move for it (the version serves the other slices well);
/// the alert queue de-duplicates repeats.
fn slice_breaches(
    control: &Control,
    model: &crate::serving::ServedModel,
    tracker: &crate::telemetry::slices::SliceTracker,
    max: f64,
    min_requests: u64,
    now: Instant,
) {
    for loaded in model.ready_versions() {
        let version = loaded.instance.version;
        for (slice, figures) in tracker.of_version(version) {
            if &*slice == crate::telemetry::slices::OTHER {
                continue;
            }
            let (requests, errors) = figures.window.counts(now);
            let rate = if requests == 0 { 0.0 } else { errors as f64 / requests as f64 };
            if requests >= min_requests && rate > max {
                control.slice_breach(&model.name, version, &slice, rate, max, requests);
            }
        }
    }
}
