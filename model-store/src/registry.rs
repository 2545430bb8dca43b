//! Version registry over a SQL pool: models, versions, stages, aliases, provenance and the
//! append-only event history. All SQL lives in `queries`; this file holds the rules.
//! Per-request lineage lives in the same database; its methods are in `crate::lineage` (reads go
//! through the pool, the write path through a `LineageAppender` connection of its own).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};

use crate::Registered;
use crate::error::StoreError;
use crate::manifest::Manifest;
use crate::signature::Signature;

mod gc;
mod jobs;
mod names;
mod overrides;
pub(crate) mod queries;
mod records;
mod serving;

pub use gc::{CollectedVersion, GcOptions, GcReport, KeptVersion, RemovedArtifact};
pub use jobs::{Job, NewJob};
pub use overrides::{CHAMPION_ALIAS, ChampionMove, EventSpec, RoutingOverride};
pub use records::{Event, ModelSummary, ParseStageError, Stage, VersionRecord};
pub use serving::{ServedVersion, ServingClaim};

pub use names::check_model_name;
use names::{Selector, check_alias, parse_selector};
use queries::{Conn, EventRow, ModelRow, NewEventRow, NewVersionRow, VersionRow};
pub(crate) use records::Timestamp;

/// The registry's schema migrations, embedded at build time and recorded in `_sqlx_migrations`.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another's lock before failing with "database is locked".
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts at a registration whose version number or model row was taken concurrently.
/// SQLite's `BEGIN IMMEDIATE` serialises writers so this never triggers there; it is what keeps
/// registration correct on PostgreSQL, where two replicas can compute the same `max + 1`.
const REGISTER_ATTEMPTS: u32 = 5;

/// Attempts at migrating, in case another process creates the schema at the same moment.
const MIGRATE_ATTEMPTS: u32 = 3;

/// The version registry: a handle on a connection pool, cheap to clone.
///
/// Every write runs in one transaction together with the event that records it, so the history
/// never misses or invents a change.
///
/// The same database holds per-request lineage: `insert_lineage`, `lineage`, `lineage_chain`,
/// `query_lineage`, `count_lineage` and `lineage_stats` (documented in the `lineage` module) are
/// methods of this type, so a lineage chain can be read in one snapshot together with the
/// versions it names.
#[derive(Debug, Clone)]
pub struct Registry {
    pool: SqlitePool,
    /// The database file, for connections outside the pool (`lineage_appender`).
    path: Arc<Path>,
}

/// A version as it is now, with its provenance and the events recorded against it up to a moment;
/// what a lineage chain shows of the version that answered a request.
#[derive(Debug)]
pub(crate) struct VersionHistory {
    pub(crate) version: VersionRecord,
    pub(crate) provenance: Option<Manifest>,
    pub(crate) events: Vec<Event>,
}

/// A validated registration, ready to be written.
#[derive(Debug)]
pub(crate) struct VersionInsert<'a> {
    pub(crate) model: &'a str,
    pub(crate) sha256: &'a str,
    pub(crate) size: u64,
    pub(crate) signature: &'a Signature,
    pub(crate) upstream: Option<&'a crate::Upstream>,
    pub(crate) manifest: Option<&'a Manifest>,
    pub(crate) actor: &'a str,
    /// Where the artifact was stored; checked under the write lock, so that a concurrent
    /// `models gc` cannot remove it between the write and the commit unnoticed.
    pub(crate) artifact: &'a Path,
}

impl Registry {
    /// Opens (creating if needed) the SQLite registry at `path` and brings its schema up to date.
    ///
    /// Connections use WAL (readers never wait for writers), foreign keys, a 5 s busy timeout
    /// and `synchronous = FULL`, so a committed registration survives power loss.
    pub async fn open(path: &Path) -> Result<Registry, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full)
            // 16 MiB of page cache per connection (the default is 2 MiB): lineage batches touch
            // the index pages of recent rows again and again; reading them back is wasted work.
            .pragma("cache_size", "-16384");
        let pool = SqlitePool::connect_with(options).await?;
        let mut attempt = 1;
        loop {
            match MIGRATOR.run(&pool).await {
                Ok(()) => break,
                Err(
                    err @ (sqlx::migrate::MigrateError::Execute(_) | sqlx::migrate::MigrateError::ExecuteMigration(..)),
                ) if attempt < MIGRATE_ATTEMPTS => {
                    tracing::warn!(error = %err, attempt, "registry migration failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(Registry { pool, path: Arc::from(path) })
    }

    /// Every model, by name, with its version count, latest number and aliases.
    pub async fn models(&self) -> Result<Vec<ModelSummary>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = queries::model_summaries(&mut tx).await?;
        let mut aliases: BTreeMap<i64, BTreeMap<String, u32>> = BTreeMap::new();
        for alias in queries::all_aliases(&mut tx).await? {
            aliases.entry(alias.model_id).or_default().insert(alias.name, to_u32(alias.number, "version number")?);
        }
        tx.commit().await?;
        rows.into_iter()
            .map(|row| {
                Ok(ModelSummary {
                    aliases: aliases.remove(&row.id).unwrap_or_default(),
                    name: row.name,
                    versions: to_u32(row.versions, "version count")?,
                    latest: to_u32(row.latest, "version number")?,
                    created_at: row.created_at,
                })
            })
            .collect()
    }

    /// Every version of `model`, lowest number first. `ModelNotFound` if it is not registered.
    pub async fn versions(&self, model: &str) -> Result<Vec<VersionRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let model_row = find_model(&mut tx, model).await?;
        let mut aliases: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for alias in queries::aliases_of_model(&mut tx, model_row.id).await? {
            aliases.entry(alias.number).or_default().push(alias.name);
        }
        let rows = queries::versions_of(&mut tx, model_row.id).await?;
        tx.commit().await?;
        rows.into_iter()
            .map(|row| {
                let names = aliases.remove(&row.number).unwrap_or_default();
                to_record(row, model, names)
            })
            .collect()
    }

    /// One version. `ModelNotFound` or `VersionNotFound` if absent.
    pub async fn version(&self, model: &str, version: u32) -> Result<VersionRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let model_row = find_model(&mut tx, model).await?;
        let row = find_version(&mut tx, &model_row, version).await?;
        let record = with_aliases(&mut tx, row, model).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Resolves a selector to a version: `"3"` or `"v3"` by number, `"latest"` to the highest
    /// number, anything else as an alias (`"champion"`).
    ///
    /// Errors: `ModelNotFound`, `VersionNotFound` for a number, `AliasNotFound` otherwise.
    pub async fn resolve(&self, model: &str, selector: &str) -> Result<VersionRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let model_row = find_model(&mut tx, model).await?;
        let row = match parse_selector(selector) {
            Selector::Number(number) => find_version(&mut tx, &model_row, number).await?,
            // A model row exists only with at least one version, so this cannot miss in practice.
            Selector::Latest => {
                queries::latest_version(&mut tx, model_row.id).await?.ok_or_else(|| model_not_found(model))?
            }
            Selector::Alias(alias) => queries::alias_target(&mut tx, model_row.id, alias)
                .await?
                .ok_or_else(|| StoreError::AliasNotFound { model: model.to_owned(), alias: alias.to_owned() })?,
        };
        let record = with_aliases(&mut tx, row, model).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// The provenance manifest registered with a version, if one was.
    pub async fn provenance(&self, model: &str, version: u32) -> Result<Option<Manifest>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let model_row = find_model(&mut tx, model).await?;
        let row = find_version(&mut tx, &model_row, version).await?;
        let json = queries::provenance_of(&mut tx, row.id).await?;
        tx.commit().await?;
        json.map(|json| decode_manifest(&json, model, version)).transpose()
    }

    /// Moves a version to `stage` and records a `stage_changed` event with `{"from", "to"}`
    /// (recorded even when the stage does not change, as the request itself is history).
    /// Other versions are left alone. A version whose artifact was garbage-collected can only
    /// stay archived (`ArtifactCollected`) until its file is registered again.
    pub async fn set_stage(&self, model: &str, version: u32, stage: Stage, actor: &str) -> Result<Event, StoreError> {
        let mut tx = self.begin_write().await?;
        let model_row = find_model(&mut tx, model).await?;
        let row = find_version(&mut tx, &model_row, version).await?;
        if stage != Stage::Archived {
            refuse_collected(&row, model, version)?;
        }
        let from = parse_stage(&row.stage)?;
        queries::update_stage(&mut tx, row.id, stage.as_str()).await?;
        let detail = serde_json::json!({ "from": from, "to": stage });
        let event =
            append_event(&mut tx, &model_row, Some(version), Event::STAGE_CHANGED, detail, actor, &Timestamp::now())
                .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Points `alias` at `version`, creating or moving it, and records `alias_set` with
    /// `{"alias", "from" (null if new), "to"}`.
    ///
    /// Alias names are `[a-z0-9][a-z0-9_-]{0,62}` and must not be all digits, `v<digits>` or
    /// `latest`, which would read as version selectors (`InvalidAlias`). An alias cannot point
    /// at a version whose artifact was garbage-collected (`ArtifactCollected`).
    pub async fn set_alias(&self, model: &str, alias: &str, version: u32, actor: &str) -> Result<Event, StoreError> {
        check_alias(alias)?;
        let mut tx = self.begin_write().await?;
        let model_row = find_model(&mut tx, model).await?;
        let row = find_version(&mut tx, &model_row, version).await?;
        refuse_collected(&row, model, version)?;
        let from = match queries::alias_target(&mut tx, model_row.id, alias).await? {
            Some(previous) => Some(to_u32(previous.number, "version number")?),
            None => None,
        };
        let now = Timestamp::now();
        queries::upsert_alias(&mut tx, model_row.id, alias, row.id, &now).await?;
        let detail = serde_json::json!({ "alias": alias, "from": from, "to": version });
        let event = append_event(&mut tx, &model_row, Some(version), Event::ALIAS_SET, detail, actor, &now).await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Removes an alias and records `alias_removed` with `{"alias", "from"}` against the version
    /// it pointed at. `AliasNotFound` if the model has no such alias.
    pub async fn remove_alias(&self, model: &str, alias: &str, actor: &str) -> Result<Event, StoreError> {
        check_alias(alias)?;
        let mut tx = self.begin_write().await?;
        let model_row = find_model(&mut tx, model).await?;
        let target = queries::alias_target(&mut tx, model_row.id, alias)
            .await?
            .ok_or_else(|| StoreError::AliasNotFound { model: model.to_owned(), alias: alias.to_owned() })?;
        let from = to_u32(target.number, "version number")?;
        queries::delete_alias(&mut tx, model_row.id, alias).await?;
        let detail = serde_json::json!({ "alias": alias, "from": from });
        let event =
            append_event(&mut tx, &model_row, Some(from), Event::ALIAS_REMOVED, detail, actor, &Timestamp::now())
                .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// The model's events, oldest first. With `Some(version)`, only that version's events
    /// (model-level events are left out). `ModelNotFound` / `VersionNotFound` if absent.
    pub async fn events(&self, model: &str, version: Option<u32>) -> Result<Vec<Event>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let model_row = find_model(&mut tx, model).await?;
        if let Some(number) = version {
            find_version(&mut tx, &model_row, number).await?;
        }
        let rows = queries::events_of(&mut tx, model_row.id, version.map(i64::from)).await?;
        tx.commit().await?;
        rows.into_iter().map(|row| to_event(row, &model_row.name)).collect()
    }

    /// Appends an event of any kind (promotions, rollbacks, guard trips…) to the history.
    /// `ModelNotFound` / `VersionNotFound` if the model or the given version is absent.
    pub async fn record_event(
        &self,
        model: &str,
        version: Option<u32>,
        kind: &str,
        detail: serde_json::Value,
        actor: &str,
    ) -> Result<Event, StoreError> {
        let mut tx = self.begin_write().await?;
        let model_row = find_model(&mut tx, model).await?;
        if let Some(number) = version {
            find_version(&mut tx, &model_row, number).await?;
        }
        let event = append_event(&mut tx, &model_row, version, kind, detail, actor, &Timestamp::now()).await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Inserts a version whose artifact is already stored, with its provenance and a
    /// `registered` event, in one transaction; see `ModelStore::register`. Retries (a few
    /// times) when a concurrent writer took the same number or model name first.
    pub(crate) async fn insert_version(&self, new: &VersionInsert<'_>) -> Result<Registered, StoreError> {
        let mut attempt = 1;
        loop {
            match self.try_insert_version(new).await {
                Err(StoreError::Database(sqlx::Error::Database(err)))
                    if err.is_unique_violation() && attempt < REGISTER_ATTEMPTS =>
                {
                    tracing::debug!(model = new.model, attempt, error = %err, "registration raced; retrying");
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn try_insert_version(&self, new: &VersionInsert<'_>) -> Result<Registered, StoreError> {
        let signature_json =
            serde_json::to_string(new.signature).map_err(|err| StoreError::decode(format!("signature: {err}")))?;
        let upstream_json = new
            .upstream
            .map(serde_json::to_string)
            .transpose()
            .map_err(|err| StoreError::decode(format!("upstream: {err}")))?;
        let manifest_json = new
            .manifest
            .map(serde_json::to_string)
            .transpose()
            .map_err(|err| StoreError::decode(format!("manifest: {err}")))?;
        let size =
            i64::try_from(new.size).map_err(|_| StoreError::decode(format!("artifact size {} too large", new.size)))?;

        let mut tx = self.begin_write().await?;
        // Garbage collection removes files only while holding this lock and only when no
        // uncollected version names them, so a file present now stays until this commits.
        match tokio::fs::metadata(new.artifact).await {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                tx.rollback().await?;
                return Err(StoreError::ArtifactMissing {
                    sha256: new.sha256.to_owned(),
                    path: new.artifact.to_path_buf(),
                });
            }
            Err(err) => return Err(StoreError::io(new.artifact, err)),
        }
        let now = Timestamp::now();
        let model_row = match queries::model_by_name(&mut tx, new.model).await? {
            Some(row) => {
                if let Some(mut existing) = queries::version_by_sha256(&mut tx, row.id, new.sha256).await? {
                    let Some(collected_at) = existing.collected_at.take() else {
                        let version = with_aliases(&mut tx, existing, new.model).await?;
                        tx.rollback().await?;
                        return Ok(Registered { version, created: false });
                    };
                    // The same bytes again bring a collected version's artifact back.
                    queries::clear_collected(&mut tx, existing.id).await?;
                    let number = to_u32(existing.number, "version number")?;
                    let detail =
                        serde_json::json!({ "sha256": new.sha256, "size": new.size, "collected_at": collected_at });
                    append_event(&mut tx, &row, Some(number), Event::ARTIFACT_RESTORED, detail, new.actor, &now)
                        .await?;
                    let version = with_aliases(&mut tx, existing, new.model).await?;
                    tx.commit().await?;
                    tracing::info!(model = new.model, version = number, "collected artifact restored");
                    return Ok(Registered { version, created: false });
                }
                row
            }
            None => ModelRow { id: queries::insert_model(&mut tx, new.model, &now).await?, name: new.model.to_owned() },
        };
        let number = queries::next_version_number(&mut tx, model_row.id).await?;
        let stage = Stage::Staging;
        let version_id = queries::insert_version(
            &mut tx,
            NewVersionRow {
                model_id: model_row.id,
                number,
                sha256: new.sha256,
                size,
                signature_json: &signature_json,
                upstream_json: upstream_json.as_deref(),
                stage: stage.as_str(),
                created: &now,
            },
        )
        .await?;
        if let Some(json) = &manifest_json {
            queries::insert_provenance(&mut tx, version_id, json).await?;
        }
        let version = to_u32(number, "version number")?;
        let detail = serde_json::json!({ "sha256": new.sha256, "size": new.size, "stage": stage });
        append_event(&mut tx, &model_row, Some(version), Event::REGISTERED, detail, new.actor, &now).await?;
        tx.commit().await?;
        tracing::info!(model = new.model, version, sha256 = new.sha256, "version registered");
        Ok(Registered {
            version: VersionRecord {
                model: new.model.to_owned(),
                version,
                sha256: new.sha256.to_owned(),
                size: new.size,
                signature: new.signature.clone(),
                upstream: new.upstream.cloned(),
                stage,
                created_at: now.text,
                aliases: Vec::new(),
                collected_at: None,
            },
            created: true,
        })
    }

    /// Opens a write transaction: the write lock is taken up front (see `queries::BEGIN_WRITE`).
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with(queries::BEGIN_WRITE).await?)
    }

    /// Opens a read transaction, so that several statements see one snapshot.
    pub(crate) async fn begin_read(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// When the artifact of `model` v`version` was garbage-collected: `Some(None)` if it was
    /// not, `None` if there is no such version.
    pub(crate) async fn collected_at(&self, model: &str, version: u32) -> Result<Option<Option<String>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(queries::collected_at_of(&mut conn, model, i64::from(version)).await?)
    }

    /// The connection pool, for single-statement reads outside a transaction.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// `model` v`version` as it is now (current stage and aliases), its provenance, and the events
/// recorded against it with `at_ms <= until_ms`, oldest first. `None` when the model or the
/// version is not (or no longer) in the registry.
pub(crate) async fn version_history(
    conn: &mut Conn,
    model: &str,
    version: u32,
    until_ms: i64,
) -> Result<Option<VersionHistory>, StoreError> {
    let Some(model_row) = queries::model_by_name(conn, model).await? else {
        return Ok(None);
    };
    let Some(row) = queries::version_by_number(conn, model_row.id, i64::from(version)).await? else {
        return Ok(None);
    };
    let version_id = row.id;
    let record = with_aliases(conn, row, model).await?;
    let provenance = queries::provenance_of(conn, version_id)
        .await?
        .map(|json| decode_manifest(&json, model, version))
        .transpose()?;
    let events = queries::events_of_version_until(conn, model_row.id, i64::from(version), until_ms)
        .await?
        .into_iter()
        .map(|row| to_event(row, &model_row.name))
        .collect::<Result<_, _>>()?;
    Ok(Some(VersionHistory { version: record, provenance, events }))
}

async fn find_model(conn: &mut Conn, model: &str) -> Result<ModelRow, StoreError> {
    queries::model_by_name(conn, model).await?.ok_or_else(|| model_not_found(model))
}

async fn find_version(conn: &mut Conn, model: &ModelRow, version: u32) -> Result<VersionRow, StoreError> {
    queries::version_by_number(conn, model.id, i64::from(version))
        .await?
        .ok_or_else(|| StoreError::VersionNotFound { model: model.name.clone(), version })
}

/// `ArtifactCollected` for a version whose artifact was garbage-collected: it cannot serve.
fn refuse_collected(row: &VersionRow, model: &str, version: u32) -> Result<(), StoreError> {
    match &row.collected_at {
        Some(collected_at) => Err(StoreError::ArtifactCollected {
            model: model.to_owned(),
            version,
            sha256: row.sha256.clone(),
            collected_at: collected_at.clone(),
        }),
        None => Ok(()),
    }
}

async fn with_aliases(conn: &mut Conn, row: VersionRow, model: &str) -> Result<VersionRecord, StoreError> {
    let aliases = queries::aliases_of_version(conn, row.id).await?;
    to_record(row, model, aliases)
}

/// Writes an event stamped `at` and returns it as readers will see it.
async fn append_event(
    conn: &mut Conn,
    model: &ModelRow,
    version: Option<u32>,
    kind: &str,
    detail: serde_json::Value,
    actor: &str,
    at: &Timestamp,
) -> Result<Event, StoreError> {
    let detail_json = detail.to_string();
    let id = queries::insert_event(
        conn,
        NewEventRow {
            model_id: model.id,
            version_number: version.map(i64::from),
            kind,
            detail_json: &detail_json,
            actor,
            at,
        },
    )
    .await?;
    Ok(Event {
        id,
        model: model.name.clone(),
        version,
        kind: kind.to_owned(),
        detail,
        actor: actor.to_owned(),
        at: at.text.clone(),
    })
}

fn to_record(row: VersionRow, model: &str, aliases: Vec<String>) -> Result<VersionRecord, StoreError> {
    let signature = serde_json::from_str(&row.signature_json)
        .map_err(|err| StoreError::decode(format!("stored signature of {model} v{}: {err}", row.number)))?;
    let upstream = row
        .upstream_json
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|err| StoreError::decode(format!("stored upstream of {model} v{}: {err}", row.number)))?;
    Ok(VersionRecord {
        model: model.to_owned(),
        version: to_u32(row.number, "version number")?,
        upstream,
        size: u64::try_from(row.size)
            .map_err(|_| StoreError::decode(format!("negative artifact size {}", row.size)))?,
        stage: parse_stage(&row.stage)?,
        sha256: row.sha256,
        signature,
        created_at: row.created_at,
        collected_at: row.collected_at,
        aliases,
    })
}

fn decode_manifest(json: &str, model: &str, version: u32) -> Result<Manifest, StoreError> {
    Manifest::from_json_str(json)
        .map_err(|err| StoreError::decode(format!("stored manifest of {model} v{version}: {err}")))
}

fn to_event(row: EventRow, model: &str) -> Result<Event, StoreError> {
    Ok(Event {
        id: row.id,
        model: model.to_owned(),
        version: row.version_number.map(|number| to_u32(number, "event version number")).transpose()?,
        detail: serde_json::from_str(&row.detail_json)
            .map_err(|err| StoreError::decode(format!("detail of event {}: {err}", row.id)))?,
        kind: row.kind,
        actor: row.actor,
        at: row.at,
    })
}

fn parse_stage(stored: &str) -> Result<Stage, StoreError> {
    stored.parse().map_err(|err: ParseStageError| StoreError::decode(err.to_string()))
}

pub(crate) fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::decode(format!("{what} {value} out of range")))
}

fn model_not_found(model: &str) -> StoreError {
    StoreError::ModelNotFound { model: model.to_owned() }
}

#[cfg(test)]
mod tests;
