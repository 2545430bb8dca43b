//! The command line as an operator uses it: registration refusals, provenance, config checks,
//! a missing ONNX Runtime reported in one clear line, and artifact garbage collection.

use std::process::Command;

use crate::support::{Gateway, bin, cli_json, fixtures, mlp_body, post_json, register};

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

#[test]
fn gc_removes_long_archived_artifacts_and_keeps_their_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store_arg = store.to_str().expect("utf8");
    let v1 = register(&store, "mlp", "mlp_v1", Some("mlp_v1"));
    register(&store, "mlp", "mlp_v2", None);
    register(&store, "mlp", "mlp_v3", None);
    for version in ["mlp:1", "mlp:3"] {
        cli_json(&["models", "stage", "--json", "--store", store_arg, version, "archived"]);
    }
    cli_json(&["models", "alias", "--json", "--store", store_arg, "mlp:3", "fallback"]);
    let sha256 = v1["sha256"].as_str().expect("sha256");
    let artifact = store.join("artifacts/sha256").join(&sha256[..2]).join(sha256);
    assert!(artifact.is_file());

    // The default retention (30 days) keeps a version archived just now.
    let kept = cli_json(&["models", "gc", "--json", "--store", store_arg]);
    assert_eq!(kept["collected"], serde_json::json!([]));
    assert!(kept["kept"][0]["reason"].as_str().is_some_and(|r| r.starts_with("within the retention")), "{kept}");

    let dry = cli_json(&["models", "gc", "--json", "--dry-run", "--retention", "0s", "--store", store_arg]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["collected"].as_array().map(Vec::len), Some(1), "{dry}");
    assert_eq!(dry["collected"][0]["version"], 1);
    assert_eq!(dry["kept"][0]["reason"], "alias fallback points at it");
    assert!(artifact.is_file(), "a dry run removes nothing");

    let done = cli_json(&["models", "gc", "--json", "--retention", "0s", "--store", store_arg]);
    assert_eq!(done["collected"][0]["version"], 1, "{done}");
    assert_eq!(done["removed"][0]["sha256"], sha256);
    assert!(!artifact.exists());

    let shown = cli_json(&["models", "show", "--json", "--store", store_arg, "mlp:1"]);
    let collected_at = shown["version"]["collected_at"].as_str().expect("collected_at shown").to_owned();
    assert!(shown["provenance"]["training"]["code_commit"].is_string(), "provenance stays");
    let last = shown["events"].as_array().and_then(|events| events.last()).expect("events").clone();
    assert_eq!(last["kind"], "artifact_collected");
    assert_eq!(last["detail"]["sha256"], sha256);
    assert_eq!(last["detail"]["retention_s"], 0);
    let out =
        Command::new(bin()).args(["models", "gc", "--store", store_arg, "--retention", "0s"]).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kept mlp v3: alias fallback points at it"), "{text}");
    assert!(text.contains("0 version(s) collected, 0 file(s) removed"), "{text}");

    // A collected version is archived: a gateway cannot be configured to serve it, and says why.
    let config = "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[store]\npath = \"{store}\"\n\
                  [[model]]\nname = \"mlp\"\nversions = [1, 2]\ndefault_version = 2\n";
    let path = dir.path().join("gc.toml");
    std::fs::write(&path, config.replace("{store}", store_arg)).expect("write config");
    let out = Command::new(bin()).args(["serve", "--config"]).arg(&path).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("version 1 (v1) is archived"), "{err}");
    // Loading its artifact directly says when it was collected.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let message = rt.block_on(async {
        let store = model_store::ModelStore::open(&store).await.expect("open");
        let record = store.registry().version("mlp", 1).await.expect("v1");
        store.load_artifact(&record).await.expect_err("collected").to_string()
    });
    assert!(message.contains(&format!("was garbage-collected on {collected_at}")), "{message}");
    // Without it, the gateway serves the others.
    let gw = Gateway::start(dir.path(), &store, &config.replace("[1, 2]", "[2]"));
    let served = post_json(gw.public, "/v2/models/mlp/infer", &serde_json::from_str(&mlp_body(0.5)).expect("body"));
    assert_eq!(served.status, 200);
    assert!(gw.terminate().success());
}

/// Outside `make run` nobody exports a library path: the binary of a checkout finds the library
/// `make` fetched into the checkout's `.cache/`, and a binary that finds none says how to fetch it.
#[test]
fn onnx_runtime_is_found_in_the_checkout_cache_without_any_variable() {
    let cache = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/onnxruntime/1.31.1/libonnxruntime.so");
    assert!(cache.is_file(), "{} is missing: run `make test` (or scripts/fetch-onnxruntime.sh)", cache.display());
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(crate::support::bin())
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("SWITCHYARD_ONNXRUNTIME")
        .current_dir(dir.path())
        .args(["models", "register", "--json", "--model", "mlp", "--store"])
        .arg(dir.path().join("store"))
        .arg("--file")
        .arg(crate::support::fixtures().join("models/mlp_v1.onnx"))
        .output()
        .expect("run switchyard");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // A copy of the binary outside the checkout, with nothing beside it, finds nothing.
    let lonely = dir.path().join("switchyard");
    std::fs::copy(crate::support::bin(), &lonely).expect("copy the binary");
    let out = Command::new(&lonely)
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("SWITCHYARD_ONNXRUNTIME")
        .current_dir(dir.path())
        .args(["models", "register", "--model", "mlp", "--store"])
        .arg(dir.path().join("store2"))
        .arg("--file")
        .arg(crate::support::fixtures().join("models/mlp_v1.onnx"))
        .output()
        .expect("run switchyard");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("ONNX Runtime library not found") && err.contains("make setup"), "{err}");
}

/// `config check` resolves what the file names in its store by default when the store exists,
/// and a value of the wrong type does not hide a version the store does not have.
#[test]
fn config_check_resolves_by_default_and_shows_every_problem_at_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    register(&store, "mlp", "mlp_v1", None);
    let path = dir.path().join("switchyard.toml");
    let text = format!(
        "[store]\npath = \"{}\"\n[[model]]\nname = \"mlp\"\n[model.routing]\nchampion = 9\nchalengers = {{ 1 = 5 }}\n\
         [model.guard]\np99_ms = \"fifty\"\nmax_error_rate = 0.1\n",
        store.display()
    );
    std::fs::write(&path, text).expect("write");
    let out = run(&["config", "check", path.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let shown = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "line 7, column 1: model \"mlp\" → routing → chalengers: unknown key `chalengers`; did you mean `challengers`?",
        "line 9, column 1: model \"mlp\" → guard → p99_ms: invalid type: string \"fifty\", expected a number",
        "model 'mlp': version 9: ",
    ] {
        assert!(shown.contains(needle), "missing {needle:?} in:\n{shown}");
    }
    let alone = run(&["config", "check", "--no-resolve", path.to_str().expect("utf8")]);
    assert!(!String::from_utf8_lossy(&alone.stdout).contains("version 9"), "--no-resolve opens no store");
}

/// A manifest with an unknown key is refused with the key, its place and the known keys, said
/// once (the cause is not repeated by the error chain).
#[test]
fn a_bad_manifest_key_is_reported_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("bad.toml");
    std::fs::write(&manifest, "description = \"x\"\nbogus = 1\n").expect("write");
    let out = Command::new(bin())
        .args(["models", "register", "--model", "m", "--store"])
        .arg(dir.path().join("store"))
        .arg("--file")
        .arg(fixtures().join("models/mlp_v1.onnx"))
        .arg("--manifest")
        .arg(&manifest)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 2, column 1") && err.contains("unknown field `bogus`"), "{err}");
    assert_eq!(err.matches("unknown field `bogus`").count(), 1, "said once: {err}");
}

/// A version a running gateway serves is not archived (or its alias removed) by mistake: the
/// command names who serves it and how; `--force` does it anyway; once the gateway stops, its
/// claim is gone.
#[test]
fn a_served_version_is_not_archived_from_under_a_running_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::support::full_store(dir.path());
    let s = store.to_str().expect("utf8").to_owned();
    assert!(run(&["models", "alias", "--store", &s, "mlp:2", "stable"]).status.success());
    let gw = Gateway::start(dir.path(), &store, crate::support::FULL_CONFIG);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        let out = run(&["models", "stage", "--store", &s, "mlp:2", "archived"]);
        if !out.status.success() {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "archived while served");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("refusing to archive it") && err.contains("as champion") && err.contains("--force"), "{err}");
    let alias = run(&["models", "alias", "--store", &s, "mlp", "stable", "--remove"]);
    assert!(String::from_utf8_lossy(&alias.stderr).contains("refusing to remove alias 'stable'"));
    // Still serving, unchanged.
    assert_eq!(
        post_json(gw.public, "/v2/models/mlp/infer", &serde_json::from_str(&mlp_body(0.1)).expect("json")).status,
        200
    );
    assert!(run(&["models", "stage", "--store", &s, "mlp:3", "archived", "--force"]).status.success());
    assert!(gw.terminate().success());
    let out = run(&["models", "stage", "--store", &s, "mlp:2", "archived"]);
    assert!(out.status.success(), "no gateway serves it now: {}", String::from_utf8_lossy(&out.stderr));
}

/// A training pipeline on another machine registers through a running gateway's admin API: the
/// gateway reads the signature with its own ONNX Runtime, the manifest goes with it, and stage
/// and alias work the same way, with the same refusals.
#[test]
fn models_register_stage_and_alias_through_a_running_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::support::full_store(dir.path());
    let gw = Gateway::start(dir.path(), &store, crate::support::FULL_CONFIG);
    let url = format!("http://{}", gw.admin);
    let remote = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .args(["--url", &url])
            .env_remove("SWITCHYARD_STORE")
            .env("ORT_DYLIB_PATH", "/nonexistent/not-needed-here.so")
            .output()
            .expect("run switchyard")
    };
    let file = fixtures().join("models/mlp_v2.onnx");
    let manifest = fixtures().join("manifests/mlp_v2.toml");
    let out = remote(&[
        "models",
        "register",
        "--json",
        "--model",
        "ranker",
        "--file",
        file.to_str().expect("utf8"),
        "--manifest",
        manifest.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let registered: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((registered["model"].as_str(), registered["version"].as_u64()), (Some("ranker"), Some(1)));
    let shown = cli_json(&["models", "show", "--json", "--store", store.to_str().expect("utf8"), "ranker:1"]);
    assert_eq!(shown["version"]["signature"]["inputs"][0]["name"], "input", "read by the gateway's engine");
    assert!(shown["provenance"]["metrics"].is_object(), "{shown}");

    let not_a_model = remote(&["models", "register", "--model", "ranker", "--file", manifest.to_str().expect("utf8")]);
    let err = String::from_utf8_lossy(&not_a_model.stderr);
    assert!(!not_a_model.status.success() && err.contains("400") && err.contains("not a model"), "{err}");

    assert!(remote(&["models", "alias", "ranker:1", "stable"]).status.success());
    let refused = remote(&["models", "stage", "mlp:2", "archived"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("409") && err.contains("being served"), "{err}");
    let done = remote(&["models", "stage", "ranker:1", "production"]);
    assert!(String::from_utf8_lossy(&done.stdout).contains("ranker version 1 is now production"));
    assert!(gw.terminate().success());
}

/// `models diff` between two fixture versions: every changed manifest field marked, metric
/// deltas, the live figures of both after traffic, signature compatibility, stable JSON.
#[test]
fn models_diff_shows_what_changed_and_how_each_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::support::full_store(dir.path());
    let s = store.to_str().expect("utf8").to_owned();
    let gw = Gateway::start(dir.path(), &store, crate::support::FULL_CONFIG);
    for _ in 0..5 {
        let body: serde_json::Value = serde_json::from_str(&mlp_body(0.2)).expect("json");
        assert_eq!(post_json(gw.public, "/v2/models/mlp/versions/3/infer", &body).status, 200);
    }
    assert!(gw.terminate().success(), "drains lineage");
    let d = cli_json(&["models", "diff", "--json", "--store", &s, "mlp:1", "3"]);
    let differs: Vec<&str> = d["provenance"]
        .as_array()
        .expect("provenance")
        .iter()
        .filter(|f| f["differs"] == true)
        .map(|f| f["field"].as_str().expect("field"))
        .collect();
    for field in [
        "training.code_commit",
        "training.data_snapshot",
        "training.random_seed",
        "training.hyperparameters.learning_rate",
        "description",
    ] {
        assert!(differs.contains(&field), "{field} not marked in {differs:?}");
    }
    assert!(!differs.contains(&"training.features"), "the same features: {differs:?}");
    let auc = d["metrics"].as_array().expect("metrics").iter().find(|m| m["metric"] == "auc").expect("auc");
    assert!(
        (auc["delta"].as_f64().expect("delta") - (auc["b"].as_f64().expect("b") - auc["a"].as_f64().expect("a"))).abs()
            < 1e-12
    );
    assert_eq!((d["live"]["a"]["requests"].as_u64(), d["live"]["b"]["requests"].as_u64()), (Some(0), Some(5)));
    assert_eq!(d["signature"]["compatible"], true);
    let text = String::from_utf8(run(&["models", "diff", "--store", &s, "mlp:1", "mlp:3"]).stdout).expect("utf8");
    assert!(text.contains("≠ training.code_commit") && text.contains("B can replace A"), "{text}");
    let other = run(&["models", "diff", "--store", &s, "mlp:1", "slow:1"]);
    assert!(String::from_utf8_lossy(&other.stderr).contains("both versions must be of one model"));
}
