//! Per-slice figures (`[model.slices]`): each request names its slice in a header; the `top_k`
//! busiest slices get series of their own per version, every other slice counts as `other`, so
//! a client sending a new value per request cannot grow the metrics.
//!
//! Traffic is counted per slice value for at most `TRACKED` distinct values (values first seen
//! after that are never tracked: they are `other`, and hostile cardinality costs a fixed amount
//! of memory). Every `RECOUNT` requests the top set is recomputed from the counts; until the
//! first recount every request is `other`. A slice that enters the top set later starts its own
//! series then; at any moment at most `top_k` slices (plus `other`) are labelled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use metrics::{Counter, Histogram};
use settings::SliceConfig;

/// Distinct slice values counted at most.
pub const TRACKED: usize = 1024;
/// Requests between recomputations of the top set.
pub const RECOUNT: u64 = 256;
/// The label of every slice outside the top set.
pub const OTHER: &str = "other";
/// Longest slice value kept (in lineage, and as a label); longer values are cut.
pub const MAX_SLICE_LEN: usize = 128;

/// One model's slices: counts, the current top set, and metric handles per (version, label).
#[derive(Debug)]
pub struct SliceTracker {
    pub config: SliceConfig,
    /// The length of each slice's error window (the model's guard window).
    window: Duration,
    counts: Mutex<HashMap<Arc<str>, u64>>,
    seen: AtomicU64,
    top: ArcSwap<Vec<Arc<str>>>,
    other: Arc<str>,
    handles: RwLock<HashMap<VersionSlice, Arc<SliceMetrics>>>,
    model: String,
}

/// A version and a slice label.
type VersionSlice = (u32, Arc<str>);

/// A slice's figures for one version.
#[derive(Debug)]
pub struct SliceMetrics {
    /// `switchyard_slice_requests_total{model,version,slice}`.
    pub requests: Counter,
    /// `switchyard_slice_errors_total{model,version,slice}` (5xx).
    pub errors: Counter,
    /// `switchyard_slice_request_duration_seconds{model,version,slice}`.
    pub duration: Histogram,
    /// Requests and server errors over the model's guard window, for slice breaches.
    pub window: CountWindow,
}

/// Sub-windows of a `CountWindow`.
const SUB_WINDOWS: u64 = 10;

/// Requests and errors over a sliding window (ten sub-windows), without latencies: what judging
/// a slice's error rate needs, a few hundred bytes per slice.
#[derive(Debug)]
pub struct CountWindow {
    epoch: Instant,
    sub: Duration,
    /// (sub-window, requests, errors) per slot.
    slots: Mutex<[(u64, u64, u64); SUB_WINDOWS as usize]>,
}

impl CountWindow {
    pub fn new(length: Duration) -> CountWindow {
        let sub = (length / SUB_WINDOWS as u32).max(Duration::from_millis(1));
        CountWindow { epoch: Instant::now(), sub, slots: Mutex::new([(u64::MAX, 0, 0); SUB_WINDOWS as usize]) }
    }

    fn tick(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.epoch).as_nanos() / self.sub.as_nanos().max(1)) as u64
    }

    pub fn record(&self, at: Instant, error: bool) {
        let tick = self.tick(at);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(tick % SUB_WINDOWS) as usize];
        if slot.0 != tick {
            *slot = (tick, 0, 0);
        }
        slot.1 += 1;
        slot.2 += u64::from(error);
    }

    /// (requests, errors) of the sub-windows within the window before `now`.
    pub fn counts(&self, now: Instant) -> (u64, u64) {
        let newest = self.tick(now);
        let oldest = newest.saturating_sub(SUB_WINDOWS - 1);
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .filter(|s| s.0 != u64::MAX && (oldest..=newest).contains(&s.0))
            .fold((0, 0), |(r, e), s| (r + s.1, e + s.2))
    }
}

impl SliceTracker {
    /// `window`: how long each slice's error rate is judged over (the model's guard window).
    pub fn new(model: &str, config: SliceConfig, window: Duration) -> SliceTracker {
        SliceTracker {
            config,
            window,
            counts: Mutex::default(),
            seen: AtomicU64::new(0),
            top: ArcSwap::from_pointee(Vec::new()),
            other: Arc::from(OTHER),
            handles: RwLock::default(),
            model: model.to_owned(),
        }
    }

    /// Counts a request of slice `value` and returns its label: the value when it is one of the
    /// top slices, else `other`.
    pub fn observe(&self, value: &str) -> Arc<str> {
        {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = counts.get_mut(value) {
                *n += 1;
            } else if counts.len() < TRACKED {
                counts.insert(Arc::from(value), 1);
            }
            if self.seen.fetch_add(1, Ordering::Relaxed) % RECOUNT == RECOUNT - 1 {
                let mut ranked: Vec<(&Arc<str>, &u64)> = counts.iter().collect();
                // Busiest first; equal counts in name order, so the set does not flap.
                ranked.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                let top = ranked.into_iter().take(self.config.top_k).map(|(k, _)| Arc::clone(k)).collect();
                self.top.store(Arc::new(top));
            }
        }
        self.label(value)
    }

    /// The label `value` gets now, without counting it.
    pub fn label(&self, value: &str) -> Arc<str> {
        match self.top.load().iter().find(|s| &***s == value) {
            Some(s) => Arc::clone(s),
            None => Arc::clone(&self.other),
        }
    }

    /// The top slices now, busiest first.
    pub fn top(&self) -> Vec<Arc<str>> {
        self.top.load().as_ref().clone()
    }

    /// Every labelled slice's figures made so far on `version`, for judging: (label, figures).
    pub fn of_version(&self, version: u32) -> Vec<(Arc<str>, Arc<SliceMetrics>)> {
        let handles = self.handles.read().unwrap_or_else(|p| p.into_inner());
        handles.iter().filter(|((v, _), _)| *v == version).map(|((_, l), m)| (Arc::clone(l), Arc::clone(m))).collect()
    }

    /// The figures of `label` on `version`, made on first use.
    pub fn metrics(&self, version: u32, label: &Arc<str>) -> Arc<SliceMetrics> {
        let key = (version, Arc::clone(label));
        if let Some(m) = self.handles.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Arc::clone(m);
        }
        let labels = [("model", self.model.clone()), ("version", version.to_string()), ("slice", label.to_string())];
        let made = Arc::new(SliceMetrics {
            requests: metrics::counter!("switchyard_slice_requests_total", &labels),
            errors: metrics::counter!("switchyard_slice_errors_total", &labels),
            duration: metrics::histogram!("switchyard_slice_request_duration_seconds", &labels),
            window: CountWindow::new(self.window),
        });
        let mut handles = self.handles.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(handles.entry(key).or_insert(made))
    }
}

/// A request's slice value as kept: control characters dropped, at most `MAX_SLICE_LEN` bytes
/// (cut at a character boundary); `None` when nothing is left.
pub fn clean(value: &str) -> Option<String> {
    let kept: String = value.chars().filter(|c| !c.is_control()).collect();
    let mut kept = kept.trim().to_owned();
    if kept.len() > MAX_SLICE_LEN {
        let mut cut = MAX_SLICE_LEN;
        while !kept.is_char_boundary(cut) {
            cut -= 1;
        }
        kept.truncate(cut);
    }
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(top_k: usize) -> SliceTracker {
        SliceTracker::new("m", SliceConfig { header: "x-slice".into(), top_k }, Duration::from_secs(30))
    }

    #[test]
    fn the_busiest_slices_get_labels_and_the_rest_are_other() {
        let t = tracker(5);
        // 50 slice values: s0..s4 carry 15 % each, the other 45 share the rest.
        let mut labels = std::collections::BTreeSet::new();
        for i in 0..20_000u64 {
            let slice = if i % 20 < 15 { format!("s{}", i % 5) } else { format!("t{}", i % 45) };
            labels.insert(t.observe(&slice).to_string());
        }
        let top: Vec<String> = t.top().iter().map(|s| s.to_string()).collect();
        let mut sorted = top.clone();
        sorted.sort();
        assert_eq!(sorted, ["s0", "s1", "s2", "s3", "s4"]);
        assert_eq!(labels.len(), 6, "five slices and other: {labels:?}");
        assert!(labels.contains(OTHER));
        assert_eq!(&*t.label("t3"), OTHER);
    }

    #[test]
    fn hostile_cardinality_costs_a_fixed_amount() {
        let t = tracker(3);
        for i in 0..(TRACKED as u64 * 10) {
            t.observe(&format!("unique-{i}"));
        }
        assert_eq!(t.counts.lock().unwrap().len(), TRACKED);
        // The busy slices arriving late still win their place: tracked values only.
        for _ in 0..(RECOUNT * 4) {
            t.observe("unique-1");
        }
        assert_eq!(&*t.top()[0], "unique-1");
        assert_eq!(&*t.label("unique-999999"), OTHER);
    }

    #[test]
    fn a_count_window_slides() {
        let w = CountWindow::new(Duration::from_secs(10));
        let t0 = w.epoch;
        for i in 0..10u64 {
            w.record(t0 + Duration::from_millis(i * 100), i < 3);
        }
        assert_eq!(w.counts(t0 + Duration::from_secs(2)), (10, 3));
        w.record(t0 + Duration::from_secs(8), false);
        assert_eq!(w.counts(t0 + Duration::from_secs(9)), (11, 3));
        assert_eq!(w.counts(t0 + Duration::from_millis(10_500)), (1, 0), "the first second slid out");
    }

    #[test]
    fn slice_values_are_cleaned_and_bounded() {
        assert_eq!(clean("  eu-west \u{7}"), Some("eu-west".to_owned()));
        assert_eq!(clean("   "), None);
        let long = "é".repeat(100);
        let kept = clean(&long).unwrap();
        assert!(kept.len() <= MAX_SLICE_LEN && kept.chars().all(|c| c == 'é'));
    }
}
