//! The lineage write path: one blocking connection of its own (rusqlite, not the async pool),
//! for a thread that does nothing but write lineage batches.
//!
//! Why not the pool: through sqlx every value is copied into owned arguments on the caller's
//! thread and the statement runs on the driver's worker thread, so each batch costs two threads'
//! time and a hand-off. Here a batch is one `BEGIN IMMEDIATE`, one `lineage_batches` row per
//! (model, version, artifact) holding its records as one JSON array, the request ids 32 to an
//! `INSERT`, and one commit, all on the calling thread. Same file, same WAL, same
//! `synchronous = FULL` as the registry's pool, so the records are as durable and a reader sees
//! a batch whole or not at all.
//!
//! Why a row per batch (migration 0006): a row per record with its three indexes cost four
//! B-tree inserts per record; side by side (`benches/append.rs`), this layout costs 2.1–2.4×
//! less writer CPU per record (`benches/results/micro.md`).

use std::path::Path;

use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior};

use super::{LineageRecord, saturating_i64};
use crate::error::StoreError;
use crate::registry::queries::{INSERT_LINEAGE_BATCH, insert_lineage_requests};
use crate::registry::{BUSY_TIMEOUT, Registry};

/// How far a committed lineage batch is guaranteed to survive: SQLite's `synchronous` setting on
/// the lineage connection (the registry's own writes are always `FULL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineageDurability {
    /// `synchronous = FULL`: every commit is fsynced, so a committed batch survives a power loss
    /// or a kernel crash. The default.
    #[default]
    Full,
    /// `synchronous = NORMAL` (WAL): commits are not fsynced (the WAL is, when checkpointed). A
    /// committed batch survives the process crashing or being killed, but the last batches
    /// before a power loss or kernel crash may be lost. Saves one fsync per batch.
    Normal,
}

impl LineageDurability {
    fn pragma(self) -> &'static str {
        match self {
            LineageDurability::Full => "FULL",
            LineageDurability::Normal => "NORMAL",
        }
    }
}

/// Appends lineage batches to the registry database over a connection of its own. Blocking:
/// own one on a dedicated thread (the gateway's lineage writer does), or call it from
/// `spawn_blocking`. Opened with `Registry::lineage_appender`.
#[derive(Debug)]
pub struct LineageAppender {
    pub(crate) conn: Connection,
    /// Reused for each row's JSON body, so serialising allocates nothing once warm.
    body: Vec<u8>,
    /// Reused to group each batch's records by (model, version, artifact).
    groups: Groups,
}

impl Registry {
    /// A connection for appending lineage, to the same database as this registry (whose
    /// schema `Registry::open` has already brought up to date), committing with `durability`.
    ///
    /// Errors: `Sqlite` if the database cannot be opened. Cost: opening a file.
    pub fn lineage_appender(&self, durability: LineageDurability) -> Result<LineageAppender, StoreError> {
        LineageAppender::open(self.path(), durability)
    }
}

impl LineageAppender {
    fn open(path: &Path, durability: LineageDurability) -> Result<LineageAppender, StoreError> {
        // Never create: the file is the registry's, made and migrated by `Registry::open`.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL is a property of the file (the pool set it); these two are per connection.
        conn.pragma_update(None, "synchronous", durability.pragma())?;
        conn.pragma_update(None, "cache_size", -16_384)?;
        Ok(LineageAppender { conn, body: Vec::with_capacity(64 * 1024), groups: Groups::default() })
    }

    /// Appends `batch` in ONE write transaction and returns how many records were written
    /// (`batch.len()`). All or nothing: a record the store refuses (`status` outside 100–599)
    /// fails the batch before the database is touched, and if the database fails the
    /// transaction rolls back and the error is returned; a torn batch cannot happen. An empty
    /// batch returns `Ok(0)` without touching the database.
    ///
    /// The records of each (model, version, artifact) go into one `lineage_batches` row (at
    /// most `RECORDS_PER_ROW` to a row) as a JSON array, plus one `lineage_requests` row per
    /// request id: see migration 0006 for the layout.
    ///
    /// Errors: `InvalidLineageRecord`; `Sqlite` (including "database is locked" after the 5 s
    /// busy timeout). Cost: one `BEGIN IMMEDIATE` (waits behind other writers), one row per
    /// group, one index statement per 32 records, one fsync at commit.
    pub fn append(&mut self, batch: &[LineageRecord]) -> Result<usize, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        batch.iter().try_for_each(LineageRecord::check)?;
        let LineageAppender { conn, body, groups } = self;
        groups.assign(batch);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for group in 0..groups.count() {
            let mut members = groups.members(group, batch).peekable();
            while members.peek().is_some() {
                let row: Vec<&LineageRecord> = members.by_ref().take(RECORDS_PER_ROW).collect();
                let batch_id = insert_batch_row(&tx, &row, body)?;
                insert_request_ids(&tx, &row, batch_id)?;
            }
        }
        // Dropping `tx` on an error above rolls the whole batch back.
        tx.commit()?;
        tracing::debug!(records = batch.len(), "lineage batch written");
        Ok(batch.len())
    }
}

/// Most records in one `lineage_batches` row. Reading one request parses its whole row, so this
/// bounds that (a row of 1024 records is about 200 KB); the gateway's batches are rarely larger.
const RECORDS_PER_ROW: usize = 1024;

/// Request ids per multi-row `INSERT` into `lineage_requests` (the remainder goes one by one):
/// 32 rows to a statement cost about 20% less CPU per row than one.
const IDS_PER_INSERT: usize = 32;

/// Which records of a batch share a (model, version, artifact): the group of each, numbered in
/// order of first appearance. Kept in the appender so that grouping allocates nothing once warm.
#[derive(Debug, Default)]
struct Groups {
    /// Per record of the batch, its group.
    of: Vec<u32>,
    /// Per group, the index of its first record (whose model, version and sha256 are the key).
    first: Vec<usize>,
}

impl Groups {
    /// Groups `batch`. Linear in records × groups; a batch holds few (model, version) pairs.
    fn assign(&mut self, batch: &[LineageRecord]) {
        self.of.clear();
        self.first.clear();
        for (i, r) in batch.iter().enumerate() {
            let same = |&first: &usize| {
                let k = &batch[first];
                k.version == r.version && k.model == r.model && k.sha256 == r.sha256
            };
            let group = match self.first.iter().position(same) {
                Some(g) => g,
                None => {
                    self.first.push(i);
                    self.first.len() - 1
                }
            };
            self.of.push(group as u32);
        }
    }

    fn count(&self) -> usize {
        self.first.len()
    }

    /// The records of `group`, in batch order.
    fn members<'b>(&'b self, group: usize, batch: &'b [LineageRecord]) -> impl Iterator<Item = &'b LineageRecord> {
        self.of.iter().zip(batch).filter(move |(g, _)| **g as usize == group).map(|(_, r)| r)
    }
}

/// Inserts one `lineage_batches` row holding `records` (one model, version and artifact, at
/// least one record) and returns its id. `body` is scratch for the JSON.
fn insert_batch_row(
    tx: &rusqlite::Transaction<'_>,
    records: &[&LineageRecord],
    body: &mut Vec<u8>,
) -> Result<i64, StoreError> {
    let key = records[0];
    body.clear();
    body.push(b'[');
    let (mut first_ms, mut last_ms, mut shadows) = (i64::MAX, i64::MIN, 0_i64);
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        record_json(body, r)?;
        first_ms = first_ms.min(r.at_ms);
        last_ms = last_ms.max(r.at_ms);
        shadows += i64::from(r.is_shadow());
    }
    body.push(b']');
    let mut insert = tx.prepare_cached(INSERT_LINEAGE_BATCH)?;
    let values: [&dyn ToSql; 8] = [
        &key.model,
        &i64::from(key.version),
        &key.sha256,
        &first_ms,
        &last_ms,
        &(records.len() as i64),
        &shadows,
        &utf8(body),
    ];
    for (i, value) in values.into_iter().enumerate() {
        insert.raw_bind_parameter(i + 1, value)?;
    }
    insert.raw_execute()?;
    Ok(tx.last_insert_rowid())
}

/// Appends one record as the JSON array `lineage_batches.body` holds: migration 0006's order,
/// then 0009's `upstream`, `slice` and `replica` (17 elements: past what serde
/// serializes as a tuple, so written as a sequence).
fn record_json(body: &mut Vec<u8>, r: &LineageRecord) -> Result<(), StoreError> {
    use serde::ser::{SerializeSeq as _, Serializer as _};
    let mut write = || -> Result<(), serde_json::Error> {
        let mut ser = serde_json::Serializer::new(&mut *body);
        let mut seq = ser.serialize_seq(Some(17))?;
        seq.serialize_element(&r.request_id)?;
        seq.serialize_element(&r.at_ms)?;
        seq.serialize_element(&r.route)?;
        seq.serialize_element(&r.reason)?;
        seq.serialize_element(&r.sticky_key_hash)?;
        seq.serialize_element(&r.input_sha256)?;
        seq.serialize_element(&saturating_i64(r.queue_us))?;
        seq.serialize_element(&saturating_i64(r.compute_us))?;
        seq.serialize_element(&saturating_i64(r.total_us))?;
        seq.serialize_element(&r.status)?;
        seq.serialize_element(&r.error_class)?;
        seq.serialize_element(&r.shadow_of)?;
        seq.serialize_element(&r.comparison)?;
        seq.serialize_element(&r.prediction)?;
        seq.serialize_element(&r.upstream)?;
        seq.serialize_element(&r.slice)?;
        seq.serialize_element(&r.replica)?;
        seq.end()
    };
    write().map_err(|e| StoreError::decode(format!("lineage JSON: {e}")))
}

/// One `lineage_requests` row per record of the batch row `batch_id`, 32 to a statement.
fn insert_request_ids(
    tx: &rusqlite::Transaction<'_>,
    records: &[&LineageRecord],
    batch_id: i64,
) -> Result<(), StoreError> {
    let mut chunks = records.chunks_exact(IDS_PER_INSERT);
    if chunks.len() > 0 {
        let mut insert = tx.prepare_cached(&insert_lineage_requests(IDS_PER_INSERT))?;
        for chunk in &mut chunks {
            for (i, r) in chunk.iter().enumerate() {
                insert.raw_bind_parameter(2 * i + 1, &r.request_id)?;
                insert.raw_bind_parameter(2 * i + 2, batch_id)?;
            }
            insert.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut insert = tx.prepare_cached(&insert_lineage_requests(1))?;
        for r in rest {
            insert.raw_bind_parameter(1, &r.request_id)?;
            insert.raw_bind_parameter(2, batch_id)?;
            insert.raw_execute()?;
        }
    }
    Ok(())
}

/// JSON that serde_json wrote is UTF-8.
fn utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}
