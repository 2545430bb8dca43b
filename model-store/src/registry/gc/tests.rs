//! Tests of artifact garbage collection: what is collected and what is kept (and why), the
//! event, loading a collected version, dry runs, leftovers of an interrupted run, and restoring
//! a collected artifact by registering its bytes again.

use std::time::{Duration, SystemTime};

use super::*;
use crate::ModelStore;
use crate::tests::{new_version, register, temp_store};

const DAY: Duration = Duration::from_secs(86_400);

fn options(retention: Duration, dry_run: bool) -> GcOptions {
    GcOptions { retention, dry_run, actor: "gc-test".into() }
}

/// Runs a (real) collection as if it were `days` days from now, with a 30-day retention.
async fn gc_in(store: &ModelStore, days: u32, dry_run: bool) -> GcReport {
    let now = SystemTime::now() + DAY * days;
    store.collect_garbage_at(&options(30 * DAY, dry_run), now).await.expect("gc")
}

async fn archive(store: &ModelStore, model: &str, version: u32) {
    store.registry().set_stage(model, version, Stage::Archived, "ops").await.expect("archive");
}

fn artifact_exists(store: &ModelStore, sha256: &str) -> bool {
    store.artifacts().path_for(sha256).expect("path").is_file()
}

fn collected(report: &GcReport) -> Vec<(String, u32)> {
    report.collected.iter().map(|version| (version.model.clone(), version.version)).collect()
}

fn kept_reason(report: &GcReport, model: &str, version: u32) -> String {
    report
        .kept
        .iter()
        .find(|kept| kept.model == model && kept.version == version)
        .unwrap_or_else(|| panic!("{model} v{version} not among the kept: {report:?}"))
        .reason
        .clone()
}

#[tokio::test]
async fn archived_past_retention_is_collected_recorded_and_refuses_to_load() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"old").await;
    register(&store, "mlp", b"new").await;
    archive(&store, "mlp", 1).await;
    let v1 = store.registry().version("mlp", 1).await.expect("v1");

    let report = gc_in(&store, 31, false).await;
    assert_eq!(collected(&report), [("mlp".to_owned(), 1)]);
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].sha256, v1.sha256);
    assert_eq!(report.removed[0].size, 3);
    assert!(!report.removed[0].already_gone);
    assert!(!artifact_exists(&store, &v1.sha256));

    // The row, its history and the other version stay.
    let after = store.registry().version("mlp", 1).await.expect("v1 still registered");
    let collected_at = after.collected_at.clone().expect("marked collected");
    assert_eq!(after.stage, Stage::Archived);
    let events = store.registry().events("mlp", Some(1)).await.expect("events");
    let event = events.last().expect("an event");
    assert_eq!(event.kind, Event::ARTIFACT_COLLECTED);
    assert_eq!(event.actor, "gc-test");
    assert_eq!(event.at, collected_at, "marked and recorded in one transaction, one timestamp");
    assert_eq!(event.detail["sha256"], v1.sha256);
    assert_eq!(event.detail["size"], 3);
    assert_eq!(event.detail["retention_s"], 30 * 86_400);
    assert_eq!(event.detail["retention"], "30days");
    assert!(event.detail["archived_at"].is_string());

    // Loading fails clearly, with the stale record and the fresh one alike.
    for record in [&v1, &after] {
        let err = store.load_artifact(record).await.expect_err("collected");
        assert!(matches!(err, StoreError::ArtifactCollected { version: 1, .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&format!("was garbage-collected on {collected_at}")), "{message}");
        assert!(!message.contains("missing"), "{message}");
    }
    let v2 = store.registry().version("mlp", 2).await.expect("v2");
    assert_eq!(store.load_artifact(&v2).await.expect("v2 loads"), b"new");

    // It can stay archived, but not serve again, until its file is registered again.
    store.registry().set_stage("mlp", 1, Stage::Archived, "ops").await.expect("stays archived");
    let err = store.registry().set_stage("mlp", 1, Stage::Production, "ops").await.expect_err("cannot serve");
    assert!(matches!(err, StoreError::ArtifactCollected { .. }), "{err:?}");
    let err = store.registry().set_alias("mlp", "champion", 1, "ops").await.expect_err("cannot serve");
    assert!(matches!(err, StoreError::ArtifactCollected { .. }), "{err:?}");

    // A second run has nothing left to do.
    let again = gc_in(&store, 32, false).await;
    assert!(again.collected.is_empty() && again.removed.is_empty(), "{again:?}");
}

#[tokio::test]
async fn archived_but_aliased_is_kept() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"one").await;
    register(&store, "mlp", b"two").await;
    archive(&store, "mlp", 1).await;
    store.registry().set_alias("mlp", "fallback", 1, "ops").await.expect("alias");

    let report = gc_in(&store, 60, false).await;
    assert!(report.collected.is_empty(), "{report:?}");
    assert_eq!(kept_reason(&report, "mlp", 1), "alias fallback points at it");
    let v1 = store.registry().version("mlp", 1).await.expect("v1");
    assert!(v1.collected_at.is_none());
    assert!(artifact_exists(&store, &v1.sha256));

    // Once the alias is gone, so is the artifact.
    store.registry().remove_alias("mlp", "fallback", "ops").await.expect("unalias");
    assert_eq!(collected(&gc_in(&store, 60, false).await), [("mlp".to_owned(), 1)]);
    assert!(!artifact_exists(&store, &v1.sha256));
}

#[tokio::test]
async fn archived_sharing_its_artifact_with_a_live_version_is_kept() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"shared").await;
    register(&store, "mlp-copy", b"shared").await;
    archive(&store, "mlp", 1).await;

    let report = gc_in(&store, 60, false).await;
    assert!(report.collected.is_empty() && report.removed.is_empty(), "{report:?}");
    assert_eq!(kept_reason(&report, "mlp", 1), "its artifact is shared with mlp-copy v1 (staging)");
    let sha256 = store.registry().version("mlp", 1).await.expect("v1").sha256;
    assert!(artifact_exists(&store, &sha256));

    // An archived sharer still within the retention keeps it too.
    archive(&store, "mlp-copy", 1).await;
    let now = SystemTime::now() + DAY * 10;
    let report = store.collect_garbage_at(&options(DAY, false), now).await.expect("gc");
    assert_eq!(report.collected.len(), 2, "both archived 10 days ago, retention 1 day: {report:?}");
    assert_eq!(report.removed.len(), 1, "one shared file: {report:?}");
    assert!(!artifact_exists(&store, &sha256));
    for model in ["mlp", "mlp-copy"] {
        assert!(store.registry().version(model, 1).await.expect("v1").collected_at.is_some());
    }
}

#[test]
fn a_shared_artifact_waits_for_every_sharer_to_pass_the_retention() {
    let row = |id: i64, model: &str, stage: &str| GcVersionRow {
        id,
        model_id: id,
        model: model.into(),
        number: 1,
        sha256: "ab".repeat(32),
        size: 3,
        stage: stage.into(),
        collected_at: None,
    };
    let archived = |version_id: i64, at_ms: i64| StageChangeRow {
        version_id,
        detail_json: r#"{"from":"staging","to":"archived"}"#.into(),
        at: format!("t{at_ms}"),
        at_ms,
    };
    let versions = [row(1, "a", "archived"), row(2, "b", "archived")];
    let day_ms = 86_400_000;
    // a was archived 40 days ago, b 10 days ago; retention 30 days.
    let changes = [archived(1, 0), archived(2, 30 * day_ms)];
    let verdicts = decide(&versions, &HashMap::new(), &changes, 40 * day_ms, 30 * DAY).expect("decide");
    match &verdicts[&1] {
        Verdict::Keep { reason, archived_at } => {
            assert_eq!(reason, "its artifact is shared with b v1 (archived, kept)");
            assert_eq!(archived_at.as_deref(), Some("t0"));
        }
        other => panic!("a must be kept: {other:?}"),
    }
    assert!(
        matches!(&verdicts[&2], Verdict::Keep { reason, .. } if reason.starts_with("within the retention (20days"))
    );
    // Ten days on, both go.
    let verdicts = decide(&versions, &HashMap::new(), &changes, 60 * day_ms, 30 * DAY).expect("decide");
    assert!(verdicts.values().all(|verdict| matches!(verdict, Verdict::Collect { .. })), "{verdicts:?}");
    // Already collected sharers do not hold anything back.
    let mut gone = row(3, "c", "staging");
    gone.collected_at = Some("t".into());
    let with_gone = [row(1, "a", "archived"), gone];
    let verdicts = decide(&with_gone, &HashMap::new(), &changes[..1], 40 * day_ms, 30 * DAY).expect("decide");
    assert!(matches!(&verdicts[&1], Verdict::Collect { .. }));
    assert!(!verdicts.contains_key(&3));
}

#[tokio::test]
async fn within_retention_is_kept_and_other_stages_are_not_considered() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"one").await;
    register(&store, "mlp", b"two").await;
    register(&store, "mlp", b"three").await;
    archive(&store, "mlp", 1).await;
    store.registry().set_stage("mlp", 2, Stage::Production, "ops").await.expect("promote");

    let report = gc_in(&store, 29, false).await;
    assert!(report.collected.is_empty() && report.removed.is_empty(), "{report:?}");
    assert_eq!(report.kept.len(), 1, "only archived versions are reported: {report:?}");
    let reason = kept_reason(&report, "mlp", 1);
    assert!(reason.starts_with("within the retention (23h 59m") && reason.ends_with(" left)"), "{reason}");
    for version in 1..=3 {
        let record = store.registry().version("mlp", version).await.expect("version");
        assert!(artifact_exists(&store, &record.sha256));
    }

    // Re-archiving an archived version does not restart its clock; leaving `archived` does.
    archive(&store, "mlp", 1).await;
    assert_eq!(collected(&gc_in(&store, 31, true).await), [("mlp".to_owned(), 1)]);
    store.registry().set_stage("mlp", 1, Stage::Staging, "ops").await.expect("unarchive");
    assert!(gc_in(&store, 31, true).await.kept.is_empty(), "a staging version is not considered");
}

#[tokio::test]
async fn dry_run_reports_and_changes_nothing() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"old").await;
    archive(&store, "mlp", 1).await;
    let v1 = store.registry().version("mlp", 1).await.expect("v1");
    let events_before = store.registry().events("mlp", None).await.expect("events").len();

    let report = gc_in(&store, 31, true).await;
    assert!(report.dry_run);
    assert_eq!(collected(&report), [("mlp".to_owned(), 1)]);
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].size, 3);
    assert!(artifact_exists(&store, &v1.sha256));
    assert!(store.registry().version("mlp", 1).await.expect("v1").collected_at.is_none());
    assert_eq!(store.registry().events("mlp", None).await.expect("events").len(), events_before);
    assert_eq!(store.load_artifact(&v1).await.expect("still loads"), b"old");

    // Zero retention counts from the archival itself.
    let report = store.collect_garbage_at(&options(Duration::ZERO, true), SystemTime::now()).await.expect("gc");
    assert_eq!(collected(&report), [("mlp".to_owned(), 1)]);
}

#[tokio::test]
async fn leftovers_of_an_interrupted_run_are_removed_and_a_gone_file_is_fine() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"old").await;
    register(&store, "other", b"gone").await;
    archive(&store, "mlp", 1).await;
    archive(&store, "other", 1).await;
    let mlp = store.registry().version("mlp", 1).await.expect("mlp v1");
    let other = store.registry().version("other", 1).await.expect("other v1");
    // Removed by hand before gc ran: collection still succeeds.
    std::fs::remove_file(store.artifacts().path_for(&other.sha256).expect("path")).expect("remove by hand");

    let report = gc_in(&store, 31, false).await;
    assert_eq!(report.collected.len(), 2);
    let gone = report.removed.iter().find(|removed| removed.sha256 == other.sha256).expect("reported");
    assert!(gone.already_gone && gone.size == 0);

    // A run that committed but stopped before removing leaves the file: the next one removes it.
    store.artifacts().put(b"old").await.expect("file back without a referent");
    let report = gc_in(&store, 32, false).await;
    assert!(report.collected.is_empty());
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert_eq!(report.removed[0].sha256, mlp.sha256);
    assert!(!artifact_exists(&store, &mlp.sha256));
}

#[tokio::test]
async fn registering_the_bytes_again_restores_a_collected_version() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"old").await;
    archive(&store, "mlp", 1).await;
    gc_in(&store, 31, false).await;

    let again = store.register(new_version("mlp", b"old")).await.expect("re-register");
    assert!(!again.created);
    assert_eq!(again.version.version, 1);
    assert!(again.version.collected_at.is_none());
    let v1 = store.registry().version("mlp", 1).await.expect("v1");
    assert!(v1.collected_at.is_none());
    assert_eq!(store.load_artifact(&v1).await.expect("loads again"), b"old");
    let events = store.registry().events("mlp", Some(1)).await.expect("events");
    assert_eq!(events.last().expect("event").kind, Event::ARTIFACT_RESTORED);

    // The same bytes under another model while collected: a new version, file written again.
    gc_in(&store, 62, false).await;
    assert!(store.registry().version("mlp", 1).await.expect("v1").collected_at.is_some());
    let copy = store.register(new_version("copy", b"old")).await.expect("register copy");
    assert!(copy.created);
    assert_eq!(store.load_artifact(&copy.version).await.expect("copy loads"), b"old");
    assert!(matches!(store.load_artifact(&v1).await, Err(StoreError::ArtifactCollected { .. })));
}
