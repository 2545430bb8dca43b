//! Per-request lineage, off the request path: handlers hand records to a bounded channel
//! (`LineageSink`), and one writer thread (`LineageWriter`) takes whatever has queued up, up to
//! `batch_max`, and writes it to the registry in one transaction. After the first record of a
//! batch arrives the writer waits `flush_interval` for more (group commit), so a busy gateway
//! commits a few large transactions a second rather than one per request.
//!
//! What a request hands over is a `Run`: the facts of one model run, with nothing on the heap of
//! its own (the id inline, names and hashes shared, timestamps and texts not yet rendered). The
//! writer turns runs into `LineageRecord`s: formatting happens there, and what it allocates it
//! frees, so the threads serving requests pay one move into the channel and no cross-thread frees.
//!
//! Nothing is lost silently: a full buffer makes the request wait (`block`) or drops the record
//! (`drop`), counted either way; a failing database is retried with backoff while records wait in
//! the buffer; shutdown closes the channel only after every request has handed its record over,
//! and the writer drains what is left before the process exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use model_store::{LineageAppender, LineageRecord, Registry, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use policy::router::Choice;
use protocol::request_id::RequestId;
use protocol::tensor::Tensor;
use settings::{LineageConfig, OnFull};

/// First and largest pause between attempts to write a batch the database refused.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// One model run of a request, as the request path hands it to the writer: the facts, not yet
/// rendered. `into_record` makes the stored `LineageRecord` of it.
#[derive(Debug)]
pub struct Run {
    pub request_id: RequestId,
    /// When the request arrived (shadow runs carry their request's arrival).
    pub arrived: SystemTime,
    pub model: Arc<str>,
    pub version: u32,
    /// The artifact's sha256, lowercase hex.
    pub sha256: Arc<str>,
    pub how: How,
    /// sha256 of the inputs (`inputs_sha256`), when the model keeps it.
    pub input_sha256: Option<[u8; 32]>,
    pub queue: Duration,
    pub compute: Duration,
    /// From arrival (primary) or from the start of the run (shadow) to its end.
    pub total: Duration,
    /// The HTTP status the run ended with.
    pub status: u16,
    pub error_class: Option<&'static str>,
    /// Primary runs: what a single-row answer predicted.
    pub prediction: Option<Prediction>,
    /// Shadow runs: how the shadow's outputs compared with the primary's.
    pub comparison: Option<Comparison>,
    /// Runs of a remote version: where they were sent and what answered.
    pub upstream: Option<Answerer>,
    /// The request's slice value (`[model.slices]`), on the run that answered.
    pub slice: Option<String>,
}

/// Where a remote version's run was answered: its upstream, and the version the upstream says
/// answered (its response's `model_version`; `None` when it did not say, or did not answer).
#[derive(Debug)]
pub struct Answerer {
    pub upstream: Arc<model_store::Upstream>,
    pub version: Option<String>,
}

impl Answerer {
    /// As stored in the lineage record: `{"url", "model", "version"}`, the version being the
    /// one that answered (else the one asked for, if any).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.upstream.url,
            "model": self.upstream.model,
            "version": self.version.as_ref().or(self.upstream.version.as_ref()),
        })
    }
}

/// How the run's version was chosen.
#[derive(Debug)]
pub enum How {
    /// The run that answered, and why its version was chosen.
    Answered(Choice),
    /// A mirrored copy run after the primary (version `of`) answered.
    Shadow { of: u32 },
}

/// How a shadow's outputs compare with the primary's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Largest absolute difference over every floating-point output element (0 when none).
    pub max_abs_diff: f64,
    /// Rows whose argmax agrees / rows compared, over outputs shaped `[batch, n > 1]`.
    pub argmax_agree: u64,
    pub argmax_rows: u64,
}

impl Comparison {
    /// As stored in the shadow's lineage record.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "max_abs_diff": self.max_abs_diff,
            "argmax_agree": self.argmax_agree,
            "argmax_rows": self.argmax_rows,
        })
    }
}

/// What a single-row answer predicted (`prediction_summary`), stored as `{"label": i}` or
/// `{"value": x}` for judging feedback later.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prediction {
    Label(i64),
    Value(f64),
}

impl Prediction {
    pub fn to_json(self) -> serde_json::Value {
        match self {
            Prediction::Label(label) => serde_json::json!({ "label": label }),
            Prediction::Value(value) => serde_json::json!({ "value": value }),
        }
    }
}

impl Run {
    /// The record as stored: timestamps, reason and hashes rendered as text.
    pub fn into_record(self) -> LineageRecord {
        let (route, reason, sticky_key_hash, shadow_of) = match &self.how {
            How::Answered(choice) => {
                (choice.decision.route.as_str(), choice.reason_text(), choice.sticky_hash_text(), None)
            }
            How::Shadow { of } => {
                (LineageRecord::ROUTE_SHADOW, format!("mirrored copy of version {of}"), None, Some(*of))
            }
        };
        let mut record = LineageRecord::new_at(
            self.arrived,
            self.request_id.as_str(),
            &*self.model,
            self.version,
            &*self.sha256,
            route,
            reason,
        );
        record.sticky_key_hash = sticky_key_hash;
        record.shadow_of = shadow_of;
        record.input_sha256 = self.input_sha256.map(hex::encode);
        record.queue_us = micros(self.queue);
        record.compute_us = micros(self.compute);
        record.total_us = micros(self.total);
        record.upstream = self.upstream.as_ref().map(Answerer::to_json);
        record.slice = self.slice;
        record.status = self.status;
        record.error_class = self.error_class.map(str::to_owned);
        record.prediction = self.prediction.map(Prediction::to_json);
        record.comparison = self.comparison.map(Comparison::to_json);
        record
    }
}

/// Where request handlers send their records. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LineageSink {
    tx: mpsc::Sender<Submitted>,
    on_full: OnFull,
    status: Arc<WriterStatus>,
    /// With `[lineage] ack = "after_commit"`: how long an answer waits for its record's commit.
    ack_timeout: Option<Duration>,
}

/// A run in the channel, with who waits for its commit (`ack = "after_commit"`).
type Submitted = (Run, Option<oneshot::Sender<bool>>);

/// A submitted record's commit, for the answer to wait on (`Committed::wait`).
#[derive(Debug)]
pub struct Committed(Option<(oneshot::Receiver<bool>, Duration)>);

impl Committed {
    /// Nothing to wait for (no lineage).
    pub fn none() -> Committed {
        Committed(None)
    }

    /// True once the record is committed; at once without `ack = "after_commit"`. False when the
    /// writer dropped the record (store down past the timeout, shutdown, refused record).
    pub async fn wait(self) -> bool {
        match self.0 {
            None => true,
            Some((rx, timeout)) => matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(true))),
        }
    }
}

/// What the writer has done so far; shown by `GET /admin/status` and exported as metrics.
#[derive(Debug, Default)]
pub struct WriterStatus {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub write_errors: AtomicU64,
    /// False while the last write attempt failed (the store is degraded; records wait).
    pub healthy: AtomicBool,
    capacity: AtomicU64,
}

/// A point-in-time view of `WriterStatus` and the buffer.
#[derive(Debug, Clone, Serialize)]
pub struct StatusSnapshot {
    pub enabled: bool,
    pub healthy: bool,
    pub queued: usize,
    pub capacity: u64,
    pub written: u64,
    pub dropped: u64,
    pub write_errors: u64,
}

/// The writer thread; `drain` finishes it.
#[derive(Debug)]
pub struct LineageWriter {
    close: oneshot::Sender<Duration>,
    done: oneshot::Receiver<()>,
    thread: std::thread::JoinHandle<()>,
}

/// Starts the writer on a thread of its own (`switchyard-lineage`, with a single-threaded
/// runtime for its timers), writing through a connection of its own (`LineageAppender`), so
/// that turning records into rows and waiting on the database never takes time from the
/// threads serving requests: all a request does is put its record in the channel. The
/// appender blocks; on this thread that holds up nothing but the next batch.
/// Records sent to the returned sink are written to `registry` until `LineageWriter::drain`.
/// `replica` names this gateway in every record (`[server] replica_id`); set on the writer's
/// thread, so the request path pays nothing for it.
pub fn start(
    registry: &Registry,
    config: &LineageConfig,
    replica: &str,
) -> anyhow::Result<(LineageSink, LineageWriter)> {
    let appender = registry
        .lineage_appender(match config.durability {
            settings::LineageDurability::Full => model_store::LineageDurability::Full,
            settings::LineageDurability::Normal => model_store::LineageDurability::Normal,
        })
        .context("cannot open the registry for lineage writes")?;
    let (tx, rx) = mpsc::channel(config.capacity);
    let status = Arc::new(WriterStatus { healthy: AtomicBool::new(true), ..WriterStatus::default() });
    status.capacity.store(config.capacity as u64, Ordering::Relaxed);
    let (close_tx, close_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let settings = (config.batch_max, config.flush_interval);
    let replica = replica.to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let writer_status = Arc::clone(&status);
    let thread = std::thread::Builder::new().name("switchyard-lineage".into()).spawn(move || {
        runtime.block_on(write_loop(appender, rx, settings, writer_status, close_rx, replica));
        let _ = done_tx.send(());
    })?;
    metrics::gauge!("switchyard_lineage_store_healthy").set(1.0);
    // Present from the start, so rates and dashboards have a series before the first commit.
    metrics::counter!("switchyard_lineage_records_written_total").increment(0);
    metrics::gauge!("switchyard_lineage_queue_depth").set(0.0);
    let writer = LineageWriter { close: close_tx, done: done_rx, thread };
    let ack_timeout = (config.ack == settings::LineageAck::AfterCommit).then_some(config.ack_timeout);
    Ok((LineageSink { tx, on_full: config.on_full, status, ack_timeout }, writer))
}

impl LineageSink {
    /// Hands one run to the writer. With `block`, waits while the buffer is full; with
    /// `drop`, drops it. Either way the event is counted. After shutdown has closed the channel,
    /// the run is dropped and counted as `closed`.
    ///
    /// With `ack = "after_commit"` the returned `Committed` resolves when the record is
    /// committed; a dropped record resolves it false at once.
    pub async fn submit(&self, run: Run) -> Committed {
        let (ack, committed) = match self.ack_timeout {
            Some(timeout) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Committed(Some((rx, timeout))))
            }
            None => (None, Committed(None)),
        };
        let record = match self.tx.try_send((run, ack)) {
            Ok(()) => return committed,
            Err(mpsc::error::TrySendError::Closed(_)) => return self.dropped("closed", committed),
            Err(mpsc::error::TrySendError::Full(record)) => record,
        };
        match self.on_full {
            OnFull::Drop => self.dropped("full", committed),
            OnFull::Block => {
                metrics::counter!("switchyard_lineage_blocked_total").increment(1);
                match self.tx.send(record).await {
                    Ok(()) => committed,
                    Err(_) => self.dropped("closed", committed),
                }
            }
        }
    }

    fn dropped(&self, reason: &'static str, committed: Committed) -> Committed {
        self.status.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("switchyard_lineage_records_dropped_total", "reason" => reason).increment(1);
        // A record that never reached the writer is never committed.
        match committed.0 {
            Some(_) => Committed(Some((oneshot::channel().1, Duration::ZERO))),
            None => committed,
        }
    }

    /// Records waiting to be written.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The writer's figures now.
    pub fn snapshot(&self) -> StatusSnapshot {
        let s = &self.status;
        StatusSnapshot {
            enabled: true,
            healthy: s.healthy.load(Ordering::Relaxed),
            queued: self.queued(),
            capacity: s.capacity.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
        }
    }
}

impl LineageWriter {
    /// Closes the channel (later records are dropped as `closed`), writes everything already
    /// buffered, and waits for the writer to finish. A database that keeps failing is retried
    /// for at most `deadline`; what could not be written by then is dropped and counted.
    pub async fn drain(self, deadline: Duration) {
        let _ = self.close.send(deadline);
        // The thread ends right after it reports done; a panic in it drops `done` unsent.
        if self.done.await.is_err() || self.thread.join().is_err() {
            tracing::error!("lineage writer thread failed");
        }
    }
}

/// Shutdown as the writer sees it: not begun, or begun with a deadline for retries.
#[derive(Debug)]
struct Closing {
    signal: oneshot::Receiver<Duration>,
    give_up_at: Option<Instant>,
}

impl Closing {
    fn begun(&self) -> bool {
        self.give_up_at.is_some()
    }

    /// Resolves once, when shutdown begins (or the writer handle is dropped); pending after.
    async fn begins(&mut self) {
        if self.give_up_at.is_some() {
            return std::future::pending().await;
        }
        let deadline = (&mut self.signal).await.unwrap_or(Duration::ZERO);
        self.give_up_at = Some(Instant::now() + deadline);
    }
}

async fn write_loop(
    mut appender: LineageAppender,
    mut rx: mpsc::Receiver<Submitted>,
    settings: (usize, Duration),
    status: Arc<WriterStatus>,
    close: oneshot::Receiver<Duration>,
    replica: String,
) {
    let (batch_max, linger) = settings;
    let mut runs = Vec::with_capacity(batch_max);
    let mut records = Vec::with_capacity(batch_max);
    let mut closing = Closing { signal: close, give_up_at: None };
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut runs, batch_max) => n,
            () = closing.begins() => {
                rx.close(); // later submits fail; what is buffered is still received
                continue;
            }
        };
        if received == 0 {
            break; // closed and empty
        }
        // Linger for more, so a busy gateway commits few large transactions rather than many
        // small ones (each commit rewrites the index pages it touches). The writer sleeps
        // through the linger instead of receiving during it: a receiver waiting on the channel
        // is woken by every send, which would cost the request path one task wake-up per record.
        // An answer waiting for its record's commit is not kept waiting for company: the batch
        // commits now, and what arrives meanwhile is the next batch (group commit).
        let waited_on = runs.iter().any(|(_, ack)| ack.is_some());
        if !closing.begun() && runs.len() < batch_max && !linger.is_zero() && !waited_on {
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                () = closing.begins() => rx.close(),
            }
            // What queued up meanwhile, in one take (a `recv_many` on a non-empty channel
            // returns at once, and returns the permits in one step rather than one per record).
            while runs.len() < batch_max && !rx.is_empty() {
                let room = batch_max - runs.len();
                rx.recv_many(&mut runs, room).await;
            }
        }
        metrics::gauge!("switchyard_lineage_queue_depth").set(rx.len() as f64);
        let acks: Vec<Option<oneshot::Sender<bool>>> = runs
            .drain(..)
            .map(|(run, ack)| {
                let mut record = run.into_record();
                record.replica = Some(replica.clone());
                records.push(record);
                ack
            })
            .collect();
        let committed = write_batch(&mut appender, &mut records, &status, &mut closing, &mut rx).await;
        for (i, ack) in acks.into_iter().enumerate() {
            if let Some(ack) = ack {
                let _ = ack.send(committed.contains(&i));
            }
        }
        records.clear();
    }
    tracing::info!(written = status.written.load(Ordering::Relaxed), "lineage writer drained");
}

/// Writes one batch, retrying with backoff while the database refuses it. Shutdown during the
/// retries bounds them by its deadline; past it the batch is dropped and counted. A record the
/// store refuses for what it holds (`StoreError::InvalidLineageRecord`) would be refused on
/// every retry: it is dropped (counted, reason `invalid`) and the rest of the batch written.
///
/// Returns the positions (in the batch as given) of the records committed.
async fn write_batch(
    appender: &mut LineageAppender,
    batch: &mut Vec<LineageRecord>,
    status: &WriterStatus,
    closing: &mut Closing,
    rx: &mut mpsc::Receiver<Submitted>,
) -> std::collections::BTreeSet<usize> {
    let mut pause = RETRY_FIRST;
    // The batch's records' positions as given, kept in step with what is dropped from it.
    let mut positions: Vec<usize> = (0..batch.len()).collect();
    loop {
        let started = Instant::now();
        match appender.append(batch) {
            Ok(n) => {
                metrics::histogram!("switchyard_lineage_batch_write_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("switchyard_lineage_records_written_total").increment(n as u64);
                status.written.fetch_add(n as u64, Ordering::Relaxed);
                if !status.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("lineage store is writable again");
                    metrics::gauge!("switchyard_lineage_store_healthy").set(1.0);
                }
                return positions.into_iter().collect();
            }
            Err(StoreError::InvalidLineageRecord { request_id, reason }) => {
                // Refused for what it holds, so retrying cannot help: drop the refused records
                // (counted as `invalid`) and write the others at once.
                tracing::error!(%request_id, %reason, "lineage record refused by the store; dropped");
                let before = batch.len();
                let valid: Vec<bool> = batch.iter().map(|r| r.check().is_ok()).collect();
                let mut keep = valid.iter();
                batch.retain(|_| *keep.next().unwrap_or(&false));
                let mut keep = valid.iter();
                positions.retain(|_| *keep.next().unwrap_or(&false));
                if batch.len() == before {
                    batch.clear(); // `check` and `append` disagree: never loop on it.
                    positions.clear();
                }
                let refused = (before - batch.len()) as u64;
                status.dropped.fetch_add(refused, Ordering::Relaxed);
                metrics::counter!("switchyard_lineage_records_dropped_total", "reason" => "invalid").increment(refused);
                continue;
            }
            Err(e) => {
                status.write_errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("switchyard_lineage_write_errors_total").increment(1);
                if status.healthy.swap(false, Ordering::Relaxed) {
                    metrics::gauge!("switchyard_lineage_store_healthy").set(0.0);
                }
                tracing::warn!(error = %e, records = batch.len(), retry_in = ?pause, "lineage batch not written; retrying");
            }
        }
        if closing.give_up_at.is_some_and(|t| Instant::now() + pause > t) {
            tracing::error!(records = batch.len(), "shutdown deadline passed; dropping unwritten lineage records");
            status.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
            metrics::counter!("switchyard_lineage_records_dropped_total", "reason" => "write_failed")
                .increment(batch.len() as u64);
            return std::collections::BTreeSet::new();
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = closing.begins() => rx.close(),
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
}

/// A duration in whole microseconds, as lineage stores it (saturating).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// sha256 of a request's input tensors, independent of how they were sent (JSON or binary):
/// for each input in name order, its name, datatype, shape (i64 little-endian) and its elements
/// in the v2 binary layout, each part length-prefixed.
pub fn inputs_sha256(inputs: &[Tensor]) -> [u8; 32] {
    let mut sorted: Vec<&Tensor> = inputs.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut hasher = Sha256::new();
    let mut buf = Vec::new();
    for t in sorted {
        let mut part = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        part(t.name.as_bytes());
        part(t.datatype().as_v2().as_bytes());
        let shape: Vec<u8> = t.shape.iter().flat_map(|d| d.to_le_bytes()).collect();
        part(&shape);
        buf.clear();
        protocol::v2::encode::append_binary(&t.data, &mut buf);
        part(&buf);
    }
    hasher.finalize().into()
}

/// What a single-row answer predicted, for judging feedback: the first output's argmax as a
/// label when it is a vector of scores `[1, n > 1]`, or its value when it holds one number.
/// `None` for batches and other outputs.
pub fn prediction_summary(outputs: &[Tensor]) -> Option<Prediction> {
    use protocol::tensor::{TensorData, argmax};
    let first = outputs.first()?;
    match &first.data {
        TensorData::Int64(v) if v.len() == 1 => return Some(Prediction::Label(v[0])),
        TensorData::Int32(v) if v.len() == 1 => return Some(Prediction::Label(i64::from(v[0]))),
        _ => {}
    }
    match (first.shape.as_slice(), first.data.len()) {
        (_, 1) => first.data.to_f64()?.first().copied().filter(|x| x.is_finite()).map(Prediction::Value),
        ([1, n], len) if *n > 1 && len == *n as usize => Some(Prediction::Label(argmax(&first.data.to_f64()?) as i64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::tensor::TensorData;

    fn t(name: &str, data: Vec<f32>) -> Tensor {
        Tensor { name: name.into(), shape: vec![1, data.len() as i64], data: TensorData::Fp32(data) }
    }

    #[tokio::test]
    async fn a_record_the_store_refuses_is_dropped_and_the_rest_of_its_batch_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = model_store::ModelStore::open(dir.path()).await.expect("store");
        let registry = store.registry();
        let mut appender = registry.lineage_appender(model_store::LineageDurability::Full).expect("appender");
        let record = |id: &str, status: u16| {
            let mut r = LineageRecord::new(id, "mlp", 1, "ab".repeat(32), "champion", "weight bucket 1 of 100");
            r.status = status;
            r
        };
        let mut batch = vec![record("kept-1", 200), record("refused", 0), record("kept-2", 503)];
        let status = WriterStatus::default();
        let (_signal, close) = oneshot::channel();
        let mut closing = Closing { signal: close, give_up_at: None };
        let (_tx, mut rx) = mpsc::channel(1);
        // Bounded by a timeout: a writer that retried the refused batch would never return.
        tokio::time::timeout(
            Duration::from_secs(10),
            write_batch(&mut appender, &mut batch, &status, &mut closing, &mut rx),
        )
        .await
        .expect("the refused record is not retried");
        assert_eq!(status.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(status.written.load(Ordering::Relaxed), 2);
        assert_eq!(status.write_errors.load(Ordering::Relaxed), 0);
        assert_eq!(registry.count_lineage(Some("mlp"), false).await.expect("count"), 2);
        assert!(registry.lineage("refused").await.expect("read").is_empty());
        assert_eq!(registry.lineage("kept-2").await.expect("read")[0].status, 503);
    }

    #[test]
    fn input_hash_depends_on_content_not_order() {
        let a = inputs_sha256(&[t("x", vec![1.0, 2.0]), t("y", vec![3.0])]);
        let b = inputs_sha256(&[t("y", vec![3.0]), t("x", vec![1.0, 2.0])]);
        assert_eq!(a, b);
        assert_ne!(a, inputs_sha256(&[t("x", vec![1.0, 2.5]), t("y", vec![3.0])]));
        // Moving an element between tensors changes the hash (parts are length-prefixed).
        assert_ne!(a, inputs_sha256(&[t("x", vec![1.0]), t("y", vec![2.0, 3.0])]));
    }

    #[test]
    fn predictions_are_summarised_for_single_rows_only() {
        let scores = Tensor { name: "y".into(), shape: vec![1, 3], data: TensorData::Fp32(vec![0.1, 0.7, 0.2]) };
        assert_eq!(prediction_summary(&[scores]), Some(Prediction::Label(1)));
        assert_eq!(Prediction::Label(1).to_json(), serde_json::json!({"label": 1}));
        let score = Tensor { name: "y".into(), shape: vec![1, 1], data: TensorData::Fp32(vec![0.25]) };
        assert_eq!(prediction_summary(&[score]), Some(Prediction::Value(0.25)));
        assert_eq!(Prediction::Value(0.25).to_json(), serde_json::json!({"value": 0.25}));
        let batch = Tensor { name: "y".into(), shape: vec![2, 2], data: TensorData::Fp32(vec![0.1, 0.9, 0.3, 0.7]) };
        assert_eq!(prediction_summary(&[batch]), None);
    }
}
