//! Per-request lineage: which version answered a request, by which route and why, how long it
//! took and how it ended, plus any shadow runs. Stored in the registry database, append-only.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::manifest::Manifest;
use crate::registry::queries::{self, LineageFilter, LineageRow};
use crate::registry::{Event, Registry, Timestamp, VersionRecord, to_u32, version_history};

mod appender;
pub use appender::{LineageAppender, LineageDurability};

/// One model run of one request: the primary run that answered it, or a shadow run beside it.
///
/// `model` and `version` are plain values, not references into the registry: a record is written
/// without looking the version up, and it outlives the version's archival.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineageRecord {
    /// The request's id, as the gateway assigned or received it. A request has one primary
    /// record and zero or more shadow records under the same id.
    pub request_id: String,
    /// When the request arrived, RFC 3339 UTC with milliseconds (the registry's format).
    /// Invariant: the same instant as `at_ms`; `new` and `stamped_at` keep them in step.
    pub at: String,
    /// `at` in unix milliseconds; queries range and order by it.
    pub at_ms: i64,
    /// Model name.
    pub model: String,
    /// Version number that ran.
    pub version: u32,
    /// sha256 of the artifact that ran (lowercase hex), so the record stands without the registry.
    pub sha256: String,
    /// How the version was chosen: one of the `ROUTE_*` constants (`champion`, `challenger`,
    /// `backup`, `pinned`, `shadow`, `default`). Only `shadow` has a meaning to the store: it
    /// marks a run that did not answer the request.
    pub route: String,
    /// Why that route, for people: `"weight bucket 37 of 100"`, `"sticky key 9f2c…"`,
    /// `"pinned by path"`, `"backup after trip"`.
    pub reason: String,
    /// Hash of the sticky routing key, when one decided the route (never the key itself).
    pub sticky_key_hash: Option<String>,
    /// sha256 of the request's input tensors, when the gateway computed it.
    pub input_sha256: Option<String>,
    /// Microseconds spent queued before the run. Stored as BIGINT: values above `i64::MAX`
    /// (292,000 years) are stored as `i64::MAX`.
    pub queue_us: u64,
    /// Microseconds of model compute. Stored like `queue_us`.
    pub compute_us: u64,
    /// Microseconds from arrival to response. Stored like `queue_us`.
    pub total_us: u64,
    /// The HTTP status the run ended with. The schema refuses anything outside 100–599, and
    /// with it the whole batch.
    pub status: u16,
    /// The class of error the run ended with (`"timeout"`, `"overloaded"`, …), if it failed.
    pub error_class: Option<String>,
    /// Shadow runs only: the version of the primary run they shadowed.
    pub shadow_of: Option<u32>,
    /// Shadow runs only: figures comparing their output with the primary's, as the gateway
    /// computed them (e.g. `{"max_abs_diff": 0.002, "argmax_agree": true}`).
    pub comparison: Option<serde_json::Value>,
    /// A compact summary of what the run predicted, for judging feedback later (e.g.
    /// `{"label": 3}` or `{"value": 0.42}`), when the gateway could summarise it.
    #[serde(default)]
    pub prediction: Option<serde_json::Value>,
    /// Runs of a remote version only: where the request was sent and which version the
    /// upstream says answered (`{"url": …, "model": …, "version": …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<serde_json::Value>,
    /// The request's slice (`[model.slices]`: its header's value), when the model has slices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<String>,
    /// The gateway that answered (`[server] replica_id`); `None` on records written before
    /// schema 9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// Filters for `Registry::query_lineage`. Every filter is optional; `Default` matches everything
/// (up to the default limit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineageQuery {
    /// Only records of this model.
    pub model: Option<String>,
    /// Only records of this version number. Needs `model`: version numbers are per model.
    pub version: Option<u32>,
    /// Only records with `at_ms >= since_ms`.
    pub since_ms: Option<i64>,
    /// Only records with `at_ms <= until_ms`. Must not be before `since_ms`.
    pub until_ms: Option<i64>,
    /// At most this many records, the oldest first: 1 to `MAX_LIMIT`, `DEFAULT_LIMIT` if unset.
    pub limit: Option<u32>,
}

/// Everything known about how one request was answered: its lineage records and the version
/// that answered it, with that version's provenance and history up to the request.
#[derive(Debug, Clone, Serialize)]
pub struct LineageChain {
    /// The request's records: the primary first (every non-shadow record, in the order they
    /// were written), then shadow runs. Never empty.
    pub records: Vec<LineageRecord>,
    /// The primary's version as it is now (current stage and aliases); `None` when the registry
    /// no longer holds that model or version.
    pub version: Option<VersionRecord>,
    /// The provenance manifest registered with that version, if there was one.
    pub provenance: Option<Manifest>,
    /// Events recorded against that version up to the request's `at_ms` (inclusive), oldest
    /// first: `registered`, stage changes, alias moves onto it, and any kinds given to
    /// `Registry::record_event` (promotions, rollbacks, guard trips). An alias moved away from
    /// the version is recorded against the version it moved to, so it is not here. Empty when
    /// `version` is `None`.
    pub events: Vec<Event>,
}

/// What one version's lineage says about the traffic it served: how much, by which routes, how
/// fast and how often it failed. From `Registry::lineage_stats`; a model card's live figures.
///
/// Only primary records (the runs that answered) count as traffic; shadow runs are counted apart.
/// Figures that need at least one request (`error_rate`, the percentiles, the time span) are
/// `None` when there was none, so "no traffic" never reads as "zero latency, zero errors".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LineageStats {
    /// Primary records: requests this version answered.
    pub requests: u64,
    /// Primary records with `status >= 500` (server-side failures).
    pub errors: u64,
    /// Primary records with a 4xx status: refused as the client's error, not served by the
    /// version (counted in `requests`, left out of `error_rate`, as the guard does).
    pub client_errors: u64,
    /// `errors / (requests - client_errors)`; `None` when nothing was served.
    pub error_rate: Option<f64>,
    /// Primary records per route (`champion`, `challenger`, `backup`, `pinned`, `default`, …).
    pub routes: BTreeMap<String, u64>,
    /// Shadow runs of this version (not traffic served: their outputs answered nobody).
    pub shadow_runs: u64,
    /// Median `total_us` of the primary records (nearest rank); `None` without requests.
    pub p50_us: Option<u64>,
    /// 99th percentile `total_us` (nearest rank: the smallest value that at least 99% of the
    /// records do not exceed); `None` without requests.
    pub p99_us: Option<u64>,
    /// `at` of the first primary record; `None` without requests.
    pub first_at: Option<String>,
    /// `at` of the last primary record; `None` without requests.
    pub last_at: Option<String>,
}

impl LineageRecord {
    /// Route of the version the `champion` alias points at.
    pub const ROUTE_CHAMPION: &'static str = "champion";
    /// Route of the challenger in a weighted or sticky split.
    pub const ROUTE_CHALLENGER: &'static str = "challenger";
    /// Route taken when the preferred version was unavailable (e.g. its guard tripped).
    pub const ROUTE_BACKUP: &'static str = "backup";
    /// Route of a version the request named itself (e.g. in its path).
    pub const ROUTE_PINNED: &'static str = "pinned";
    /// A shadow run: it ran beside the primary and did not answer the request.
    pub const ROUTE_SHADOW: &'static str = "shadow";
    /// Route of the model's default version when no other rule applied.
    pub const ROUTE_DEFAULT: &'static str = "default";

    /// A record stamped now (`at` / `at_ms` in the registry's format), status 200, zero timings
    /// and no optional fields; set the rest on the value. Use `stamped_at` to stamp the
    /// request's arrival instead. Cost: one clock read and one small format.
    pub fn new(
        request_id: impl Into<String>,
        model: impl Into<String>,
        version: u32,
        sha256: impl Into<String>,
        route: impl Into<String>,
        reason: impl Into<String>,
    ) -> LineageRecord {
        LineageRecord::new_at(SystemTime::now(), request_id, model, version, sha256, route, reason)
    }

    /// `new`, stamped at `moment` (truncated to the millisecond and clamped to 1970–9999, as the
    /// registry's timestamps are) rather than now: one clock format instead of two.
    pub fn new_at(
        moment: SystemTime,
        request_id: impl Into<String>,
        model: impl Into<String>,
        version: u32,
        sha256: impl Into<String>,
        route: impl Into<String>,
        reason: impl Into<String>,
    ) -> LineageRecord {
        let now = Timestamp::at(moment);
        LineageRecord {
            request_id: request_id.into(),
            at: now.text,
            at_ms: now.ms,
            model: model.into(),
            version,
            sha256: sha256.into(),
            route: route.into(),
            reason: reason.into(),
            sticky_key_hash: None,
            input_sha256: None,
            queue_us: 0,
            compute_us: 0,
            total_us: 0,
            status: 200,
            error_class: None,
            shadow_of: None,
            comparison: None,
            prediction: None,
            upstream: None,
            slice: None,
            replica: None,
        }
    }

    /// The record stamped at `moment` instead: `at` and `at_ms` both set, truncated to the
    /// millisecond (and clamped to 1970–9999, as the registry's timestamps are).
    pub fn stamped_at(mut self, moment: SystemTime) -> LineageRecord {
        let stamp = Timestamp::at(moment);
        self.at = stamp.text;
        self.at_ms = stamp.ms;
        self
    }

    /// Whether the store accepts this record: `Err` says why not. `LineageAppender::append`
    /// refuses a batch holding such a record; a writer that must not lose the rest can check
    /// each record first and drop only the refused ones.
    pub fn check(&self) -> Result<(), StoreError> {
        if !(100..=599).contains(&self.status) {
            return Err(StoreError::InvalidLineageRecord {
                request_id: self.request_id.clone(),
                reason: format!("status {} is outside 100–599", self.status),
            });
        }
        Ok(())
    }

    /// Whether this is a shadow run (`route == "shadow"`), i.e. not the one that answered.
    pub fn is_shadow(&self) -> bool {
        self.route == LineageRecord::ROUTE_SHADOW
    }

    fn from_row(row: LineageRow) -> Result<LineageRecord, StoreError> {
        let what = |field: &str| format!("lineage {field} of request '{}'", row.request_id);
        let duration = |value: i64, field: &str| {
            u64::try_from(value).map_err(|_| StoreError::decode(format!("{} {value} is negative", what(field))))
        };
        let queue_us = duration(row.queue_us, "queue_us")?;
        let compute_us = duration(row.compute_us, "compute_us")?;
        let total_us = duration(row.total_us, "total_us")?;
        let version = to_u32(row.version, &what("version"))?;
        let status = u16::try_from(row.status)
            .map_err(|_| StoreError::decode(format!("{} {} out of range", what("status"), row.status)))?;
        let shadow_of = row
            .shadow_of
            .as_deref()
            .map(|text| {
                text.parse::<u32>().map_err(|err| StoreError::decode(format!("{} {text:?}: {err}", what("shadow_of"))))
            })
            .transpose()?;
        let comparison = row
            .comparison_json
            .as_deref()
            .map(|json| {
                serde_json::from_str(json).map_err(|err| StoreError::decode(format!("{}: {err}", what("comparison"))))
            })
            .transpose()?;
        let prediction = row
            .prediction_json
            .as_deref()
            .map(|json| {
                serde_json::from_str(json).map_err(|err| StoreError::decode(format!("{}: {err}", what("prediction"))))
            })
            .transpose()?;
        let upstream = row
            .upstream_json
            .as_deref()
            .map(|json| {
                serde_json::from_str(json).map_err(|err| StoreError::decode(format!("{}: {err}", what("upstream"))))
            })
            .transpose()?;
        Ok(LineageRecord {
            upstream,
            slice: row.slice,
            replica: row.replica,
            request_id: row.request_id,
            at: row.at,
            at_ms: row.at_ms,
            model: row.model,
            version,
            sha256: row.sha256,
            route: row.route,
            reason: row.reason,
            sticky_key_hash: row.sticky_key_hash,
            input_sha256: row.input_sha256,
            queue_us,
            compute_us,
            total_us,
            status,
            error_class: row.error_class,
            shadow_of,
            comparison,
            prediction,
        })
    }
}

impl LineageQuery {
    /// The limit when none is given.
    pub const DEFAULT_LIMIT: u32 = 1000;
    /// The largest limit accepted.
    pub const MAX_LIMIT: u32 = 100_000;

    /// The filters as SQL values, or `InvalidQuery` saying which rule the query breaks.
    fn filter(&self) -> Result<LineageFilter<'_>, StoreError> {
        let refuse = |reason: String| Err(StoreError::InvalidQuery { reason });
        let limit = self.limit.unwrap_or(LineageQuery::DEFAULT_LIMIT);
        if !(1..=LineageQuery::MAX_LIMIT).contains(&limit) {
            return refuse(format!("limit {limit} is outside 1..={}", LineageQuery::MAX_LIMIT));
        }
        if let (Some(since), Some(until)) = (self.since_ms, self.until_ms)
            && since > until
        {
            return refuse(format!("since_ms {since} is after until_ms {until}"));
        }
        if self.model.is_none()
            && let Some(version) = self.version
        {
            return refuse(format!("version {version} given without a model; version numbers are per model"));
        }
        Ok(LineageFilter {
            model: self.model.as_deref(),
            version: self.version.map(i64::from),
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            limit: i64::from(limit),
        })
    }
}

/// Lineage lives on `Registry` (reached with `ModelStore::registry()`): same pool, same database,
/// so a chain reads its records and the versions they name in one snapshot.
impl Registry {
    /// Appends a batch of lineage records in ONE write transaction and returns how many rows were
    /// written (`batch.len()`), through a `LineageAppender` opened for the call on a blocking
    /// thread. All or nothing, as `LineageAppender::append`. For a steady stream of batches (the
    /// gateway's writer) keep one appender on a thread of its own instead: this opens a
    /// connection per call.
    ///
    /// Errors: `Sqlite`, as `append`. Cost: opening a connection, then as `append`.
    pub async fn insert_lineage(&self, batch: &[LineageRecord]) -> Result<usize, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let registry = self.clone();
        let batch = batch.to_vec();
        tokio::task::spawn_blocking(move || registry.lineage_appender(LineageDurability::Full)?.append(&batch))
            .await
            .map_err(|e| StoreError::decode(format!("lineage write task failed: {e}")))?
    }

    /// A request's lineage records: the primary first (non-shadow records in the order written),
    /// then shadow runs. Empty if the request has none.
    ///
    /// Errors: `Database` (including a stored row this code cannot decode). Cost: one indexed
    /// lookup by request id, then parsing the batch rows that hold its records.
    pub async fn lineage(&self, request_id: &str) -> Result<Vec<LineageRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let rows = queries::lineage_of_request(&mut conn, request_id).await?;
        rows.into_iter().map(LineageRecord::from_row).collect()
    }

    /// How a request was answered: its records (as `lineage`), and, looked up by the primary
    /// record's (model, version), that version as it is now, its provenance and its events up to
    /// the request's `at_ms`. If the registry no longer holds that version, `version` and
    /// `provenance` are `None` and `events` is empty; the records are still returned. Everything
    /// is read in one snapshot.
    ///
    /// Errors: `LineageNotFound` if no record names `request_id`; `Database`. Cost: one read
    /// transaction of five indexed lookups.
    pub async fn lineage_chain(&self, request_id: &str) -> Result<LineageChain, StoreError> {
        let mut tx = self.begin_read().await?;
        let records = queries::lineage_of_request(&mut tx, request_id)
            .await?
            .into_iter()
            .map(LineageRecord::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let Some(primary) = records.first() else {
            return Err(StoreError::LineageNotFound { request_id: request_id.to_owned() });
        };
        let history = version_history(&mut tx, &primary.model, primary.version, primary.at_ms).await?;
        tx.commit().await?;
        Ok(match history {
            Some(history) => LineageChain {
                records,
                version: Some(history.version),
                provenance: history.provenance,
                events: history.events,
            },
            None => LineageChain { records, version: None, provenance: None, events: Vec::new() },
        })
    }

    /// Records matching `query`, ordered by `at_ms` then insertion order, at most its limit.
    ///
    /// Errors: `InvalidQuery` before any I/O if the limit is 0 or above `LineageQuery::MAX_LIMIT`,
    /// `since_ms` is after `until_ms`, or a version is given without a model; `Database`.
    /// Cost: one indexed range scan of batch rows (by model, version and time, or by time),
    /// parsing the records of each, plus a sort.
    pub async fn query_lineage(&self, query: &LineageQuery) -> Result<Vec<LineageRecord>, StoreError> {
        let filter = query.filter()?;
        let mut conn = self.pool().acquire().await?;
        let rows = queries::lineage_matching(&mut conn, &filter).await?;
        rows.into_iter().map(LineageRecord::from_row).collect()
    }

    /// How many lineage records are stored, of `model` or of all models; with `primary_only`,
    /// shadow runs are not counted, so the result is the number of answered runs.
    ///
    /// Errors: `Database`. Cost: a sum of the batch rows' record counts (an index scan for a
    /// model, every batch row otherwise), without parsing records; meant for checks and tests,
    /// not per request.
    pub async fn count_lineage(&self, model: Option<&str>, primary_only: bool) -> Result<u64, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let count = queries::count_lineage(&mut conn, model, primary_only).await?;
        u64::try_from(count).map_err(|_| StoreError::decode(format!("lineage count {count} is negative")))
    }

    /// Aggregate figures of `model` v`version`'s lineage, all time: requests answered (primary
    /// records) and their split by route, server errors and the error rate, p50 / p99 of
    /// `total_us`, the time span, and shadow runs apart. Read in one snapshot. The version is
    /// not looked up in the registry: records outlive versions, and a version that never served
    /// gets `requests == 0` with `None` for every measured figure.
    ///
    /// Errors: `Database` (including a stored record this code cannot decode, or a negative
    /// count or duration). Cost: one read transaction that parses each of the version's batch
    /// rows once (fetched one at a time), keeping 8 bytes per primary record for the
    /// percentiles; meant for reports such as a model card, not per request.
    pub async fn lineage_stats(&self, model: &str, version: u32) -> Result<LineageStats, StoreError> {
        let mut tx = self.begin_read().await?;
        let mut tally = StatsTally::default();
        for batch_id in queries::lineage_batch_ids(&mut tx, model, i64::from(version)).await? {
            let undecodable = |what: String| {
                StoreError::decode(format!("lineage batch row {batch_id} of {model} v{version}: {what}"))
            };
            let body = queries::lineage_batch_body(&mut tx, batch_id).await?;
            let records: Vec<StatFields<'_>> = serde_json::from_str(&body).map_err(|e| undecodable(e.to_string()))?;
            for record in records {
                tally.add(record).map_err(undecodable)?;
            }
        }
        tx.commit().await?;
        Ok(tally.finish())
    }
}

/// The fields of a stored record (migration 0006's array, 0009's elements after) that `lineage_stats` reads; the rest
/// are skipped unparsed.
#[derive(Deserialize)]
struct StatFields<'a>(
    IgnoredAny,
    /// at_ms
    i64,
    /// route
    #[serde(borrow)]
    Cow<'a, str>,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    /// total_us
    i64,
    /// status
    i64,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    /// upstream (migration 0009): absent from records written before it.
    #[serde(default)]
    IgnoredAny,
    /// slice (migration 0009): likewise.
    #[serde(default)]
    IgnoredAny,
    /// replica (migration 0009): likewise.
    #[serde(default)]
    IgnoredAny,
);

/// `lineage_stats` while it reads.
#[derive(Default)]
struct StatsTally {
    errors: u64,
    client_errors: u64,
    routes: BTreeMap<String, u64>,
    shadow_runs: u64,
    /// `total_us` of every primary record.
    totals: Vec<u64>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
}

impl StatsTally {
    fn add(
        &mut self,
        StatFields(_, at_ms, route, .., total_us, status, _, _, _, _, _, _, _): StatFields<'_>,
    ) -> Result<(), String> {
        if route == LineageRecord::ROUTE_SHADOW {
            self.shadow_runs += 1;
            return Ok(());
        }
        let total_us = u64::try_from(total_us).map_err(|_| format!("total_us {total_us} is negative"))?;
        self.totals.push(total_us);
        self.errors += u64::from(status >= 500);
        self.client_errors += u64::from((400..500).contains(&status));
        match self.routes.get_mut(route.as_ref()) {
            Some(n) => *n += 1,
            None => {
                self.routes.insert(route.into_owned(), 1);
            }
        }
        self.first_ms = Some(self.first_ms.map_or(at_ms, |t| t.min(at_ms)));
        self.last_ms = Some(self.last_ms.map_or(at_ms, |t| t.max(at_ms)));
        Ok(())
    }

    fn finish(mut self) -> LineageStats {
        let requests = self.totals.len() as u64;
        let mut percentile = |percent| {
            let rank = nearest_rank(requests, percent)? as usize;
            Some(*self.totals.select_nth_unstable(rank).1)
        };
        let (p50_us, p99_us) = (percentile(50), percentile(99));
        LineageStats {
            requests,
            errors: self.errors,
            client_errors: self.client_errors,
            error_rate: {
                let served = requests - self.client_errors;
                (served > 0).then(|| self.errors as f64 / served as f64)
            },
            routes: self.routes,
            shadow_runs: self.shadow_runs,
            p50_us,
            p99_us,
            first_at: self.first_ms.map(ms_text),
            last_at: self.last_ms.map(ms_text),
        }
    }
}

/// The 0-based rank of the `percent`th percentile (1–100) of `n` sorted values by the nearest-rank
/// method: the `ceil(percent / 100 * n)`th smallest. `None` when `n` is 0.
fn nearest_rank(n: u64, percent: u64) -> Option<u64> {
    (n > 0).then(|| percent.clamp(1, 100).saturating_mul(n).div_ceil(100).max(1) - 1)
}

/// Unix milliseconds as the registry writes times (RFC 3339 UTC with milliseconds).
fn ms_text(ms: i64) -> String {
    let since_epoch = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    Timestamp::at(SystemTime::UNIX_EPOCH + since_epoch).text
}

/// Durations are unsigned in Rust and BIGINT in SQL; beyond `i64::MAX` µs is a broken clock, and
/// clamping keeps the record rather than failing its batch.
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
