//! Config reloads: read the file again, validate all of it, load and warm new versions, and only
//! then swap. Any failure leaves the running config serving, guard windows included.

use serde::Serialize;
use settings::Config;
use sha2::{Digest, Sha256};

use super::Control;
use crate::serving::{ServingState, VersionSlot};

/// What a successful reload changed.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    pub result: &'static str,
    pub trigger: String,
    /// "model:version" loaded by this reload.
    pub loaded: Vec<String>,
    /// "model:version" no longer served (unloaded once their in-flight requests finish).
    pub unloaded: Vec<String>,
    /// Models whose routing changed.
    pub rerouted: Vec<String>,
    /// Settings that need a restart to change, left as they were.
    pub ignored: Vec<String>,
}

/// Why a reload was refused: every problem found. The running config keeps serving.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{error}: {}", problems.join("; "))]
pub struct ReloadError {
    pub error: String,
    pub problems: Vec<String>,
}

impl Control {
    /// Reads the config file again and applies it whole, or refuses it whole.
    pub async fn reload(&self, trigger: &str) -> Result<ReloadReport, ReloadError> {
        self.reload_from(trigger, None).await
    }

    /// `reload`, from `bytes` already read from the config file (`None`: read it now).
    pub async fn reload_from(&self, trigger: &str, bytes: Option<Vec<u8>>) -> Result<ReloadReport, ReloadError> {
        let result = self.try_reload(trigger, bytes).await;
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("switchyard_config_reloads_total", "result" => label).increment(1);
        match &result {
            Ok(r) => {
                tracing::info!(trigger, loaded = ?r.loaded, unloaded = ?r.unloaded, rerouted = ?r.rerouted, "config reloaded")
            }
            Err(e) => {
                tracing::error!(trigger, problems = ?e.problems, "config reload refused; the running config keeps serving");
                self.alerts.send(crate::alerts::Alert {
                    kind: "reload_failed",
                    model: None,
                    version: None,
                    summary: format!("config reload ({trigger}) refused: {}", e.error),
                    detail: serde_json::json!({ "error": e.error, "problems": e.problems }),
                });
            }
        }
        result
    }

    async fn try_reload(&self, trigger: &str, bytes: Option<Vec<u8>>) -> Result<ReloadReport, ReloadError> {
        let refuse = |error: &str, problems: Vec<String>| ReloadError { error: error.to_owned(), problems };
        let Some(path) = self.path.clone() else {
            return Err(refuse("this gateway was not started from a config file", Vec::new()));
        };
        let mut served = self.config.lock().await;
        let invalid = || format!("{} is not a valid config", path.display());
        let bytes = match bytes {
            Some(bytes) => bytes,
            None => std::fs::read(&path).map_err(|e| refuse(&invalid(), vec![format!("cannot read the file: {e}")]))?,
        };
        // What was read counts as seen, valid or not: a broken file is not retried until it
        // changes again.
        self.set_seen(Sha256::digest(&bytes).into());
        let config = Config::from_file_bytes(&path, &bytes).map_err(|e| refuse(&invalid(), e.problems))?;
        let mut ignored = Vec::new();
        if config.server != served.server {
            ignored.push("[server] (listeners and limits change on restart)".to_owned());
        }
        if config.store_path != served.store_path {
            return Err(refuse(
                "the store cannot change while serving",
                vec![format!(
                    "[store] path changed from {} to {}",
                    served.store_path.display(),
                    config.store_path.display()
                )],
            ));
        }
        if config.lineage != served.lineage {
            ignored.push("[lineage] (the writer is configured at start)".to_owned());
        }
        if config.onnxruntime != served.onnxruntime {
            ignored.push("[runtime] (ONNX Runtime is loaded once)".to_owned());
        }
        if config.alerts != served.alerts {
            ignored.push("[[alert]] (alert sinks are set at start)".to_owned());
        }
        let state = self.serving.load_full();
        let staged = ServingState::build(&config, &self.store, self.loader, Some(&state))
            .await
            .map_err(|p| refuse("the config names versions the store cannot provide", p))?;
        // A version this reload tried to load and could not is a refusal, not a degraded start.
        let failed: Vec<String> = staged
            .state
            .models
            .values()
            .flat_map(|m| {
                m.versions.iter().filter_map(|(v, slot)| match slot {
                    VersionSlot::Failed { reason, .. } if !was_failed(&state, &m.name, *v) => {
                        Some(format!("model '{}' version {v}: {reason}", m.name))
                    }
                    _ => None,
                })
            })
            .collect();
        if !failed.is_empty() {
            return Err(refuse("new versions could not be loaded", failed));
        }
        let next = staged.commit();
        let versions = |s: &ServingState| -> Vec<String> {
            s.models.values().flat_map(|m| m.versions.keys().map(move |v| format!("{}:{v}", m.name))).collect()
        };
        let (before, after) = (versions(&state), versions(&next));
        let report = ReloadReport {
            result: "ok",
            trigger: trigger.to_owned(),
            loaded: after.iter().filter(|v| !before.contains(v)).cloned().collect(),
            unloaded: before.iter().filter(|v| !after.contains(v)).cloned().collect(),
            rerouted: next
                .models
                .values()
                .filter(|m| state.models.get(&m.name).is_none_or(|p| p.routing != m.routing))
                .map(|m| m.name.clone())
                .collect(),
            ignored,
        };
        self.install(next);
        *served = config;
        Ok(report)
    }

    pub(super) fn seen(&self) -> Option<[u8; 32]> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_seen(&self, digest: [u8; 32]) {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(digest);
    }
}

fn was_failed(state: &ServingState, model: &str, version: u32) -> bool {
    matches!(state.models.get(model).and_then(|m| m.versions.get(&version)), Some(VersionSlot::Failed { .. }))
}
