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
