//! Per-version counters behind `GET /v2/models/{m}/stats` (Triton's statistics extension).
//! Plain atomics: written by workers and handlers, read by the stats endpoint, never locked.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A count and the total nanoseconds spent in it.
#[derive(Debug, Default)]
pub struct Counter {
    count: AtomicU64,
    ns: AtomicU64,
}

impl Counter {
    fn add(&self, n: u64, d: Duration) {
        self.count.fetch_add(n, Relaxed);
        self.ns.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    fn get(&self) -> (u64, u64) {
        (self.count.load(Relaxed), self.ns.load(Relaxed))
    }
}

/// Cumulative statistics of one loaded version.
#[derive(Debug, Default)]
pub struct InstanceStats {
    /// Requests answered, and their time from enqueue to reply.
    pub success: Counter,
    /// Requests that failed in the engine (model error, queue full).
    pub fail: Counter,
    /// Time requests waited for a session.
    pub queue: Counter,
    /// Time in `Session::run`, counted per request.
    pub compute: Counter,
    /// Rows inferred (a batch of 3 rows counts 3).
    inference_count: AtomicU64,
    /// `Session::run` calls.
    execution_count: AtomicU64,
    /// Unix milliseconds of the last inference.
    last_inference_ms: AtomicU64,
}

/// A point-in-time copy of [`InstanceStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub success: (u64, u64),
    pub fail: (u64, u64),
    pub queue: (u64, u64),
    pub compute: (u64, u64),
    pub inference_count: u64,
    pub execution_count: u64,
    pub last_inference_ms: u64,
}

impl InstanceStats {
    pub(crate) fn record_execution(&self, rows: u64) {
        self.inference_count.fetch_add(rows, Relaxed);
        self.execution_count.fetch_add(1, Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.last_inference_ms.store(u64::try_from(now.as_millis()).unwrap_or(u64::MAX), Relaxed);
    }

    pub(crate) fn record_success(&self, total: Duration, queue: Duration, compute: Duration) {
        self.success.add(1, total);
        self.queue.add(1, queue);
        self.compute.add(1, compute);
    }

    pub(crate) fn record_failure(&self, total: Duration) {
        self.fail.add(1, total);
    }

    /// Reads every counter (each atomically; the set is not a single transaction).
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            success: self.success.get(),
            fail: self.fail.get(),
            queue: self.queue.get(),
            compute: self.compute.get(),
            inference_count: self.inference_count.load(Relaxed),
            execution_count: self.execution_count.load(Relaxed),
            last_inference_ms: self.last_inference_ms.load(Relaxed),
        }
    }
}
