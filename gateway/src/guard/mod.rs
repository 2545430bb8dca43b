//! The guard: judges every routed version of a guarded model on its recent p99 latency and
//! error rate, and when one breaches, moves traffic away from it through the same atomic swap
//! as every other routing change (see `control`).
//!
//! - A breaching champion is replaced by the first healthy backup (loaded and warm since start).
//!   With none healthy, the least bad of the champion and its loaded backups keeps serving and
//!   the guard says so loudly.
//! - A breaching challenger is ejected: weight 0, its share goes to the champion.
//! - A breaching shadow is reported; shadows never change routing.
//!
//! `judge` and `evaluate` are pure (state and clock in, verdict out); `run` is the task that
//! applies verdicts on each model's `interval`, honouring its `cooldown`.

mod window;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

pub use window::{Window, WindowStats};

use crate::app::App;
use crate::config::GuardConfig;
use crate::router::Route;
use crate::serving::{OverrideState, ServedModel};

/// Which threshold a version breached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breached {
    P99,
    ErrorRate,
}

impl Breached {
    pub fn as_str(self) -> &'static str {
        match self {
            Breached::P99 => "p99",
            Breached::ErrorRate => "error_rate",
        }
    }
}

/// The threshold `stats` breaches, if any; `None` below `min_requests`. Error rate is judged
/// first: a version that fails is worse than one that is slow.
pub fn judge(stats: &WindowStats, guard: &GuardConfig) -> Option<Breached> {
    if stats.requests < guard.min_requests {
        return None;
    }
    if guard.max_error_rate.is_some_and(|max| stats.error_rate() > max) {
        return Some(Breached::ErrorRate);
    }
    if guard.p99_ms.is_some_and(|max| stats.p99_ms > max) {
        return Some(Breached::P99);
    }
    None
}

/// What one evaluation of a model decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Move traffic: install `next` (recorded as a guard trip with `detail`).
    Trip { from: u32, to: u32, reason: Breached, next: OverrideState, detail: Value },
    /// The champion breaches and no backup is healthy: `keep` serves (the least bad).
    NoHealthyBackup { champion: u32, keep: u32, reason: Breached, next: Option<OverrideState>, detail: Value },
    /// A shadow breaches: reported, routing unchanged.
    ShadowBreach { version: u32, reason: Breached, detail: Value },
}

fn figures(stats: &WindowStats) -> Value {
    json!({ "p99_ms": round3(stats.p99_ms), "error_rate": round3(stats.error_rate()), "requests": stats.requests, "errors": stats.errors })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn thresholds(g: &GuardConfig) -> Value {
    json!({
        "p99_ms": g.p99_ms, "max_error_rate": g.max_error_rate, "min_requests": g.min_requests,
        "window_ms": g.window.as_millis() as u64,
    })
}

/// "p99 212.4 ms > 50 ms over 40 requests", for logs and lineage reasons.
fn reason_text(reason: Breached, stats: &WindowStats, g: &GuardConfig) -> String {
    match reason {
        Breached::P99 => {
            format!("p99 {:.1} ms > {} ms over {} requests", stats.p99_ms, g.p99_ms.unwrap_or_default(), stats.requests)
        }
        Breached::ErrorRate => format!(
            "error rate {:.3} > {} over {} requests",
            stats.error_rate(),
            g.max_error_rate.unwrap_or_default(),
            stats.requests
        ),
    }
}

/// Judges `model` at `now`. At most one verdict per evaluation: the champion first, then the
/// challengers, then the shadows.
pub fn evaluate(model: &ServedModel, now: Instant) -> Option<Verdict> {
    let g = model.guard.as_ref()?;
    let stats_of = |v: u32| model.ready(v).map(|l| l.window.load().stats(now));
    let breach = |v: u32| stats_of(v).and_then(|s| judge(&s, g).map(|b| (b, s)));
    let r = &model.routing;
    let detail = |from: u32, to: Option<u32>, role: &str, reason: Breached, s: &WindowStats| {
        json!({
            "model": model.name, "from": from, "to": to, "role": role, "reason": reason.as_str(),
            "reason_text": reason_text(reason, s, g), "measured": figures(s), "thresholds": thresholds(g),
        })
    };

    if let Some((reason, s)) = breach(r.champion) {
        // Healthy backup: loaded, not ejected before, not breaching itself.
        let healthy = r
            .backup
            .iter()
            .copied()
            .filter(|&b| b != r.champion && !model.ejected.contains(&b))
            .find(|&b| model.ready(b).is_some() && breach(b).is_none());
        if let Some(to) = healthy {
            let next = replace_champion(model, to);
            return Some(Verdict::Trip {
                from: r.champion,
                to,
                reason,
                next,
                detail: detail(r.champion, Some(to), "champion", reason, &s),
            });
        }
        // None healthy: the least bad of the champion and its loaded backups keeps serving.
        let badness = |v: u32| stats_of(v).map(|s| (s.error_rate(), s.p99_ms));
        let keep = std::iter::once(r.champion)
            .chain(r.backup.iter().copied().filter(|&b| model.ready(b).is_some() && !model.ejected.contains(&b)))
            .min_by(|&a, &b| badness(a).partial_cmp(&badness(b)).unwrap_or(std::cmp::Ordering::Equal))
            .unwrap_or(r.champion);
        let next = (keep != r.champion).then(|| replace_champion(model, keep));
        let mut d = detail(r.champion, Some(keep), "champion", reason, &s);
        d["no_healthy_backup"] = json!(true);
        return Some(Verdict::NoHealthyBackup { champion: r.champion, keep, reason, next, detail: d });
    }
    for &(v, weight) in &r.challengers {
        if weight == 0 {
            continue;
        }
        if let Some((reason, s)) = breach(v) {
            let mut next = model.override_state();
            next.routing.challengers.retain(|(c, _)| *c != v);
            next.ejected.insert(v);
            return Some(Verdict::Trip {
                from: v,
                to: r.champion,
                reason,
                next,
                detail: detail(v, Some(r.champion), "challenger", reason, &s),
            });
        }
    }
    for &(v, _) in &r.shadows {
        if let Some((reason, s)) = breach(v) {
            return Some(Verdict::ShadowBreach { version: v, reason, detail: detail(v, None, "shadow", reason, &s) });
        }
    }
    None
}

/// The model's routing with `to` in the champion's place (answering as `backup`).
fn replace_champion(model: &ServedModel, to: u32) -> OverrideState {
    let mut next = model.override_state();
    let from = next.routing.champion;
    next.routing.champion = to;
    next.routing.champion_route = Route::Backup;
    next.routing.challengers.retain(|(c, _)| *c != to);
    next.ejected.insert(from);
    next.previous_champion = Some(from);
    next
}

/// Shortest pause between evaluation rounds, and longest (so config reloads are picked up).
const MIN_TICK: Duration = Duration::from_millis(10);
const MAX_TICK: Duration = Duration::from_secs(1);

/// Evaluates every guarded model on its interval until `stop` turns true.
pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut last_eval: HashMap<String, Instant> = HashMap::new();
    let mut last_trip: HashMap<String, Instant> = HashMap::new();
    let mut last_report: HashMap<(String, u32), Instant> = HashMap::new();
    loop {
        let state = app.serving.load_full();
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
        for model in state.models.values() {
            let Some(g) = &model.guard else { continue };
            if last_eval.get(&model.name).is_some_and(|t| now.duration_since(*t) < g.interval) {
                continue;
            }
            last_eval.insert(model.name.clone(), now);
            let cooling = last_trip.get(&model.name).is_some_and(|t| now.duration_since(*t) < g.cooldown);
            let verdict = evaluate(model, now);
            if !matches!(verdict, Some(Verdict::NoHealthyBackup { .. })) {
                app.clear_alarm(&model.name);
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
                    app.record_guard_event(&model.name, version, "guard_shadow_breach", detail).await;
                }
                _ if cooling => {}
                verdict => {
                    if app.apply_verdict(model, verdict).await {
                        last_trip.insert(model.name.clone(), now);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
