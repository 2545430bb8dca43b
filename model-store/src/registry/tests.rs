//! Tests of the registry: stages, aliases and their events, selectors, provenance, summaries
//! and the event history.

use serde_json::json;

use super::*;
use crate::tests::{new_version, register, temp_store};

#[tokio::test]
async fn stage_changes_record_from_and_to() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"one").await;
    let registry = store.registry();

    let event = registry.set_stage("mlp", 1, Stage::Production, "alice").await.expect("promote");
    assert_eq!(event.kind, Event::STAGE_CHANGED);
    assert_eq!(event.version, Some(1));
    assert_eq!(event.detail, json!({"from": "staging", "to": "production"}));
    assert_eq!(event.actor, "alice");
    assert_eq!(registry.version("mlp", 1).await.expect("v1").stage, Stage::Production);

    let event = registry.set_stage("mlp", 1, Stage::Archived, "bob").await.expect("archive");
    assert_eq!(event.detail, json!({"from": "production", "to": "archived"}));

    let history = registry.events("mlp", Some(1)).await.expect("events");
    let kinds: Vec<_> = history.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(kinds, ["registered", "stage_changed", "stage_changed"]);
    // What set_stage returned is what the history holds.
    assert_eq!(history[2].id, event.id);
    assert_eq!(history[2].detail, event.detail);
    assert_eq!(history[2].at, event.at);

    assert!(matches!(
        registry.set_stage("mlp", 9, Stage::Production, "x").await,
        Err(StoreError::VersionNotFound { version: 9, .. })
    ));
    assert!(matches!(
        registry.set_stage("nope", 1, Stage::Production, "x").await,
        Err(StoreError::ModelNotFound { .. })
    ));
}

#[tokio::test]
async fn alias_moves_record_from_and_to() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"one").await;
    register(&store, "mlp", b"two").await;
    let registry = store.registry();

    let created = registry.set_alias("mlp", "champion", 1, "ops").await.expect("create");
    assert_eq!(created.kind, Event::ALIAS_SET);
    assert_eq!(created.version, Some(1));
    assert_eq!(created.detail, json!({"alias": "champion", "from": null, "to": 1}));

    let moved = registry.set_alias("mlp", "champion", 2, "ops").await.expect("move");
    assert_eq!(moved.version, Some(2));
    assert_eq!(moved.detail, json!({"alias": "champion", "from": 1, "to": 2}));
    assert!(moved.id > created.id);

    registry.set_alias("mlp", "backup", 1, "ops").await.expect("backup");
    assert_eq!(registry.version("mlp", 1).await.expect("v1").aliases, ["backup"]);
    assert_eq!(registry.version("mlp", 2).await.expect("v2").aliases, ["champion"]);
    let summary = &registry.models().await.expect("models")[0];
    assert_eq!(summary.aliases, BTreeMap::from([("backup".to_owned(), 1), ("champion".to_owned(), 2)]));

    let removed = registry.remove_alias("mlp", "champion", "ops").await.expect("remove");
    assert_eq!(removed.kind, Event::ALIAS_REMOVED);
    assert_eq!(removed.version, Some(2));
    assert_eq!(removed.detail, json!({"alias": "champion", "from": 2}));
    assert!(registry.version("mlp", 2).await.expect("v2").aliases.is_empty());
    assert!(matches!(
        registry.resolve("mlp", "champion").await,
        Err(StoreError::AliasNotFound { alias, .. }) if alias == "champion"
    ));
    assert!(matches!(registry.remove_alias("mlp", "champion", "ops").await, Err(StoreError::AliasNotFound { .. })));
    assert!(matches!(
        registry.set_alias("mlp", "champion", 7, "ops").await,
        Err(StoreError::VersionNotFound { version: 7, .. })
    ));

    let v2_kinds: Vec<_> =
        registry.events("mlp", Some(2)).await.expect("events").into_iter().map(|event| event.kind).collect();
    assert_eq!(v2_kinds, ["registered", "alias_set", "alias_removed"]);
}

#[tokio::test]
async fn invalid_alias_names_are_refused_before_any_lookup() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"one").await;
    for alias in ["", "Champion", "12", "v3", "latest", "-x", "a.b", "a/b", &"a".repeat(64)] {
        match store.registry().set_alias("mlp", alias, 1, "ops").await {
            Err(StoreError::InvalidAlias { alias: refused, .. }) => assert_eq!(refused, alias),
            other => panic!("{alias:?} was not refused: {other:?}"),
        }
    }
    // Validation comes first: even for a model that does not exist.
    assert!(matches!(store.registry().set_alias("nope", "V1", 1, "ops").await, Err(StoreError::InvalidAlias { .. })));
    assert_eq!(store.registry().events("mlp", None).await.expect("events").len(), 1);
}

#[tokio::test]
async fn resolve_by_number_v_number_alias_and_latest() {
    let (_dir, store) = temp_store().await;
    for bytes in [b"1", b"2", b"3"] {
        register(&store, "mlp", bytes).await;
    }
    let registry = store.registry();
    registry.set_alias("mlp", "champion", 2, "ops").await.expect("alias");

    let resolved =
        |selector: &'static str| async move { registry.resolve("mlp", selector).await.map(|record| record.version) };
    assert_eq!(resolved("1").await.expect("number"), 1);
    assert_eq!(resolved("v2").await.expect("v-number"), 2);
    assert_eq!(resolved("champion").await.expect("alias"), 2);
    assert_eq!(resolved("latest").await.expect("latest"), 3);
    let champion = registry.resolve("mlp", "champion").await.expect("alias");
    assert_eq!(champion.aliases, ["champion"]);

    assert!(matches!(resolved("4").await, Err(StoreError::VersionNotFound { version: 4, .. })));
    assert!(matches!(resolved("v0").await, Err(StoreError::VersionNotFound { version: 0, .. })));
    assert!(matches!(resolved("challenger").await, Err(StoreError::AliasNotFound { .. })));
    assert!(matches!(
        registry.resolve("nope", "latest").await,
        Err(StoreError::ModelNotFound { model }) if model == "nope"
    ));

    // Latest follows new registrations.
    register(&store, "mlp", b"4").await;
    assert_eq!(resolved("latest").await.expect("latest"), 4);
}

#[tokio::test]
async fn provenance_round_trips_through_the_registry() {
    let (_dir, store) = temp_store().await;
    let manifest = Manifest::from_toml_str(
        r#"
        description = "with everything"
        [training]
        code_commit = "abc123"
        features = ["a", "b"]
        random_seed = 7
        hyperparameters = { lr = 0.001, layers = [8, 4], schedule = { kind = "cosine" } }
        [environment]
        captured = 2024-05-02T10:30:00.5Z
        torch = "2.3"
        [metrics]
        auc = 0.912
        [tags]
        team = "risk"
        "#,
    )
    .expect("manifest");
    let mut new = new_version("mlp", b"bytes");
    new.manifest = Some(manifest.clone());
    store.register(new).await.expect("register");
    register(&store, "mlp", b"no manifest").await;

    let registry = store.registry();
    let stored = registry.provenance("mlp", 1).await.expect("provenance");
    assert_eq!(stored.as_ref(), Some(&manifest));
    assert_eq!(stored.expect("some").environment["captured"], json!("2024-05-02T10:30:00.5Z"));
    assert_eq!(registry.provenance("mlp", 2).await.expect("none"), None);
    assert!(matches!(registry.provenance("mlp", 3).await, Err(StoreError::VersionNotFound { .. })));
}

#[tokio::test]
async fn lookups_of_absent_models_and_versions_say_which() {
    let (_dir, store) = temp_store().await;
    let registry = store.registry();
    assert!(registry.models().await.expect("models").is_empty());
    let err = registry.versions("ghost").await.expect_err("absent model");
    assert!(matches!(&err, StoreError::ModelNotFound { model } if model == "ghost"));
    assert!(err.to_string().contains("`ghost`"), "{err}");

    register(&store, "mlp", b"one").await;
    let err = registry.version("mlp", 5).await.expect_err("absent version");
    assert!(matches!(&err, StoreError::VersionNotFound { model, version: 5 } if model == "mlp"));
    assert_eq!(err.to_string(), "model `mlp` has no version 5");
    assert!(matches!(registry.events("mlp", Some(5)).await, Err(StoreError::VersionNotFound { .. })));
}

#[tokio::test]
async fn record_event_appends_to_the_history_in_order() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"one").await;
    register(&store, "mlp", b"two").await;
    let registry = store.registry();

    let trip = registry
        .record_event("mlp", Some(2), "guard_tripped", json!({"p99_ms": 41.5, "error_rate": 0.2, "to": 1}), "guard")
        .await
        .expect("record");
    let model_level =
        registry.record_event("mlp", None, "routing_reloaded", json!({}), "gateway").await.expect("model-level");
    assert_eq!(model_level.version, None);

    let all = registry.events("mlp", None).await.expect("events");
    let ids: Vec<_> = all.iter().map(|event| event.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "oldest first");
    assert_eq!(all.len(), 4);
    assert_eq!(all[2].kind, "guard_tripped");
    assert_eq!(all[2].detail, trip.detail);
    assert_eq!(all[3].version, None);

    // A version filter leaves out model-level events and other versions.
    let v2: Vec<_> =
        registry.events("mlp", Some(2)).await.expect("v2 events").into_iter().map(|event| event.kind).collect();
    assert_eq!(v2, ["registered", "guard_tripped"]);

    assert!(matches!(
        registry.record_event("mlp", Some(3), "x", json!(null), "t").await,
        Err(StoreError::VersionNotFound { .. })
    ));
    assert!(matches!(
        registry.record_event("ghost", None, "x", json!(null), "t").await,
        Err(StoreError::ModelNotFound { .. })
    ));
}

#[tokio::test]
async fn versions_lists_every_version_with_its_aliases() {
    let (_dir, store) = temp_store().await;
    for bytes in [b"a", b"b", b"c"] {
        register(&store, "mlp", bytes).await;
    }
    let registry = store.registry();
    registry.set_alias("mlp", "champion", 3, "ops").await.expect("alias");
    registry.set_alias("mlp", "backup", 3, "ops").await.expect("alias");
    let versions = registry.versions("mlp").await.expect("versions");
    let listed: Vec<_> = versions.iter().map(|record| (record.version, record.aliases.clone())).collect();
    assert_eq!(listed, [(1, vec![]), (2, vec![]), (3, vec!["backup".to_owned(), "champion".to_owned()])]);
    let json = serde_json::to_value(&versions[2]).expect("serialize");
    assert_eq!(json["stage"], "staging");
    assert_eq!(json["signature"]["inputs"][0]["datatype"], "FP32");
}
