//! Artifact garbage collection, the registry's half: which archived versions may lose their
//! artifact file, marking them (with an `artifact_collected` event) in one transaction, and
//! removing a file under the write lock once nothing uncollected names it.
//!
//! A version's artifact is collected when it has been archived for at least the retention, no
//! alias points at it, and every other uncollected version (of any model) that shares its
//! sha256 is collectable too — artifacts are content-addressed, so one file can serve several
//! versions, and removing it for one must never break another. The version row, provenance,
//! events and lineage stay.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use super::queries::{self, GcVersionRow, ModelRow, StageChangeRow};
use super::{Registry, Timestamp, append_event, parse_stage, to_u32};
use crate::artifact::ArtifactStore;
use crate::error::StoreError;
use crate::registry::{Event, Stage};

/// What `ModelStore::collect_garbage` is asked to do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// How long a version must have been archived before its artifact may go. Zero is allowed.
    pub retention: Duration,
    /// Only report what would be collected and removed; change nothing.
    pub dry_run: bool,
    /// Who collects, recorded on the `artifact_collected` events.
    pub actor: String,
}

/// What a garbage collection did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
    /// The retention applied, in seconds.
    pub retention_s: u64,
    /// Versions whose artifact was (or would be) collected now.
    pub collected: Vec<CollectedVersion>,
    /// Archived versions whose artifact is kept, each with the reason.
    pub kept: Vec<KeptVersion>,
    /// Artifact files removed (or that would be removed): the files of versions collected now,
    /// and any left behind by an earlier run that stopped between its commit and the removal.
    pub removed: Vec<RemovedArtifact>,
}

/// A version whose artifact is collected.
#[derive(Debug, Clone, Serialize)]
pub struct CollectedVersion {
    pub model: String,
    pub version: u32,
    pub sha256: String,
    pub size: u64,
    /// When it was archived (the `stage_changed` event that archived it).
    pub archived_at: String,
}

/// An archived version whose artifact is kept, and why.
#[derive(Debug, Clone, Serialize)]
pub struct KeptVersion {
    pub model: String,
    pub version: u32,
    pub sha256: String,
    /// When it was archived, if the history says.
    pub archived_at: Option<String>,
    /// Why it is kept, for people: "within the retention (…)", "alias champion points at it", …
    pub reason: String,
}

/// An artifact file removed by garbage collection.
#[derive(Debug, Clone, Serialize)]
pub struct RemovedArtifact {
    pub sha256: String,
    /// Its size in bytes, as found on disk (`0` when it was already gone).
    pub size: u64,
    /// The file was already gone (removed by hand, or by a run that stopped before reporting).
    pub already_gone: bool,
}

/// The decision for one version: collect it, or keep it for a reason.
#[derive(Debug)]
enum Verdict {
    Collect { archived_at: String },
    Keep { archived_at: Option<String>, reason: String },
}

impl Registry {
    /// Decides which archived versions lose their artifact and, unless `options.dry_run`, marks
    /// them collected with an `artifact_collected` event each, all in one transaction. Returns
    /// the versions collected and the archived versions kept. Removes no file.
    pub(crate) async fn mark_collectable(
        &self,
        options: &GcOptions,
        now: &Timestamp,
    ) -> Result<(Vec<CollectedVersion>, Vec<KeptVersion>), StoreError> {
        let mut tx = if options.dry_run { self.begin_read().await? } else { self.begin_write().await? };
        let versions = queries::gc_versions(&mut tx).await?;
        let mut aliases: HashMap<i64, Vec<String>> = HashMap::new();
        for alias in queries::aliases_by_version(&mut tx).await? {
            aliases.entry(alias.version_id).or_default().push(alias.name);
        }
        let changes = queries::stage_changes_of_archived(&mut tx, Event::STAGE_CHANGED).await?;
        let verdicts = decide(&versions, &aliases, &changes, now.ms, options.retention)?;

        let retention_s = options.retention.as_secs();
        let retention_text = humantime::format_duration(options.retention).to_string();
        let mut collected = Vec::new();
        let mut kept = Vec::new();
        for (row, verdict) in versions.iter().filter_map(|row| verdicts.get(&row.id).map(|verdict| (row, verdict))) {
            let version = to_u32(row.number, "version number")?;
            let size = u64::try_from(row.size)
                .map_err(|_| StoreError::decode(format!("negative artifact size {}", row.size)))?;
            match verdict {
                Verdict::Keep { archived_at, reason } => kept.push(KeptVersion {
                    model: row.model.clone(),
                    version,
                    sha256: row.sha256.clone(),
                    archived_at: archived_at.clone(),
                    reason: reason.clone(),
                }),
                Verdict::Collect { archived_at } => {
                    if !options.dry_run && queries::mark_collected(&mut tx, row.id, now).await? {
                        let detail = serde_json::json!({
                            "sha256": row.sha256,
                            "size": size,
                            "archived_at": archived_at,
                            "retention": retention_text,
                            "retention_s": retention_s,
                        });
                        let model = ModelRow { id: row.model_id, name: row.model.clone() };
                        append_event(
                            &mut tx,
                            &model,
                            Some(version),
                            Event::ARTIFACT_COLLECTED,
                            detail,
                            &options.actor,
                            now,
                        )
                        .await?;
                    }
                    collected.push(CollectedVersion {
                        model: row.model.clone(),
                        version,
                        sha256: row.sha256.clone(),
                        size,
                        archived_at: archived_at.clone(),
                    });
                }
            }
        }
        tx.commit().await?;
        Ok((collected, kept))
    }

    /// Digests that only collected versions name, so their files may go; sorted.
    pub(crate) async fn collected_only_artifacts(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        Ok(queries::collected_only_sha256s(&mut conn).await?)
    }

    /// Removes the artifact file `sha256` if no uncollected version names it, holding the write
    /// lock meanwhile so that a registration of the same bytes cannot commit in between (it
    /// checks for the file under the same lock and writes it again if it is gone).
    ///
    /// Returns `None` when the file is still needed, else what was removed (or found already
    /// gone).
    pub(crate) async fn remove_if_unreferenced(
        &self,
        artifacts: &ArtifactStore,
        sha256: &str,
    ) -> Result<Option<RemovedArtifact>, StoreError> {
        let mut tx = self.begin_write().await?;
        if queries::live_references(&mut tx, sha256).await? > 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let removed = artifacts.remove(sha256).await?;
        tx.commit().await?;
        Ok(Some(RemovedArtifact {
            sha256: sha256.to_owned(),
            size: removed.unwrap_or(0),
            already_gone: removed.is_none(),
        }))
    }
}

/// Decides every archived, uncollected version: collect or keep (with the reason). Versions in
/// other stages get no verdict.
fn decide(
    versions: &[GcVersionRow],
    aliases: &HashMap<i64, Vec<String>>,
    changes: &[StageChangeRow],
    now_ms: i64,
    retention: Duration,
) -> Result<HashMap<i64, Verdict>, StoreError> {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let archived_since = archived_since(changes);
    let live: Vec<&GcVersionRow> = versions.iter().filter(|row| row.collected_at.is_none()).collect();
    let mut verdicts = HashMap::new();
    for row in &live {
        if parse_stage(&row.stage)? != Stage::Archived {
            continue;
        }
        let verdict = match archived_since.get(&row.id) {
            None => Verdict::Keep {
                archived_at: None,
                reason: "no stage_changed event records when it was archived".to_owned(),
            },
            Some((at, at_ms)) if now_ms.saturating_sub(*at_ms) < retention_ms => {
                let left = Duration::from_millis(u64::try_from(retention_ms - (now_ms - at_ms)).unwrap_or(0));
                Verdict::Keep {
                    archived_at: Some(at.clone()),
                    reason: format!("within the retention ({} left)", humantime::format_duration(round_to_s(left))),
                }
            }
            Some((at, _)) => match aliases.get(&row.id) {
                Some(names) => Verdict::Keep {
                    archived_at: Some(at.clone()),
                    reason: format!(
                        "{} {} {} at it",
                        if names.len() == 1 { "alias" } else { "aliases" },
                        names.join(", "),
                        if names.len() == 1 { "points" } else { "point" }
                    ),
                },
                None => Verdict::Collect { archived_at: at.clone() },
            },
        };
        verdicts.insert(row.id, verdict);
    }
    // A shared artifact goes only when every uncollected version naming it may lose it.
    let mut by_sha: BTreeMap<&str, Vec<&GcVersionRow>> = BTreeMap::new();
    for row in &live {
        by_sha.entry(row.sha256.as_str()).or_default().push(row);
    }
    for sharing in by_sha.values().filter(|rows| rows.len() > 1) {
        let blockers: Vec<String> = sharing
            .iter()
            .filter(|row| !matches!(verdicts.get(&row.id), Some(Verdict::Collect { .. })))
            .map(|row| format!("{} v{} ({}{})", row.model, row.number, row.stage, kept_note(verdicts.get(&row.id))))
            .collect();
        if blockers.is_empty() {
            continue;
        }
        for row in sharing {
            let archived_at = match verdicts.get(&row.id) {
                Some(Verdict::Collect { archived_at }) => archived_at.clone(),
                _ => continue,
            };
            let reason = format!("its artifact is shared with {}", blockers.join(", "));
            verdicts.insert(row.id, Verdict::Keep { archived_at: Some(archived_at), reason });
        }
    }
    Ok(verdicts)
}

/// ", kept" for an archived version that is kept itself, so a shared-artifact reason reads
/// "mlp v2 (archived, kept)".
fn kept_note(verdict: Option<&Verdict>) -> &'static str {
    match verdict {
        Some(Verdict::Keep { .. }) => ", kept",
        _ => "",
    }
}

/// Since when each version has been archived: the last stage change into `archived` from
/// another stage (re-archiving an archived version does not restart the clock). Versions that
/// left `archived` again have no entry. `changes` are oldest first.
fn archived_since(changes: &[StageChangeRow]) -> HashMap<i64, (String, i64)> {
    let mut since: HashMap<i64, (String, i64)> = HashMap::new();
    for change in changes {
        let detail: serde_json::Value = serde_json::from_str(&change.detail_json).unwrap_or_default();
        let to = detail.get("to").and_then(serde_json::Value::as_str);
        let from = detail.get("from").and_then(serde_json::Value::as_str);
        match (from, to) {
            (Some("archived"), Some("archived")) => {
                since.entry(change.version_id).or_insert_with(|| (change.at.clone(), change.at_ms));
            }
            (_, Some("archived")) => {
                since.insert(change.version_id, (change.at.clone(), change.at_ms));
            }
            _ => {
                since.remove(&change.version_id);
            }
        }
    }
    since
}

fn round_to_s(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs().max(1))
}

#[cfg(test)]
mod tests;
