//! Data drift and validation against a training profile: per feature, where live values fall
//! among the training data's deciles, judged by the population stability index (PSI), and how
//! many fall outside the training range.
//!
//! Why PSI over deciles: the profile is ten bins that each held a tenth of the training data, so
//! the expected share per bin is known without storing the data; PSI is then one sum per feature,
//! cheap to keep over a sliding window, symmetric in how it penalises shifts, and read with the
//! usual bands (below 0.1 stable, 0.1–0.25 moderate, above 0.25 significant). A KS statistic would
//! need the empirical distribution of both sides.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bins per feature: the deciles' 9 cut points make 10.
pub const BINS: usize = 10;

/// A training profile as drift and validation use it: per feature, its range and deciles.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    /// 9 ascending cut points per feature.
    pub deciles: Vec<Vec<f64>>,
}

impl Profile {
    pub fn features(&self) -> usize {
        self.min.len()
    }

    /// The first value of row-major `data` (`features` per row) outside the training range:
    /// (feature, value, the bound it crossed).
    pub fn out_of_range(&self, data: &[f64]) -> Option<(usize, f64, f64)> {
        let n = self.features();
        data.iter().enumerate().find_map(|(i, &x)| {
            let f = i % n;
            if x < self.min[f] {
                Some((f, x, self.min[f]))
            } else if x > self.max[f] || x.is_nan() {
                Some((f, x, self.max[f]))
            } else {
                None
            }
        })
    }

    fn bin(&self, feature: usize, x: f64) -> usize {
        self.deciles[feature].partition_point(|cut| *cut < x)
    }
}

/// The population stability index of `counts` (live rows per bin) against bins that each
/// expect a tenth; empty bins count as 0.0001 of the rows so the logarithm stays finite.
pub fn psi(counts: &[u64; BINS]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let expected = 1.0 / BINS as f64;
    Some(
        counts
            .iter()
            .map(|&c| {
                let actual = (c as f64 / total as f64).max(1e-4);
                (actual - expected) * (actual / expected).ln()
            })
            .sum(),
    )
}

/// Sub-windows per window: the window slides in steps of a tenth of its length.
const SLOTS: usize = 10;

/// Live inputs of one version over a sliding window, per feature.
#[derive(Debug)]
pub struct DriftWindow {
    profile: Profile,
    step: Duration,
    slots: Mutex<Vec<Slot>>,
}

#[derive(Debug, Clone)]
struct Slot {
    /// Which step of time this slot holds (`None`: empty).
    epoch: Option<u64>,
    rows: u64,
    bins: Vec<[u64; BINS]>,
    out_of_range: Vec<u64>,
}

/// What a window says now, per feature.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftStats {
    pub rows: u64,
    /// PSI per feature (`None` with no rows).
    pub psi: Vec<Option<f64>>,
    /// Share of values outside the training range, per feature.
    pub out_of_range: Vec<f64>,
}

impl DriftWindow {
    /// A window of `length` over `profile`'s features.
    pub fn new(profile: Profile, length: Duration) -> DriftWindow {
        let n = profile.features();
        let empty = Slot { epoch: None, rows: 0, bins: vec![[0; BINS]; n], out_of_range: vec![0; n] };
        DriftWindow {
            profile,
            step: (length / SLOTS as u32).max(Duration::from_millis(1)),
            slots: Mutex::new(vec![empty; SLOTS]),
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    fn epoch(&self, origin: Instant, now: Instant) -> u64 {
        (now.saturating_duration_since(origin).as_nanos() / self.step.as_nanos().max(1)) as u64
    }

    /// Records row-major `data` (`features` values per row) seen at `now`; `origin` is any fixed
    /// instant (the same for every call).
    pub fn record(&self, origin: Instant, now: Instant, data: &[f64]) {
        let n = self.profile.features();
        if n == 0 || !data.len().is_multiple_of(n) {
            return;
        }
        let epoch = self.epoch(origin, now);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(epoch % SLOTS as u64) as usize];
        if slot.epoch != Some(epoch) {
            slot.epoch = Some(epoch);
            slot.rows = 0;
            slot.bins.iter_mut().for_each(|b| *b = [0; BINS]);
            slot.out_of_range.iter_mut().for_each(|c| *c = 0);
        }
        slot.rows += (data.len() / n) as u64;
        for (i, &x) in data.iter().enumerate() {
            let f = i % n;
            slot.bins[f][self.profile.bin(f, x)] += 1;
            if x < self.profile.min[f] || x > self.profile.max[f] {
                slot.out_of_range[f] += 1;
            }
        }
    }

    /// The window's figures at `now`.
    pub fn stats(&self, origin: Instant, now: Instant) -> DriftStats {
        let n = self.profile.features();
        let epoch = self.epoch(origin, now);
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let live = slots.iter().filter(|s| s.epoch.is_some_and(|e| e + SLOTS as u64 > epoch));
        let mut rows = 0;
        let mut bins = vec![[0u64; BINS]; n];
        let mut out = vec![0u64; n];
        for s in live {
            rows += s.rows;
            for ((total, slot), (out, slot_out)) in
                bins.iter_mut().zip(&s.bins).zip(out.iter_mut().zip(&s.out_of_range))
            {
                for (t, c) in total.iter_mut().zip(slot) {
                    *t += c;
                }
                *out += slot_out;
            }
        }
        DriftStats {
            rows,
            psi: bins.iter().map(psi).collect(),
            out_of_range: out.iter().map(|&c| if rows == 0 { 0.0 } else { c as f64 / rows as f64 }).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two features, both uniform on [0, 1): deciles 0.1 … 0.9.
    fn profile() -> Profile {
        let deciles: Vec<f64> = (1..10).map(|d| d as f64 / 10.0).collect();
        Profile { min: vec![0.0, 0.0], max: vec![1.0, 1.0], deciles: vec![deciles.clone(), deciles] }
    }

    #[test]
    fn psi_is_zero_on_the_training_distribution_and_large_when_shifted() {
        assert_eq!(psi(&[0; BINS]), None);
        assert!(psi(&[100; BINS]).expect("rows").abs() < 1e-12);
        let mut shifted = [0; BINS];
        shifted[9] = 1000;
        assert!(psi(&shifted).expect("rows") > 2.0);
    }

    #[test]
    fn a_shift_in_one_feature_shows_in_that_feature_only() {
        let w = DriftWindow::new(profile(), Duration::from_secs(60));
        let t0 = Instant::now();
        let mut data = Vec::new();
        for i in 0..1000 {
            let x = (i % 100) as f64 / 100.0 + 0.005;
            data.extend([x, (x + 0.6).min(1.5)]);
        }
        w.record(t0, t0, &data);
        let s = w.stats(t0, t0);
        assert_eq!(s.rows, 1000);
        assert!(s.psi[0].expect("psi") < 0.01, "{s:?}");
        assert!(s.psi[1].expect("psi") > 0.25, "{s:?}");
        assert_eq!(s.out_of_range[0], 0.0);
        assert!((s.out_of_range[1] - 0.6).abs() < 0.02, "{s:?}");
        // A window later, it is all gone.
        let later = w.stats(t0, t0 + Duration::from_secs(61));
        assert_eq!((later.rows, later.psi[0]), (0, None));
    }

    #[test]
    fn validation_names_the_feature_and_the_bound() {
        assert_eq!(profile().out_of_range(&[0.5, 0.5, 0.2, 3.0]), Some((1, 3.0, 1.0)));
        assert_eq!(profile().out_of_range(&[-0.5, 0.5]), Some((0, -0.5, 0.0)));
        assert_eq!(profile().out_of_range(&[0.0, 1.0]), None, "the bounds themselves are in range");
    }
}
