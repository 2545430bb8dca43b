//! `switchyard models card` on a store registered with the real CLI, with lineage, feedback and a
//! guard trip written through the store API as the gateway would write them: the card shows the
//! manifest and the live figures, Markdown and JSON agree, and nothing is made up.

use std::process::{Command, Output};

use model_store::{Feedback, FeedbackKind, LineageRecord, ModelStore};
use serde_json::{Value, json};

use crate::support::{bin, register};

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run switchyard")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "switchyard failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).expect("utf8 stdout")
}

/// Exit status 1 with one `error:` line on stderr, nothing on stdout. Returns stderr.
fn failure(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stdout: {}; stderr: {err}", String::from_utf8_lossy(&out.stdout));
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.trim_start().starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
    err
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: String,
}

/// mlp v1 (with its manifest) served 10 requests: total_us 1, 2, … 10 ms; 7 on the champion
/// route, 3 as challenger; requests 3 and 7 failed (500, 503) and request 9 was the client's
/// fault (404, not an error of the model). Six got label feedback, four judged right. The guard
/// tripped on its p99, and it was promoted to production and made champion. mlp v2 (no
/// manifest) was registered and never served; it ran once as a shadow.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let v1 = register(&store, "mlp", "mlp_v1", Some("mlp_v1"));
    let v2 = register(&store, "mlp", "mlp_v2", None);
    let sha = |v: &Value| v["sha256"].as_str().expect("sha256").to_owned();
    let (v1_sha, v2_sha) = (sha(&v1), sha(&v2));
    let store_arg = store.to_str().expect("utf8").to_owned();
    stdout(&run(&["models", "stage", "--store", &store_arg, "mlp:1", "production"]));
    stdout(&run(&["models", "alias", "--store", &store_arg, "mlp:1", "champion"]));

    let records: Vec<LineageRecord> = (1..=10u64)
        .map(|k| {
            let route = if k <= 7 { LineageRecord::ROUTE_CHAMPION } else { LineageRecord::ROUTE_CHALLENGER };
            let mut r = LineageRecord::new(format!("req-{k}"), "mlp", 1, &v1_sha, route, "test");
            r.total_us = k * 1_000;
            r.status = match k {
                3 => 500,
                7 => 503,
                9 => 404,
                _ => 200,
            };
            r.prediction = Some(json!({ "label": k % 2 }));
            r
        })
        .collect();
    let mut shadow = LineageRecord::new("req-1", "mlp", 2, &v2_sha, LineageRecord::ROUTE_SHADOW, "shadow");
    shadow.shadow_of = Some(1);
    // Right for req-1 … req-4, wrong for req-5 and req-6.
    let feedback: Vec<Feedback> = records[..6]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let predicted = r.prediction.as_ref().and_then(|p| p["label"].as_i64()).expect("label");
            let truth = if i < 4 { predicted } else { 1 - predicted };
            Feedback::judge(&r.request_id, "mlp", 1, r.prediction.as_ref(), FeedbackKind::Label, json!(truth))
                .expect("judged")
        })
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = ModelStore::open(&store).await.expect("open store");
        let registry = store.registry();
        registry.insert_lineage(&records).await.expect("insert lineage");
        registry.insert_lineage(&[shadow]).await.expect("insert shadow");
        registry.insert_feedback(&feedback).await.expect("insert feedback");
        let detail = json!({
            "model": "mlp", "from": 1, "to": 2, "role": "champion", "reason": "p99",
            "reason_text": "p99 12.0 ms > 8.0 ms over 40 requests",
        });
        registry.record_event("mlp", Some(1), "guard_trip", detail, "guard").await.expect("guard trip");
    });
    Fixture { _dir: dir, store: store_arg }
}

#[test]
fn the_card_shows_the_manifest_and_the_live_figures() {
    let f = fixture();
    let text = stdout(&run(&["models", "card", "--store", &f.store, "mlp:1"]));
    for expected in [
        "# Model card: mlp version 1",
        "| Stage | production |",
        "| Aliases | champion |",
        // Intended use and limits, from the manifest.
        "Ranking MLP v1: 64 dense features -> 256 hidden (ReLU) -> 10 class scores.",
        "**Intended use:** Baseline ranking model",
        // Signature.
        "| input | `input` | FP32 | [-1, 64] |",
        // Provenance.
        "| Code commit | `3f9c2a1e7b4d5608c1e2f3a4b5c6d7e8f9012345` |",
        "| Data snapshot | `snap-2026-10-01-0412` |",
        "| Random seed | 1 |",
        "| Features | 64: f0, f1,",
        "| learning_rate | 0.001 |",
        "| python | 3.11.7 |",
        // Offline metrics.
        "| auc | 0.874 |",
        "| accuracy | 0.823 |",
        // Live traffic.
        // The 404 was refused as the client's error: not a request the version served.
        "| Requests served | 9 (and 1 refused as the client's error, 4xx) |",
        "| By route | challenger 3, champion 7 |",
        "| Latency p50 | 5.000 ms |",
        "| Latency p99 | 10.000 ms |",
        "| Error rate | 22.22% (2 of 9 served with status ≥ 500) |",
        // Online quality.
        "| Feedback items | 6 |",
        "| Accuracy | 66.67% (4 of 6 judged right) |",
        "| MAE | — (no value feedback) |",
        // Guard trips.
        "guard_trip: p99 (p99 12.0 ms > 8.0 ms over 40 requests); as champion; traffic moved to version 2",
        // History.
        "registered (stage staging)",
        "stage staging → production",
        "alias `champion` set",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("No traffic recorded"), "{text}");
    // Sections in order.
    let at = |heading: &str| text.find(heading).unwrap_or_else(|| panic!("no {heading:?} in:\n{text}"));
    let order = [
        "## Intended use and limits",
        "## Signature",
        "## Provenance",
        "## Offline metrics",
        "## Live traffic",
        "## Online quality (feedback)",
        "## Guard trips",
        "## Stage and alias history",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
    // The alias selects the same version, and the card is the same.
    assert_eq!(stdout(&run(&["models", "card", "--store", &f.store, "mlp:champion"])), text);
}

#[test]
fn the_json_card_holds_the_same_numbers() {
    let f = fixture();
    let card: Value =
        serde_json::from_str(&stdout(&run(&["models", "card", "--store", &f.store, "mlp:1", "--format", "json"])))
            .expect("one JSON object");
    assert_eq!((card["model"].as_str(), card["version"].as_u64()), (Some("mlp"), Some(1)));
    assert_eq!(card["stage"], "production");
    assert_eq!(card["aliases"], json!(["champion"]));
    assert!(card["description"].as_str().expect("description").starts_with("Ranking MLP v1"));
    assert!(card["intended_use"].as_str().expect("intended use").starts_with("Baseline ranking model"));
    assert_eq!(card["signature"]["inputs"][0], json!({"name": "input", "datatype": "FP32", "shape": [-1, 64]}));
    assert_eq!(card["provenance"]["training"]["code_commit"], "3f9c2a1e7b4d5608c1e2f3a4b5c6d7e8f9012345");
    assert_eq!(card["provenance"]["training"]["random_seed"], 1);
    assert_eq!(card["provenance"]["environment"]["onnx"], "1.19.1");
    assert_eq!(card["offline_metrics"], json!({"auc": 0.874, "accuracy": 0.823}));

    let traffic = &card["traffic"];
    assert_eq!(traffic["requests"], 10);
    assert_eq!((traffic["errors"].as_u64(), traffic["client_errors"].as_u64()), (Some(2), Some(1)));
    assert_eq!(traffic["error_rate"], 2.0 / 9.0);
    assert_eq!(traffic["routes"], json!({"champion": 7, "challenger": 3}));
    assert_eq!((traffic["p50_us"].as_u64(), traffic["p99_us"].as_u64()), (Some(5_000), Some(10_000)));
    assert_eq!(traffic["shadow_runs"], 0);
    assert!(traffic["first_at"].is_string() && traffic["last_at"].is_string(), "{traffic}");

    let quality = &card["online_quality"];
    assert_eq!(
        (quality["count"].as_u64(), quality["judged"].as_u64(), quality["correct"].as_u64()),
        (Some(6), Some(6), Some(4))
    );
    assert_eq!(quality["accuracy"].as_f64(), Some(4.0 / 6.0));
    assert!(quality["mae"].is_null() && quality["rmse"].is_null(), "{quality}");

    let trips = card["guard_trips"].as_array().expect("guard trips");
    assert_eq!(trips.len(), 1, "{trips:?}");
    assert_eq!((trips[0]["kind"].as_str(), trips[0]["reason"].as_str()), (Some("guard_trip"), Some("p99")));
    assert_eq!(trips[0]["to"], 2);
    let kinds: Vec<&str> =
        card["history"].as_array().expect("history").iter().map(|e| e["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["registered", "stage_changed", "alias_set"]);
    assert_eq!(card["history"][1]["detail"], json!({"from": "staging", "to": "production"}));

    // --json is --format json.
    let again: Value = serde_json::from_str(&stdout(&run(&["models", "card", "--store", &f.store, "mlp:1", "--json"])))
        .expect("one JSON object");
    assert_eq!(again, card);
}

#[test]
fn a_version_that_never_served_says_so() {
    let f = fixture();
    let text = stdout(&run(&["models", "card", "--store", &f.store, "mlp:2"]));
    for expected in [
        "# Model card: mlp version 2",
        "No traffic recorded",
        "It also ran 1 times as a shadow",
        "No feedback recorded.",
        "_No provenance manifest was registered with this version._",
        "_No offline metrics recorded._",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for absent in ["Latency p99", "Error rate", "0.000 ms", "0.00%"] {
        assert!(!text.contains(absent), "{absent:?} measured without traffic:\n{text}");
    }
    let card: Value = serde_json::from_str(&stdout(&run(&["models", "card", "--store", &f.store, "mlp:2", "--json"])))
        .expect("one JSON object");
    let traffic = &card["traffic"];
    assert_eq!((traffic["requests"].as_u64(), traffic["shadow_runs"].as_u64()), (Some(0), Some(1)));
    for figure in ["error_rate", "p50_us", "p99_us", "first_at", "last_at"] {
        assert!(traffic[figure].is_null(), "{figure} should be null: {traffic}");
    }
    assert_eq!(card["online_quality"]["count"], 0);
    assert!(card["online_quality"]["accuracy"].is_null());
    assert!(card["provenance"].is_null() && card["description"].is_null());
    assert_eq!(card["guard_trips"], json!([]));
}

#[test]
fn unknown_versions_and_bad_targets_are_clear_errors() {
    let f = fixture();
    for extra in [None, Some("--json")] {
        let mut args = vec!["models", "card", "--store", f.store.as_str(), "mlp:9"];
        args.extend(extra);
        let err = failure(&run(&args));
        assert!(err.contains("model `mlp` has no version 9"), "{err}");
    }
    let err = failure(&run(&["models", "card", "--store", &f.store, "mlp:nope"]));
    assert!(err.contains("model `mlp` has no alias `nope`"), "{err}");
    let err = failure(&run(&["models", "card", "--store", &f.store, "ghost:1"]));
    assert!(err.contains("model `ghost` is not registered"), "{err}");
    let err = failure(&run(&["models", "card", "--store", &f.store, "mlp"]));
    assert!(err.contains("expected NAME:VERSION"), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-store");
    let err = failure(&run(&["models", "card", "--store", missing.to_str().expect("utf8"), "mlp:1"]));
    assert!(err.contains("is not a model store"), "{err}");
    assert!(!missing.exists(), "the store directory must not be created");

    // A format clap does not know is refused before anything is read.
    let out = run(&["models", "card", "--store", &f.store, "mlp:1", "--format", "html"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("markdown"), "{}", String::from_utf8_lossy(&out.stderr));
}
