//! Model store: content-addressed artifacts, the version registry, provenance and lineage.
//! Knows nothing of HTTP or ONNX Runtime; `ModelStore` ties artifacts and registry together.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

mod artifact;
mod diff;
mod error;
mod feedback;
mod lineage;
mod manifest;
mod registry;
mod signature;
mod upstream;

pub use artifact::ArtifactStore;
pub use diff::{Compatibility, FieldDiff, Live, MetricDiff, Summary as DiffSide, VersionDiff};
pub use error::StoreError;
pub use feedback::{Feedback, FeedbackKind, FeedbackSummary, SliceQuality, StoredFeedback};
pub use lineage::{LineageAppender, LineageChain, LineageDurability, LineageQuery, LineageRecord, LineageStats};
pub use manifest::{InputProfile, Manifest, ManifestError, Training};
pub use registry::{
    CHAMPION_ALIAS, ChampionMove, CollectedVersion, Event, EventSpec, GcOptions, GcReport, Job, KeptVersion,
    ModelSummary, NewJob, ParseStageError, Registry, RemovedArtifact, RoutingOverride, ServedVersion, ServingClaim,
    Stage, VersionRecord,
};
pub use signature::{Signature, TensorSpec};
pub use upstream::{Protocol as UpstreamProtocol, Upstream};

pub use registry::check_model_name;
use registry::{Timestamp, VersionInsert};

/// Attempts at writing a registration's artifact and committing its version, in case garbage
/// collection removed the same bytes' file in between (see `Registry::remove_if_unreferenced`).
const PUT_ATTEMPTS: u32 = 3;

/// A model store directory: `<root>/artifacts/…` (immutable files) and `<root>/registry.db`
/// (what they are). Cheap to clone; clones share the connection pool.
///
/// Invariant: every version row names an artifact that was fully written before the row was
/// committed. A crash in between leaves at worst an unreferenced artifact, which is harmless.
#[derive(Debug, Clone)]
pub struct ModelStore {
    /// The store directory, as given to `open`.
    root: PathBuf,
    artifacts: ArtifactStore,
    registry: Registry,
}

/// A version to register.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Model name: `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}` without `..`.
    pub model: String,
    /// The model file (ONNX), stored as is; for a remote version, `Upstream::descriptor()`
    /// (see `NewVersion::remote`).
    pub bytes: Vec<u8>,
    /// Where a remote version is answered; `None` for a model file the gateway runs.
    pub upstream: Option<Upstream>,
    /// Its input and output tensors.
    pub signature: Signature,
    /// Its provenance, if known.
    pub manifest: Option<Manifest>,
    /// Who registers it; recorded on the `registered` event.
    pub actor: String,
}

impl NewVersion {
    /// A remote version: answered by `upstream`, with the signature the upstream declared.
    pub fn remote(
        model: String,
        upstream: Upstream,
        signature: Signature,
        manifest: Option<Manifest>,
        actor: String,
    ) -> NewVersion {
        NewVersion { model, bytes: upstream.descriptor(), upstream: Some(upstream), signature, manifest, actor }
    }
}

/// The outcome of `ModelStore::register`.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The version now holding these bytes.
    pub version: VersionRecord,
    /// `false` when the same bytes were already registered under the model and that version
    /// was returned (nothing was written, unless its artifact had been garbage-collected: then
    /// it is restored and an `artifact_restored` event recorded).
    pub created: bool,
}

impl ModelStore {
    /// Opens (creating if needed) a store directory: `<dir>/artifacts/…` and
    /// `<dir>/registry.db`; runs the registry's migrations (already applied ones are skipped).
    ///
    /// Errors: `Io` if the directories cannot be created, `Database` / `Migration` if the
    /// registry cannot be opened or brought up to date.
    pub async fn open(dir: impl AsRef<Path>) -> Result<ModelStore, StoreError> {
        let root = dir.as_ref().to_path_buf();
        let artifacts_dir = root.join("artifacts");
        tokio::fs::create_dir_all(&artifacts_dir).await.map_err(|err| StoreError::io(&artifacts_dir, err))?;
        let registry = Registry::open(&root.join("registry.db")).await?;
        tracing::debug!(root = %root.display(), "model store opened");
        Ok(ModelStore { artifacts: ArtifactStore::new(artifacts_dir), registry, root })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The artifact files.
    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }

    /// The version registry, which also stores per-request lineage (`Registry::insert_lineage`,
    /// `lineage`, `lineage_chain`, `query_lineage`, `count_lineage`, `lineage_stats`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers a version.
    ///
    /// Checks the model name and manifest, then writes the artifact (temp file, fsync, rename; a
    /// no-op if an intact copy is stored), then in one transaction inserts the version (number =
    /// max + 1 for the model, creating the model if new; stage `staging`), its provenance and a
    /// `registered` event. If the same bytes are already registered under the model, returns
    /// that version with `created: false` and writes nothing to the registry — except for a
    /// version whose artifact was garbage-collected, which the stored bytes restore (its
    /// collection mark is cleared and `artifact_restored` recorded). The artifact's presence is
    /// re-checked under the write lock; if garbage collection removed it meanwhile, it is
    /// written again.
    ///
    /// Safe to call concurrently from several tasks or processes: SQLite writers are serialised
    /// (`BEGIN IMMEDIATE`), and a lost race on a unique key is retried a few times.
    ///
    /// Errors: `InvalidModelName` and `Manifest` before anything is written; `Io` for the
    /// artifact; `Database` for the registry. Cost: one sha256 pass over the bytes (plus one over
    /// a stored copy), on tokio's blocking pool.
    pub async fn register(&self, new: NewVersion) -> Result<Registered, StoreError> {
        let NewVersion { model, bytes, upstream, signature, manifest, actor } = new;
        check_model_name(&model)?;
        if Upstream::from_descriptor(&bytes) != upstream {
            return Err(StoreError::InvalidUpstream(match upstream {
                Some(_) => "a remote version's artifact must be its upstream's descriptor".to_owned(),
                None => "these bytes describe an upstream; register them as a remote version".to_owned(),
            }));
        }
        if let Some(manifest) = &manifest {
            manifest.validate()?;
        }
        let bytes = Arc::new(bytes);
        let mut attempt = 1;
        loop {
            let (sha256, size) = self.artifacts.put_shared(Arc::clone(&bytes)).await?;
            let artifact = self.artifacts.path_for(&sha256)?;
            let insert = VersionInsert {
                model: &model,
                sha256: &sha256,
                size,
                signature: &signature,
                upstream: upstream.as_ref(),
                manifest: manifest.as_ref(),
                actor: &actor,
                artifact: &artifact,
            };
            match self.registry.insert_version(&insert).await {
                Err(StoreError::ArtifactMissing { .. }) if attempt < PUT_ATTEMPTS => {
                    tracing::debug!(model, sha256, attempt, "artifact collected during registration; writing it again");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Reads a version's artifact and verifies it (sha256 recomputed and compared).
    ///
    /// The registry is asked first whether the version's artifact was garbage-collected (the
    /// record passed in may predate the collection), and again if the file turns out missing.
    ///
    /// Errors: `ArtifactCollected` (with the date) for a collected version, `ArtifactMissing` if
    /// the file is gone otherwise, `CorruptArtifact` naming the version and both digests if its
    /// bytes changed; a corrupt artifact is never returned.
    pub async fn load_artifact(&self, version: &VersionRecord) -> Result<Vec<u8>, StoreError> {
        self.refuse_collected(version).await?;
        let read = self.artifacts.read_verified(&version.sha256).await;
        if let Err(StoreError::ArtifactMissing { .. }) = &read {
            self.refuse_collected(version).await?;
        }
        read.map_err(|err| match err {
            StoreError::CorruptArtifact { expected, actual, .. } => StoreError::CorruptArtifact {
                model: Some(version.model.clone()),
                version: Some(version.version),
                expected,
                actual,
            },
            other => other,
        })
    }

    /// Garbage-collects artifacts: marks archived versions past `options.retention` (and needed
    /// by nothing else) collected, with an `artifact_collected` event each, in one transaction;
    /// then removes every artifact file that only collected versions name — the ones just
    /// marked, and any an earlier run left behind by stopping between its commit and the
    /// removal. Each file is removed under the registry's write lock after re-checking that no
    /// uncollected version names it. A dry run reports the same and changes nothing.
    ///
    /// Errors: `Database` for the registry, `Io` for a file that cannot be removed (the versions
    /// stay marked; the next run removes the file).
    pub async fn collect_garbage(&self, options: &GcOptions) -> Result<GcReport, StoreError> {
        self.collect_garbage_at(options, SystemTime::now()).await
    }

    /// `collect_garbage` as if it ran at `now`.
    pub(crate) async fn collect_garbage_at(
        &self,
        options: &GcOptions,
        now: SystemTime,
    ) -> Result<GcReport, StoreError> {
        let now = Timestamp::at(now);
        let (collected, kept) = self.registry.mark_collectable(options, &now).await?;
        let mut removed = Vec::new();
        if options.dry_run {
            let mut digests: Vec<String> = collected.iter().map(|version| version.sha256.clone()).collect();
            digests.extend(self.registry.collected_only_artifacts().await?);
            digests.sort();
            digests.dedup();
            for sha256 in digests {
                let path = self.artifacts.path_for(&sha256)?;
                match tokio::fs::metadata(&path).await {
                    Ok(metadata) => removed.push(RemovedArtifact { sha256, size: metadata.len(), already_gone: false }),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(StoreError::io(path, err)),
                }
            }
        } else {
            let just_collected: std::collections::HashSet<&str> =
                collected.iter().map(|version| version.sha256.as_str()).collect();
            for sha256 in self.registry.collected_only_artifacts().await? {
                // Files of earlier collections that are gone need no lock; ones collected now
                // are always reported, gone or not.
                let path = self.artifacts.path_for(&sha256)?;
                let present = tokio::fs::try_exists(&path).await.map_err(|err| StoreError::io(&path, err))?;
                if !present && !just_collected.contains(sha256.as_str()) {
                    continue;
                }
                if let Some(artifact) = self.registry.remove_if_unreferenced(&self.artifacts, &sha256).await? {
                    tracing::info!(sha256 = artifact.sha256, size = artifact.size, "artifact collected");
                    removed.push(artifact);
                }
            }
        }
        Ok(GcReport { dry_run: options.dry_run, retention_s: options.retention.as_secs(), collected, kept, removed })
    }

    /// `ArtifactCollected` if the registry says the version's artifact was collected.
    async fn refuse_collected(&self, version: &VersionRecord) -> Result<(), StoreError> {
        // The registry is the truth (the record may predate a collection or a restore); a
        // record of a version the registry does not hold is taken at its word.
        let collected_at = match self.registry.collected_at(&version.model, version.version).await? {
            Some(stored) => stored,
            None => version.collected_at.clone(),
        };
        match collected_at {
            Some(collected_at) => Err(StoreError::ArtifactCollected {
                model: version.model.clone(),
                version: version.version,
                sha256: version.sha256.clone(),
                collected_at,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
