//! Serving state: the loaded versions of every configured model and the routing each model
//! serves, built whole from a config and the model store and swapped in one `ArcSwap` store.
//! Never mutated in place: a guard trip, an operator action or a reload builds the next state
//! (sharing the loaded versions) and installs it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use arc_swap::ArcSwap;
use model_store::{Event, EventSpec, ModelStore, Stage, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::{Loader, ModelInstance};
use crate::telemetry::VersionMetrics;
use crate::telemetry::slices::SliceTracker;
use crate::upstream::Remote;
use policy::guard::Window;
pub use policy::router::OverrideState;
use policy::router::RoutingTable;
use settings::{Config, GuardConfig, ModelConfig, VersionSelector};

/// Window kept for versions of models without a guard (shown in the admin API).
const DEFAULT_WINDOW: Duration = Duration::from_secs(30);

/// A serving state built but not yet installed, with the changes to running versions that only
/// installing it may make: a refused reload drops it and nothing that serves has changed.
#[derive(Debug)]
pub struct Staged {
    pub state: ServingState,
    /// Changes to reused versions, applied by `commit`, never while building.
    changes: Vec<(Arc<LoadedVersion>, Change)>,
}

/// A change to a running version that waits for its state to be installed.
#[derive(Debug)]
enum Change {
    /// Its guard window length changed: a new, empty window of this length.
    Window(Duration),
    /// The registry moved its stage since it was loaded.
    Stage(Stage),
}

impl Staged {
    /// The state, with the changes to running versions it needs applied; install it next.
    pub fn commit(self) -> ServingState {
        for (loaded, change) in self.changes {
            match change {
                Change::Window(length) => loaded.window.store(Arc::new(Window::new(length))),
                Change::Stage(stage) => set_stage(&loaded, stage),
            }
        }
        self.state
    }
}

/// Sets a served version's stage and moves its `switchyard_model_info` series to the new label.
pub fn set_stage(loaded: &LoadedVersion, stage: Stage) {
    let before = loaded.stage.set(stage);
    if before == stage {
        return;
    }
    let inst = &loaded.instance;
    let info = |stage: Stage| {
        metrics::gauge!("switchyard_model_info", "model" => inst.model.to_string(),
            "version" => inst.version.to_string(), "sha256" => inst.sha256.to_string(), "stage" => stage.to_string())
    };
    info(before).set(0.0);
    info(stage).set(1.0);
}

/// Everything the request path needs, as one snapshot.
#[derive(Debug, Default, Clone)]
pub struct ServingState {
    pub models: BTreeMap<String, ServedModel>,
}

/// One configured model, its versions and the routing it serves now.
#[derive(Debug, Clone)]
pub struct ServedModel {
    pub name: String,
    /// Where unpinned requests go now. Every version it names is a key of `versions` (it may
    /// have failed to load; the request path then falls back as `route` explains).
    pub routing: RoutingTable,
    /// The routing as the config file says, resolved to numbers.
    pub configured: RoutingTable,
    /// Fingerprint of `configured`: an override made under another fingerprint is stale.
    pub fingerprint: String,
    /// Why `routing` is what it is.
    pub origin: RoutingOrigin,
    /// The champion before the last change of champion, for rollback.
    pub previous_champion: Option<u32>,
    /// Versions the guard moved traffic away from; never picked as a backup until reset.
    pub ejected: BTreeSet<u32>,
    pub guard: Option<GuardConfig>,
    /// Promotion gates, if configured.
    pub promotion: Option<policy::promotion::PromotionPolicy>,
    /// Largest batch advertised to clients (`max_batch_size` in the model config).
    pub max_batch: usize,
    pub versions: BTreeMap<u32, VersionSlot>,
    /// Keep a sha256 of each request's inputs in its lineage record.
    pub lineage_input_sha256: bool,
    /// Registry aliases of the configured versions (alias → version), so a path may name a
    /// version by alias. The control plane keeps `champion` in step when it moves it.
    pub aliases: BTreeMap<String, u32>,
    /// Payload capture, if configured.
    pub capture: Option<settings::CaptureConfig>,
    /// What a request outside a version's training range gets.
    pub out_of_range: settings::OutOfRange,
    /// PSI above which a version's input drift is a breach (alerted), and the rows needed first.
    pub max_psi: Option<f64>,
    pub drift_min_rows: u64,
    /// Per-slice figures (`[model.slices]`), kept across reloads while the table is unchanged.
    pub slices: Option<Arc<SliceTracker>>,
}

/// Why a model's routing is what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoutingOrigin {
    /// As the config file says.
    Config,
    /// The guard moved traffic; `detail` holds the measured figures and thresholds.
    GuardTrip { event_id: i64, at: String, detail: serde_json::Value },
    /// An operator promoted, rolled back or set weights.
    Operator { action: String, actor: String, event_id: i64, at: String, detail: serde_json::Value },
}

/// A configured version: serving, or refused at load with the reason.
#[derive(Debug, Clone)]
pub enum VersionSlot {
    Ready(Arc<LoadedVersion>),
    Failed { sha256: String, reason: String },
}

/// A loaded version and the registry facts served with it.
#[derive(Debug)]
pub struct LoadedVersion {
    pub instance: ModelInstance,
    /// Its registry stage, kept in step with the registry by the control plane.
    pub stage: StageCell,
    /// Recent requests, judged by the guard. Replaced when the guard's window length changes.
    pub window: ArcSwap<Window>,
    /// Its live inputs against its training profile, when its manifest has one.
    pub drift: Option<InputDrift>,
    /// Rows compared while this version ran as a shadow, and how many agreed (argmax), since load.
    pub shadow_rows: AtomicU64,
    pub shadow_agree: AtomicU64,
    /// Its request figures, resolved once.
    pub metrics: VersionMetrics,
    /// The header values naming it in every answer, built once.
    pub headers: VersionHeaders,
}

/// One input of a version watched against its training profile.
#[derive(Debug)]
pub struct InputDrift {
    /// The input tensor profiled.
    pub input: String,
    pub window: policy::drift::DriftWindow,
    /// The instant window epochs count from.
    pub origin: std::time::Instant,
}

impl InputDrift {
    /// The first input profile of `manifest` that fits the signature (a 1-D or `[batch, F]`
    /// input with F features), as a drift window of `length`.
    fn of(
        manifest: Option<&model_store::Manifest>,
        signature: &model_store::Signature,
        length: Duration,
    ) -> Option<InputDrift> {
        let manifest = manifest?;
        signature.inputs.iter().find_map(|spec| {
            let p = manifest.data_profile.get(&spec.name)?;
            let features = match spec.shape.as_slice() {
                [_] => 1,
                [_, f] => usize::try_from(*f).ok()?,
                _ => return None,
            };
            (p.features() == features && p.problem().is_none()).then(|| InputDrift {
                input: spec.name.clone(),
                window: policy::drift::DriftWindow::new(
                    policy::drift::Profile { min: p.min.clone(), max: p.max.clone(), deciles: p.deciles.clone() },
                    length,
                ),
                origin: std::time::Instant::now(),
            })
        })
    }
}

/// A served version's registry stage. Read by every view (admin API, `switchyard_model_info`);
/// written only by the control plane, in step with the registry write that moved it.
#[derive(Debug)]
pub struct StageCell(std::sync::atomic::AtomicU8);

impl StageCell {
    pub fn new(stage: Stage) -> StageCell {
        StageCell(std::sync::atomic::AtomicU8::new(Self::code(stage)))
    }

    pub fn get(&self) -> Stage {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            0 => Stage::Staging,
            1 => Stage::Production,
            _ => Stage::Archived,
        }
    }

    /// Sets the stage; returns the one it replaces.
    pub(crate) fn set(&self, stage: Stage) -> Stage {
        let before = self.get();
        self.0.store(Self::code(stage), std::sync::atomic::Ordering::Relaxed);
        before
    }

    fn code(stage: Stage) -> u8 {
        match stage {
            Stage::Staging => 0,
            Stage::Production => 1,
            Stage::Archived => 2,
        }
    }
}

/// `x-model-version` and `x-model-sha256` of a loaded version's answers: cloning a
/// `HeaderValue` shares its bytes, where building one per request validates and copies them.
#[derive(Debug)]
pub struct VersionHeaders {
    pub version: http::HeaderValue,
    pub sha256: http::HeaderValue,
}

impl VersionHeaders {
    fn of(instance: &ModelInstance) -> VersionHeaders {
        VersionHeaders {
            version: http::HeaderValue::from(instance.version),
            // Lowercase hex: always a valid header value.
            sha256: http::HeaderValue::from_str(&instance.sha256).unwrap_or(http::HeaderValue::from_static("")),
        }
    }
}

impl ServedModel {
    /// The version a path segment names: a number, or one of `aliases`. `None` when it names
    /// neither.
    pub fn version_named(&self, text: &str) -> Option<u32> {
        match text.parse::<u32>() {
            Ok(v) => Some(v),
            Err(_) => self.aliases.get(text).copied(),
        }
    }

    /// "1, 2, 3" and, when there are any, "; aliases: champion → 2": what a path may name.
    pub fn names_text(&self) -> String {
        let numbers: Vec<String> = self.ready_versions().map(|l| l.instance.version.to_string()).collect();
        let mut text = if numbers.is_empty() { "none".to_owned() } else { numbers.join(", ") };
        if !self.aliases.is_empty() {
            let aliases: Vec<String> = self.aliases.iter().map(|(a, v)| format!("{a} → {v}")).collect();
            text.push_str(&format!("; aliases: {}", aliases.join(", ")));
        }
        text
    }

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

    /// This model with `state` as its routing, for `origin`.
    pub fn with_override(&self, state: OverrideState, origin: RoutingOrigin) -> ServedModel {
        ServedModel {
            routing: state.routing,
            previous_champion: state.previous_champion,
            ejected: state.ejected,
            origin,
            ..self.clone()
        }
    }

    /// This model back on its configured routing.
    pub fn reset(&self) -> ServedModel {
        ServedModel {
            routing: self.configured.clone(),
            previous_champion: None,
            ejected: BTreeSet::new(),
            origin: RoutingOrigin::Config,
            ..self.clone()
        }
    }

    /// The override state of the routing served now.
    pub fn override_state(&self) -> OverrideState {
        OverrideState {
            routing: self.routing.clone(),
            previous_champion: self.previous_champion,
            ejected: self.ejected.clone(),
        }
    }

    /// A short note for lineage reasons of requests the routing sends to a backup.
    pub fn route_note(&self) -> Option<String> {
        match &self.origin {
            RoutingOrigin::GuardTrip { detail, .. } => Some(format!(
                "after guard trip of version {} ({})",
                detail["from"],
                detail["reason_text"].as_str().unwrap_or("threshold breached")
            )),
            _ => None,
        }
    }
}

impl ServingState {
    /// Resolves every configured version in the registry and loads it, reusing the loaded
    /// versions of `previous` that are unchanged (same artifact and engine settings). Problems in
    /// the config's references (unknown model, version or alias) are returned all together; a
    /// version whose artifact is corrupt or that ONNX Runtime refuses becomes `Failed` and the
    /// rest serve. Stored routing overrides are applied when the model's configured routing is
    /// what it was when they were made, and cleared (with an event) when it changed.
    ///
    /// Nothing of `previous` changes here: what must change in a reused version (its guard
    /// window) waits in the `Staged` until it is committed.
    pub async fn build(
        config: &Config,
        store: &ModelStore,
        loader: Loader,
        previous: Option<&ServingState>,
    ) -> Result<Staged, Vec<String>> {
        let mut problems = Vec::new();
        let mut models = BTreeMap::new();
        let mut changes = Vec::new();
        for model in &config.models {
            let previous = previous.and_then(|p| p.models.get(&model.name));
            match load_model(model, store, loader, &config.upstream, previous, &mut changes).await {
                Ok(served) => {
                    models.insert(model.name.clone(), served);
                }
                Err(mut p) => problems.append(&mut p),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for served in models.values_mut() {
            *served = apply_override(served, store).await;
        }
        Ok(Staged { state: ServingState { models }, changes })
    }

    /// This state with `model` replaced.
    pub fn with_model(&self, model: ServedModel) -> ServingState {
        let mut next = self.clone();
        next.models.insert(model.name.clone(), model);
        next
    }
}

/// Fingerprint of a configured routing table: the first 16 hex digits of its JSON's sha256.
fn fingerprint(table: &RoutingTable) -> String {
    let json = serde_json::to_vec(table).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// `served` with its stored override applied, or cleared when stale. A registry that cannot be
/// read leaves the configured routing, loudly.
async fn apply_override(served: &ServedModel, store: &ModelStore) -> ServedModel {
    let registry = store.registry();
    let stored = match registry.routing_override(&served.name).await {
        Ok(Some(o)) => o,
        Ok(None) => return served.clone(),
        Err(e) => {
            tracing::error!(model = %served.name, error = %e, "cannot read the routing override; serving the configured routing");
            return served.clone();
        }
    };
    let parsed: Result<OverrideState, _> = serde_json::from_value(stored.routing.clone());
    let origin: Result<RoutingOrigin, _> = serde_json::from_value(stored.origin.clone());
    let usable = matches!((&parsed, &origin), (Ok(state), Ok(_))
        if stored.config_fingerprint == served.fingerprint && routing_is_loadable(&state.routing, served));
    if let (true, Ok(state), Ok(mut origin)) = (usable, parsed, origin) {
        // The origin was stored before its event had an id; the row knows it.
        if let RoutingOrigin::GuardTrip { event_id, .. } | RoutingOrigin::Operator { event_id, .. } = &mut origin {
            *event_id = stored.event_id;
        }
        tracing::warn!(model = %served.name, champion = state.routing.champion, since = %stored.at,
            "serving the stored routing override (guard trip or operator action) instead of the config's; reset it with POST /admin/models/{}/reset", served.name);
        return served.with_override(state, origin);
    }
    let event = EventSpec {
        version: None,
        kind: Event::ROUTING_OVERRIDE_CLEARED,
        detail: serde_json::json!({
            "reason": "the model's routing in the config changed since the override was made",
            "override_event_id": stored.event_id,
        }),
        actor: "config",
    };
    match registry.clear_routing_override(&served.name, event, None).await {
        Ok(_) => tracing::info!(model = %served.name, "config routing changed: the stored override no longer applies"),
        Err(e) => tracing::error!(model = %served.name, error = %e, "cannot clear the stale routing override"),
    }
    served.clone()
}

fn routing_is_loadable(table: &RoutingTable, served: &ServedModel) -> bool {
    std::iter::once(table.champion)
        .chain(table.challengers.iter().map(|(v, _)| *v))
        .chain(table.shadows.iter().map(|(v, _)| *v))
        .chain(table.backup.iter().copied())
        .all(|v| served.versions.contains_key(&v))
}

async fn load_model(
    model: &ModelConfig,
    store: &ModelStore,
    loader: Loader,
    upstreams: &settings::UpstreamConfig,
    previous: Option<&ServedModel>,
    changes: &mut Vec<(Arc<LoadedVersion>, Change)>,
) -> Result<ServedModel, Vec<String>> {
    let registry = store.registry();
    let mut problems = Vec::new();
    let mut records: Vec<model_store::VersionRecord> = Vec::new();
    let mut resolved: BTreeMap<VersionSelector, u32> = BTreeMap::new();
    for selector in &model.versions {
        match registry.resolve(&model.name, &selector.to_string()).await {
            Ok(record) if record.stage == Stage::Archived => {
                problems.push(archived_problem(&model.name, selector, &record))
            }
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
    let aliases = records.iter().flat_map(|r| r.aliases.iter().map(|a| (a.clone(), r.version))).collect();
    let window_len = model.guard.as_ref().map_or(DEFAULT_WINDOW, |g| g.window);
    let mut versions = BTreeMap::new();
    for record in records {
        if let Some(reused) = reusable(previous, &record, model) {
            if reused.window.load().length() != Window::length_for(window_len) {
                changes.push((Arc::clone(&reused), Change::Window(window_len)));
            }
            if reused.stage.get() != record.stage {
                changes.push((Arc::clone(&reused), Change::Stage(record.stage)));
            }
            versions.insert(record.version, VersionSlot::Ready(reused));
            continue;
        }
        let slot = match load_version(&record, model, store, loader, upstreams, window_len).await {
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
        fingerprint: fingerprint(&routing),
        configured: routing.clone(),
        routing,
        origin: RoutingOrigin::Config,
        previous_champion: None,
        ejected: BTreeSet::new(),
        guard: model.guard.clone(),
        promotion: model.promotion.clone(),
        max_batch: model.engine.max_batch,
        versions,
        lineage_input_sha256: model.lineage_input_sha256,
        aliases,
        capture: model.capture.clone(),
        out_of_range: model.validation.out_of_range,
        max_psi: model.validation.max_psi,
        drift_min_rows: model.validation.min_rows,
        slices: model.slices.clone().map(|config| {
            let kept = previous.and_then(|p| p.slices.as_ref()).filter(|t| t.config == config);
            kept.map_or_else(|| Arc::new(SliceTracker::new(&model.name, config, window_len)), Arc::clone)
        }),
    })
}

/// Why a config may not name an archived version, and what to do instead.
pub fn archived_problem(model: &str, selector: &VersionSelector, record: &model_store::VersionRecord) -> String {
    format!(
        "model '{model}': version {selector} (v{}) is archived and cannot be served; its artifact, provenance and \
         lineage stay queryable (to serve it again: `switchyard models stage --store DIR {model}:{} staging`)",
        record.version, record.version
    )
}

/// The previous state's loaded version, if it serves the same artifact with the same settings.
fn reusable(
    previous: Option<&ServedModel>,
    record: &model_store::VersionRecord,
    model: &ModelConfig,
) -> Option<Arc<LoadedVersion>> {
    let loaded = previous?.ready(record.version)?;
    (*loaded.instance.sha256 == *record.sha256 && loaded.instance.settings == model.engine).then(|| Arc::clone(loaded))
}

/// Turns the configured split into version numbers. Aliases may resolve to the same number as
/// another entry; such a clash (e.g. the champion alias pointing at a challenger) is refused.
fn routing_table(model: &ModelConfig, resolved: &BTreeMap<VersionSelector, u32>) -> Result<RoutingTable, Vec<String>> {
    let r = &model.routing;
    let n = |sel: &VersionSelector| resolved[sel];
    let table = RoutingTable {
        champion: n(&r.champion),
        champion_route: policy::router::Route::Champion,
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
    loader: Loader,
    upstreams: &settings::UpstreamConfig,
    window: Duration,
) -> Result<LoadedVersion, String> {
    // The hash is checked here, on every load: a corrupt file is refused, never served.
    let bytes = store.load_artifact(record).await.map_err(|e| e.to_string())?;
    let (name, version, sha256, settings) =
        (model.name.clone(), record.version, record.sha256.clone(), model.engine.clone());
    let instance = match &record.upstream {
        // A remote version: its verified descriptor says where, and the upstream must still
        // declare the signature registered.
        Some(upstream) => {
            if model_store::Upstream::from_descriptor(&bytes).as_ref() != Some(upstream) {
                return Err(format!(
                    "the artifact {sha256} of remote version {version} is not its upstream's descriptor"
                ));
            }
            let remote = Remote::connect(upstream, &record.signature, upstreams).await.map_err(|e| e.to_string())?;
            ModelInstance::remote(&name, version, &sha256, record.signature.clone(), settings, remote)
        }
        None => tokio::task::spawn_blocking(move || loader.load(&name, version, &sha256, &bytes, settings))
            .await
            .map_err(|e| format!("loader task failed: {e}"))?
            .map_err(|e| e.to_string())?,
    };
    // A registry that cannot be read here leaves the version serving without drift figures.
    let manifest = store.registry().provenance(&model.name, record.version).await.ok().flatten();
    let drift = InputDrift::of(manifest.as_ref(), &instance.signature, model.validation.window);
    Ok(LoadedVersion {
        drift,
        metrics: VersionMetrics::new(&model.name, record.version),
        headers: VersionHeaders::of(&instance),
        instance,
        stage: StageCell::new(record.stage),
        window: ArcSwap::from_pointee(Window::new(window)),
        shadow_rows: AtomicU64::new(0),
        shadow_agree: AtomicU64::new(0),
    })
}
