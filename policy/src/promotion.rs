//! Promotion gates: what a candidate must show before it may replace the champion. Offline
//! evidence comes from the provenance manifests (the candidate's metrics against the
//! champion's), live evidence from what the candidate did while it served as a challenger or
//! shadow (its window, its shadow agreement, online quality from feedback). `evaluate` is pure:
//! evidence in, one row per gate out.

use std::collections::BTreeMap;

use serde::Serialize;
pub use settings::promotion::PromotionPolicy;

use crate::guard::WindowStats;

/// Everything known about a candidate and the champion it would replace.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub candidate_metrics: BTreeMap<String, f64>,
    pub champion_metrics: BTreeMap<String, f64>,
    pub window: WindowStats,
    /// (rows whose argmax agreed, rows compared) while the candidate ran as a shadow.
    pub shadow: (u64, u64),
    pub online: OnlineQuality,
    /// Online quality per top slice (`[model.slices]`), busiest first, candidate beside champion.
    pub slices: Vec<SliceEvidence>,
    /// The candidate's input drift over its window: `None` without a training profile.
    pub drift: Option<DriftEvidence>,
}

/// The candidate's live inputs against its training profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftEvidence {
    /// Rows in the drift window.
    pub rows: u64,
    /// The feature with the largest PSI and that PSI (`None` before any row).
    pub worst: Option<(usize, f64)>,
}

/// Labelled feedback of one slice, for the candidate and for the champion.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceEvidence {
    pub slice: String,
    /// (judged, correct) of the candidate's answers in the slice.
    pub candidate: (u64, u64),
    /// (judged, correct) of the champion's.
    pub champion: (u64, u64),
}

/// What labelled feedback says of the candidate, all time (the registry's feedback summary).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OnlineQuality {
    /// Items judged right or wrong.
    pub judged: u64,
    /// Share judged right, when anything was judged.
    pub accuracy: Option<f64>,
}

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    pub gate: String,
    pub required: String,
    pub measured: String,
    pub passed: bool,
}

fn gate(gate: String, required: String, measured: String, passed: bool) -> Gate {
    Gate { gate, required, measured, passed }
}

/// Every gate of `policy`, judged on `ev`. Missing evidence fails its gate (and says so).
pub fn evaluate(policy: &PromotionPolicy, ev: &Evidence) -> Vec<Gate> {
    let mut gates = Vec::new();
    for (metric, margin) in &policy.min_gain {
        let (c, b) = (ev.candidate_metrics.get(metric), ev.champion_metrics.get(metric));
        gates.push(match (c, b) {
            (Some(c), Some(b)) => gate(
                format!("offline {metric}"),
                format!("≥ champion {b} + {margin}"),
                format!("{c}"),
                *c >= b + margin,
            ),
            _ => gate(format!("offline {metric}"), format!("≥ champion + {margin}"), missing(c, b), false),
        });
    }
    for (metric, drift) in &policy.max_drift {
        let (c, b) = (ev.candidate_metrics.get(metric), ev.champion_metrics.get(metric));
        gates.push(match (c, b) {
            (Some(c), Some(b)) => gate(
                format!("offline {metric}"),
                format!("within {drift} of champion {b}"),
                format!("{c}"),
                (c - b).abs() <= *drift,
            ),
            _ => gate(format!("offline {metric}"), format!("within {drift} of champion"), missing(c, b), false),
        });
    }
    let served = ev.window.requests;
    if let Some(min) = policy.min_requests {
        gates.push(gate("live requests".into(), format!("≥ {min}"), served.to_string(), served >= min));
    }
    if let Some(max) = policy.max_p99_ms {
        let (measured, passed) = if served == 0 {
            ("no traffic".to_owned(), false)
        } else {
            (format!("{:.2} ms", ev.window.p99_ms), ev.window.p99_ms <= max)
        };
        gates.push(gate("live p99".into(), format!("≤ {max} ms"), measured, passed));
    }
    if let Some(max) = policy.max_error_rate {
        let (measured, passed) = if served == 0 {
            ("no traffic".to_owned(), false)
        } else {
            (format!("{:.4}", ev.window.error_rate()), ev.window.error_rate() <= max)
        };
        gates.push(gate("live error rate".into(), format!("≤ {max}"), measured, passed));
    }
    if let Some(min) = policy.min_shadow_agreement {
        let (agree, rows) = ev.shadow;
        let (measured, passed) = if rows == 0 {
            ("no shadow comparisons".to_owned(), false)
        } else {
            let share = agree as f64 / rows as f64;
            (format!("{share:.4} over {rows} rows"), share >= min)
        };
        gates.push(gate("shadow agreement".into(), format!("≥ {min}"), measured, passed));
    }
    if let Some(min) = policy.min_online_accuracy {
        let (measured, passed) = match ev.online.accuracy {
            Some(a) => (format!("{a:.4} over {} labels", ev.online.judged), a >= min),
            None => ("no labelled feedback".to_owned(), false),
        };
        gates.push(gate("online accuracy".into(), format!("≥ {min}"), measured, passed));
    }
    if let Some(max) = policy.max_psi {
        let (measured, passed) = match ev.drift {
            None => ("no training profile in the candidate's manifest".to_owned(), false),
            Some(DriftEvidence { worst: Some((feature, psi)), rows }) => {
                (format!("feature {feature}: PSI {psi:.4} over {rows} rows"), psi <= max)
            }
            Some(DriftEvidence { worst: None, .. }) => ("no live inputs in the drift window".to_owned(), false),
        };
        gates.push(gate("input drift".into(), format!("largest PSI ≤ {max}"), measured, passed));
    }
    if let Some(max) = policy.max_slice_regression {
        gates.push(slice_regression(ev, max, policy.min_slice_labels));
    }
    if let Some(max) = policy.max_slice_gap {
        gates.push(slice_gap(ev, max, policy.min_slice_labels));
    }
    gates
}

/// Accuracy of `(judged, correct)` when at least `min` items were judged.
fn accuracy((judged, correct): (u64, u64), min: u64) -> Option<f64> {
    (judged >= min.max(1)).then(|| correct as f64 / judged as f64)
}

/// "No top slice regresses by more than `max`": the worst slice's drop below the champion's
/// accuracy on it, named. Slices without `min` labels on both sides are not judged; none judged
/// fails (no evidence).
fn slice_regression(ev: &Evidence, max: f64, min: u64) -> Gate {
    let required = format!("no top slice more than {max} below the champion (≥ {min} labels each)");
    let judged: Vec<(&str, f64, f64)> = ev
        .slices
        .iter()
        .filter_map(|s| Some((s.slice.as_str(), accuracy(s.candidate, min)?, accuracy(s.champion, min)?)))
        .collect();
    let worst = judged.iter().max_by(|a, b| (a.2 - a.1).total_cmp(&(b.2 - b.1)));
    let Some(&(slice, candidate, champion)) = worst else {
        return gate("slice accuracy".into(), required, "no slice with enough labelled feedback".into(), false);
    };
    let drop = champion - candidate;
    let measured = format!(
        "worst slice '{slice}': {candidate:.4} vs champion {champion:.4} ({:+.4}); {} of {} top slices judged",
        -drop,
        judged.len(),
        ev.slices.len()
    );
    gate("slice accuracy".into(), required, measured, drop <= max)
}

/// "The candidate's top slices are within `max` of each other": best minus worst, both named.
fn slice_gap(ev: &Evidence, max: f64, min: u64) -> Gate {
    let required = format!("best − worst top slice ≤ {max} (≥ {min} labels each)");
    let judged: Vec<(&str, f64)> =
        ev.slices.iter().filter_map(|s| Some((s.slice.as_str(), accuracy(s.candidate, min)?))).collect();
    let best = judged.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    let worst = judged.iter().min_by(|a, b| a.1.total_cmp(&b.1));
    match (best, worst) {
        (Some(&(b, hi)), Some(&(w, lo))) if judged.len() >= 2 => gate(
            "slice accuracy gap".into(),
            required,
            format!("{:.4}: '{b}' {hi:.4}, '{w}' {lo:.4}", hi - lo),
            hi - lo <= max,
        ),
        _ => gate(
            "slice accuracy gap".into(),
            required,
            "fewer than two slices with enough labelled feedback".into(),
            false,
        ),
    }
}

fn missing(candidate: Option<&f64>, champion: Option<&f64>) -> String {
    match (candidate, champion) {
        (None, _) => "missing from the candidate's manifest".to_owned(),
        _ => "missing from the champion's manifest".to_owned(),
    }
}

/// The gates as a table for people (one line each).
pub fn table(gates: &[Gate]) -> String {
    gates
        .iter()
        .map(|g| {
            format!(
                "  {} {:<22} required {:<32} measured {}",
                if g.passed { "PASS" } else { "FAIL" },
                g.gate,
                g.required,
                g.measured
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn offline_gains_and_drifts() {
        let policy = PromotionPolicy {
            min_gain: metrics(&[("auc", 0.005)]),
            max_drift: metrics(&[("calibration_error", 0.02)]),
            ..PromotionPolicy::default()
        };
        let ev = |auc: f64, cal: f64| Evidence {
            candidate_metrics: metrics(&[("auc", auc), ("calibration_error", cal)]),
            champion_metrics: metrics(&[("auc", 0.90), ("calibration_error", 0.05)]),
            ..Evidence::default()
        };
        assert!(evaluate(&policy, &ev(0.906, 0.06)).iter().all(|g| g.passed));
        let failed: Vec<String> =
            evaluate(&policy, &ev(0.903, 0.08)).into_iter().filter(|g| !g.passed).map(|g| g.gate).collect();
        assert_eq!(failed, ["offline auc", "offline calibration_error"]);
        let mut no_auc = ev(0.95, 0.05);
        no_auc.candidate_metrics.remove("auc");
        let g = &evaluate(&policy, &no_auc)[0];
        assert!(!g.passed && g.measured.contains("candidate's manifest"));
    }

    #[test]
    fn live_gates_fail_without_evidence_and_pass_with_it() {
        let policy = PromotionPolicy {
            max_p99_ms: Some(50.0),
            max_error_rate: Some(0.01),
            min_shadow_agreement: Some(0.9),
            min_online_accuracy: Some(0.8),
            min_requests: Some(100),
            ..PromotionPolicy::default()
        };
        assert!(evaluate(&policy, &Evidence::default()).iter().all(|g| !g.passed));
        let good = Evidence {
            window: WindowStats { requests: 500, errors: 2, p99_ms: 12.0 },
            shadow: (95, 100),
            online: OnlineQuality { judged: 200, accuracy: Some(0.85) },
            ..Evidence::default()
        };
        let gates = evaluate(&policy, &good);
        assert!(gates.iter().all(|g| g.passed), "{}", table(&gates));
    }

    fn slice(name: &str, candidate: (u64, u64), champion: (u64, u64)) -> SliceEvidence {
        SliceEvidence { slice: name.to_owned(), candidate, champion }
    }

    #[test]
    fn a_candidate_better_on_average_but_worse_on_one_slice_is_refused_naming_it() {
        let policy = PromotionPolicy {
            max_slice_regression: Some(0.05),
            max_slice_gap: Some(0.2),
            min_slice_labels: 20,
            ..PromotionPolicy::default()
        };
        let ev = Evidence {
            slices: vec![
                slice("us", (100, 95), (100, 80)),
                slice("eu", (50, 30), (50, 45)), // 0.60 against 0.90
                slice("apac", (40, 38), (40, 30)),
                slice("latam", (5, 0), (5, 5)), // too few labels to judge
            ],
            ..Evidence::default()
        };
        let gates = evaluate(&policy, &ev);
        let regression = &gates[0];
        assert!(!regression.passed, "{}", table(&gates));
        assert!(regression.measured.contains("'eu'") && regression.measured.contains("3 of 4"), "{regression:?}");
        let gap = &gates[1];
        assert!(!gap.passed && gap.measured.contains("'apac'") && gap.measured.contains("'eu'"), "{gap:?}");

        let fixed = Evidence {
            slices: vec![slice("us", (100, 95), (100, 80)), slice("eu", (50, 44), (50, 45))],
            ..Evidence::default()
        };
        assert!(evaluate(&policy, &fixed).iter().all(|g| g.passed), "{}", table(&evaluate(&policy, &fixed)));
        // Drift: the worst feature is named; no profile is no evidence.
        let drifting = PromotionPolicy { max_psi: Some(0.25), ..PromotionPolicy::default() };
        let ev = Evidence { drift: Some(DriftEvidence { rows: 500, worst: Some((3, 0.41)) }), ..Evidence::default() };
        let g = &evaluate(&drifting, &ev)[0];
        assert!(!g.passed && g.measured.starts_with("feature 3: PSI 0.4100"), "{g:?}");
        assert!(!evaluate(&drifting, &Evidence::default())[0].passed);
        // No labels on any slice: no evidence, so both gates fail and say why.
        let none = evaluate(&policy, &Evidence::default());
        assert!(none.iter().all(|g| !g.passed && g.measured.contains("enough labelled feedback")));
    }
}
