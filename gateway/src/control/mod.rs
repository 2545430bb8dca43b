//! The control plane: the one owner of the serving snapshot and its one writer. Every change to
//! what is served — a guard verdict, an operator's promote / rollback / weights / reset, a config
//! reload — is a method here that validates, writes the registry (override row and event in one
//! transaction), builds the next snapshot without touching the running one, and swaps it in with
//! one `ArcSwap` store, all under one lock. Requests in flight finish on the snapshot they
//! loaded, and none fails because of a swap. A refused change changes nothing.
//!
//! Errors are this layer's own (`ControlError`, `ReloadError`); the front ends map them.

mod error;
pub mod guard;
pub mod publish;
mod reload;
mod routing_metrics;
#[cfg(test)]
pub(crate) mod tests;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use model_store::{ChampionMove, Event, EventSpec, ModelStore, Stage};
use policy::guard::Verdict;
use policy::promotion;
use policy::router::{OverrideState, Route, TOTAL_BP};
use serde_json::{Value, json};
use settings::Config;
use tokio::sync::Mutex;

pub use error::ControlError;
pub use reload::{ReloadError, ReloadReport};
pub use watch::{WATCH_INTERVAL, watch_config};

use crate::alerts::{Alert, Alerts};
use crate::engine::Loader;
use crate::serving::{self, RoutingOrigin, ServedModel, ServingState, VersionSlot};

/// Owns what is served and serialises every change of it.
#[derive(Debug)]
pub struct Control {
    /// What serves requests now. Written only under `config`'s lock, by `install`.
    serving: ArcSwap<ServingState>,
    store: Arc<ModelStore>,
    /// Loads the versions a reload adds.
    loader: Loader,
    /// The config file, when serving from one (reloads read it again).
    path: Option<PathBuf>,
    /// The config being served; its lock is the one writer lock of serving state.
    config: Mutex<Config>,
    /// sha256 of the config file text last read by start-up or a reload (applied or refused):
    /// the watcher reloads only when the file holds something else.
    seen: std::sync::Mutex<Option<[u8; 32]>>,
    /// Models whose champion breaches with no healthy backup: the evaluation that said so.
    alarms: std::sync::Mutex<BTreeMap<String, Value>>,
    /// This process's name in the registry's serving claims (`host:pid`).
    replica: String,
    /// Woken by every install, so the serving claim follows at once (`publish`).
    changed: tokio::sync::Notify,
    /// Where what this plane decides is announced (`[[alert]]`).
    alerts: Alerts,
}

impl Control {
    /// Takes ownership of the first serving state, built from `config` (read from `path` with
    /// sha256 `digest`, when it came from a file).
    pub fn new(
        loader: Loader,
        store: Arc<ModelStore>,
        serving: ServingState,
        config: Config,
        path: Option<PathBuf>,
        digest: Option<[u8; 32]>,
    ) -> Control {
        routing_metrics::export_routing(&serving, None);
        // The alarm gauge of every guarded model starts at 0 (an alarm raises it).
        for m in serving.models.values().filter(|m| m.guard.is_some()) {
            metrics::gauge!("switchyard_guard_no_healthy_backup", "model" => m.name.clone()).set(0.0);
        }
        let replica = replica_id(&config.server);
        Control {
            serving: ArcSwap::from_pointee(serving),
            store,
            loader,
            path,
            config: Mutex::new(config),
            seen: std::sync::Mutex::new(digest),
            alarms: std::sync::Mutex::default(),
            replica,
            changed: tokio::sync::Notify::new(),
            alerts: Alerts::none(),
        }
    }

    /// This control plane, announcing its decisions to `alerts`.
    pub fn with_alerts(mut self, alerts: Alerts) -> Control {
        self.alerts = alerts;
        self
    }

    /// Announces an alert (queued; never blocks).
    fn alert(&self, kind: &'static str, model: &str, version: Option<u32>, summary: String, detail: &Value) {
        self.alerts.send(Alert { kind, model: Some(model.to_owned()), version, summary, detail: detail.clone() });
    }

    /// A version's live inputs drifted past `[model.validation] max_psi`: logged and alerted.
    #[expect(clippy::too_many_arguments, reason = "the figures of one breach, reported once")]
    pub(crate) fn drift_breach(
        &self,
        model: &str,
        version: u32,
        input: &str,
        feature: usize,
        psi: f64,
        max: f64,
        rows: u64,
    ) {
        tracing::warn!(model, version, input, feature, psi, max, rows, "input drift breach");
        let detail = json!({ "input": input, "feature": feature, "psi": psi, "max_psi": max, "rows": rows });
        let summary = format!(
            "{model} v{version}: input '{input}' feature {feature} drifted, PSI {psi:.3} > {max} over {rows} rows"
        );
        self.alert("drift_breach", model, Some(version), summary, &detail);
    }

    /// One slice of a version's traffic fails past the guard's error rate: logged and alerted.
    pub(crate) fn slice_breach(&self, model: &str, version: u32, slice: &str, rate: f64, max: f64, requests: u64) {
        tracing::warn!(model, version, slice, rate, max, requests, "slice breach");
        let detail = json!({ "slice": slice, "error_rate": rate, "max_error_rate": max, "requests": requests });
        let summary =
            format!("{model} v{version}: slice '{slice}' error rate {rate:.3} > {max} over {requests} requests");
        self.alert("slice_breach", model, Some(version), summary, &detail);
    }

    /// This process's name in the registry's serving claims.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The serving snapshot now: a request loads it once and keeps it throughout. Cheap (no
    /// reference count is touched until the guard is turned into an `Arc`).
    pub fn serving(&self) -> arc_swap::Guard<Arc<ServingState>> {
        self.serving.load()
    }

    /// The serving snapshot now, owned (for work that outlives a request).
    pub fn snapshot(&self) -> Arc<ServingState> {
        self.serving.load_full()
    }

    /// The model store whose registry records every change.
    pub fn store(&self) -> &Arc<ModelStore> {
        &self.store
    }

    /// What loads versions (and reads a new artifact's signature at registration).
    pub fn loader(&self) -> Loader {
        self.loader
    }

    /// How remote versions' upstreams are called (`[upstream]` of the config being served).
    pub async fn upstream_config(&self) -> settings::UpstreamConfig {
        self.config.lock().await.upstream.clone()
    }

    /// The config file reloads read.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Makes `next` the serving state: one atomic store. Callers hold the writer lock.
    fn install(&self, next: ServingState) {
        let previous = self.serving.swap(Arc::new(next));
        let now = self.serving.load();
        routing_metrics::export_routing(&now, Some(&previous));
        routing_metrics::retire_versions(&previous, &now);
        self.changed.notify_one();
    }

    /// Applies a guard verdict to the model it was made for, unless its routing changed since
    /// (then the next evaluation judges again). Returns whether routing changed.
    pub async fn apply_verdict(&self, judged: &ServedModel, verdict: Verdict) -> bool {
        let _writer = self.config.lock().await;
        let state = self.serving.load_full();
        let Some(current) = state.models.get(&judged.name) else { return false };
        if current.routing != judged.routing {
            return false;
        }
        let (from, to, reason, next, detail, kind) = match verdict {
            Verdict::Trip { from, to, reason, next, detail } => {
                (from, to, reason, Some(next), detail, Event::GUARD_TRIP)
            }
            Verdict::NoHealthyBackup { champion, keep, reason, next, detail } => {
                // Raised once, then held until the champion stops breaching or a reset: the
                // event, metric and log line are not repeated every interval.
                if !self.raise_alarm(&current.name, &detail) && next.is_none() {
                    return false;
                }
                metrics::gauge!("switchyard_guard_no_healthy_backup", "model" => current.name.clone()).set(1.0);
                tracing::error!(model = %current.name, champion, keep, %detail,
                    "guard: the champion breaches and no backup is healthy; keeping the least bad version serving");
                (champion, keep, reason, next, detail, Event::GUARD_NO_HEALTHY_BACKUP)
            }
            Verdict::ShadowBreach { .. } => return false,
        };
        metrics::counter!("switchyard_guard_trips_total", "model" => current.name.clone(),
            "from" => from.to_string(), "to" => to.to_string(), "reason" => reason.as_str())
        .increment(1);
        let reason_text = detail["reason_text"].as_str().unwrap_or("threshold breached").to_owned();
        let summary = if kind == Event::GUARD_TRIP {
            format!("{}: the guard moved traffic from version {from} to {to} ({reason_text})", current.name)
        } else {
            format!(
                "{}: champion {from} breaches its guard ({reason_text}) and no backup is healthy; version {to} keeps serving",
                current.name
            )
        };
        self.alert(kind, &current.name, Some(from), summary, &detail);
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
            // A trip is a standby serving, not a new champion: the alias and stages stay.
            None,
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

    /// Records a guard event that changes nothing (a breaching shadow), logging a failure, and
    /// announces it.
    pub async fn record_guard_event(&self, model: &str, version: u32, kind: &'static str, detail: Value) {
        let reason_text = detail["reason_text"].as_str().unwrap_or("threshold breached");
        let summary =
            format!("{model}: shadow version {version} breaches its guard ({reason_text}); routing unchanged");
        self.alert(kind, model, Some(version), summary, &detail);
        self.record_event_logged(model, Some(version), kind, detail, "guard").await;
    }

    async fn record_event_logged(&self, model: &str, version: Option<u32>, kind: &str, detail: Value, actor: &str) {
        if let Err(e) = self.store.registry().record_event(model, version, kind, detail, actor).await {
            tracing::error!(model, kind, error = %e, "cannot record the event in the registry");
        }
    }

    /// Stores `next` as the model's override with its event (and, with `champion`, the champion
    /// alias and stages, in the same transaction), then installs it and lets the served stages
    /// follow. The swap happens even if the registry cannot be written (traffic safety first);
    /// that failure is logged and counted, and a restart would then serve the configured routing.
    async fn persist_and_install(
        &self,
        state: &ServingState,
        current: &ServedModel,
        next: OverrideState,
        origin: impl Fn(i64) -> RoutingOrigin,
        event: EventSpec<'_>,
        champion: Option<ChampionMove>,
    ) -> ServedModel {
        let routing_json = serde_json::to_value(&next).unwrap_or(Value::Null);
        let origin_json = serde_json::to_value(origin(0)).unwrap_or(Value::Null);
        let event_id = match self
            .store
            .registry()
            .put_routing_override(&current.name, &current.fingerprint, routing_json, origin_json, event, champion)
            .await
        {
            Ok((_, e)) => {
                if let Some(mv) = champion {
                    follow_champion(current, mv);
                }
                e.id
            }
            Err(e) => {
                metrics::counter!("switchyard_routing_persist_errors_total").increment(1);
                tracing::error!(model = %current.name, error = %e, "cannot persist the routing change; serving it anyway");
                0
            }
        };
        let mut model = current.with_override(next, origin(event_id));
        if let (Some(mv), true) = (champion, event_id != 0) {
            model.aliases.insert(model_store::CHAMPION_ALIAS.to_owned(), mv.version);
        }
        self.install(state.with_model(model.clone()));
        model
    }

    /// An operator change of one model's routing: checked by `change`, persisted, installed.
    async fn operator_change(
        &self,
        model: &str,
        action: &'static str,
        actor: &str,
        change: impl FnOnce(&ServedModel) -> Result<(OverrideState, Value, Option<u32>), ControlError>,
    ) -> Result<ServedModel, ControlError> {
        let _writer = self.config.lock().await;
        let state = self.serving.load_full();
        let current = known(&state, model)?;
        let (next, detail, version) = change(current)?;
        tracing::info!(model, action, actor, %detail, "operator routing change");
        let summary = format!("{model}: {action} by {actor} ({} → {})", detail["from"], detail["to"]);
        self.alert(action, model, version, summary, &detail);
        let origin = |event_id| RoutingOrigin::Operator {
            action: action.to_owned(),
            actor: actor.to_owned(),
            event_id,
            at: now_text(),
            detail: detail.clone(),
        };
        let event = EventSpec { version, kind: action, detail: detail.clone(), actor };
        let champion = (next.routing.champion != current.routing.champion)
            .then_some(ChampionMove { version: next.routing.champion, demote: Some(current.routing.champion) });
        Ok(self.persist_and_install(&state, current, next, origin, event, champion).await)
    }

    /// Makes `version` the champion (it must be loaded and not a shadow); the old champion is
    /// remembered for rollback and leaves the split. With a promotion policy, its gates are
    /// judged first: a failure refuses (`GatesFailed`, with every gate) unless `force`, which is
    /// recorded. The registry follows in the same transaction: the `champion` alias moves to
    /// `version`, which becomes `production`; the old champion goes back to `staging`.
    pub async fn promote(
        &self,
        model: &str,
        version: u32,
        actor: &str,
        force: bool,
    ) -> Result<ServedModel, ControlError> {
        let gates = self.promotion_gates(model, version).await?;
        let failed = gates.iter().any(|g| !g.passed);
        if failed && !force {
            return Err(ControlError::GatesFailed { model: model.to_owned(), version, gates });
        }
        let evidence = json!({ "gates": gates, "forced": force && failed });
        self.operator_change(model, Event::PROMOTED, actor, |m| {
            let r = &m.routing;
            if r.champion == version {
                return Err(ControlError::AlreadyChampion { model: model.to_owned(), version });
            }
            require_ready(m, version)?;
            if r.shadows.iter().any(|(v, _)| *v == version) {
                return Err(ControlError::IsShadow { model: model.to_owned(), version });
            }
            let mut next = m.override_state();
            next.previous_champion = Some(r.champion);
            next.routing.champion = version;
            next.routing.champion_route = Route::Champion;
            next.routing.challengers.retain(|(v, _)| *v != version);
            next.ejected.remove(&version);
            Ok((next, json!({ "from": r.champion, "to": version, "evidence": evidence }), Some(version)))
        })
        .await
    }

    /// The model's promotion gates judged for `version` now (empty without a policy).
    pub async fn promotion_gates(&self, model: &str, version: u32) -> Result<Vec<promotion::Gate>, ControlError> {
        let state = self.serving.load_full();
        let m = known(&state, model)?;
        let Some(policy) = &m.promotion else { return Ok(Vec::new()) };
        let candidate =
            m.ready(version).ok_or_else(|| ControlError::VersionNotLoaded { model: model.to_owned(), version })?;
        let registry = self.store.registry();
        let metrics_of = |manifest: Option<model_store::Manifest>| manifest.map(|m| m.metrics).unwrap_or_default();
        let online = registry.feedback_summary(model, version, None).await.map_err(ControlError::registry_read)?;
        let evidence = promotion::Evidence {
            candidate_metrics: metrics_of(
                registry.provenance(model, version).await.map_err(ControlError::registry_read)?,
            ),
            champion_metrics: metrics_of(
                registry.provenance(model, m.routing.champion).await.map_err(ControlError::registry_read)?,
            ),
            window: candidate.window.load().stats(std::time::Instant::now()),
            shadow: (
                candidate.shadow_agree.load(std::sync::atomic::Ordering::Relaxed),
                candidate.shadow_rows.load(std::sync::atomic::Ordering::Relaxed),
            ),
            online: promotion::OnlineQuality { judged: online.judged, accuracy: online.accuracy },
            drift: candidate.drift.as_ref().map(|d| {
                let stats = d.window.stats(d.origin, std::time::Instant::now());
                promotion::DriftEvidence { rows: stats.rows, worst: guard::worst_feature(&stats.psi) }
            }),
            slices: match &m.slices {
                Some(tracker) => slice_evidence(registry, model, version, m.routing.champion, &tracker.top()).await?,
                None => Vec::new(),
            },
        };
        Ok(promotion::evaluate(policy, &evidence))
    }

    /// Puts the previous champion back (refused when there is none or it is not loaded). It is
    /// judged by the promotion gates like any candidate (a failure refuses unless `force`, which
    /// is recorded), and the registry's alias and stages follow as for a promotion.
    pub async fn rollback(&self, model: &str, actor: &str, force: bool) -> Result<ServedModel, ControlError> {
        let previous = {
            let state = self.serving.load();
            let m = known(&state, model)?;
            m.previous_champion.ok_or_else(|| ControlError::NoPreviousChampion {
                model: model.to_owned(),
                champion: m.routing.champion,
            })?
        };
        let gates = match self.promotion_gates(model, previous).await {
            Err(ControlError::VersionNotLoaded { .. }) => Vec::new(), // refused below, with its own message
            other => other?,
        };
        let failed = gates.iter().any(|g| !g.passed);
        if failed && !force {
            return Err(ControlError::GatesFailed { model: model.to_owned(), version: previous, gates });
        }
        let evidence = json!({ "gates": gates, "forced": force && failed });
        self.operator_change(model, Event::ROLLED_BACK, actor, |m| {
            let r = &m.routing;
            // Judged against the routing as it is under the lock: it may have changed meanwhile.
            if m.previous_champion != Some(previous) {
                return Err(ControlError::NoPreviousChampion { model: model.to_owned(), champion: r.champion });
            }
            if m.ready(previous).is_none() {
                return Err(ControlError::PreviousNotLoaded { model: model.to_owned(), version: previous });
            }
            let mut next = m.override_state();
            next.previous_champion = Some(r.champion);
            next.routing.champion = previous;
            next.routing.champion_route = Route::Champion;
            next.routing.challengers.retain(|(v, _)| *v != previous);
            next.ejected.remove(&previous);
            Ok((next, json!({ "from": r.champion, "to": previous, "evidence": evidence }), Some(previous)))
        })
        .await
    }

    /// Replaces the challengers' weights (version → basis points). Each must be loaded, not the
    /// champion, not a shadow; together at most 100%. Every problem is listed.
    pub async fn set_weights(
        &self,
        model: &str,
        weights: Vec<(u32, u32)>,
        actor: &str,
    ) -> Result<ServedModel, ControlError> {
        self.operator_change(model, Event::WEIGHTS_SET, actor, |m| {
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
                return Err(ControlError::InvalidWeights { problems });
            }
            let mut next = m.override_state();
            for (v, _) in &weights {
                next.ejected.remove(v);
            }
            next.routing.challengers = weights.clone();
            let percent = |ws: &[(u32, u32)]| -> serde_json::Map<String, Value> {
                ws.iter().map(|(v, w)| (v.to_string(), json!(f64::from(*w) / 100.0))).collect()
            };
            Ok((next, json!({ "from": percent(&r.challengers), "to": percent(&weights) }), None))
        })
        .await
    }

    /// Back to the configured routing: clears a guard trip or operator override. Returns whether
    /// anything changed, and the model as it now serves.
    pub async fn reset(&self, model: &str, actor: &str) -> Result<(bool, ServedModel), ControlError> {
        let _writer = self.config.lock().await;
        let state = self.serving.load_full();
        let current = known(&state, model)?;
        let detail = json!({ "from": current.override_state(), "origin": current.origin });
        let event = EventSpec { version: None, kind: Event::ROUTING_RESET, detail, actor };
        // The configured champion is the champion again, in the registry too.
        let configured = current.configured.champion;
        let champion = (configured != current.routing.champion)
            .then_some(ChampionMove { version: configured, demote: Some(current.routing.champion) });
        let cleared = self
            .store
            .registry()
            .clear_routing_override(model, event, champion)
            .await
            .map_err(ControlError::registry_write)?;
        if !cleared && current.origin == RoutingOrigin::Config {
            return Ok((false, current.clone()));
        }
        let mut next = current.reset();
        if let (true, Some(mv)) = (cleared, champion) {
            follow_champion(current, mv);
            next.aliases.insert(model_store::CHAMPION_ALIAS.to_owned(), mv.version);
        }
        self.clear_alarm(model);
        tracing::info!(model, actor, "routing reset to the config's");
        let summary = format!("{model}: routing reset to the config's by {actor} (champion {})", next.routing.champion);
        self.alert(Event::ROUTING_RESET, model, None, summary, &json!({ "from": current.override_state() }));
        self.install(state.with_model(next.clone()));
        Ok((true, next))
    }
}

/// The served stages follow a champion move the registry has committed.
fn follow_champion(model: &ServedModel, mv: ChampionMove) {
    if let Some(loaded) = model.ready(mv.version) {
        serving::set_stage(loaded, Stage::Production);
    }
    if let Some(loaded) = mv.demote.filter(|d| *d != mv.version).and_then(|d| model.ready(d))
        && loaded.stage.get() == Stage::Production
    {
        serving::set_stage(loaded, Stage::Staging);
    }
}

/// `host:pid`: unique among the gateways sharing a registry, and readable in a refusal.
/// This gateway's name: `[server] replica_id`, else `host:pid`.
pub fn replica_id(server: &settings::ServerConfig) -> String {
    server.replica_id.clone().unwrap_or_else(replica_name)
}

fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

fn now_text() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn known<'a>(state: &'a ServingState, model: &str) -> Result<&'a ServedModel, ControlError> {
    state.models.get(model).ok_or_else(|| ControlError::UnknownModel { model: model.to_owned() })
}

fn require_ready(m: &ServedModel, version: u32) -> Result<(), ControlError> {
    match m.versions.get(&version) {
        Some(VersionSlot::Ready(_)) => Ok(()),
        Some(VersionSlot::Failed { reason, .. }) => {
            Err(ControlError::VersionFailed { model: m.name.clone(), version, reason: reason.clone() })
        }
        None => Err(ControlError::VersionNotLoaded { model: m.name.clone(), version }),
    }
}

/// Labelled feedback of the top slices (busiest first), candidate beside champion.
async fn slice_evidence(
    registry: &model_store::Registry,
    model: &str,
    candidate: u32,
    champion: u32,
    top: &[Arc<str>],
) -> Result<Vec<promotion::SliceEvidence>, ControlError> {
    let read = |version| async move {
        let rows = registry.feedback_by_slice(model, version).await.map_err(ControlError::registry_read)?;
        Ok::<_, ControlError>(rows.into_iter().map(|q| (q.slice, (q.judged, q.correct))).collect::<BTreeMap<_, _>>())
    };
    let (of_candidate, of_champion) = (read(candidate).await?, read(champion).await?);
    Ok(top
        .iter()
        .map(|slice| promotion::SliceEvidence {
            slice: slice.to_string(),
            candidate: of_candidate.get(&**slice).copied().unwrap_or((0, 0)),
            champion: of_champion.get(&**slice).copied().unwrap_or((0, 0)),
        })
        .collect())
}
