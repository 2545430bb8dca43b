//! Tests of manifest parsing: both formats, round trips, and every refusal with its message.

use super::*;

const FULL_TOML: &str = r#"
description = "Fraud scorer for card payments"
intended_use = "Scoring card payments; not for credit decisions"

[training]
code_commit = "9f1c2ab"
data_snapshot = "s3://snapshots/2024-05-01"
features = ["amount", "merchant_category", "hour"]
random_seed = 42

[training.hyperparameters]
learning_rate = 0.01
layers = [64, 32]
optimizer = { name = "adam", beta1 = 0.9 }
early_stopping = true

[environment]
gpu = "NVIDIA A100"
cuda = "12.4"
built_at = 2024-05-02T10:30:00Z
libraries = { torch = "2.3.0", onnx = "1.16" }

[metrics]
auc = 0.941
precision_at_1pct = 0.82
epochs = 12

[tags]
team = "risk"
reviewed = true
"#;

fn parsed_full() -> Manifest {
    Manifest::from_toml_str(FULL_TOML).expect("full manifest parses")
}

#[test]
fn full_toml_parses_every_part() {
    let manifest = parsed_full();
    let training = manifest.training.as_ref().expect("training");
    assert_eq!(training.code_commit.as_deref(), Some("9f1c2ab"));
    assert_eq!(training.features, ["amount", "merchant_category", "hour"]);
    assert_eq!(training.random_seed, Some(42));
    assert_eq!(training.hyperparameters["optimizer"], serde_json::json!({"name": "adam", "beta1": 0.9}));
    assert_eq!(manifest.metrics["auc"], 0.941);
    assert_eq!(manifest.metrics["epochs"], 12.0);
    assert_eq!(manifest.tags["reviewed"], serde_json::json!(true));
    // A TOML datetime becomes its RFC 3339 string, not a private wrapper table.
    assert_eq!(manifest.environment["built_at"], serde_json::json!("2024-05-02T10:30:00Z"));
}

#[test]
fn toml_to_json_to_manifest_round_trips() {
    let manifest = parsed_full();
    let json = serde_json::to_string(&manifest).expect("serialize");
    assert!(!json.contains(TOML_DATETIME_KEY), "{json}");
    let back = Manifest::from_json_str(&json).expect("json parses");
    assert_eq!(back, manifest);
    // And once more through pretty JSON, as a user would write it by hand.
    let pretty = serde_json::to_string_pretty(&back).expect("serialize");
    assert_eq!(Manifest::from_json_str(&pretty).expect("parses"), manifest);
}

#[test]
fn json_manifest_of_the_same_shape_parses() {
    let json = r#"{
        "description": "d",
        "training": {"code_commit": "abc", "features": ["a"], "random_seed": 18446744073709551615,
                     "hyperparameters": {"lr": 0.1, "none": null}},
        "environment": {"driver": {"version": "550.54"}},
        "metrics": {"rmse": 1.5},
        "tags": {"owner": "me"}
    }"#;
    let manifest = Manifest::from_json_str(json).expect("parses");
    let training = manifest.training.as_ref().expect("training");
    assert_eq!(training.random_seed, Some(u64::MAX));
    assert_eq!(training.hyperparameters["none"], serde_json::Value::Null);
    assert_eq!(manifest.metrics["rmse"], 1.5);
    let again = serde_json::to_string(&manifest).expect("serialize");
    assert_eq!(Manifest::from_json_str(&again).expect("parses"), manifest);
}

#[test]
fn empty_manifest_is_the_default() {
    assert_eq!(Manifest::from_toml_str("").expect("toml"), Manifest::default());
    assert_eq!(Manifest::from_json_str("{}").expect("json"), Manifest::default());
    assert_eq!(serde_json::to_string(&Manifest::default()).expect("serialize"), "{}");
}

#[test]
fn unknown_top_level_key_is_refused_and_named() {
    let err = Manifest::from_toml_str("description = \"x\"\nmetric = { auc = 0.9 }\n").expect_err("unknown key");
    let message = err.to_string();
    assert!(matches!(err, ManifestError::Toml { .. }), "{err:?}");
    assert!(message.contains("`metric`"), "{message}");
    assert!(message.contains("metrics"), "expected keys are listed: {message}");

    let err = Manifest::from_json_str(r#"{"descripton": "x"}"#).expect_err("unknown key");
    assert!(err.to_string().contains("`descripton`"), "{err}");
}

#[test]
fn unknown_training_key_is_refused_but_free_form_tables_accept_anything() {
    let err = Manifest::from_toml_str("[training]\nseed = 1\n").expect_err("unknown key");
    assert!(err.to_string().contains("`seed`"), "{err}");

    let manifest =
        Manifest::from_toml_str("[environment]\nanything = { goes = [1, 2] }\n").expect("free-form environment");
    assert_eq!(manifest.environment["anything"], serde_json::json!({"goes": [1, 2]}));
}

#[test]
fn non_finite_and_non_numeric_metrics_are_refused() {
    for (text, needle) in [
        ("[metrics]\nauc = nan\n", "metric `auc` is NaN"),
        ("[metrics]\nloss = inf\n", "metric `loss` is inf"),
        ("[metrics]\nloss = -inf\n", "metric `loss` is -inf"),
        ("[metrics]\nauc = \"0.9\"\n", "expected a finite number"),
        ("[metrics]\nauc = { value = 0.9 }\n", "expected a finite number"),
    ] {
        let err = Manifest::from_toml_str(text).expect_err(text);
        assert!(err.to_string().contains(needle), "{text}: {err}");
    }
    let err = Manifest::from_json_str(r#"{"metrics": {"auc": "high"}}"#).expect_err("string");
    assert!(err.to_string().contains("expected a finite number"), "{err}");
}

#[test]
fn validate_catches_non_finite_metrics_built_in_code() {
    let mut manifest = Manifest::default();
    manifest.metrics.insert("auc".into(), 0.9);
    assert!(manifest.validate().is_ok());
    manifest.metrics.insert("loss".into(), f64::NAN);
    match manifest.validate() {
        Err(ManifestError::NonFiniteMetric { name, .. }) => assert_eq!(name, "loss"),
        other => panic!("expected NonFiniteMetric, got {other:?}"),
    }
}

#[test]
fn from_path_picks_the_format_and_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let toml_path = dir.path().join("manifest.TOML");
    std::fs::write(&toml_path, FULL_TOML).expect("write");
    assert_eq!(Manifest::from_path(&toml_path).expect("toml"), parsed_full());

    let json_path = dir.path().join("manifest.json");
    let json = serde_json::to_string(&parsed_full()).expect("serialize");
    std::fs::write(&json_path, &json).expect("write");
    assert_eq!(Manifest::from_path(&json_path).expect("json"), parsed_full());

    // No extension: TOML first, then JSON.
    let bare = dir.path().join("provenance");
    std::fs::write(&bare, &json).expect("write");
    assert_eq!(Manifest::from_path(&bare).expect("fallback"), parsed_full());

    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, r#"{"bogus": 1}"#).expect("write");
    let err = Manifest::from_path(&bad_json).expect_err("bogus key");
    let message = err.to_string();
    assert!(message.contains("bad.json") && message.contains("`bogus`"), "{message}");

    std::fs::write(&bare, "not = [valid").expect("write");
    let err = Manifest::from_path(&bare).expect_err("garbage");
    assert!(matches!(err, ManifestError::Unrecognized { .. }), "{err:?}");
    assert!(err.to_string().contains("provenance"), "{err}");

    let missing = dir.path().join("absent.toml");
    let err = Manifest::from_path(&missing).expect_err("missing");
    assert!(matches!(err, ManifestError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("absent.toml"), "{err}");
}
