//! Serving state: the loaded versions of every configured model, built whole from a config and
//! the model store, and swapped in one `ArcSwap` store. Never mutated in place.

use std::collections::BTreeMap;
use std::sync::Arc;

use model_store::{ModelStore, Stage, StoreError};

use crate::config::{Config, ModelConfig, VersionSelector};
use crate::engine::{ModelInstance, Runtime};
use crate::router::RoutingTable;

/// Everything the request path needs, as one snapshot.
#[derive(Debug, Default)]
pub struct ServingState {
    pub models: BTreeMap<String, ServedModel>,
}

/// One configured model and its versions.
#[derive(Debug)]
pub struct ServedModel {
    pub name: String,
    /// Where unpinned requests go. Every version it names is a key of `versions` (it may have
    /// failed to load; the request path then falls back as `route` explains).
    pub routing: RoutingTable,
    /// Largest batch advertised to clients (`max_batch_size` in the model config).
    pub max_batch: usize,
    pub versions: BTreeMap<u32, VersionSlot>,
    /// Keep a sha256 of each request's inputs in its lineage record.
    pub lineage_input_sha256: bool,
}

/// A configured version: serving, or refused at load with the reason.
#[derive(Debug)]
pub enum VersionSlot {
    Ready(Arc<LoadedVersion>),
    Failed { sha256: String, reason: String },
}

/// A loaded version and the registry facts served with it.
#[derive(Debug)]
pub struct LoadedVersion {
    pub instance: ModelInstance,
    pub stage: Stage,
}

impl ServedModel {
    /// The version named `v`, if configured and loaded.
    pub fn ready(&self, v: u32) -> Option<&Arc<LoadedVersion>> {
        match self.versions.get(&v)? {
            VersionSlot::Ready(loaded) => Some(loaded),
            VersionSlot::Failed { .. } => None,
        }
    }

    /// Versions that are loaded, ascending.
    pub fn ready_versions(&self) -> impl Iterator<Item = &Arc<LoadedVersion>> {
        self.versions.values().filter_map(|s| match s {
            VersionSlot::Ready(l) => Some(l),
            VersionSlot::Failed { .. } => None,
        })
    }
}

impl ServingState {
    /// Resolves every configured version in the registry and loads it. Problems in the config's
    /// references (unknown model, version or alias) are returned all together; a version whose
    /// artifact is corrupt or that ONNX Runtime refuses becomes `Failed` and the rest serve.
    pub async fn build(
        config: &Config,
        store: &ModelStore,
        runtime: &'static Runtime,
    ) -> Result<ServingState, Vec<String>> {
        let mut problems = Vec::new();
        let mut models = BTreeMap::new();
        for model in &config.models {
            match load_model(model, store, runtime).await {
                Ok(served) => {
                    models.insert(model.name.clone(), served);
                }
                Err(mut p) => problems.append(&mut p),
            }
        }
        if problems.is_empty() { Ok(ServingState { models }) } else { Err(problems) }
    }
}

async fn load_model(
    model: &ModelConfig,
    store: &ModelStore,
    runtime: &'static Runtime,
) -> Result<ServedModel, Vec<String>> {
    let registry = store.registry();
    let mut problems = Vec::new();
    let mut records: Vec<model_store::VersionRecord> = Vec::new();
    let mut resolved: BTreeMap<VersionSelector, u32> = BTreeMap::new();
    for selector in &model.versions {
        match registry.resolve(&model.name, &selector.to_string()).await {
            Ok(record) => {
                resolved.insert(selector.clone(), record.version);
                if !records.iter().any(|r| r.version == record.version) {
                    records.push(record);
                }
            }
            Err(
                e @ (StoreError::ModelNotFound { .. }
                | StoreError::VersionNotFound { .. }
                | StoreError::AliasNotFound { .. }),
            ) => {
                problems.push(format!("model '{}': version {selector}: {e}", model.name));
            }
            Err(e) => problems.push(format!("model '{}': cannot read the registry: {e}", model.name)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let routing = routing_table(model, &resolved)?;
    let mut versions = BTreeMap::new();
    for record in records {
        let slot = match load_version(&record, model, store, runtime).await {
            Ok(loaded) => {
                tracing::info!(model = %model.name, version = record.version, sha256 = %record.sha256, device = %model.engine.device, "version loaded");
                metrics::gauge!("switchyard_model_info",
                    "model" => model.name.clone(), "version" => record.version.to_string(),
                    "sha256" => record.sha256.clone(), "stage" => record.stage.to_string())
                .set(1.0);
                VersionSlot::Ready(Arc::new(loaded))
            }
            Err(reason) => {
                tracing::error!(model = %model.name, version = record.version, %reason, "version refused; the model's other versions keep serving");
                VersionSlot::Failed { sha256: record.sha256.clone(), reason }
            }
        };
        versions.insert(record.version, slot);
    }
    Ok(ServedModel {
        name: model.name.clone(),
        routing,
        max_batch: model.engine.max_batch,
        versions,
        lineage_input_sha256: model.lineage_input_sha256,
    })
}

/// Turns the configured split into version numbers. Aliases may resolve to the same number as
/// another entry; such a clash (e.g. the champion alias pointing at a challenger) is refused.
fn routing_table(model: &ModelConfig, resolved: &BTreeMap<VersionSelector, u32>) -> Result<RoutingTable, Vec<String>> {
    let r = &model.routing;
    let n = |sel: &VersionSelector| resolved[sel];
    let table = RoutingTable {
        champion: n(&r.champion),
        challengers: r.challengers.iter().map(|(s, w)| (n(s), *w)).collect(),
        shadows: r.shadows.iter().map(|(s, w)| (n(s), *w)).collect(),
        backup: r.backup.iter().map(n).collect(),
        sticky_header: r.sticky_header.clone(),
    };
    let live: Vec<u32> = std::iter::once(table.champion).chain(table.challengers.iter().map(|(v, _)| *v)).collect();
    let mut problems = Vec::new();
    for (i, v) in live.iter().enumerate() {
        if live[..i].contains(v) {
            problems.push(format!(
                "model '{}': version {v} is named twice among champion and challengers (after resolving aliases)",
                model.name
            ));
        }
    }
    for (v, _) in &table.shadows {
        if live.contains(v) {
            problems.push(format!(
                "model '{}': shadow version {v} also serves live traffic (after resolving aliases)",
                model.name
            ));
        }
    }
    if problems.is_empty() { Ok(table) } else { Err(problems) }
}

async fn load_version(
    record: &model_store::VersionRecord,
    model: &ModelConfig,
    store: &ModelStore,
    runtime: &'static Runtime,
) -> Result<LoadedVersion, String> {
    // The hash is checked here, on every load: a corrupt file is refused, never served.
    let bytes = store.load_artifact(record).await.map_err(|e| e.to_string())?;
    let (name, version, sha256, settings) =
        (model.name.clone(), record.version, record.sha256.clone(), model.engine.clone());
    let instance =
        tokio::task::spawn_blocking(move || ModelInstance::load(runtime, &name, version, &sha256, &bytes, settings))
            .await
            .map_err(|e| format!("loader task failed: {e}"))?
            .map_err(|e| e.to_string())?;
    Ok(LoadedVersion { instance, stage: record.stage })
}
