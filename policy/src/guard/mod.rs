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
//! `judge` and `evaluate` are pure: a model's routing and its versions' window figures in,
//! verdict out. The task that evaluates on each model's `interval` and hands verdicts to the
//! control plane lives in the gateway (`gateway::control::guard`).

mod window;

use serde_json::{Value, json};
use settings::GuardConfig;

pub use window::{Point, Window, WindowStats};

use crate::router::{OverrideState, Route};

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

/// Judges one model with guard `g`, serving `state`. `stats_of(v)` is version `v`'s window
/// figures now, `None` when `v` is not loaded (it is then never picked as a backup). At most one
/// verdict per evaluation: the champion first, then the challengers, then the shadows.
pub fn evaluate(
    model: &str,
    g: &GuardConfig,
    state: &OverrideState,
    stats_of: impl Fn(u32) -> Option<WindowStats>,
) -> Option<Verdict> {
    let stats_of = &stats_of;
    let loaded = |v: u32| stats_of(v).is_some();
    let breach = |v: u32| stats_of(v).and_then(|s| judge(&s, g).map(|b| (b, s)));
    let r = &state.routing;
    let detail = |from: u32, to: Option<u32>, role: &str, reason: Breached, s: &WindowStats| {
        json!({
            "model": model, "from": from, "to": to, "role": role, "reason": reason.as_str(),
            "reason_text": reason_text(reason, s, g), "measured": figures(s), "thresholds": thresholds(g),
        })
    };

    if let Some((reason, s)) = breach(r.champion) {
        // Healthy backup: loaded, not ejected before, not breaching itself.
        let healthy = r
            .backup
            .iter()
            .copied()
            .filter(|&b| b != r.champion && !state.ejected.contains(&b))
            .find(|&b| loaded(b) && breach(b).is_none());
        if let Some(to) = healthy {
            let next = replace_champion(state, to);
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
            .chain(r.backup.iter().copied().filter(|&b| loaded(b) && !state.ejected.contains(&b)))
            .min_by(|&a, &b| badness(a).partial_cmp(&badness(b)).unwrap_or(std::cmp::Ordering::Equal))
            .unwrap_or(r.champion);
        let next = (keep != r.champion).then(|| replace_champion(state, keep));
        let mut d = detail(r.champion, Some(keep), "champion", reason, &s);
        d["no_healthy_backup"] = json!(true);
        return Some(Verdict::NoHealthyBackup { champion: r.champion, keep, reason, next, detail: d });
    }
    for &(v, weight) in &r.challengers {
        if weight == 0 {
            continue;
        }
        if let Some((reason, s)) = breach(v) {
            let mut next = state.clone();
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
fn replace_champion(state: &OverrideState, to: u32) -> OverrideState {
    let mut next = state.clone();
    let from = next.routing.champion;
    next.routing.champion = to;
    next.routing.champion_route = Route::Backup;
    next.routing.challengers.retain(|(c, _)| *c != to);
    next.ejected.insert(from);
    next.previous_champion = Some(from);
    next
}

#[cfg(test)]
mod tests;
