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
    gates
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
}
