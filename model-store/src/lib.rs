//! Model store: content-addressed artifacts, the version registry, provenance and lineage.
//! Knows nothing of HTTP or ONNX Runtime; `ModelStore` ties artifacts and registry together.

use std::path::{Path, PathBuf};

mod artifact;
mod error;
mod feedback;
mod lineage;
mod manifest;
mod registry;
mod signature;

pub use artifact::ArtifactStore;
pub use error::StoreError;
pub use feedback::{Feedback, FeedbackKind, FeedbackSummary};
pub use lineage::{LineageChain, LineageQuery, LineageRecord, LineageStats};
pub use manifest::{Manifest, ManifestError, Training};
pub use registry::{Event, EventSpec, ModelSummary, ParseStageError, Registry, RoutingOverride, Stage, VersionRecord};
pub use signature::{Signature, TensorSpec};

use registry::{VersionInsert, check_model_name};

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
    /// The model file (ONNX), stored as is.
    pub bytes: Vec<u8>,
    /// Its input and output tensors.
    pub signature: Signature,
    /// Its provenance, if known.
    pub manifest: Option<Manifest>,
    /// Who registers it; recorded on the `registered` event.
    pub actor: String,
}

/// The outcome of `ModelStore::register`.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The version now holding these bytes.
    pub version: VersionRecord,
    /// `false` when the same bytes were already registered under the model and that version
    /// was returned unchanged (nothing was written).
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
    /// that version with `created: false` and writes nothing to the registry.
    ///
    /// Safe to call concurrently from several tasks or processes: SQLite writers are serialised
    /// (`BEGIN IMMEDIATE`), and a lost race on a unique key is retried a few times.
    ///
    /// Errors: `InvalidModelName` and `Manifest` before anything is written; `Io` for the
    /// artifact; `Database` for the registry. Cost: one sha256 pass over the bytes (plus one over
    /// a stored copy), on tokio's blocking pool.
    pub async fn register(&self, new: NewVersion) -> Result<Registered, StoreError> {
        let NewVersion { model, bytes, signature, manifest, actor } = new;
        check_model_name(&model)?;
        if let Some(manifest) = &manifest {
            manifest.validate()?;
        }
        let (sha256, size) = self.artifacts.put_owned(bytes).await?;
        self.registry
            .insert_version(&VersionInsert {
                model: &model,
                sha256: &sha256,
                size,
                signature: &signature,
                manifest: manifest.as_ref(),
                actor: &actor,
            })
            .await
    }

    /// Reads a version's artifact and verifies it (sha256 recomputed and compared).
    ///
    /// Errors: `ArtifactMissing` if the file is gone, `CorruptArtifact` naming the version and
    /// both digests if its bytes changed; a corrupt artifact is never returned.
    pub async fn load_artifact(&self, version: &VersionRecord) -> Result<Vec<u8>, StoreError> {
        self.artifacts.read_verified(&version.sha256).await.map_err(|err| match err {
            StoreError::CorruptArtifact { expected, actual, .. } => StoreError::CorruptArtifact {
                model: Some(version.model.clone()),
                version: Some(version.version),
                expected,
                actual,
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests;
