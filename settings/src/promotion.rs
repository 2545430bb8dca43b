//! `[model.promotion]`, validated: the gates a candidate must pass before it may replace the
//! champion. Judged by the policy layer (`policy::promotion`).

use std::collections::BTreeMap;

/// `[model.promotion]`, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromotionPolicy {
    /// Offline metric → least gain over the champion (higher is better), e.g. `auc = 0.005`.
    pub min_gain: BTreeMap<String, f64>,
    /// Offline metric → largest |candidate − champion|, e.g. `calibration_error = 0.02`.
    pub max_drift: BTreeMap<String, f64>,
    pub max_p99_ms: Option<f64>,
    pub max_error_rate: Option<f64>,
    /// Share of shadow-compared rows whose argmax agreed with the primary's.
    pub min_shadow_agreement: Option<f64>,
    /// Accuracy from labelled feedback, all time.
    pub min_online_accuracy: Option<f64>,
    /// Requests the candidate must have served (or shadowed) in its window.
    pub min_requests: Option<u64>,
    /// Largest drop of a top slice's online accuracy below the champion's on it.
    pub max_slice_regression: Option<f64>,
    /// Largest gap between the candidate's best and worst top slices' online accuracy.
    pub max_slice_gap: Option<f64>,
    /// Labelled items a slice needs, on both sides, to be judged by the slice gates.
    pub min_slice_labels: u64,
    /// Largest per-feature PSI of the candidate's live inputs against its training profile.
    pub max_psi: Option<f64>,
}

/// `min_slice_labels` when not given.
pub const DEFAULT_MIN_SLICE_LABELS: u64 = 20;
