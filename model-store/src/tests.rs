//! Tests of the `ModelStore` facade: registration, deduplication, verification on load,
//! reopening, and concurrent registration. Shared helpers for the registry tests live here too.

use std::path::Path;

use super::*;
use crate::artifact::sha256_hex;

/// A store in a fresh temp dir; keep the `TempDir` alive for the test's duration.
pub(crate) async fn temp_store() -> (tempfile::TempDir, ModelStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = ModelStore::open(dir.path()).await.expect("open store");
    (dir, store)
}

pub(crate) fn signature() -> Signature {
    Signature {
        inputs: vec![TensorSpec { name: "input".into(), datatype: "FP32".into(), shape: vec![-1, 4] }],
        outputs: vec![TensorSpec { name: "output".into(), datatype: "FP32".into(), shape: vec![-1, 2] }],
    }
}

pub(crate) fn new_version(model: &str, bytes: &[u8]) -> NewVersion {
    NewVersion {
        model: model.into(),
        bytes: bytes.to_vec(),
        upstream: None,
        signature: signature(),
        manifest: None,
        actor: "tester".into(),
    }
}

/// Registers `bytes` under `model` and returns the new version number.
pub(crate) async fn register(store: &ModelStore, model: &str, bytes: &[u8]) -> u32 {
    let registered = store.register(new_version(model, bytes)).await.expect("register");
    assert!(registered.created, "{model}: {bytes:?} was already registered");
    registered.version.version
}

fn stored_files(root: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .map(|entry| entry.expect("dir entry").path())
                .map(|path| if path.is_dir() { walk(&path) } else { 1 })
                .sum()
        })
    }
    walk(&root.join("artifacts"))
}

#[tokio::test]
async fn register_assigns_increasing_numbers_and_starts_in_staging() {
    let (_dir, store) = temp_store().await;
    for (expected, bytes) in [(1, b"one"), (2, b"two"), (3, b"thr")] {
        let registered = store.register(new_version("mlp", bytes)).await.expect("register");
        assert!(registered.created);
        let record = registered.version;
        assert_eq!(record.version, expected);
        assert_eq!(record.model, "mlp");
        assert_eq!(record.sha256, sha256_hex(bytes));
        assert_eq!(record.size, 3);
        assert_eq!(record.stage, Stage::Staging);
        assert_eq!(record.signature, signature());
        assert!(record.aliases.is_empty());
        let stored = store.registry().version("mlp", expected).await.expect("read back");
        assert_eq!(stored.sha256, record.sha256);
        assert_eq!(stored.created_at, record.created_at);
    }
    let events = store.registry().events("mlp", None).await.expect("events");
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|event| event.kind == Event::REGISTERED));
    assert_eq!(events[1].version, Some(2));
    assert_eq!(events[1].detail["sha256"], sha256_hex(b"two"));
    assert_eq!(events[1].actor, "tester");
    let v2 = store.registry().version("mlp", 2).await.expect("v2");
    assert_eq!(events[1].at, v2.created_at, "the event and the row share one timestamp");
}

#[tokio::test]
async fn same_bytes_twice_return_the_existing_version_and_write_nothing() {
    let (_dir, store) = temp_store().await;
    assert_eq!(register(&store, "mlp", b"weights").await, 1);
    store.registry().set_alias("mlp", "champion", 1, "ops").await.expect("alias");
    let events_before = store.registry().events("mlp", None).await.expect("events").len();

    let mut again = new_version("mlp", b"weights");
    again.manifest =
        Some(Manifest { description: Some("different provenance is ignored".into()), ..Manifest::default() });
    let registered = store.register(again).await.expect("register again");
    assert!(!registered.created);
    assert_eq!(registered.version.version, 1);
    assert_eq!(registered.version.aliases, ["champion"]);
    assert_eq!(store.registry().versions("mlp").await.expect("versions").len(), 1);
    let events_after = store.registry().events("mlp", None).await.expect("events").len();
    assert_eq!(events_after, events_before);
    assert_eq!(store.registry().provenance("mlp", 1).await.expect("provenance"), None);
    assert_eq!(stored_files(store.root()), 1);
}

#[tokio::test]
async fn models_number_their_versions_separately_and_share_artifacts() {
    let (_dir, store) = temp_store().await;
    assert_eq!(register(&store, "a", b"x").await, 1);
    assert_eq!(register(&store, "b", b"y").await, 1);
    assert_eq!(register(&store, "a", b"z").await, 2);
    // The same bytes under another model are a new version there, stored once.
    assert_eq!(register(&store, "b", b"x").await, 2);
    assert_eq!(stored_files(store.root()), 3);
    let models = store.registry().models().await.expect("models");
    let summary: Vec<_> = models.iter().map(|model| (model.name.as_str(), model.versions, model.latest)).collect();
    assert_eq!(summary, [("a", 2, 2), ("b", 2, 2)]);
}

#[tokio::test]
async fn invalid_model_names_are_refused_before_anything_is_written() {
    let (_dir, store) = temp_store().await;
    for name in ["", "../escape", "a/b", "..", ".x", "a..b", "sp ace"] {
        match store.register(new_version(name, b"bytes")).await {
            Err(StoreError::InvalidModelName { name: refused, .. }) => assert_eq!(refused, name),
            other => panic!("{name:?} was not refused: {other:?}"),
        }
    }
    let mut bad_manifest = new_version("ok", b"bytes");
    let mut manifest = Manifest::default();
    manifest.metrics.insert("auc".into(), f64::INFINITY);
    bad_manifest.manifest = Some(manifest);
    let err = store.register(bad_manifest).await.expect_err("non-finite metric");
    assert!(err.to_string().contains("metric `auc`"), "{err}");

    assert!(store.registry().models().await.expect("models").is_empty());
    assert_eq!(stored_files(store.root()), 0);
}

#[tokio::test]
async fn corrupt_artifact_is_refused_naming_the_version_and_both_hashes() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"first").await;
    register(&store, "mlp", b"second").await;
    let v2 = store.registry().version("mlp", 2).await.expect("v2");
    let path = store.artifacts().path_for(&v2.sha256).expect("path");
    crate::artifact::tests::make_writable(&path);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[0] ^= 0x01;
    std::fs::write(&path, &bytes).expect("flip a byte");

    let err = store.load_artifact(&v2).await.expect_err("corrupt");
    let actual = sha256_hex(&bytes);
    match &err {
        StoreError::CorruptArtifact { model, version, expected, actual: found } => {
            assert_eq!(model.as_deref(), Some("mlp"));
            assert_eq!(*version, Some(2));
            assert_eq!(expected, &v2.sha256);
            assert_eq!(found, &actual);
        }
        other => panic!("expected CorruptArtifact, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.starts_with("artifact of mlp v2 is corrupt"), "{message}");
    assert!(message.contains(&v2.sha256) && message.contains(&actual), "{message}");

    let v1 = store.registry().version("mlp", 1).await.expect("v1");
    assert_eq!(store.load_artifact(&v1).await.expect("v1 loads"), b"first");
}

#[tokio::test]
async fn missing_artifact_is_reported_with_its_path() {
    let (_dir, store) = temp_store().await;
    register(&store, "mlp", b"soon gone").await;
    let v1 = store.registry().version("mlp", 1).await.expect("v1");
    let path = store.artifacts().path_for(&v1.sha256).expect("path");
    std::fs::remove_file(&path).expect("remove");
    match store.load_artifact(&v1).await {
        Err(StoreError::ArtifactMissing { sha256, path: at }) => {
            assert_eq!(sha256, v1.sha256);
            assert_eq!(at, path);
        }
        other => panic!("expected ArtifactMissing, got {other:?}"),
    }
    // Registering the same bytes again restores the file without a new version.
    let again = store.register(new_version("mlp", b"soon gone")).await.expect("re-register");
    assert!(!again.created);
    assert_eq!(store.load_artifact(&v1).await.expect("restored"), b"soon gone");
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = Manifest::from_toml_str("description = \"kept\"\n[metrics]\nauc = 0.9\n").expect("manifest");
    {
        let store = ModelStore::open(dir.path()).await.expect("open");
        let mut first = new_version("mlp", b"v1");
        first.manifest = Some(manifest.clone());
        store.register(first).await.expect("register");
        register(&store, "mlp", b"v2").await;
        let registry = store.registry();
        registry.set_alias("mlp", "champion", 2, "ops").await.expect("alias");
        registry.set_stage("mlp", 2, Stage::Production, "ops").await.expect("stage");
    }
    // Twice: the second open must find the first reopen's migrations applied and its writes kept.
    for pass in 0..2 {
        let store = ModelStore::open(dir.path()).await.expect("reopen");
        let registry = store.registry();
        let champion = registry.resolve("mlp", "champion").await.expect("alias kept");
        assert_eq!(champion.version, 2);
        assert_eq!(champion.stage, Stage::Production);
        assert_eq!(registry.provenance("mlp", 1).await.expect("kept"), Some(manifest.clone()));
        assert_eq!(registry.events("mlp", None).await.expect("events").len(), 4);
        assert_eq!(store.load_artifact(&champion).await.expect("artifact"), b"v2");
        let other = store.register(new_version("other", b"new")).await.expect("register other");
        assert_eq!(other.version.version, 1);
        assert_eq!(other.created, pass == 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_get_distinct_numbers() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Two stores on one directory behave like two processes: separate pools and connections.
    let first = ModelStore::open(dir.path()).await.expect("open");
    let second = ModelStore::open(dir.path()).await.expect("open twice");
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store = if i % 2 == 0 { first.clone() } else { second.clone() };
        tasks.push(tokio::spawn(async move {
            let bytes = format!("model bytes {i}").into_bytes();
            store.register(new_version("shared", &bytes)).await.expect("concurrent register")
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        let registered = task.await.expect("task");
        assert!(registered.created);
        numbers.push(registered.version.version);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=16).collect::<Vec<_>>());
    let versions = first.registry().versions("shared").await.expect("versions");
    assert_eq!(versions.len(), 16);
    for version in &versions {
        first.load_artifact(version).await.expect("every artifact loads");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_the_same_bytes_create_one_version() {
    let (_dir, store) = temp_store().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.register(new_version("dup", b"same")).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let registered = task.await.expect("task").expect("register");
        assert_eq!(registered.version.version, 1);
        created += usize::from(registered.created);
    }
    assert_eq!(created, 1);
    assert_eq!(store.registry().events("dup", None).await.expect("events").len(), 1);
}
