//! The guard's judgement on figures; trips on real faults are tested end to end
//! (tests/e2e/guard.rs) with the slow and faulty fixtures.

use std::time::Duration;

use super::*;

fn guard(p99_ms: Option<f64>, max_error_rate: Option<f64>) -> GuardConfig {
    GuardConfig {
        window: Duration::from_secs(10),
        p99_ms,
        max_error_rate,
        min_requests: 20,
        interval: Duration::from_secs(1),
        cooldown: Duration::from_secs(60),
    }
}

fn stats(requests: u64, errors: u64, p99_ms: f64) -> WindowStats {
    WindowStats { requests, errors, p99_ms }
}

#[test]
fn nothing_is_judged_below_min_requests() {
    let g = guard(Some(50.0), Some(0.1));
    assert_eq!(judge(&stats(19, 19, 900.0), &g), None);
    assert_eq!(judge(&stats(20, 19, 900.0), &g), Some(Breached::ErrorRate));
}

#[test]
fn thresholds_are_strict_and_error_rate_comes_first() {
    let g = guard(Some(50.0), Some(0.1));
    assert_eq!(judge(&stats(100, 10, 50.0), &g), None, "exactly at both thresholds is not a breach");
    assert_eq!(judge(&stats(100, 0, 50.1), &g), Some(Breached::P99));
    assert_eq!(judge(&stats(100, 11, 50.1), &g), Some(Breached::ErrorRate));
}

#[test]
fn an_unset_threshold_is_never_breached() {
    assert_eq!(judge(&stats(100, 100, 10.0), &guard(Some(50.0), None)), None);
    assert_eq!(judge(&stats(100, 0, 5000.0), &guard(None, Some(0.0))), None);
    assert_eq!(judge(&stats(100, 1, 5000.0), &guard(None, Some(0.0))), Some(Breached::ErrorRate));
}

#[test]
fn reasons_name_the_figures() {
    let g = guard(Some(50.0), Some(0.1));
    assert_eq!(reason_text(Breached::P99, &stats(40, 0, 212.44), &g), "p99 212.4 ms > 50 ms over 40 requests");
    assert_eq!(reason_text(Breached::ErrorRate, &stats(40, 20, 1.0), &g), "error rate 0.500 > 0.1 over 40 requests");
}
