//! The command line as an operator uses it: registration refusals, provenance, config checks,
//! and a missing ONNX Runtime reported in one clear line.

use std::process::Command;

use crate::support::{bin, fixtures, register};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().expect("run switchyard")
}

#[test]
fn register_refuses_a_file_that_is_not_a_model_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let not_model = fixtures().join("manifests/mlp_v1.toml");
    let out = run(&[
        "models",
        "register",
        "--store",
        store.to_str().expect("utf8"),
        "--model",
        "m",
        "--file",
        not_model.to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a model ONNX Runtime can load"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!store.join("registry.db").exists(), "nothing may be written for a refused file");
}

#[test]
fn register_is_idempotent_and_show_prints_provenance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let first = register(&store, "mlp", "mlp_v1", Some("mlp_v1"));
    let again = register(&store, "mlp", "mlp_v1", None);
    assert_eq!(first["version"], 1);
    assert_eq!(again["version"], 1);
    assert_eq!(again["created"], false);
    assert_eq!(first["sha256"].as_str().expect("hash").len(), 64);
    let out = run(&["models", "show", "--json", "--store", store.to_str().expect("utf8"), "mlp:1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let manifest = std::fs::read_to_string(fixtures().join("manifests/mlp_v1.toml")).expect("manifest");
    let commit = shown["provenance"]["training"]["code_commit"].as_str().expect("commit recorded");
    assert!(manifest.contains(commit));
    assert!(shown["provenance"]["metrics"].as_object().is_some_and(|m| !m.is_empty()));
    assert_eq!(shown["version"]["signature"]["inputs"][0]["name"], "input");
    assert_eq!(shown["events"][0]["kind"], "registered");
}

#[test]
fn config_check_lists_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"x\"\n[[model]]\nname = \"m\"\nversions = []\n").expect("write");
    let out = run(&["config", "check", path.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen = \"x\" is not an address"), "{text}");
    assert!(text.contains("versions is empty"), "{text}");
    assert!(text.contains("[store] path is required"), "{text}");
}

#[test]
fn missing_onnxruntime_is_one_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = fixtures().join("models/mlp_v1.onnx");
    let out = Command::new(bin())
        .args(["models", "register", "--model", "m", "--store"])
        .arg(dir.path().join("s"))
        .arg("--file")
        .arg(model)
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ONNX Runtime library not found"), "{err}");
    assert!(err.contains("scripts/fetch-onnxruntime.sh"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
