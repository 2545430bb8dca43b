//! Control operations on a real registry (SQLite in a temp dir) and real serving code, with the
//! engine's test double in place of ONNX Runtime: no socket, no ORT.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use model_store::{Event, ModelStore, NewVersion, Stage};
use policy::guard::{Breached, Verdict};
use policy::router::Route;
use serde_json::json;
use settings::Config;

use super::{Control, ControlError};
use crate::engine::{Loader, testing};
use crate::serving::{RoutingOrigin, ServingState};

/// A store with versions 1..=n of model `m` (echo models) and a control plane serving `routing`.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub control: Arc<Control>,
    pub config_path: PathBuf,
    /// The config as loaded at start.
    pub config: Config,
}

/// The config text serving `m` with versions 1..=`versions` and the given routing and extra
/// tables (`[model.guard]`, `[model.promotion]`).
pub(crate) fn config_text(dir: &std::path::Path, versions: u32, routing: &str, extra: &str) -> String {
    let list: Vec<String> = (1..=versions).map(|v| v.to_string()).collect();
    format!(
        "[store]\npath = \"{}\"\n[[model]]\nname = \"m\"\nversions = [{}]\n[model.routing]\n{routing}\n{extra}\n",
        dir.join("store").display(),
        list.join(", ")
    )
}

/// Registers version bytes for model `m` in the fixture's store; returns the version numbers.
pub(crate) async fn register(store: &ModelStore, artifacts: &[&[u8]]) -> Vec<u32> {
    let mut numbers = Vec::new();
    for bytes in artifacts {
        let new = NewVersion {
            model: "m".to_owned(),
            bytes: bytes.to_vec(),
            upstream: None,
            signature: testing::echo_signature(),
            manifest: None,
            actor: "test".to_owned(),
        };
        numbers.push(store.register(new).await.expect("register").version.version);
    }
    numbers
}

/// Serves `m` (three echo versions) with `routing` and `extra` from a config file.
pub(crate) async fn fixture(routing: &str, extra: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(ModelStore::open(dir.path().join("store")).await.expect("store"));
    register(&store, &[b"echo-1", b"echo-2", b"echo-3"]).await;
    let config_path = dir.path().join("switchyard.toml");
    let text = config_text(dir.path(), 3, routing, extra);
    std::fs::write(&config_path, &text).expect("write config");
    let config = Config::load(&config_path).expect("valid config");
    let serving = ServingState::build(&config, &store, Loader::Scripted, None).await.expect("build").commit();
    let control = Control::new(Loader::Scripted, store, serving, config.clone(), Some(config_path.clone()), None);
    Fixture { dir, control: Arc::new(control), config_path, config }
}

const GUARD: &str = "[model.guard]\nwindow = \"10s\"\np99_ms = 50\nmin_requests = 5";

async fn events(control: &Control, kind: &str) -> Vec<model_store::Event> {
    let all = control.store().registry().events("m", None).await.expect("events");
    all.into_iter().filter(|e| e.kind == kind).collect()
}

#[tokio::test]
async fn promote_moves_routing_registry_stage_and_alias_together() {
    let f = fixture("champion = 1\nchallengers = { 2 = 10 }", "").await;
    let model = f.control.promote("m", 2, "alice", false).await.expect("promote");
    assert_eq!((model.routing.champion, model.previous_champion), (2, Some(1)));
    assert!(model.routing.challengers.is_empty(), "the new champion leaves the split");
    assert!(
        matches!(&model.origin, RoutingOrigin::Operator { action, actor, .. } if action == Event::PROMOTED && actor == "alice")
    );
    assert_eq!(f.control.serving().models["m"].routing.champion, 2, "installed");
    let registry = f.control.store().registry();
    assert_eq!(registry.resolve("m", "champion").await.expect("alias").version, 2);
    assert_eq!(registry.version("m", 2).await.expect("v2").stage, Stage::Production);
    let promoted = events(&f.control, Event::PROMOTED).await;
    assert_eq!(promoted.len(), 1);
    assert_eq!(promoted[0].detail["from"], 1);
    assert_eq!(promoted[0].detail["to"], 2);
    assert!(registry.routing_override("m").await.expect("override").is_some(), "persisted for restarts");
}

#[tokio::test]
async fn refused_operator_actions_name_the_problem_and_change_nothing() {
    let f = fixture("champion = 1\nshadows = { 3 = 5 }", "").await;
    let before = f.control.snapshot();
    let err = |r: Result<_, ControlError>| r.expect_err("refused");
    assert!(matches!(err(f.control.promote("nope", 2, "a", false).await), ControlError::UnknownModel { .. }));
    assert!(matches!(err(f.control.promote("m", 1, "a", false).await), ControlError::AlreadyChampion { .. }));
    assert!(matches!(err(f.control.promote("m", 9, "a", false).await), ControlError::VersionNotLoaded { .. }));
    assert!(matches!(err(f.control.promote("m", 3, "a", false).await), ControlError::IsShadow { .. }));
    let e = err(f.control.rollback("m", "a", false).await);
    assert_eq!(e.to_string(), "model 'm' has no previous champion to roll back to (champion 1 since the config)");
    let ControlError::InvalidWeights { problems } =
        err(f.control.set_weights("m", vec![(1, 10), (2, 5000), (2, 10), (3, 10), (9, 6000)], "a").await)
    else {
        panic!("not InvalidWeights")
    };
    assert_eq!(problems.len(), 5, "every problem listed: {problems:?}");
    assert!(problems[4].contains("more than 100%"), "{problems:?}");
    assert!(Arc::ptr_eq(&before, &f.control.snapshot()), "nothing was installed");
    assert!(events(&f.control, Event::PROMOTED).await.is_empty());
}

#[tokio::test]
async fn rollback_and_reset_return_to_the_previous_and_the_configured_routing() {
    let f = fixture("champion = 1\nchallengers = { 2 = 10 }", "").await;
    f.control.promote("m", 3, "a", false).await.expect("promote");
    let back = f.control.rollback("m", "b", false).await.expect("rollback");
    assert_eq!((back.routing.champion, back.previous_champion), (1, Some(3)));
    let weighted = f.control.set_weights("m", vec![(2, 2500), (3, 500)], "c").await.expect("weights");
    assert_eq!(weighted.routing.champion_weight(), 7000);
    let (changed, reset) = f.control.reset("m", "d").await.expect("reset");
    assert!(changed);
    assert_eq!(reset.routing, reset.configured);
    assert_eq!(reset.origin, RoutingOrigin::Config);
    let (changed, _) = f.control.reset("m", "d").await.expect("reset again");
    assert!(!changed, "nothing left to reset");
    assert!(f.control.store().registry().routing_override("m").await.expect("read").is_none());
}

#[tokio::test]
async fn failed_gates_refuse_promotion_unless_forced_and_forcing_is_recorded() {
    let f = fixture("champion = 1\nchallengers = { 2 = 10 }", "[model.promotion]\nmin_requests = 100").await;
    let gates = f.control.promotion_gates("m", 2).await.expect("gates");
    assert_eq!(gates.len(), 1);
    assert!(!gates[0].passed, "no requests yet");
    match f.control.promote("m", 2, "a", false).await {
        Err(ControlError::GatesFailed { gates, .. }) => assert_eq!(gates.len(), 1),
        other => panic!("expected GatesFailed, got {other:?}"),
    }
    assert_eq!(f.control.serving().models["m"].routing.champion, 1, "refused: nothing changed");
    f.control.promote("m", 2, "a", true).await.expect("forced");
    let promoted = events(&f.control, Event::PROMOTED).await;
    assert_eq!(promoted[0].detail["evidence"]["forced"], true);
}

#[tokio::test]
async fn a_guard_verdict_applies_once_and_a_stale_one_is_ignored() {
    let f = fixture("champion = 1\nbackup = [2]", GUARD).await;
    let judged = f.control.snapshot().models["m"].clone();
    let mut next = judged.override_state();
    next.routing.champion = 2;
    next.routing.champion_route = Route::Backup;
    next.ejected.insert(1);
    let verdict = Verdict::Trip { from: 1, to: 2, reason: Breached::P99, next, detail: json!({"from": 1}) };
    assert!(f.control.apply_verdict(&judged, verdict.clone()).await);
    let now = f.control.snapshot();
    assert_eq!(now.models["m"].routing.champion, 2);
    assert!(matches!(now.models["m"].origin, RoutingOrigin::GuardTrip { .. }));
    assert_eq!(events(&f.control, Event::GUARD_TRIP).await.len(), 1);
    // Judged on the routing before the trip: that routing is gone, so nothing happens.
    assert!(!f.control.apply_verdict(&judged, verdict).await);
    assert_eq!(events(&f.control, Event::GUARD_TRIP).await.len(), 1);
}

/// Records `n` answered requests of `latency` in version `v`'s guard window.
fn record(control: &Control, v: u32, n: u32, latency: Duration) {
    let state = control.snapshot();
    let window = state.models["m"].ready(v).expect("loaded").window.load_full();
    for _ in 0..n {
        window.record(Instant::now(), latency, false);
    }
}

#[tokio::test]
async fn a_refused_reload_changes_nothing_guard_windows_included() {
    let f = fixture("champion = 1", GUARD).await;
    record(&f.control, 1, 7, Duration::from_millis(3));
    let before = f.control.snapshot();
    // A longer window and a new version 4 that the engine refuses to load.
    register(f.control.store(), &[b"refuse: not a model"]).await;
    let text = config_text(f.dir.path(), 4, "champion = 1", &GUARD.replace("10s", "20s"));
    std::fs::write(&f.config_path, text).expect("write");
    let refused = f.control.reload("test").await.expect_err("refused");
    assert_eq!(refused.error, "new versions could not be loaded");
    assert!(refused.problems[0].contains("version 4"), "{refused:?}");
    assert!(Arc::ptr_eq(&before, &f.control.snapshot()), "the running state serves on");
    let window = before.models["m"].ready(1).expect("v1").window.load_full();
    assert_eq!(window.length(), policy::guard::Window::length_for(Duration::from_secs(10)));
    assert_eq!(window.stats(Instant::now()).requests, 7, "the window keeps what it judged");
}

#[tokio::test]
async fn an_applied_reload_resizes_reused_windows_and_reports_what_changed() {
    let f = fixture("champion = 1", GUARD).await;
    record(&f.control, 1, 7, Duration::from_millis(3));
    let text = config_text(f.dir.path(), 3, "champion = 1\nchallengers = { 2 = 50 }", &GUARD.replace("10s", "20s"));
    std::fs::write(&f.config_path, text).expect("write");
    let report = f.control.reload("test").await.expect("applied");
    assert_eq!(report.rerouted, ["m"]);
    assert!(report.loaded.is_empty() && report.unloaded.is_empty(), "{report:?}");
    let now = f.control.snapshot();
    let v1 = now.models["m"].ready(1).expect("v1");
    assert_eq!(v1.window.load().length(), policy::guard::Window::length_for(Duration::from_secs(20)));
    assert_eq!(v1.window.load().stats(Instant::now()).requests, 0, "a new window starts empty");
}

#[tokio::test]
async fn an_invalid_config_file_is_refused_with_every_problem() {
    let f = fixture("champion = 1", "").await;
    let before = f.control.snapshot();
    std::fs::write(&f.config_path, "[server]\nlisten = 5\n[[model]]\nname = \"m\"\nversions = []\n").expect("write");
    let refused = f.control.reload("test").await.expect_err("refused");
    assert!(refused.error.ends_with("is not a valid config"), "{refused:?}");
    assert!(!refused.problems.is_empty());
    assert!(Arc::ptr_eq(&before, &f.control.snapshot()));
}

/// Registry and live views: the champion alias, the stages in the registry and the stages served
/// (admin API, `switchyard_model_info`) after each action.
async fn views(f: &Fixture) -> (u32, Vec<Stage>, Vec<Stage>) {
    let registry = f.control.store().registry();
    let alias = registry.resolve("m", "champion").await.expect("alias").version;
    let mut stored = Vec::new();
    let mut served = Vec::new();
    let state = f.control.snapshot();
    for v in 1..=3 {
        stored.push(registry.version("m", v).await.expect("version").stage);
        served.push(state.models["m"].ready(v).expect("loaded").stage.get());
    }
    (alias, stored, served)
}

#[tokio::test]
async fn registry_and_live_state_agree_after_promote_rollback_and_reset() {
    use Stage::{Production as P, Staging as S};
    let f = fixture("champion = 1\nchallengers = { 2 = 10 }", "").await;
    f.control.promote("m", 3, "a", false).await.expect("promote");
    let (alias, stored, served) = views(&f).await;
    assert_eq!((alias, &stored), (3, &vec![S, S, P]));
    assert_eq!(served, stored, "served stages follow the registry");
    f.control.rollback("m", "b", false).await.expect("rollback");
    let (alias, stored, served) = views(&f).await;
    assert_eq!((alias, &stored, &served), (1, &vec![P, S, S], &vec![P, S, S]));
    f.control.promote("m", 2, "c", false).await.expect("promote");
    f.control.reset("m", "d").await.expect("reset");
    let (alias, stored, served) = views(&f).await;
    assert_eq!((alias, &stored, &served), (1, &vec![P, S, S], &vec![P, S, S]), "the configured champion again");
}

#[tokio::test]
async fn rollback_is_judged_by_the_gates_unless_forced() {
    let f = fixture("champion = 1\nchallengers = { 2 = 10 }", "[model.promotion]\nmin_requests = 5").await;
    // Version 2 has served enough to pass; promoted on its evidence.
    record(&f.control, 2, 6, Duration::from_millis(1));
    f.control.promote("m", 2, "a", false).await.expect("promote");
    // Version 1 has no requests in its window: rolling back to it fails the gate.
    match f.control.rollback("m", "b", false).await {
        Err(ControlError::GatesFailed { version: 1, .. }) => {}
        other => panic!("expected GatesFailed for version 1, got {other:?}"),
    }
    assert_eq!(f.control.serving().models["m"].routing.champion, 2, "refused: nothing changed");
    let back = f.control.rollback("m", "b", true).await.expect("forced");
    assert_eq!(back.routing.champion, 1);
    let rolled = events(&f.control, Event::ROLLED_BACK).await;
    assert_eq!(rolled[0].detail["evidence"]["forced"], true);
}

#[tokio::test]
async fn a_reload_brings_in_stages_moved_in_the_registry_without_touching_the_running_state() {
    let f = fixture("champion = 1", "").await;
    let before = f.control.snapshot();
    f.control.store().registry().set_stage("m", 2, Stage::Production, "cli").await.expect("stage");
    assert_eq!(before.models["m"].ready(2).expect("v2").stage.get(), Stage::Staging, "not until a reload");
    f.control.reload("test").await.expect("reload");
    assert_eq!(f.control.snapshot().models["m"].ready(2).expect("v2").stage.get(), Stage::Production);
}
