//! `StoreError`: everything the model store can refuse or fail at. Shared by the artifact store,
//! the registry and the `ModelStore` facade, so callers map one enum to their own statuses.

use std::path::PathBuf;

use crate::manifest::ManifestError;

/// What failed in the model store. Messages are lowercase, name the thing that failed and,
/// where there is something to do, say what.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No model of that name is registered.
    #[error("model `{model}` is not registered (register a version of it first)")]
    ModelNotFound {
        /// The model name that was looked up.
        model: String,
    },
    /// The model exists but has no version with that number.
    #[error("model `{model}` has no version {version}")]
    VersionNotFound {
        /// The model name.
        model: String,
        /// The version number that was looked up.
        version: u32,
    },
    /// The model exists but has no alias of that name.
    #[error("model `{model}` has no alias `{alias}`")]
    AliasNotFound {
        /// The model name.
        model: String,
        /// The alias (or unmatched selector) that was looked up.
        alias: String,
    },
    /// An alias name breaks the naming rules (see `Registry::set_alias`).
    #[error("invalid alias `{alias}`: {reason}")]
    InvalidAlias {
        /// The refused alias.
        alias: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A remote version's upstream is not one the gateway can call (see `Upstream::new`).
    #[error("invalid upstream: {0}")]
    InvalidUpstream(String),
    /// A model name breaks the naming rules (see `ModelStore::register`).
    #[error("invalid model name `{name}`: {reason}")]
    InvalidModelName {
        /// The refused name.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A digest is not exactly 64 lowercase hex characters, so it cannot name an artifact.
    #[error("invalid sha256 digest `{digest}`: expected exactly 64 lowercase hex characters")]
    InvalidDigest {
        /// The refused digest.
        digest: String,
    },
    /// The registry names an artifact whose file is not in the store.
    #[error(
        "artifact sha256 {sha256} is missing from the store (expected at {}); \
         re-register the model file to restore it",
        path.display()
    )]
    ArtifactMissing {
        /// The digest of the missing artifact.
        sha256: String,
        /// Where the file was expected.
        path: PathBuf,
    },
    /// The version's artifact was removed by garbage collection (`switchyard models gc`): its
    /// record, provenance and history remain, but it cannot be loaded.
    #[error(
        "artifact of {model} v{version} (sha256 {sha256}) was garbage-collected on {collected_at}; \
         the version's record, provenance and history remain, but it cannot be loaded \
         (register the original model file under {model} again to restore it)"
    )]
    ArtifactCollected {
        /// The model.
        model: String,
        /// The version.
        version: u32,
        /// The digest of the collected artifact.
        sha256: String,
        /// When it was collected, RFC 3339 UTC with milliseconds.
        collected_at: String,
    },
    /// An artifact's bytes no longer hash to its name: it is refused, never served.
    #[error("{}", corrupt_message(model.as_deref(), *version, expected, actual))]
    CorruptArtifact {
        /// The model whose version was loaded; `None` when read straight from the artifact store.
        model: Option<String>,
        /// The version that was loaded; `None` when read straight from the artifact store.
        version: Option<u32>,
        /// The digest the artifact is stored (and registered) under.
        expected: String,
        /// The digest of the bytes actually found.
        actual: String,
    },
    /// No lineage record names that request id (never written, or written under another id).
    #[error("no lineage record for request '{request_id}'")]
    LineageNotFound {
        /// The request id that was looked up.
        request_id: String,
    },
    /// A lineage query was refused before it ran (see `LineageQuery`).
    #[error("invalid lineage query: {reason}")]
    InvalidQuery {
        /// Which rule it breaks, naming the values.
        reason: String,
    },
    /// A lineage record was refused before anything was written, and with it its whole batch.
    #[error("lineage record of request '{request_id}' refused: {reason}")]
    InvalidLineageRecord {
        /// The request id of the refused record.
        request_id: String,
        /// What is wrong with it, naming the value.
        reason: String,
    },
    /// A provenance manifest was refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A file system operation on the store failed.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The registry database failed, or holds a row this version of the code cannot read.
    #[error("registry database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The registry database failed on the lineage write path (`LineageAppender`).
    #[error("registry database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The registry schema could not be migrated to the version this code expects.
    #[error("registry schema migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> StoreError {
        StoreError::Io { path: path.into(), source }
    }

    /// A stored value that cannot be decoded (bad JSON, unknown stage, number out of range).
    pub(crate) fn decode(what: impl Into<String>) -> StoreError {
        let message: String = what.into();
        StoreError::Database(sqlx::Error::Decode(message.into()))
    }
}

fn corrupt_message(model: Option<&str>, version: Option<u32>, expected: &str, actual: &str) -> String {
    let subject = match (model, version) {
        (Some(model), Some(version)) => format!("artifact of {model} v{version}"),
        _ => format!("artifact sha256 {expected}"),
    };
    format!(
        "{subject} is corrupt: expected sha256 {expected}, found {actual}; \
         it will not be served (re-register the original model file to repair it)"
    )
}
