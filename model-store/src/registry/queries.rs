//! Every SQL statement of the registry, in one place. Portable SQL (runs on SQLite and
//! PostgreSQL): `$n` placeholders, BIGINT read as i64, `RETURNING`, `ON CONFLICT`.
//!
//! Only `Conn`, `BEGIN_WRITE` and the migrations directory name SQLite; a PostgreSQL backend
//! swaps those and keeps the statements.

use sqlx::{FromRow, SqliteConnection};

use super::records::Timestamp;

/// The connection type the statements run on.
pub(super) type Conn = SqliteConnection;

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
    pub(super) stage: String,
    pub(super) created_at: String,
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

/// The `VersionRow` columns of `versions v`, for `concat!` into static statements.
macro_rules! version_columns {
    () => {
        "v.id, v.number, v.sha256, v.size, v.signature_json, v.stage, v.created_at"
    };
}

/// The `EventRow` columns of `events`, for `concat!` into static statements.
macro_rules! event_columns {
    () => {
        "id, version_number, kind, detail_json, actor, at"
    };
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
            (model_id, number, sha256, size, signature_json, stage, created_at, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(row.model_id)
    .bind(row.number)
    .bind(row.sha256)
    .bind(row.size)
    .bind(row.signature_json)
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
