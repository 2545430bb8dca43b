//! Why the control plane refused a change. Front ends turn these into their statuses (HTTP in
//! `http::error`, one function); nothing here knows of HTTP.

use policy::promotion::{self, Gate};

/// A refused operator action. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("unknown model '{model}'")]
    UnknownModel { model: String },
    #[error("version {version} of model '{model}' is not loaded (name it in the config to load it)")]
    VersionNotLoaded { model: String, version: u32 },
    #[error("version {version} of model '{model}' failed to load: {reason}")]
    VersionFailed { model: String, version: u32, reason: String },
    #[error("version {version} of model '{model}' is already the champion")]
    AlreadyChampion { model: String, version: u32 },
    #[error("version {version} of model '{model}' is a shadow; give it live traffic with weights first")]
    IsShadow { model: String, version: u32 },
    #[error("model '{model}' has no previous champion to roll back to (champion {champion} since the config)")]
    NoPreviousChampion { model: String, champion: u32 },
    #[error("previous champion {version} of model '{model}' is not loaded; cannot roll back to it")]
    PreviousNotLoaded { model: String, version: u32 },
    /// The promotion gates failed and the action was not forced; `gates` holds every gate.
    #[error(
        "promotion of model '{model}' version {version} refused: {} of {} gates failed (--force overrides, and is recorded)\n{}",
        gates.iter().filter(|g| !g.passed).count(),
        gates.len(),
        promotion::table(gates)
    )]
    GatesFailed { model: String, version: u32, gates: Vec<Gate> },
    #[error("weights refused: {}", problems.join("; "))]
    InvalidWeights { problems: Vec<String> },
    /// The registry could not be read or written; retrying soon may succeed.
    #[error("the registry cannot be {access}: {reason}")]
    Registry { access: &'static str, reason: String },
}

impl ControlError {
    pub(crate) fn registry_read(e: model_store::StoreError) -> ControlError {
        ControlError::Registry { access: "read", reason: e.to_string() }
    }

    pub(crate) fn registry_write(e: model_store::StoreError) -> ControlError {
        ControlError::Registry { access: "written", reason: e.to_string() }
    }
}
