//! Inference through the public port matches ONNX Runtime's own outputs on the same files, for
//! every fixture and datatype, pinned and default, alone and under concurrent (batched) load.

use serde_json::{Value, json};

use crate::support::{FULL_CONFIG, Gateway, fixtures, full_store, get, post_json, request};

/// Reference cases computed by onnxruntime (tests/fixtures/generate.py).
fn expected(model_file: &str) -> Value {
    let path = fixtures().join("expected").join(format!("{model_file}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("read expected")).expect("json")
}

/// Compares one output tensor with its reference: floats within 1e-5, everything else exactly.
fn assert_output_matches(got: &Value, want: &Value, context: &str) {
    assert_eq!(got["name"], want["name"], "{context}");
    assert_eq!(got["datatype"], want["datatype"], "{context}");
    assert_eq!(got["shape"], want["shape"], "{context}: shape");
    let (g, w) = (got["data"].as_array().expect("data"), want["data"].as_array().expect("data"));
    assert_eq!(g.len(), w.len(), "{context}: length");
    let float = want["datatype"].as_str().is_some_and(|d| d.starts_with("FP"));
    for (i, (a, b)) in g.iter().zip(w).enumerate() {
        if float {
            let (a, b) = (a.as_f64().expect("number"), b.as_f64().expect("number"));
            let tol = if want["datatype"] == "FP16" { 1e-3 * b.abs().max(1.0) } else { 1e-5 };
            assert!((a - b).abs() <= tol, "{context}[{i}]: got {a}, want {b}");
        } else {
            assert_eq!(a, b, "{context}[{i}]");
        }
    }
}

fn infer_case(gw: &Gateway, path: &str, case: &Value) -> Value {
    let r = post_json(gw.public, path, &json!({ "inputs": case["inputs"] }));
    assert_eq!(r.status, 200, "{path}: {}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// 8 clients × 25 requests at once, each client cycling through `reference`'s cases from its
/// own offset: every answer must be the one for the case that client sent.
fn each_client_gets_its_own_answers(gw: &Gateway, path: &str, reference: &Value) {
    let cases = reference["cases"].as_array().expect("cases");
    let addr = gw.public;
    std::thread::scope(|s| {
        for t in 0..8 {
            s.spawn(move || {
                for i in 0..25 {
                    let case = &cases[(t + i) % cases.len()];
                    let r = post_json(addr, path, &json!({ "inputs": case["inputs"] }));
                    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                    assert_output_matches(&r.json()["outputs"][0], &case["outputs"][0], &format!("client {t} #{i}"));
                }
            });
        }
    });
}

#[test]
fn every_fixture_matches_onnxruntime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let gw = Gateway::start(dir.path(), &store, FULL_CONFIG);
    let targets = [
        ("mlp_v1", "/v2/models/mlp/versions/1/infer", "1"),
        ("mlp_v2", "/v2/models/mlp/infer", "2"),
        ("mlp_v3", "/v2/models/mlp/versions/3/infer", "3"),
        ("mixed", "/v2/models/mixed/infer", "1"),
        ("dtypes", "/v2/models/dtypes/infer", "1"),
        ("slow", "/v2/models/slow/infer", "1"),
        ("faulty", "/v2/models/faulty/infer", "1"),
    ];
    for (file, path, version) in targets {
        let exp = expected(file);
        for (n, case) in exp["cases"].as_array().expect("cases").iter().enumerate() {
            let body = infer_case(&gw, path, case);
            assert_eq!(body["model_version"], version, "{file}");
            let outputs = body["outputs"].as_array().expect("outputs");
            for want in case["outputs"].as_array().expect("outputs") {
                let got = outputs.iter().find(|o| o["name"] == want["name"]).expect("output present");
                assert_output_matches(got, want, &format!("{file} case {n} {}", want["name"]));
            }
        }
    }
    assert_eq!(gw.terminate().code(), Some(0));
}

#[test]
fn concurrent_requests_each_get_their_own_answer_with_batching_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let gw = Gateway::start(dir.path(), &store, FULL_CONFIG);
    // mlp_v2's cases alternate batch-1 and batch-3, so the batcher stacks requests of different
    // sizes and must split every answer back to the right caller.
    each_client_gets_its_own_answers(&gw, "/v2/models/mlp/infer", &expected("mlp_v2"));
    let stats = get(gw.public, "/v2/models/mlp/versions/2/stats").json();
    let s = &stats["model_stats"][0];
    assert_eq!(s["inference_stats"]["success"]["count"], 200);
    // 100 batch-1 and 100 batch-3 requests: 400 rows, whatever the batching.
    assert_eq!(s["inference_count"], 400);
    assert!(s["execution_count"].as_u64().expect("count") <= 200);
}

#[test]
fn metadata_config_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let gw = Gateway::start(dir.path(), &store, FULL_CONFIG);
    let meta = get(gw.public, "/v2/models/mlp").json();
    assert_eq!(meta["versions"], json!(["1", "2", "3"]));
    assert_eq!(meta["inputs"][0], json!({"name": "input", "datatype": "FP32", "shape": [-1, 64]}));
    let config = get(gw.public, "/v2/models/mlp/config").json();
    assert_eq!(config["max_batch_size"], 8);
    assert_eq!(config["input"][0]["dims"], json!([64]));
    assert_eq!(get(gw.public, "/v2/health/ready").status, 200);

    let unknown = post_json(gw.public, "/v2/models/nope/infer", &json!({"inputs": []}));
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "unknown model 'nope'");
    let version = post_json(gw.public, "/v2/models/mlp/versions/9/infer", &json!({"inputs": []}));
    assert_eq!(version.status, 404);
    let shape = post_json(
        gw.public,
        "/v2/models/mlp/infer",
        &json!({"inputs": [{"name": "input", "shape": [1, 63], "datatype": "FP32", "data": vec![0.0; 63]}]}),
    );
    assert_eq!(shape.status, 400);
    assert!(shape.json()["error"].as_str().expect("message").contains("expected shape [-1, 64]"));
    // The faulty model fails inside ONNX Runtime for column 0 ≥ 1000: a real model error.
    let mut data = vec![0.0; 64];
    data[0] = 5000.0;
    let fault = post_json(
        gw.public,
        "/v2/models/faulty/infer",
        &json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": data}]}),
    );
    assert_eq!(fault.status, 500);
    assert!(fault.json()["error"].as_str().expect("message").contains("model execution failed"));
    // …and the server and that model keep answering.
    let ok = post_json(
        gw.public,
        "/v2/models/faulty/infer",
        &json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.0; 64]}]}),
    );
    assert_eq!(ok.status, 200);
    // Provenance headers: the client's request id comes back, with the version and hash that answered.
    let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.0; 64]}]});
    let r = request(
        gw.public,
        "POST",
        "/v2/models/mlp/versions/3/infer",
        &[("x-request-id", "req-42")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("req-42"));
    assert_eq!(r.header("x-model-version"), Some("3"));
    assert_eq!(r.header("x-model-route"), Some("pinned"));
    let sha3 = r.header("x-model-sha256").expect("hash header");
    assert_eq!(r.json()["parameters"]["model_sha256"], sha3);
    let admin = get(gw.admin, "/admin/models/mlp").json();
    assert_eq!(admin["versions"][2]["sha256"], sha3);
    let metrics = String::from_utf8(get(gw.admin, "/metrics").body).expect("utf8");
    assert!(
        metrics
            .contains("switchyard_requests_total{model=\"faulty\",version=\"1\",route=\"champion\",status=\"500\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("switchyard_model_info{model=\"mlp\",version=\"2\",sha256=\""), "{metrics}");
}

/// `execution = "inline"`: the request's own thread runs the model. Same answers as worker
/// threads for every fixture, under concurrent load from more clients than sessions, and a
/// model that fails on an input answers 500 and keeps serving (its session goes back to the
/// pool).
#[test]
fn inline_execution_answers_like_workers_and_survives_model_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let config = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[store]
path = "{store}"
[[model]]
name = "mlp"
versions = [1, 2, 3]
default_version = 2
[model.engine]
execution = "inline"
instances = 2
[[model]]
name = "mixed"
versions = [1]
[model.engine]
execution = "inline"
[[model]]
name = "dtypes"
versions = [1]
[model.engine]
execution = "inline"
[[model]]
name = "faulty"
versions = [1]
[model.engine]
execution = "inline"
"#;
    let gw = Gateway::start(dir.path(), &store, config);
    for (file, path) in [
        ("mlp_v1", "/v2/models/mlp/versions/1/infer"),
        ("mlp_v2", "/v2/models/mlp/infer"),
        ("mixed", "/v2/models/mixed/infer"),
        ("dtypes", "/v2/models/dtypes/infer"),
        ("faulty", "/v2/models/faulty/infer"),
    ] {
        let exp = expected(file);
        for (n, case) in exp["cases"].as_array().expect("cases").iter().enumerate() {
            let body = infer_case(&gw, path, case);
            let outputs = body["outputs"].as_array().expect("outputs");
            for want in case["outputs"].as_array().expect("outputs") {
                let got = outputs.iter().find(|o| o["name"] == want["name"]).expect("output present");
                assert_output_matches(got, want, &format!("{file} case {n} {}", want["name"]));
            }
        }
    }

    // The faulty model fails on input[:, 0] >= 1000; each failure returns its session, so a
    // version with one session answers the next request.
    for _ in 0..3 {
        let r = request(gw.public, "POST", "/v2/models/faulty/infer", &[], crate::support::mlp_body(5000.0).as_bytes());
        assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
        assert!(String::from_utf8_lossy(&r.body).contains("model execution failed"));
        let r = request(gw.public, "POST", "/v2/models/faulty/infer", &[], crate::support::mlp_body(0.25).as_bytes());
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }

    // 8 clients on 2 sessions.
    each_client_gets_its_own_answers(&gw, "/v2/models/mlp/infer", &expected("mlp_v2"));
    let stats = get(gw.public, "/v2/models/mlp/versions/2/stats").json();
    let s = &stats["model_stats"][0];
    let cases_before = expected("mlp_v2")["cases"].as_array().expect("cases").len() as u64;
    assert_eq!(s["inference_stats"]["success"]["count"], 200 + cases_before);
    assert_eq!(s["execution_count"], 200 + cases_before, "inline runs one request per call");
    let mlp = get(gw.admin, "/admin/models/mlp").json();
    let versions = mlp["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 3, "{mlp}");
    assert!(versions.iter().all(|v| v["execution"] == "inline"), "{mlp}");
    // No worker threads (`sy-{model}-v{version}-{i}`) were started: the requests' threads ran
    // every model.
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", gw.child.id()))
        .expect("the gateway's threads")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .collect();
    assert!(threads.iter().any(|t| t.starts_with("switchyard")), "{threads:?}");
    assert!(!threads.iter().any(|t| t.starts_with("sy-")), "worker threads with inline execution: {threads:?}");
    assert_eq!(gw.terminate().code(), Some(0));
}

/// `execution = "auto"` (the default) times each version's warm runs when it loads: a model of
/// microseconds runs inline, one session per server thread; a slow one on worker threads; a
/// batching one on workers whatever its speed; an explicit choice is kept. Every one answers.
#[test]
fn auto_execution_runs_fast_models_inline_and_slow_or_batching_ones_on_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    for (model, fixture) in [("fast", "mlp_v1"), ("batching", "mlp_v1"), ("chosen", "mlp_v1"), ("slow", "slow")] {
        crate::support::register(&store, model, fixture, Some(fixture));
    }
    let config = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
worker_threads = 3
[store]
path = "{store}"
[[model]]
name = "fast"
versions = [1]
[[model]]
name = "batching"
versions = [1]
[model.engine]
max_batch = 4
[[model]]
name = "chosen"
versions = [1]
[model.engine]
execution = "workers"
[[model]]
name = "slow"
versions = [1]
"#;
    let gw = Gateway::start(dir.path(), &store, config);
    let ran = |model: &str| {
        let state = get(gw.admin, &format!("/admin/models/{model}")).json();
        let v = &state["versions"][0];
        (v["execution_configured"].clone(), v["execution"].clone(), v["instances"].clone())
    };
    assert_eq!(ran("fast"), (json!("auto"), json!("inline"), json!(3)), "one session per server thread");
    assert_eq!(ran("batching"), (json!("auto"), json!("workers"), json!(1)));
    assert_eq!(ran("chosen"), (json!("workers"), json!("workers"), json!(1)));
    assert_eq!(ran("slow"), (json!("auto"), json!("workers"), json!(1)));
    let mlp = expected("mlp_v1");
    for model in ["fast", "batching", "chosen"] {
        let case = &mlp["cases"][0];
        let got = infer_case(&gw, &format!("/v2/models/{model}/infer"), case);
        assert_output_matches(&got["outputs"][0], &case["outputs"][0], model);
    }
    // The inline model answers many clients at once from its three sessions.
    each_client_gets_its_own_answers(&gw, "/v2/models/fast/infer", &mlp);
}
