//! The lineage write path: one blocking connection of its own (rusqlite, not the async pool),
//! for a thread that does nothing but write lineage batches.
//!
//! Why not the pool: through sqlx every row's 18 values are copied into owned arguments on the
//! caller's thread and the statement runs on the driver's worker thread, so each batch costs
//! two threads' time and a hand-off. Here a batch is one `BEGIN IMMEDIATE`, a cached 32-row
//! `INSERT` stepped once per 32 records (the remainder through the single-row one), values bound
//! by reference, and one commit, all on the calling thread. 32 rows to a statement cost about
//! 20% less CPU per record than one (measured by appending 30,000 records in batches of 200). Same file, same WAL, same `synchronous = FULL` as the
//! registry's pool, so the rows are as durable and a reader sees a batch whole or not at all.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior};

use super::{LineageRecord, saturating_i64};
use crate::error::StoreError;
use crate::registry::queries::{INSERT_LINEAGE, LINEAGE_COLUMNS as COLUMNS, insert_lineage_rows};
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
    /// Reused for the JSON columns, so serialising them allocates nothing per record.
    scratch: Vec<u8>,
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
        Ok(LineageAppender { conn, scratch: Vec::with_capacity(256) })
    }

    /// Appends `batch` in ONE write transaction and returns how many rows were written
    /// (`batch.len()`). All or nothing: if any record is refused (a schema constraint, e.g.
    /// `status` outside 100–599) or the database fails, the transaction rolls back and the error
    /// is returned; a torn batch cannot happen. An empty batch returns `Ok(0)` without touching
    /// the database.
    ///
    /// Errors: `Sqlite` (including "database is locked" after the 5 s busy timeout). Cost: one
    /// `BEGIN IMMEDIATE` (waits behind other writers), one statement step per 32 records, one
    /// fsync at commit.
    pub fn append(&mut self, batch: &[LineageRecord]) -> Result<usize, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let LineageAppender { conn, scratch } = self;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut chunks = batch.chunks_exact(ROWS_PER_INSERT);
            if chunks.len() > 0 {
                let mut insert = tx.prepare_cached(&insert_lineage_rows(ROWS_PER_INSERT))?;
                for chunk in &mut chunks {
                    for (i, r) in chunk.iter().enumerate() {
                        bind_record(&mut insert, i * COLUMNS, r, scratch)?;
                    }
                    insert.raw_execute()?;
                }
            }
            let rest = chunks.remainder();
            if !rest.is_empty() {
                let mut insert = tx.prepare_cached(INSERT_LINEAGE)?;
                for r in rest {
                    bind_record(&mut insert, 0, r, scratch)?;
                    insert.raw_execute()?;
                }
            }
        }
        // Dropping `tx` on an error above rolls the whole batch back.
        tx.commit()?;
        tracing::debug!(rows = batch.len(), "lineage batch written");
        Ok(batch.len())
    }
}

/// Rows per multi-row `INSERT`: one statement step per this many records (a batch's remainder
/// goes row by row). 32 × 18 values is far below SQLite's limit of 32,766.
const ROWS_PER_INSERT: usize = 32;

/// Binds one record's values at placeholders `base + 1 ..= base + COLUMNS`.
fn bind_record(
    insert: &mut rusqlite::CachedStatement<'_>,
    base: usize,
    r: &LineageRecord,
    scratch: &mut Vec<u8>,
) -> Result<(), StoreError> {
    // Both JSON columns go into one buffer, the comparison first; SQLite copies bound text.
    scratch.clear();
    let comparison_end = json_into(scratch, r.comparison.as_ref())?;
    let prediction_end = json_into(scratch, r.prediction.as_ref())?;
    let text = |range: Option<(usize, usize)>| range.map(|(a, b)| utf8(&scratch[a..b]));
    let shadow_of = r.shadow_of.map(|v| v.to_string());
    let values: [&dyn ToSql; COLUMNS] = [
        &r.request_id,
        &r.at,
        &r.at_ms,
        &r.model,
        &i64::from(r.version),
        &r.sha256,
        &r.route,
        &r.reason,
        &r.sticky_key_hash,
        &r.input_sha256,
        &saturating_i64(r.queue_us),
        &saturating_i64(r.compute_us),
        &saturating_i64(r.total_us),
        &i64::from(r.status),
        &r.error_class,
        &shadow_of,
        &text(comparison_end),
        &text(prediction_end),
    ];
    for (i, value) in values.into_iter().enumerate() {
        insert.raw_bind_parameter(base + i + 1, value)?;
    }
    Ok(())
}

/// Appends `value` as JSON to `buf`; the byte range it took, or `None` for no value.
fn json_into(buf: &mut Vec<u8>, value: Option<&serde_json::Value>) -> Result<Option<(usize, usize)>, StoreError> {
    let Some(value) = value else { return Ok(None) };
    let start = buf.len();
    serde_json::to_writer(&mut *buf, value).map_err(|e| StoreError::decode(format!("lineage JSON: {e}")))?;
    Ok(Some((start, buf.len())))
}

/// JSON that serde_json wrote is UTF-8.
fn utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}
