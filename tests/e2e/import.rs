//! `switchyard models import triton|mlflow` with the real binary: the committed mlp fixtures laid
//! out as a Triton model repository and as MLflow model directories, imported into a store, then
//! read back with `models show --json`. Re-imports change nothing; bad inputs are refused with a
//! clear message before anything is written, and what cannot be imported is skipped and said.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::{cli_json, fixtures};

fn run(args: &[&str]) -> Output {
    Command::new(crate::support::bin()).args(args).output().expect("run switchyard")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Copies fixture `mlp_vN.onnx` to `to` (creating its directory).
fn put_fixture(version: u32, to: &Path) {
    fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    fs::copy(fixtures().join(format!("models/mlp_v{version}.onnx")), to).expect("copy fixture");
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

/// A Triton repository: `mlp` with versions 2, 3 and 10 (mlp_v1, v2, v3 — numeric order differs
/// from name order), a config, a non-numeric directory and a TensorRT-only version 4; `other` with
/// one version and no config; `trt`, a TensorRT model.
fn triton_repo(root: &Path) -> PathBuf {
    let repo = root.join("repo");
    write(
        &repo.join("mlp/config.pbtxt"),
        "name: \"mlp\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n\
         input [ { name: \"input\" data_type: TYPE_FP32 dims: [ 64 ] } ]\n\
         instance_group [ { count: 1 kind: KIND_CPU } ]  # comments are fine\n",
    );
    put_fixture(1, &repo.join("mlp/2/model.onnx"));
    put_fixture(2, &repo.join("mlp/3/model.onnx"));
    put_fixture(3, &repo.join("mlp/10/model.onnx"));
    write(&repo.join("mlp/4/model.plan"), "not onnx");
    write(&repo.join("mlp/notes/readme.txt"), "not a version");
    put_fixture(3, &repo.join("other/1/model.onnx"));
    write(&repo.join("trt/config.pbtxt"), "platform: \"tensorrt_plan\"\n");
    write(&repo.join("trt/1/model.plan"), "engine");
    repo
}

fn import_json(args: &[&str]) -> Value {
    let mut all = vec!["models", "import"];
    all.extend_from_slice(args);
    all.push("--json");
    cli_json(&all)
}

fn show(store: &Path, target: &str) -> Value {
    cli_json(&["models", "show", "--json", "--store", s(store), target])
}

fn skipped_reason(report: &Value, path_end: &str) -> String {
    report["skipped"]
        .as_array()
        .expect("skipped list")
        .iter()
        .find(|skip| skip["path"].as_str().is_some_and(|path| path.ends_with(path_end)))
        .unwrap_or_else(|| panic!("{path_end} not skipped: {report}"))["reason"]
        .as_str()
        .expect("reason")
        .to_owned()
}

#[test]
fn triton_repository_imports_in_version_order_with_provenance_and_again_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = triton_repo(dir.path());
    let store = dir.path().join("store");

    let report = import_json(&["triton", "--store", s(&store), s(&repo)]);
    assert_eq!(report["source"], "triton");
    let imported: Vec<(String, u64, String, bool)> = report["imported"]
        .as_array()
        .expect("imported")
        .iter()
        .map(|v| {
            (
                v["model"].as_str().expect("model").to_owned(),
                v["version"].as_u64().expect("version"),
                v["source_version"].as_str().expect("source version").to_owned(),
                v["created"].as_bool().expect("created"),
            )
        })
        .collect();
    let expected = [("mlp", 1, "2"), ("mlp", 2, "3"), ("mlp", 3, "10"), ("other", 1, "1")]
        .map(|(model, version, source)| (model.to_owned(), version, source.to_owned(), true));
    assert_eq!(imported, expected);
    assert!(skipped_reason(&report, "mlp/4").contains("no model.onnx (found model.plan)"), "{report}");
    assert!(skipped_reason(&report, "mlp/notes").contains("not a version directory"), "{report}");
    assert!(skipped_reason(&report, "repo/trt").contains("platform `tensorrt_plan`"), "{report}");

    // The store's numbers keep Triton's order; each version says where it came from.
    let versions = show(&store, "mlp");
    let fixture_sha = |v: u32| {
        let bytes = fs::read(fixtures().join(format!("models/mlp_v{v}.onnx"))).expect("fixture");
        sha256_hex(&bytes)
    };
    for (index, fixture) in [1, 2, 3].into_iter().enumerate() {
        assert_eq!(versions[index]["sha256"], fixture_sha(fixture), "{versions}");
    }
    let v3 = show(&store, "mlp:3");
    let tags = &v3["provenance"]["tags"];
    assert_eq!(tags["source"], "triton");
    assert_eq!(tags["triton_model"], "mlp");
    assert_eq!(tags["triton_version"], "10");
    assert_eq!(tags["triton_max_batch_size"], 8);
    assert_eq!(tags["triton_platform"], "onnxruntime_onnx");
    let source_path = tags["source_path"].as_str().expect("source path");
    assert!(Path::new(source_path).is_absolute() && source_path.ends_with("repo/mlp/10/model.onnx"), "{source_path}");
    assert_eq!(v3["version"]["signature"]["inputs"][0]["name"], "input");
    assert_eq!(v3["events"][0]["kind"], "registered");
    let other = show(&store, "other:1");
    assert_eq!(other["provenance"]["tags"]["triton_version"], "1");
    assert!(other["provenance"]["tags"].get("triton_max_batch_size").is_none(), "no config, no batch size");

    // Again: the same versions, nothing new.
    let again = import_json(&["triton", "--store", s(&store), s(&repo)]);
    assert!(again["imported"].as_array().expect("imported").iter().all(|v| v["created"] == false), "{again}");
    assert_eq!(show(&store, "mlp").as_array().expect("versions").len(), 3);
    let out = run(&["models", "import", "triton", "--store", s(&store), s(&repo), "--model", "mlp"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("already registered: triton mlp/10 is mlp version 3 (same bytes)"), "{text}");
    assert!(text.contains("0 imported, 3 already registered"), "{text}");
    assert!(!text.contains("other"), "--model limits the import: {text}");

    // A new version in the repository is appended after the others.
    put_fixture(1, &repo.join("other/7/model.onnx"));
    let added = import_json(&["triton", "--store", s(&store), s(&repo), "--model", "other"]);
    assert_eq!(
        added["imported"][1],
        json!({
            "model": "other", "version": 2, "sha256": fixture_sha(1), "size": added["imported"][1]["size"],
            "created": true, "source_version": "7", "source_path": added["imported"][1]["source_path"],
        })
    );
}

/// An MLflow model directory as `mlflow.onnx.save_model` leaves it, with the run's files.
fn mlflow_dir(at: &Path, with_run_files: bool) {
    put_fixture(2, &at.join("model.onnx"));
    write(
        &at.join("MLmodel"),
        r#"artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: 1.16.1
    providers:
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    loader_module: mlflow.onnx
    python_version: 3.11.9
metadata:
  team: ranking
mlflow_version: 2.14.1
model_uuid: 4b1c2f3e9d8a4b7c
run_id: 0f9e8d7c6b5a49382716f5e4d3c2b1a0
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1,
    64]}, "name": "input"}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 10]}}]'
  params: null
utc_time_created: '2024-05-02 10:30:00.123456'
"#,
    );
    if with_run_files {
        write(&at.join("metrics/accuracy"), "1714645800000 0.81 0\n1714645860000 0.93 1\n");
        write(&at.join("metrics/val/loss"), "1714645800000 0.4 0\n1714645860000 0.25 1\n");
        write(&at.join("params/learning_rate"), "0.01");
        write(&at.join("params/optimizer"), "adam");
        write(&at.join("tags/mlflow.source.git.commit"), "3f2a9c1d\n");
    }
}

#[test]
fn mlflow_model_directory_imports_with_its_run_metadata_and_again_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model_dir = dir.path().join("model");
    mlflow_dir(&model_dir, true);
    let store = dir.path().join("store");

    let report = import_json(&["mlflow", "--store", s(&store), s(&model_dir), "--model", "ranker"]);
    assert_eq!(report["imported"][0]["model"], "ranker");
    assert_eq!(report["imported"][0]["version"], 1);
    assert_eq!(report["imported"][0]["created"], true);
    assert_eq!(report["imported"][0]["source_version"], "0f9e8d7c6b5a49382716f5e4d3c2b1a0");

    let shown = show(&store, "ranker:1");
    let provenance = &shown["provenance"];
    let tags = &provenance["tags"];
    assert_eq!(tags["source"], "mlflow");
    assert!(tags["source_path"].as_str().is_some_and(|p| p.ends_with("model/model.onnx")), "{tags}");
    assert_eq!(tags["mlflow_run_id"], "0f9e8d7c6b5a49382716f5e4d3c2b1a0");
    assert_eq!(tags["mlflow_artifact_path"], "model");
    assert_eq!(tags["mlflow_utc_time_created"], "2024-05-02 10:30:00.123456");
    assert_eq!(tags["mlflow_signature_inputs"][0]["tensor-spec"]["shape"], json!([-1, 64]));
    assert_eq!(tags["mlflow_metadata"], json!({"team": "ranking"}));
    let environment = &provenance["environment"];
    assert_eq!(environment["run_id"], "0f9e8d7c6b5a49382716f5e4d3c2b1a0");
    assert_eq!(environment["mlflow_version"], "2.14.1");
    assert_eq!(environment["onnx_version"], "1.16.1");
    assert_eq!(provenance["metrics"], json!({"accuracy": 0.93, "val/loss": 0.25}));
    assert_eq!(provenance["training"]["hyperparameters"], json!({"learning_rate": 0.01, "optimizer": "adam"}));
    assert_eq!(provenance["training"]["code_commit"], "3f2a9c1d");

    let again = import_json(&["mlflow", "--store", s(&store), s(&model_dir), "--model", "ranker"]);
    assert_eq!(again["imported"][0]["created"], false);
    assert_eq!(again["imported"][0]["version"], 1);
    assert_eq!(show(&store, "ranker").as_array().expect("versions").len(), 1);
}

#[test]
fn mlflow_run_files_are_found_beside_the_artifacts_and_are_optional() {
    let dir = tempfile::tempdir().expect("tempdir");
    // MLflow's file store: <run>/artifacts/<artifact_path>/MLmodel, <run>/metrics/…
    let run_dir = dir.path().join("mlruns/1/0f9e8d7c6b5a49382716f5e4d3c2b1a0");
    let model_dir = run_dir.join("artifacts/model");
    mlflow_dir(&model_dir, false);
    write(&run_dir.join("metrics/auc"), "1714645800000 0.88 3\n");
    write(&run_dir.join("params/epochs"), "12");
    let bare = dir.path().join("bare");
    mlflow_dir(&bare, false);
    let store = dir.path().join("store");

    import_json(&["mlflow", "--store", s(&store), s(&model_dir), "--model", "from-run"]);
    let provenance = &show(&store, "from-run:1")["provenance"];
    assert_eq!(provenance["metrics"], json!({"auc": 0.88}));
    assert_eq!(provenance["training"]["hyperparameters"], json!({"epochs": 12}));
    assert!(provenance["training"].get("code_commit").is_none(), "no commit tag: left empty");

    import_json(&["mlflow", "--store", s(&store), s(&bare), "--model", "bare"]);
    let provenance = &show(&store, "bare:1")["provenance"];
    assert!(provenance.get("metrics").is_none() && provenance.get("training").is_none(), "{provenance}");
    assert_eq!(provenance["tags"]["mlflow_run_id"], "0f9e8d7c6b5a49382716f5e4d3c2b1a0");
}

/// Runs an import that must fail; returns its stderr after checking that no store was created.
fn refused(args: &[&str], store: &Path) -> String {
    let mut all = vec!["models", "import"];
    all.extend_from_slice(args);
    let out = run(&all);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?} must fail: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!store.exists(), "{args:?}: nothing may be written, yet {} exists", store.display());
    err
}

#[test]
fn bad_mlflow_directories_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let model_dir = dir.path().join("model");
    let import = |name: &str| refused(&["mlflow", "--store", s(&store), s(&model_dir), "--model", name], &store);

    put_fixture(1, &model_dir.join("model.onnx"));
    assert!(import("m").contains("has no MLmodel file: it is not an MLflow model directory"));

    write(&model_dir.join("MLmodel"), "flavors:\n  sklearn:\n    pickled_model: model.pkl\n");
    let err = import("m");
    assert!(err.contains("MLmodel: it has no `onnx` flavor (flavors: sklearn)"), "{err}");

    write(&model_dir.join("MLmodel"), "flavors:\n  onnx:\n    data: weights.onnx\n");
    let err = import("m");
    assert!(err.contains("the onnx flavor's data file") && err.contains("weights.onnx does not exist"), "{err}");

    write(&model_dir.join("MLmodel"), "flavors:\n  onnx:\n    data: model.onnx\n");
    write(&model_dir.join("metrics/acc"), "garbage\n");
    let err = import("m");
    assert!(err.contains("metrics/acc: line 1: expected `timestamp value step`"), "{err}");
    fs::remove_dir_all(model_dir.join("metrics")).expect("clean");

    let err = import("bad/name");
    assert!(err.contains("invalid model name `bad/name`"), "{err}");

    fs::write(model_dir.join("model.onnx"), b"not an onnx model").expect("write");
    let err = import("m");
    assert!(err.contains("is not a model ONNX Runtime can load"), "{err}");
}

#[test]
fn bad_triton_repositories_are_refused_or_skipped_as_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let repo = dir.path().join("repo");
    let import = |extra: &[&str]| {
        let mut args = vec!["triton", "--store", s(&store), s(&repo)];
        args.extend_from_slice(extra);
        refused(&args, &store)
    };

    assert!(import(&[]).contains("is not a directory"));
    fs::create_dir_all(&repo).expect("mkdir");
    assert!(import(&[]).contains("holds no model directories"));

    // Only a non-numeric version directory and a TensorRT version: nothing importable.
    write(&repo.join("mlp/latest/model.onnx"), "x");
    write(&repo.join("mlp/01/model.onnx"), "x");
    write(&repo.join("mlp/2/model.plan"), "x");
    let err = import(&[]);
    assert!(err.contains("nothing to import from"), "{err}");
    assert!(err.contains("mlp/latest: not a version directory"), "{err}");
    assert!(err.contains("mlp/01: not a version directory"), "{err}");
    assert!(err.contains("mlp/2: no model.onnx (found model.plan): not an ONNX model"), "{err}");

    // One good version does not carry a broken one: nothing is written.
    put_fixture(1, &repo.join("mlp/3/model.onnx"));
    write(&repo.join("mlp/4/model.onnx"), "not an onnx model");
    let err = import(&[]);
    assert!(err.contains("mlp/4/model.onnx is not a model ONNX Runtime can load"), "{err}");
    fs::remove_dir_all(repo.join("mlp/4")).expect("clean");

    let err = import(&["--model", "nope"]);
    assert!(err.contains("has no model directory `nope` (models there: mlp)"), "{err}");

    write(&repo.join("mlp/config.pbtxt"), "name: \"other\"\n");
    assert!(import(&[]).contains("names the model `other`, but its directory is `mlp`"));
    write(&repo.join("mlp/config.pbtxt"), "name: \"mlp\"\ninput [ {\n");
    let err = import(&[]);
    assert!(err.contains("config.pbtxt: line 2: missing `}`"), "{err}");

    // Fixed, it imports, and says what it skipped.
    write(&repo.join("mlp/config.pbtxt"), "backend: \"onnxruntime\"\nmax_batch_size: 0\n");
    let report = import_json(&["triton", "--store", s(&store), s(&repo)]);
    assert_eq!(report["imported"].as_array().expect("imported").len(), 1, "{report}");
    assert_eq!(report["skipped"].as_array().expect("skipped").len(), 3, "{report}");
    assert_eq!(show(&store, "mlp:1")["provenance"]["tags"]["triton_backend"], "onnxruntime");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
