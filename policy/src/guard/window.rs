//! A sliding window of one version's recent requests: a ring of sub-windows, each an
//! hdrhistogram of latencies plus request and error counters. Recording touches one sub-window
//! under a short lock; judging merges the sub-windows still inside the window.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Sub-windows per window: the window slides in steps of a tenth of its length.
const SLOTS: u64 = 10;
/// Latencies are kept from 1 µs to 10 min at two significant digits (≤ 1% error).
const MAX_LATENCY_US: u64 = 600_000_000;

/// Figures of a window, as judged.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowStats {
    pub requests: u64,
    pub errors: u64,
    /// 99th percentile latency in milliseconds (0 with no requests).
    pub p99_ms: f64,
}

impl WindowStats {
    /// Failed share of requests (0 with no requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.errors as f64 / self.requests as f64 }
    }
}

/// One sub-window of a window, as a point of a time series.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Point {
    /// How long before `now` the sub-window ended, in milliseconds (0 for the current one).
    pub ago_ms: u64,
    /// Requests ended in the sub-window, per second of it.
    pub requests_per_s: f64,
    pub requests: u64,
    pub errors: u64,
    /// Median and 99th percentile latency in milliseconds (0 with no requests).
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One version's recent requests.
#[derive(Debug)]
pub struct Window {
    epoch: Instant,
    slot_len: Duration,
    slots: Mutex<Vec<Slot>>,
}

#[derive(Debug)]
struct Slot {
    /// Which sub-window (counted from `epoch`) this slot holds now.
    tick: u64,
    latency_us: Histogram<u64>,
    requests: u64,
    errors: u64,
}

impl Window {
    /// A window of `length`, split into ten sub-windows.
    pub fn new(length: Duration) -> Window {
        let slot_len = Self::slot_len(length);
        let slots = (0..SLOTS)
            .map(|_| Slot {
                tick: u64::MAX,
                latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 2)
                    .expect("static histogram bounds are valid"),
                requests: 0,
                errors: 0,
            })
            .collect();
        Window { epoch: Instant::now(), slot_len, slots: Mutex::new(slots) }
    }

    fn slot_len(length: Duration) -> Duration {
        (length / SLOTS as u32).max(Duration::from_millis(1))
    }

    /// The window's length.
    pub fn length(&self) -> Duration {
        self.slot_len * SLOTS as u32
    }

    /// The length a window asked for `length` gets (whole sub-windows), without building one.
    pub fn length_for(length: Duration) -> Duration {
        Self::slot_len(length) * SLOTS as u32
    }

    fn tick(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.epoch).as_nanos() / self.slot_len.as_nanos().max(1)) as u64
    }

    /// Records one request that ended at `at`.
    pub fn record(&self, at: Instant, latency: Duration, error: bool) {
        let tick = self.tick(at);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(tick % SLOTS) as usize];
        if slot.tick != tick {
            slot.tick = tick;
            slot.latency_us.reset();
            slot.requests = 0;
            slot.errors = 0;
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_LATENCY_US);
        slot.latency_us.saturating_record(us);
        slot.requests += 1;
        slot.errors += u64::from(error);
    }

    /// The figures of the sub-windows that end within the window before `now`.
    pub fn stats(&self, now: Instant) -> WindowStats {
        let newest = self.tick(now);
        let oldest = newest.saturating_sub(SLOTS - 1);
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut merged: Option<Histogram<u64>> = None;
        let (mut requests, mut errors) = (0, 0);
        for slot in slots.iter().filter(|s| s.tick != u64::MAX && (oldest..=newest).contains(&s.tick)) {
            requests += slot.requests;
            errors += slot.errors;
            match &mut merged {
                None => merged = Some(slot.latency_us.clone()),
                Some(h) => {
                    let _ = h.add(&slot.latency_us);
                }
            }
        }
        let p99_ms = merged.map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1000.0);
        WindowStats { requests, errors, p99_ms }
    }
}

impl Window {
    /// The window as a time series: one point per sub-window (ten), oldest first, ending with
    /// the one `now` falls in; sub-windows without requests (or before the window began) are
    /// zero points.
    pub fn series(&self, now: Instant) -> Vec<Point> {
        let newest = self.tick(now);
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let seconds = self.slot_len.as_secs_f64();
        (0..SLOTS)
            .rev()
            .map(|back| {
                let ago_ms = u64::try_from((self.slot_len * back as u32).as_millis()).unwrap_or(u64::MAX);
                let tick = newest.checked_sub(back);
                match slots.iter().find(|s| Some(s.tick) == tick) {
                    Some(s) if s.requests > 0 => Point {
                        ago_ms,
                        requests_per_s: s.requests as f64 / seconds,
                        requests: s.requests,
                        errors: s.errors,
                        p50_ms: s.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
                        p99_ms: s.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
                    },
                    _ => Point { ago_ms, ..Point::default() },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_reads_as_a_time_series_of_its_sub_windows() {
        let w = Window::new(Duration::from_secs(10));
        let t0 = w.epoch;
        // 20 requests in the first second (one failed), none in the next, 5 slow ones at 2.5 s.
        for i in 0..20u64 {
            w.record(t0 + Duration::from_millis(i * 40), Duration::from_millis(2), i == 0);
        }
        for i in 0..5u64 {
            w.record(t0 + Duration::from_millis(2500 + i), Duration::from_millis(50), false);
        }
        let all = w.series(t0 + Duration::from_millis(2900));
        assert_eq!(all.len(), 10, "always the whole window: {all:?}");
        assert!(all[..7].iter().all(|p| p.requests == 0), "before the window began: zero points");
        let series = &all[7..];
        assert_eq!((series[0].requests, series[0].errors, series[0].ago_ms), (20, 1, 2000));
        assert!((series[0].requests_per_s - 20.0).abs() < 1e-9);
        assert!((1.9..=2.1).contains(&series[0].p50_ms), "{series:?}");
        assert_eq!(series[1], Point { ago_ms: 1000, ..Point::default() });
        assert_eq!((series[2].requests, series[2].ago_ms), (5, 0));
        assert!((49.0..=51.0).contains(&series[2].p99_ms), "{series:?}");
        // Later, the full window of ten points, the old ones slid out.
        let later = w.series(t0 + Duration::from_secs(12));
        assert_eq!(later.len(), 10);
        assert!(later.iter().all(|p| p.requests == 0));
    }

    #[test]
    fn counts_and_p99_over_the_window() {
        let w = Window::new(Duration::from_secs(10));
        let t0 = w.epoch;
        for i in 0..100u64 {
            let latency = if i < 98 { Duration::from_millis(5) } else { Duration::from_millis(200) };
            w.record(t0 + Duration::from_millis(i * 10), latency, i % 10 == 0);
        }
        let s = w.stats(t0 + Duration::from_secs(1));
        assert_eq!((s.requests, s.errors), (100, 10));
        assert!((s.error_rate() - 0.1).abs() < 1e-9);
        // 2% of requests at 200 ms: the 99th percentile is one of them (within 1%).
        assert!((198.0..=202.0).contains(&s.p99_ms), "{s:?}");
    }

    #[test]
    fn old_sub_windows_slide_out() {
        let w = Window::new(Duration::from_secs(10));
        let t0 = w.epoch;
        w.record(t0, Duration::from_millis(500), true);
        w.record(t0 + Duration::from_secs(5), Duration::from_millis(1), false);
        assert_eq!(w.stats(t0 + Duration::from_secs(9)).requests, 2);
        // 10.5 s later the first sub-window has left the window; the second has not.
        let s = w.stats(t0 + Duration::from_millis(10_500));
        assert_eq!((s.requests, s.errors), (1, 0));
        assert!(s.p99_ms < 2.0, "{s:?}");
        assert_eq!(w.stats(t0 + Duration::from_secs(60)).requests, 0);
        // A slot reused for a later sub-window starts empty.
        w.record(t0 + Duration::from_secs(60), Duration::from_millis(3), false);
        assert_eq!(w.stats(t0 + Duration::from_secs(60)).requests, 1);
    }
}
