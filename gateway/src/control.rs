//! The control plane: every change to what is served — guard trips, operator actions, config
//! reloads — goes through here. Changes are serialised by one lock (held across the
//! read-modify-install), recorded in the registry with the event that explains them, and take
//! effect through one `ArcSwap` store of a new serving state: requests in flight finish on the
//! version that took them, and none fails because of a swap.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use model_store::EventSpec;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::app::App;
use crate::engine::Runtime;
use crate::http::error::ApiError;
use crate::serving::{RoutingOrigin, ServedModel, ServingState, VersionSlot};
use policy::guard::Verdict;
use policy::promotion;
use policy::router::OverrideState;
use policy::router::{Route, TOTAL_BP};
use settings::Config;

/// What the control plane needs besides the app: the config it serves and where it came from.
#[derive(Debug)]
pub struct Control {
    runtime: &'static Runtime,
    /// The config file, when serving from one (reloads read it again).
    path: Option<PathBuf>,
    /// The config being served; its lock serialises every change of serving state.
    config: Mutex<Config>,
    /// sha256 of the config file text last read by start-up or a reload (applied or refused):
    /// the watcher reloads only when the file holds something else.
    seen: std::sync::Mutex<Option<[u8; 32]>>,
}

impl Control {
    /// `digest`: of the text `config` was parsed from (see `Config::load_with_digest`).
    pub fn new(runtime: &'static Runtime, path: Option<PathBuf>, config: Config, digest: Option<[u8; 32]>) -> Control {
        Control { runtime, path, config: Mutex::new(config), seen: std::sync::Mutex::new(digest) }
    }

    fn seen(&self) -> Option<[u8; 32]> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_seen(&self, digest: [u8; 32]) {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(digest);
    }

    /// The config file reloads read.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

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
#[derive(Debug, Clone, Serialize)]
pub struct ReloadError {
    pub error: String,
    pub problems: Vec<String>,
}

fn now_text() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl App {
    /// Applies a guard verdict to the model it was made for, unless its routing changed since
    /// (then the next evaluation judges again). Returns whether routing changed.
    pub async fn apply_verdict(&self, judged: &ServedModel, verdict: Verdict) -> bool {
        let _guard = self.control.config.lock().await;
        let state = self.serving.load_full();
        let Some(current) = state.models.get(&judged.name) else { return false };
        if current.routing != judged.routing {
            return false;
        }
        let (from, to, reason, next, detail, kind) = match verdict {
            Verdict::Trip { from, to, reason, next, detail } => (from, to, reason, Some(next), detail, "guard_trip"),
            Verdict::NoHealthyBackup { champion, keep, reason, next, detail } => {
                // Raised once, then held until the champion stops breaching or a reset: the
                // event, metric and log line are not repeated every interval.
                if !self.raise_alarm(&current.name, &detail) && next.is_none() {
                    return false;
                }
                metrics::gauge!("switchyard_guard_no_healthy_backup", "model" => current.name.clone()).set(1.0);
                tracing::error!(model = %current.name, champion, keep, %detail,
                    "guard: the champion breaches and no backup is healthy; keeping the least bad version serving");
                (champion, keep, reason, next, detail, "guard_no_healthy_backup")
            }
            Verdict::ShadowBreach { .. } => return false,
        };
        metrics::counter!("switchyard_guard_trips_total", "model" => current.name.clone(),
            "from" => from.to_string(), "to" => to.to_string(), "reason" => reason.as_str())
        .increment(1);
        let Some(next) = next else {
            self.record_event_logged(&current.name, Some(from), kind, detail, "guard").await;
            return false;
        };
        tracing::warn!(model = %current.name, from, to, %detail, "guard trip: moving traffic");
        let origin = |event_id| RoutingOrigin::GuardTrip { event_id, at: now_text(), detail: detail.clone() };
        self.persist_and_install(
            &state,
            current,
            next,
            origin,
            EventSpec { version: Some(from), kind, detail: detail.clone(), actor: "guard" },
        )
        .await;
        true
    }

    /// Sets the model's "no healthy backup" alarm; returns whether it was newly raised.
    fn raise_alarm(&self, model: &str, detail: &Value) -> bool {
        let mut alarms = self.alarms.lock().unwrap_or_else(|p| p.into_inner());
        alarms.insert(model.to_owned(), detail.clone()).is_none()
    }

    /// Clears the model's alarm (its champion no longer breaches, or an operator reset it).
    pub fn clear_alarm(&self, model: &str) {
        let mut alarms = self.alarms.lock().unwrap_or_else(|p| p.into_inner());
        if alarms.remove(model).is_some() {
            metrics::gauge!("switchyard_guard_no_healthy_backup", "model" => model.to_owned()).set(0.0);
            tracing::info!(model, "guard: the champion no longer breaches; alarm cleared");
        }
    }

    /// The model's alarm, if raised: the evaluation that raised it.
    pub fn alarm(&self, model: &str) -> Option<Value> {
        self.alarms.lock().unwrap_or_else(|p| p.into_inner()).get(model).cloned()
    }

    /// Records a guard event that changes nothing (a breaching shadow), logging a failure.
    pub async fn record_guard_event(&self, model: &str, version: u32, kind: &str, detail: Value) {
        self.record_event_logged(model, Some(version), kind, detail, "guard").await;
    }

    async fn record_event_logged(&self, model: &str, version: Option<u32>, kind: &str, detail: Value, actor: &str) {
        if let Err(e) = self.store.registry().record_event(model, version, kind, detail, actor).await {
            tracing::error!(model, kind, error = %e, "cannot record the event in the registry");
        }
    }

    /// Stores `next` as the model's override with its event, then installs it. The swap happens
    /// even if the registry cannot be written (traffic safety first); that failure is logged and
    /// counted, and a restart would then serve the configured routing.
    async fn persist_and_install(
        &self,
        state: &ServingState,
        current: &ServedModel,
        next: OverrideState,
        origin: impl Fn(i64) -> RoutingOrigin,
        event: EventSpec<'_>,
    ) -> ServedModel {
        let routing_json = serde_json::to_value(&next).unwrap_or(Value::Null);
        let origin_json = serde_json::to_value(origin(0)).unwrap_or(Value::Null);
        let event_id = match self
            .store
            .registry()
            .put_routing_override(&current.name, &current.fingerprint, routing_json, origin_json, event)
            .await
        {
            Ok((_, e)) => e.id,
            Err(e) => {
                metrics::counter!("switchyard_routing_persist_errors_total").increment(1);
                tracing::error!(model = %current.name, error = %e, "cannot persist the routing change; serving it anyway");
                0
            }
        };
        let model = current.with_override(next, origin(event_id));
        self.install(state.with_model(model.clone()));
        model
    }

    /// An operator change of one model's routing: checked by `change`, persisted, installed.
    async fn operator_change(
        &self,
        model: &str,
        action: &str,
        actor: &str,
        change: impl FnOnce(&ServedModel) -> Result<(OverrideState, Value, Option<u32>), ApiError>,
    ) -> Result<ServedModel, ApiError> {
        let _guard = self.control.config.lock().await;
        let state = self.serving.load_full();
        let current = state.models.get(model).ok_or_else(|| ApiError::NotFound(format!("unknown model '{model}'")))?;
        let (next, detail, version) = change(current)?;
        tracing::info!(model, action, actor, %detail, "operator routing change");
        let origin = |event_id| RoutingOrigin::Operator {
            action: action.to_owned(),
            actor: actor.to_owned(),
            event_id,
            at: now_text(),
            detail: detail.clone(),
        };
        let event = EventSpec { version, kind: action, detail: detail.clone(), actor };
        Ok(self.persist_and_install(&state, current, next, origin, event).await)
    }

    /// Makes `version` the champion (it must be loaded and not a shadow); the old champion is
    /// remembered for rollback and leaves the split. With a promotion policy, its gates are
    /// judged first: a failure refuses (409, with the table) unless `force`, which is recorded.
    /// A promotion also moves the `champion` alias and the `production` stage in the registry.
    pub async fn promote(&self, model: &str, version: u32, actor: &str, force: bool) -> Result<ServedModel, ApiError> {
        let gates = self.promotion_gates(model, version).await?;
        let failed = gates.iter().filter(|g| !g.passed).count();
        if failed > 0 && !force {
            let message = format!(
                "promotion of model '{model}' version {version} refused: {failed} of {} gates failed (--force overrides, and is recorded)\n{}",
                gates.len(),
                promotion::table(&gates)
            );
            return Err(ApiError::Refused { message, detail: json!({ "gates": gates }) });
        }
        let evidence = json!({ "gates": gates, "forced": force && failed > 0 });
        let promoted = self
            .operator_change(model, "promoted", actor, |m| {
                let r = &m.routing;
                if r.champion == version {
                    return Err(ApiError::Conflict(format!(
                        "version {version} of model '{model}' is already the champion"
                    )));
                }
                require_ready(m, version)?;
                if r.shadows.iter().any(|(v, _)| *v == version) {
                    return Err(ApiError::Conflict(format!(
                        "version {version} of model '{model}' is a shadow; give it live traffic with weights first"
                    )));
                }
                let mut next = m.override_state();
                next.previous_champion = Some(r.champion);
                next.routing.champion = version;
                next.routing.champion_route = Route::Champion;
                next.routing.challengers.retain(|(v, _)| *v != version);
                next.ejected.remove(&version);
                Ok((next, json!({ "from": r.champion, "to": version, "evidence": evidence }), Some(version)))
            })
            .await?;
        // The registry follows: the alias and stage say who the champion is.
        let registry = self.store.registry();
        if let Err(e) = registry.set_alias(model, "champion", version, actor).await {
            tracing::error!(model, version, error = %e, "promoted, but the champion alias could not be moved");
        }
        if let Err(e) = registry.set_stage(model, version, model_store::Stage::Production, actor).await {
            tracing::error!(model, version, error = %e, "promoted, but the stage could not be set to production");
        }
        Ok(promoted)
    }

    /// The model's promotion gates judged for `version` now (empty without a policy).
    pub async fn promotion_gates(&self, model: &str, version: u32) -> Result<Vec<promotion::Gate>, ApiError> {
        let state = self.serving.load_full();
        let m = state.models.get(model).ok_or_else(|| ApiError::NotFound(format!("unknown model '{model}'")))?;
        let Some(policy) = &m.promotion else { return Ok(Vec::new()) };
        let candidate = m.ready(version).ok_or_else(|| {
            ApiError::Conflict(format!(
                "version {version} of model '{model}' is not loaded (name it in the config to load it)"
            ))
        })?;
        let registry = self.store.registry();
        let unavailable = |e: model_store::StoreError| ApiError::Unavailable {
            message: format!("the registry cannot be read: {e}"),
            retry_after: Some(1),
        };
        let metrics_of = |manifest: Option<model_store::Manifest>| manifest.map(|m| m.metrics).unwrap_or_default();
        let evidence = promotion::Evidence {
            candidate_metrics: metrics_of(registry.provenance(model, version).await.map_err(unavailable)?),
            champion_metrics: metrics_of(registry.provenance(model, m.routing.champion).await.map_err(unavailable)?),
            window: candidate.window.load().stats(std::time::Instant::now()),
            shadow: (
                candidate.shadow_agree.load(std::sync::atomic::Ordering::Relaxed),
                candidate.shadow_rows.load(std::sync::atomic::Ordering::Relaxed),
            ),
            online: {
                let summary = registry.feedback_summary(model, version, None).await.map_err(unavailable)?;
                promotion::OnlineQuality { judged: summary.judged, accuracy: summary.accuracy }
            },
        };
        Ok(promotion::evaluate(policy, &evidence))
    }

    /// Puts the previous champion back (409 when there is none or it is not loaded).
    pub async fn rollback(&self, model: &str, actor: &str) -> Result<ServedModel, ApiError> {
        self.operator_change(model, "rolled_back", actor, |m| {
            let r = &m.routing;
            let Some(previous) = m.previous_champion else {
                return Err(ApiError::Conflict(format!(
                    "model '{model}' has no previous champion to roll back to (champion {} since the config)",
                    r.champion
                )));
            };
            if m.ready(previous).is_none() {
                return Err(ApiError::Conflict(format!(
                    "previous champion {previous} of model '{model}' is not loaded; cannot roll back to it"
                )));
            }
            let mut next = m.override_state();
            next.previous_champion = Some(r.champion);
            next.routing.champion = previous;
            next.routing.champion_route = Route::Champion;
            next.routing.challengers.retain(|(v, _)| *v != previous);
            next.ejected.remove(&previous);
            Ok((next, json!({ "from": r.champion, "to": previous }), Some(previous)))
        })
        .await
    }

    /// Replaces the challengers' weights (version → basis points). Each must be loaded, not the
    /// champion, not a shadow; together at most 100%.
    pub async fn set_weights(
        &self,
        model: &str,
        weights: Vec<(u32, u32)>,
        actor: &str,
    ) -> Result<ServedModel, ApiError> {
        self.operator_change(model, "weights_set", actor, |m| {
            let r = &m.routing;
            let mut problems = Vec::new();
            for (i, &(v, _)) in weights.iter().enumerate() {
                if weights[..i].iter().any(|(w, _)| *w == v) {
                    problems.push(format!("version {v} is given twice"));
                } else if v == r.champion {
                    problems.push(format!("version {v} is the champion; its share is what the challengers leave"));
                } else if r.shadows.iter().any(|(s, _)| *s == v) {
                    problems.push(format!("version {v} is a shadow"));
                } else if m.ready(v).is_none() {
                    problems.push(format!("version {v} is not loaded (name it in the config to load it)"));
                }
            }
            let total: u32 = weights.iter().map(|(_, w)| w).sum();
            if total > TOTAL_BP {
                problems.push(format!("weights add up to {}%, more than 100%", f64::from(total) / 100.0));
            }
            if !problems.is_empty() {
                return Err(ApiError::BadRequest(format!("weights refused: {}", problems.join("; "))));
            }
            let mut next = m.override_state();
            for (v, _) in &weights {
                next.ejected.remove(v);
            }
            next.routing.challengers = weights.clone();
            let pct: serde_json::Map<String, Value> =
                weights.iter().map(|(v, w)| (v.to_string(), json!(f64::from(*w) / 100.0))).collect();
            let before: serde_json::Map<String, Value> =
                r.challengers.iter().map(|(v, w)| (v.to_string(), json!(f64::from(*w) / 100.0))).collect();
            Ok((next, json!({ "from": before, "to": pct }), None))
        })
        .await
    }

    /// Back to the configured routing: clears a guard trip or operator override. Returns whether
    /// anything changed.
    pub async fn reset(&self, model: &str, actor: &str) -> Result<(bool, ServedModel), ApiError> {
        let _guard = self.control.config.lock().await;
        let state = self.serving.load_full();
        let current = state.models.get(model).ok_or_else(|| ApiError::NotFound(format!("unknown model '{model}'")))?;
        let detail = json!({ "from": current.override_state(), "origin": current.origin });
        let event = EventSpec { version: None, kind: "routing_reset", detail, actor };
        let cleared = self.store.registry().clear_routing_override(model, event).await.map_err(|e| {
            ApiError::Unavailable { message: format!("the registry cannot be written: {e}"), retry_after: Some(1) }
        })?;
        if !cleared && current.origin == RoutingOrigin::Config {
            return Ok((false, current.clone()));
        }
        let next = current.reset();
        self.clear_alarm(model);
        tracing::info!(model, actor, "routing reset to the config's");
        self.install(state.with_model(next.clone()));
        Ok((true, next))
    }

    /// Reads the config file again, validates all of it, loads and warms new versions, and only
    /// then swaps. Any failure leaves the running config serving.
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
                tracing::error!(trigger, problems = ?e.problems, "config reload refused; the running config keeps serving")
            }
        }
        result
    }

    async fn try_reload(&self, trigger: &str, bytes: Option<Vec<u8>>) -> Result<ReloadReport, ReloadError> {
        let refuse = |error: &str, problems: Vec<String>| ReloadError { error: error.to_owned(), problems };
        let Some(path) = self.control.path.clone() else {
            return Err(refuse("this gateway was not started from a config file", Vec::new()));
        };
        let mut served = self.control.config.lock().await;
        let invalid = || format!("{} is not a valid config", path.display());
        let bytes = match bytes {
            Some(bytes) => bytes,
            None => std::fs::read(&path).map_err(|e| refuse(&invalid(), vec![format!("cannot read the file: {e}")]))?,
        };
        // What was read counts as seen, valid or not: a broken file is not retried until it
        // changes again.
        self.control.set_seen(Sha256::digest(&bytes).into());
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
        let state = self.serving.load_full();
        let next = ServingState::build(&config, &self.store, self.control.runtime, Some(&state))
            .await
            .map_err(|p| refuse("the config names versions the store cannot provide", p))?;
        // A version this reload tried to load and could not is a refusal, not a degraded start.
        let failed: Vec<String> = next
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
}

fn was_failed(state: &ServingState, model: &str, version: u32) -> bool {
    matches!(state.models.get(model).and_then(|m| m.versions.get(&version)), Some(VersionSlot::Failed { .. }))
}

fn require_ready(m: &ServedModel, version: u32) -> Result<(), ApiError> {
    match m.versions.get(&version) {
        Some(VersionSlot::Ready(_)) => Ok(()),
        Some(VersionSlot::Failed { reason, .. }) => {
            Err(ApiError::Conflict(format!("version {version} of model '{}' failed to load: {reason}", m.name)))
        }
        None => Err(ApiError::Conflict(format!(
            "version {version} of model '{}' is not loaded (name it in the config to load it)",
            m.name
        ))),
    }
}

/// How often the config file is checked, and how long its content must stay the same before a
/// reload (an editor writing in place is given time to finish).
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);
const SETTLE: Duration = Duration::from_millis(250);

/// Watches the config file and reloads when its content changes and has settled. A file that
/// disappears or cannot be read is reported once and otherwise ignored: the last good config
/// keeps serving.
pub async fn watch_config(app: std::sync::Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(path) = app.control.path().map(Path::to_path_buf) else { return };
    let mut unreadable = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        let first = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                if !unreadable {
                    tracing::warn!(path = %path.display(), error = %e, "config file unreadable; the last good config keeps serving");
                    metrics::counter!("switchyard_config_reloads_total", "result" => "unreadable").increment(1);
                    unreadable = true;
                }
                continue;
            }
        };
        unreadable = false;
        let digest: [u8; 32] = Sha256::digest(&first).into();
        if app.control.seen() == Some(digest) {
            continue;
        }
        // Changed: wait until two reads agree, so a half-written file is not read mid-write.
        tokio::time::sleep(SETTLE).await;
        match tokio::fs::read(&path).await {
            Ok(second) if second == first => {
                // Reloads from these bytes (no third read), and records them as seen, refused
                // or not.
                let _ = app.reload_from("file", Some(second)).await;
            }
            _ => continue,
        }
    }
}
