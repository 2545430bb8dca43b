//! Inline execution (`execution = "inline"`): the thread serving the request runs the model
//! itself, on a session it borrows from the version's pool. No queue hand-off and no wake-up of
//! another thread, which for a model of tens of microseconds is most of the cost of a request.
//! The price: while the model runs, that thread serves nothing else, so this is for small,
//! fast models; anything that takes milliseconds belongs on worker threads (the default).
//!
//! A semaphore with one permit per session bounds the runs; requests waiting for a permit are
//! the queue, refused with `QueueFull` beyond `queue_capacity`, as on worker threads.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use ort::session::Session;
use tokio::sync::Semaphore;

use super::worker::run_session;
use super::{InferError, InferOutcome, InstanceStats};
use protocol::tensor::Tensor;

pub(super) struct InlinePool {
    /// Sessions not in use. Taken with a permit held, so never empty when taken.
    idle: Mutex<Vec<Session>>,
    /// One permit per session.
    permits: Semaphore,
    /// Requests waiting for a permit now.
    waiting: AtomicUsize,
    /// Most requests waiting for a permit; one more is refused.
    queue_capacity: usize,
    output_names: Vec<String>,
    stats: Arc<InstanceStats>,
    /// `switchyard_batch_size{model,version}` (always 1 here), resolved once.
    batch_size: metrics::Histogram,
}

impl InlinePool {
    pub fn new(
        sessions: Vec<Session>,
        queue_capacity: usize,
        output_names: Vec<String>,
        stats: Arc<InstanceStats>,
        batch_size: metrics::Histogram,
    ) -> InlinePool {
        InlinePool {
            permits: Semaphore::new(sessions.len()),
            idle: Mutex::new(sessions),
            waiting: AtomicUsize::new(0),
            queue_capacity,
            output_names,
            stats,
            batch_size,
        }
    }

    /// Requests waiting for a session right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Runs `inputs` on this thread once a session is free. A full queue answers
    /// `queue_full()` at once (the caller's error, which names the version).
    pub async fn run(
        &self,
        inputs: Vec<Tensor>,
        enqueued: Instant,
        queue_full: impl FnOnce() -> InferError,
    ) -> Result<InferOutcome, InferError> {
        let _permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                let Some(_queued) = Queued::join(&self.waiting, self.queue_capacity) else { return Err(queue_full()) };
                // Dropped while waiting (deadline, client gone): `_queued` leaves the queue.
                self.permits.acquire().await.expect("the semaphore is never closed")
            }
        };
        let started = Instant::now();
        let mut lease = Lease::take(&self.idle);
        let result = run_session(lease.session(), &self.output_names, inputs);
        drop(lease);
        let compute = started.elapsed();
        self.stats.record_execution(1);
        self.batch_size.record(1.0);
        let queue = started.saturating_duration_since(enqueued);
        result
            .map(|outputs| InferOutcome { outputs, queue, compute, batch_rows: 1, upstream_version: None })
            .map_err(InferError::Model)
    }
}

/// A place in the queue, given up on drop.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicUsize, capacity: usize) -> Option<Queued<'a>> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < capacity).then_some(n + 1))
            .ok()
            .map(|_| Queued(waiting))
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A session borrowed from the pool, put back on drop (a panic inside ONNX Runtime's call
/// included), so the pool never loses one.
struct Lease<'a> {
    pool: &'a Mutex<Vec<Session>>,
    session: Option<Session>,
}

impl<'a> Lease<'a> {
    /// Call with a permit held: there is then an idle session for it.
    fn take(pool: &'a Mutex<Vec<Session>>) -> Lease<'a> {
        let session = pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        Lease { pool, session: Some(session.expect("a permit is held, so a session is idle")) }
    }

    fn session(&mut self) -> &mut Session {
        self.session.as_mut().expect("held until drop")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_holds_at_most_its_capacity_and_places_are_given_back_on_drop() {
        let waiting = AtomicUsize::new(0);
        let first = Queued::join(&waiting, 2).expect("room");
        let second = Queued::join(&waiting, 2).expect("room");
        assert!(Queued::join(&waiting, 2).is_none(), "a third waiter is refused");
        assert_eq!(waiting.load(Ordering::Relaxed), 2, "a refusal takes no place");
        drop(first);
        let third = Queued::join(&waiting, 2).expect("a place was given back");
        drop((second, third));
        assert_eq!(waiting.load(Ordering::Relaxed), 0);
        assert!(Queued::join(&waiting, 0).is_none(), "capacity 0 queues nobody");
    }
}
