//! Every SQL statement of the registry and of lineage, in one place. Portable SQL (runs on
//! SQLite and PostgreSQL): `$n` placeholders, BIGINT read as i64, `RETURNING`, `ON CONFLICT`.
//!
//! Only `Conn`, `Db`, `BEGIN_WRITE` and the migrations directory name SQLite; a PostgreSQL
//! backend swaps those and keeps the statements (built ones get `$n` from `QueryBuilder`).

use sqlx::{FromRow, QueryBuilder, Sqlite, SqliteConnection};

use super::records::Timestamp;

/// The connection type the statements run on.
pub(crate) type Conn = SqliteConnection;

/// The database the built statements (`QueryBuilder`) are written for.
type Db = Sqlite;

/// Opens a write transaction. SQLite's `BEGIN IMMEDIATE` takes the write lock up front (waiting
/// up to the busy timeout), so a read-then-write transaction cannot fail halfway on a lock
/// upgrade and two writers never interleave. PostgreSQL would use plain `BEGIN` and rely on the
/// unique constraints plus the caller's retry.
pub(super) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// A `models` row.
#[derive(Debug, FromRow)]
pub(super) struct ModelRow {
    pub(super) id: i64,
    pub(super) name: String,
}

/// A model with its version count and highest version number.
#[derive(Debug, FromRow)]
pub(super) struct ModelSummaryRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) created_at: String,
    pub(super) versions: i64,
    pub(super) latest: i64,
}

/// A `versions` row.
#[derive(Debug, FromRow)]
pub(super) struct VersionRow {
    pub(super) id: i64,
    pub(super) number: i64,
    pub(super) sha256: String,
    pub(super) size: i64,
    pub(super) signature_json: String,
    pub(super) upstream_json: Option<String>,
    pub(super) stage: String,
    pub(super) created_at: String,
    pub(super) collected_at: Option<String>,
}

/// An alias with the number of the version it points at.
#[derive(Debug, FromRow)]
pub(super) struct AliasRow {
    pub(super) model_id: i64,
    pub(super) name: String,
    pub(super) number: i64,
}

/// An `events` row.
#[derive(Debug, FromRow)]
pub(super) struct EventRow {
    pub(super) id: i64,
    pub(super) version_number: Option<i64>,
    pub(super) kind: String,
    pub(super) detail_json: String,
    pub(super) actor: String,
    pub(super) at: String,
}

/// What `insert_version` writes.
#[derive(Debug)]
pub(super) struct NewVersionRow<'a> {
    pub(super) model_id: i64,
    pub(super) number: i64,
    pub(super) sha256: &'a str,
    pub(super) size: i64,
    pub(super) signature_json: &'a str,
    pub(super) upstream_json: Option<&'a str>,
    pub(super) stage: &'a str,
    pub(super) created: &'a Timestamp,
}

/// What `insert_event` writes.
#[derive(Debug)]
pub(super) struct NewEventRow<'a> {
    pub(super) model_id: i64,
    pub(super) version_number: Option<i64>,
    pub(super) kind: &'a str,
    pub(super) detail_json: &'a str,
    pub(super) actor: &'a str,
    pub(super) at: &'a Timestamp,
}

/// A `lineage` row as stored; `crate::lineage` converts it to and from `LineageRecord`.
#[derive(Debug, FromRow)]
pub(crate) struct LineageRow {
    pub(crate) request_id: String,
    pub(crate) at: String,
    pub(crate) at_ms: i64,
    pub(crate) model: String,
    pub(crate) version: i64,
    pub(crate) sha256: String,
    pub(crate) route: String,
    pub(crate) reason: String,
    pub(crate) sticky_key_hash: Option<String>,
    pub(crate) input_sha256: Option<String>,
    pub(crate) queue_us: i64,
    pub(crate) compute_us: i64,
    pub(crate) total_us: i64,
    pub(crate) status: i64,
    pub(crate) error_class: Option<String>,
    pub(crate) shadow_of: Option<String>,
    pub(crate) comparison_json: Option<String>,
    pub(crate) prediction_json: Option<String>,
    pub(crate) upstream_json: Option<String>,
    pub(crate) slice: Option<String>,
    pub(crate) replica: Option<String>,
}

/// The filters of `lineage_matching`, already validated; `None` = no filter.
#[derive(Debug)]
pub(crate) struct LineageFilter<'a> {
    pub(crate) model: Option<&'a str>,
    pub(crate) version: Option<i64>,
    pub(crate) since_ms: Option<i64>,
    pub(crate) until_ms: Option<i64>,
    pub(crate) limit: i64,
}

/// The `VersionRow` columns of `versions v`, for `concat!` into static statements.
macro_rules! version_columns {
    () => {
        "v.id, v.number, v.sha256, v.size, v.signature_json, v.upstream_json, v.stage, v.created_at, v.collected_at"
    };
}

/// The `EventRow` columns of `events`, for `concat!` into static statements.
macro_rules! event_columns {
    () => {
        "id, version_number, kind, detail_json, actor, at"
    };
}

/// The `LineageRow` columns read from a `lineage_batches` row `b` and one record `r` of its
/// body (`json_each(b.body)`): the same expressions as the `lineage` view (migrations 0006, 0009), which
/// `the_lineage_view_reads_what_the_queries_read` keeps in step.
macro_rules! lineage_columns {
    () => {
        "r.value ->> 0 AS request_id, \
         strftime('%Y-%m-%dT%H:%M:%S', (r.value ->> 1) / 1000, 'unixepoch') \
             || printf('.%03dZ', (r.value ->> 1) % 1000) AS at, \
         r.value ->> 1 AS at_ms, b.model AS model, b.version AS version, b.sha256 AS sha256, \
         r.value ->> 2 AS route, r.value ->> 3 AS reason, r.value ->> 4 AS sticky_key_hash, \
         r.value ->> 5 AS input_sha256, r.value ->> 6 AS queue_us, r.value ->> 7 AS compute_us, \
         r.value ->> 8 AS total_us, r.value ->> 9 AS status, r.value ->> 10 AS error_class, \
         CAST(r.value ->> 11 AS TEXT) AS shadow_of, r.value ->> 12 AS comparison_json, \
         r.value ->> 13 AS prediction_json, r.value ->> 14 AS upstream_json, \
         r.value ->> 15 AS slice, r.value ->> 16 AS replica"
    };
}

/// The records of every batch row: `b` the row, `r` one record of it (`r.key` its position).
macro_rules! lineage_records {
    () => {
        " FROM lineage_batches AS b, json_each(b.body) AS r"
    };
}

/// One `lineage_batches` row, its values numbered `?1`–`?8`.
pub(crate) const INSERT_LINEAGE_BATCH: &str = "INSERT INTO lineage_batches \
     (model, version, sha256, first_ms, last_ms, records, shadow_records, body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// `rows` `lineage_requests` rows in one statement, row `i`'s request id at `?(2i + 1)` and its
/// batch id at `?(2i + 2)`. A repeat of a (request id, batch) pair is ignored.
pub(crate) fn insert_lineage_requests(rows: usize) -> String {
    format!("INSERT OR IGNORE INTO lineage_requests (request_id, batch_id) VALUES {}", vec!["(?, ?)"; rows].join(", "))
}

pub(super) async fn model_by_name(conn: &mut Conn, name: &str) -> Result<Option<ModelRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, name FROM models WHERE name = $1").bind(name).fetch_optional(conn).await
}

/// Inserts a model row and returns its id; a concurrent insert of the same name fails with a
/// unique violation (only possible without `BEGIN_WRITE`'s lock, i.e. on PostgreSQL).
pub(super) async fn insert_model(conn: &mut Conn, name: &str, created: &Timestamp) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO models (name, created_at, created_ms) VALUES ($1, $2, $3) RETURNING id")
        .bind(name)
        .bind(&created.text)
        .bind(created.ms)
        .fetch_one(conn)
        .await
}

pub(super) async fn model_summaries(conn: &mut Conn) -> Result<Vec<ModelSummaryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.id, m.name, m.created_at, \
                COUNT(v.id) AS versions, COALESCE(MAX(v.number), 0) AS latest \
         FROM models m LEFT JOIN versions v ON v.model_id = m.id \
         GROUP BY m.id, m.name, m.created_at \
         ORDER BY m.name",
    )
    .fetch_all(conn)
    .await
}

pub(super) async fn all_aliases(conn: &mut Conn) -> Result<Vec<AliasRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.model_id, a.name, v.number \
         FROM aliases a JOIN versions v ON v.id = a.version_id \
         ORDER BY a.model_id, a.name",
    )
    .fetch_all(conn)
    .await
}

pub(super) async fn aliases_of_model(conn: &mut Conn, model_id: i64) -> Result<Vec<AliasRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.model_id, a.name, v.number \
         FROM aliases a JOIN versions v ON v.id = a.version_id \
         WHERE a.model_id = $1 ORDER BY a.name",
    )
    .bind(model_id)
    .fetch_all(conn)
    .await
}

pub(super) async fn aliases_of_version(conn: &mut Conn, version_id: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM aliases WHERE version_id = $1 ORDER BY name")
        .bind(version_id)
        .fetch_all(conn)
        .await
}

pub(super) async fn versions_of(conn: &mut Conn, model_id: i64) -> Result<Vec<VersionRow>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", version_columns!(), " FROM versions v WHERE v.model_id = $1 ORDER BY v.number"))
        .bind(model_id)
        .fetch_all(conn)
        .await
}

pub(super) async fn version_by_number(
    conn: &mut Conn,
    model_id: i64,
    number: i64,
) -> Result<Option<VersionRow>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", version_columns!(), " FROM versions v WHERE v.model_id = $1 AND v.number = $2"))
        .bind(model_id)
        .bind(number)
        .fetch_optional(conn)
        .await
}

pub(super) async fn version_by_sha256(
    conn: &mut Conn,
    model_id: i64,
    sha256: &str,
) -> Result<Option<VersionRow>, sqlx::Error> {
    sqlx::query_as(concat!("SELECT ", version_columns!(), " FROM versions v WHERE v.model_id = $1 AND v.sha256 = $2"))
        .bind(model_id)
        .bind(sha256)
        .fetch_optional(conn)
        .await
}

pub(super) async fn latest_version(conn: &mut Conn, model_id: i64) -> Result<Option<VersionRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        version_columns!(),
        " FROM versions v WHERE v.model_id = $1 ORDER BY v.number DESC LIMIT 1"
    ))
    .bind(model_id)
    .fetch_optional(conn)
    .await
}

pub(super) async fn alias_target(
    conn: &mut Conn,
    model_id: i64,
    alias: &str,
) -> Result<Option<VersionRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        version_columns!(),
        " FROM aliases a JOIN versions v ON v.id = a.version_id \
          WHERE a.model_id = $1 AND a.name = $2"
    ))
    .bind(model_id)
    .bind(alias)
    .fetch_optional(conn)
    .await
}

/// The number the next version of the model gets. Only meaningful inside a write transaction.
pub(super) async fn next_version_number(conn: &mut Conn, model_id: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE model_id = $1")
        .bind(model_id)
        .fetch_one(conn)
        .await
}

/// Inserts a version and returns its id. Fails with a unique violation if the number or the
/// sha256 is already taken for the model.
pub(super) async fn insert_version(conn: &mut Conn, row: NewVersionRow<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO versions \
            (model_id, number, sha256, size, signature_json, upstream_json, stage, created_at, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(row.model_id)
    .bind(row.number)
    .bind(row.sha256)
    .bind(row.size)
    .bind(row.signature_json)
    .bind(row.upstream_json)
    .bind(row.stage)
    .bind(&row.created.text)
    .bind(row.created.ms)
    .fetch_one(conn)
    .await
}

pub(super) async fn insert_provenance(
    conn: &mut Conn,
    version_id: i64,
    manifest_json: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO provenance (version_id, manifest_json) VALUES ($1, $2)")
        .bind(version_id)
        .bind(manifest_json)
        .execute(conn)
        .await
        .map(drop)
}

pub(super) async fn provenance_of(conn: &mut Conn, version_id: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT manifest_json FROM provenance WHERE version_id = $1")
        .bind(version_id)
        .fetch_optional(conn)
        .await
}

pub(super) async fn update_stage(conn: &mut Conn, version_id: i64, stage: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE versions SET stage = $1 WHERE id = $2")
        .bind(stage)
        .bind(version_id)
        .execute(conn)
        .await
        .map(drop)
}

/// Points the alias at the version, creating it or moving it.
pub(super) async fn upsert_alias(
    conn: &mut Conn,
    model_id: i64,
    alias: &str,
    version_id: i64,
    updated: &Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO aliases (model_id, name, version_id, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (model_id, name) \
         DO UPDATE SET version_id = excluded.version_id, updated_at = excluded.updated_at",
    )
    .bind(model_id)
    .bind(alias)
    .bind(version_id)
    .bind(&updated.text)
    .execute(conn)
    .await
    .map(drop)
}

pub(super) async fn delete_alias(conn: &mut Conn, model_id: i64, alias: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM aliases WHERE model_id = $1 AND name = $2")
        .bind(model_id)
        .bind(alias)
        .execute(conn)
        .await
        .map(drop)
}

/// Appends an event and returns its id.
pub(super) async fn insert_event(conn: &mut Conn, row: NewEventRow<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO events (model_id, version_number, kind, detail_json, actor, at, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(row.model_id)
    .bind(row.version_number)
    .bind(row.kind)
    .bind(row.detail_json)
    .bind(row.actor)
    .bind(&row.at.text)
    .bind(row.at.ms)
    .fetch_one(conn)
    .await
}

/// The model's events, oldest first; with a version, only that version's.
pub(super) async fn events_of(
    conn: &mut Conn,
    model_id: i64,
    version_number: Option<i64>,
) -> Result<Vec<EventRow>, sqlx::Error> {
    match version_number {
        None => {
            sqlx::query_as(concat!("SELECT ", event_columns!(), " FROM events", " WHERE model_id = $1 ORDER BY id"))
                .bind(model_id)
                .fetch_all(conn)
                .await
        }
        Some(number) => {
            sqlx::query_as(concat!(
                "SELECT ",
                event_columns!(),
                " FROM events",
                " WHERE model_id = $1 AND version_number = $2 ORDER BY id"
            ))
            .bind(model_id)
            .bind(number)
            .fetch_all(conn)
            .await
        }
    }
}

/// A version's events recorded at or before `until_ms`, oldest first.
pub(super) async fn events_of_version_until(
    conn: &mut Conn,
    model_id: i64,
    version_number: i64,
    until_ms: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events",
        " WHERE model_id = $1 AND version_number = $2 AND at_ms <= $3 ORDER BY id"
    ))
    .bind(model_id)
    .bind(version_number)
    .bind(until_ms)
    .fetch_all(conn)
    .await
}

/// A request's lineage rows: every non-shadow row (the primary) first, then shadow runs, each
/// group in write order. Reads only the batch rows `lineage_requests` names.
pub(crate) async fn lineage_of_request(conn: &mut Conn, request_id: &str) -> Result<Vec<LineageRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        lineage_columns!(),
        " FROM lineage_requests AS q JOIN lineage_batches AS b ON b.id = q.batch_id, json_each(b.body) AS r",
        " WHERE q.request_id = $1 AND r.value ->> 0 = $1",
        " ORDER BY CASE WHEN r.value ->> 2 = 'shadow' THEN 1 ELSE 0 END, b.id, r.key"
    ))
    .bind(request_id)
    .fetch_all(conn)
    .await
}

/// Lineage rows matching `filter` (time bounds inclusive), by `at_ms` then write order, at most
/// `filter.limit`. Batch rows wholly outside the time range are skipped unread, and so are
/// those that cannot hold one of the first `limit` matches. The bound: a batch row whose
/// `last_ms` is in range holds at least one match at or before its `last_ms` (its last record),
/// and all its records match when its whole range is inside the filter's; counting those
/// guaranteed matches over batch rows in `last_ms` order, the row where the count reaches `limit`
/// gives a `last_ms` that no answer is later than, so a batch row starting after it is not read.
pub(crate) async fn lineage_matching(
    conn: &mut Conn,
    filter: &LineageFilter<'_>,
) -> Result<Vec<LineageRow>, sqlx::Error> {
    let since = filter.since_ms.unwrap_or(i64::MIN);
    let until = filter.until_ms.unwrap_or(i64::MAX);
    let mut select =
        QueryBuilder::<Db>::new(concat!("SELECT ", lineage_columns!(), lineage_records!(), " WHERE 1 = 1"));
    push_version_filters(&mut select, "b", filter);
    if filter.since_ms.is_some() {
        select.push(" AND b.last_ms >= ").push_bind(since);
        select.push(" AND r.value ->> 1 >= ").push_bind(since);
    }
    if filter.until_ms.is_some() {
        select.push(" AND b.first_ms <= ").push_bind(until);
        select.push(" AND r.value ->> 1 <= ").push_bind(until);
    }
    select.push(" AND b.first_ms <= COALESCE((SELECT n.last_ms FROM (SELECT last_ms, SUM(CASE WHEN first_ms >= ");
    select.push_bind(since).push(" AND last_ms <= ").push_bind(until);
    select.push(" THEN records ELSE 1 END) OVER (ORDER BY last_ms ROWS UNBOUNDED PRECEDING) AS reach");
    select.push(" FROM lineage_batches AS n WHERE n.last_ms BETWEEN ").push_bind(since).push(" AND ").push_bind(until);
    push_version_filters(&mut select, "n", filter);
    select.push(") AS n WHERE n.reach >= ").push_bind(filter.limit);
    select.push(" ORDER BY n.last_ms LIMIT 1), 9223372036854775807)");
    select.push(" ORDER BY r.value ->> 1, b.id, r.key LIMIT ").push_bind(filter.limit);
    select.build_query_as().fetch_all(conn).await
}

/// The model and version filters of `filter`, on batch row `alias`.
fn push_version_filters(select: &mut QueryBuilder<Db>, alias: &str, filter: &LineageFilter<'_>) {
    if let Some(model) = filter.model {
        select.push(format_args!(" AND {alias}.model = ")).push_bind(model.to_owned());
    }
    if let Some(version) = filter.version {
        select.push(format_args!(" AND {alias}.version = ")).push_bind(version);
    }
}

/// How many lineage rows there are, of one model or all, optionally leaving out shadow runs.
/// Counted from the batch rows' own counts, without reading their records.
pub(crate) async fn count_lineage(
    conn: &mut Conn,
    model: Option<&str>,
    primary_only: bool,
) -> Result<i64, sqlx::Error> {
    let mut count = QueryBuilder::<Db>::new(if primary_only {
        "SELECT COALESCE(SUM(records - shadow_records), 0) FROM lineage_batches WHERE 1 = 1"
    } else {
        "SELECT COALESCE(SUM(records), 0) FROM lineage_batches WHERE 1 = 1"
    });
    if let Some(model) = model {
        count.push(" AND model = ").push_bind(model);
    }
    count.build_query_scalar().fetch_one(conn).await
}

/// A version as garbage collection weighs it: with its model and its collection mark.
#[derive(Debug, FromRow)]
pub(super) struct GcVersionRow {
    pub(super) id: i64,
    pub(super) model_id: i64,
    pub(super) model: String,
    pub(super) number: i64,
    pub(super) sha256: String,
    pub(super) size: i64,
    pub(super) stage: String,
    pub(super) collected_at: Option<String>,
}

/// An alias name with the id of the version it points at.
#[derive(Debug, FromRow)]
pub(super) struct AliasOfVersionRow {
    pub(super) version_id: i64,
    pub(super) name: String,
}

/// A stage change of a version, as garbage collection reads it to date an archival.
#[derive(Debug, FromRow)]
pub(super) struct StageChangeRow {
    pub(super) version_id: i64,
    pub(super) detail_json: String,
    pub(super) at: String,
    pub(super) at_ms: i64,
}

/// Every version of every model, by model name then number.
pub(super) async fn gc_versions(conn: &mut Conn) -> Result<Vec<GcVersionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT v.id, v.model_id, m.name AS model, v.number, v.sha256, v.size, v.stage, v.collected_at \
         FROM versions v JOIN models m ON m.id = v.model_id \
         ORDER BY m.name, v.number",
    )
    .fetch_all(conn)
    .await
}

/// Every alias, as (version id, alias name), by name.
pub(super) async fn aliases_by_version(conn: &mut Conn) -> Result<Vec<AliasOfVersionRow>, sqlx::Error> {
    sqlx::query_as("SELECT version_id, name FROM aliases ORDER BY name").fetch_all(conn).await
}

/// The `kind` events (stage changes) of every archived version whose artifact is still stored,
/// oldest first.
pub(super) async fn stage_changes_of_archived(conn: &mut Conn, kind: &str) -> Result<Vec<StageChangeRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT v.id AS version_id, e.detail_json, e.at, e.at_ms \
         FROM events e JOIN versions v ON v.model_id = e.model_id AND v.number = e.version_number \
         WHERE e.kind = $1 AND v.stage = 'archived' AND v.collected_at IS NULL \
         ORDER BY e.id",
    )
    .bind(kind)
    .fetch_all(conn)
    .await
}

/// Marks a version's artifact collected; returns whether the row changed (it is not marked twice).
pub(super) async fn mark_collected(conn: &mut Conn, version_id: i64, at: &Timestamp) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("UPDATE versions SET collected_at = $1 WHERE id = $2 AND collected_at IS NULL")
        .bind(&at.text)
        .bind(version_id)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

/// Clears a version's collection mark: its artifact is stored again.
pub(super) async fn clear_collected(conn: &mut Conn, version_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE versions SET collected_at = NULL WHERE id = $1").bind(version_id).execute(conn).await.map(drop)
}

/// Digests that only collected versions name: their files may be removed.
pub(super) async fn collected_only_sha256s(conn: &mut Conn) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT sha256 FROM versions WHERE collected_at IS NOT NULL \
         AND sha256 NOT IN (SELECT sha256 FROM versions WHERE collected_at IS NULL) \
         ORDER BY sha256",
    )
    .fetch_all(conn)
    .await
}

/// How many versions (of any model) whose artifact is not collected name this digest.
pub(super) async fn live_references(conn: &mut Conn, sha256: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM versions WHERE sha256 = $1 AND collected_at IS NULL")
        .bind(sha256)
        .fetch_one(conn)
        .await
}

/// A version's collection mark: `None` if there is no such version, `Some(None)` if its artifact
/// is stored.
pub(super) async fn collected_at_of(
    conn: &mut Conn,
    model: &str,
    number: i64,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT v.collected_at FROM versions v JOIN models m ON m.id = v.model_id \
         WHERE m.name = $1 AND v.number = $2",
    )
    .bind(model)
    .bind(number)
    .fetch_optional(conn)
    .await
}

/// The ids of `model` v`version`'s lineage batch rows, in write order.
pub(crate) async fn lineage_batch_ids(conn: &mut Conn, model: &str, version: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM lineage_batches WHERE model = $1 AND version = $2 ORDER BY id")
        .bind(model)
        .bind(version)
        .fetch_all(conn)
        .await
}

/// The JSON body of lineage batch row `id` (migration 0006's layout).
pub(crate) async fn lineage_batch_body(conn: &mut Conn, id: i64) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT body FROM lineage_batches WHERE id = $1").bind(id).fetch_one(conn).await
}

/// A `routing_overrides` row.
#[derive(Debug, FromRow)]
pub(super) struct OverrideRow {
    pub(super) config_fingerprint: String,
    pub(super) routing_json: String,
    pub(super) origin_json: String,
    pub(super) at: String,
    pub(super) event_id: i64,
}

pub(super) async fn routing_override(conn: &mut Conn, model_id: i64) -> Result<Option<OverrideRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT config_fingerprint, routing_json, origin_json, at, event_id FROM routing_overrides \
         WHERE model_id = $1",
    )
    .bind(model_id)
    .fetch_optional(conn)
    .await
}

pub(super) async fn put_routing_override(conn: &mut Conn, model_id: i64, row: &OverrideRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO routing_overrides (model_id, config_fingerprint, routing_json, origin_json, at, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (model_id) DO UPDATE SET config_fingerprint = excluded.config_fingerprint, \
         routing_json = excluded.routing_json, origin_json = excluded.origin_json, at = excluded.at, \
         event_id = excluded.event_id",
    )
    .bind(model_id)
    .bind(&row.config_fingerprint)
    .bind(&row.routing_json)
    .bind(&row.origin_json)
    .bind(&row.at)
    .bind(row.event_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn delete_routing_override(conn: &mut Conn, model_id: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM routing_overrides WHERE model_id = $1")
        .bind(model_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// What `insert_feedback` writes.
#[derive(Debug)]
pub(crate) struct FeedbackRow<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) model: &'a str,
    pub(crate) version: i64,
    pub(crate) kind: &'a str,
    pub(crate) truth_json: String,
    pub(crate) correct: Option<i64>,
    pub(crate) abs_error: Option<f64>,
    pub(crate) sq_error: Option<f64>,
    pub(crate) at: &'a str,
    pub(crate) at_ms: i64,
    pub(crate) slice: Option<&'a str>,
}

/// Inserts one feedback row unless the request already has one; returns whether it did.
pub(crate) async fn insert_feedback(conn: &mut Conn, row: &FeedbackRow<'_>) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO feedback \
            (request_id, model, version, kind, truth_json, correct, abs_error, sq_error, at, at_ms, slice) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(row.request_id)
    .bind(row.model)
    .bind(row.version)
    .bind(row.kind)
    .bind(&row.truth_json)
    .bind(row.correct)
    .bind(row.abs_error)
    .bind(row.sq_error)
    .bind(row.at)
    .bind(row.at_ms)
    .bind(row.slice)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Aggregates of a version's feedback since `since_ms`.
#[derive(Debug, FromRow)]
pub(crate) struct FeedbackSums {
    pub(crate) n: i64,
    pub(crate) judged: i64,
    pub(crate) correct: Option<i64>,
    pub(crate) valued: i64,
    pub(crate) abs_error: Option<f64>,
    pub(crate) sq_error: Option<f64>,
}

pub(crate) async fn feedback_sums(
    conn: &mut Conn,
    model: &str,
    version: i64,
    since_ms: i64,
) -> Result<FeedbackSums, sqlx::Error> {
    sqlx::query_as(
        "SELECT COUNT(*) AS n, COUNT(correct) AS judged, SUM(correct) AS correct, COUNT(abs_error) AS valued, \
         SUM(abs_error) AS abs_error, SUM(sq_error) AS sq_error \
         FROM feedback WHERE model = $1 AND version = $2 AND at_ms >= $3",
    )
    .bind(model)
    .bind(version)
    .bind(since_ms)
    .fetch_one(conn)
    .await
}

/// `(slice, judged, correct)` of a version's labelled feedback, per slice named.
pub(crate) async fn feedback_by_slice(
    conn: &mut Conn,
    model: &str,
    version: i64,
) -> Result<Vec<(String, i64, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT slice, COUNT(correct), SUM(correct) FROM feedback \
         WHERE model = $1 AND version = $2 AND slice IS NOT NULL GROUP BY slice ORDER BY slice",
    )
    .bind(model)
    .bind(version)
    .fetch_all(conn)
    .await
}
