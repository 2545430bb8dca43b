//! Online feedback through the real binary: ground truth posted by request id is joined to the
//! lineage record of the version that answered, and per-version accuracy matches a hand count.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Gateway, full_store, get, metric_value, post_json};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[store]
path = "{store}"
[[model]]
name = "mlp"
[model.engine]
instances = 2
[model.routing]
champion = 1
challengers = { 2 = 40 }
"#;

fn argmax(values: &[Value]) -> usize {
    let v: Vec<f64> = values.iter().map(|x| x.as_f64().expect("number")).collect();
    v.iter().enumerate().fold(0, |b, (i, &x)| if x > v[b] { i } else { b })
}

#[test]
fn per_version_online_accuracy_matches_a_hand_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let gw = Gateway::start(dir.path(), &store, CONFIG);
    // 2,000 requests with varied inputs; remember who answered and what it predicted.
    let answers: Vec<(String, u64, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let addr = gw.public;
                s.spawn(move || {
                    (0..500)
                        .map(|i| {
                            let n = t * 500 + i;
                            let data: Vec<f32> = (0..64).map(|k| (((n * 31 + k * 7) % 97) as f32 - 48.0) / 24.0).collect();
                            let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": data}]});
                            let r = post_json(addr, "/v2/models/mlp/infer", &body);
                            assert_eq!(r.status, 200);
                            let j = r.json();
                            let predicted = argmax(j["outputs"][0]["data"].as_array().expect("data"));
                            let version: u64 = j["model_version"].as_str().expect("version").parse().expect("number");
                            (r.header("x-request-id").expect("id").to_owned(), version, predicted)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("client")).collect()
    });
    std::thread::sleep(Duration::from_millis(500)); // the lineage writer commits within ~100 ms
    // Ground truth: a fixed rule, so some predictions are right and some wrong.
    let truth = |i: usize| (i * 7) % 10;
    let mut hand: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (i, (_, version, predicted)) in answers.iter().enumerate() {
        let e = hand.entry(*version).or_default();
        e.0 += u64::from(*predicted == truth(i));
        e.1 += 1;
    }
    assert_eq!(hand.len(), 2, "both versions answered: {hand:?}");
    let items: Vec<Value> =
        answers.iter().enumerate().map(|(i, (id, _, _))| json!({"request_id": id, "label": truth(i)})).collect();
    for chunk in items.chunks(500) {
        let r = post_json(gw.public, "/v2/models/mlp/feedback", &json!({ "feedback": chunk }));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["stored"], 500, "{}", r.json());
    }
    for (version, (right, total)) in &hand {
        let expected = *right as f64 / *total as f64;
        let v = version.to_string();
        let got = metric_value(
            &gw,
            "switchyard_online_accuracy_ratio",
            &[("model", "mlp"), ("version", &v), ("window", "all")],
        )
        .expect("accuracy gauge");
        assert!((got - expected).abs() < 1e-9, "version {version}: gauge {got}, hand count {expected}");
    }
    // Duplicates do not count twice.
    let again = post_json(gw.public, "/v2/models/mlp/feedback", &json!({ "feedback": &items[..100] })).json();
    assert_eq!((again["stored"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(100)));
    let (version, (right, total)) = hand.iter().next().expect("a version");
    let v = version.to_string();
    let got =
        metric_value(&gw, "switchyard_online_accuracy_ratio", &[("model", "mlp"), ("version", &v), ("window", "all")]);
    assert_eq!(got, Some(*right as f64 / *total as f64));

    // One item at a time; refusals say why and store nothing.
    let (id, version, predicted) = &answers[0];
    let one = post_json(gw.public, "/v2/models/mlp/feedback", &json!({"request_id": id, "label": predicted}));
    assert_eq!(one.status, 200);
    assert_eq!((one.json()["status"].as_str(), one.json()["version"].as_u64()), (Some("duplicate"), Some(*version)));
    for (body, status, needle) in [
        (json!({"request_id": "no-such-request", "label": 1}), 404, "no request 'no-such-request'"),
        (json!({"request_id": id, "label": 1, "value": 2}), 400, "exactly one of"),
        (json!({"request_id": id, "value": 0.5}), 400, "not a single value"),
        (json!({"request_id": id, "label": "cat"}), 400, "class index"),
        (json!({"label": 1}), 400, "request_id"),
        (json!({"feedback": []}), 400, "1 to 10000"),
    ] {
        let r = post_json(gw.public, "/v2/models/mlp/feedback", &body);
        assert_eq!(r.status, status, "{body}: {}", String::from_utf8_lossy(&r.body));
        assert!(r.json()["error"].as_str().expect("error").contains(needle), "{body}: {}", r.json());
    }
    let other_model = post_json(gw.public, "/v2/models/slow/feedback", &json!({"request_id": id, "label": 1}));
    assert_eq!(other_model.status, 404, "a request answered by mlp is not slow's");
    let r = get(gw.public, "/v2/models/mlp/feedback");
    assert_eq!(r.status, 405);
    assert!(gw.terminate().success());
}

/// Capture at 10 % keeps about a tenth of the requests whole (binomial bounds), each joined to
/// its lineage record, and `feedback export` gives one row per answered request whose accuracy
/// per version matches switchyard_online_accuracy_ratio.
#[test]
fn captured_payloads_and_feedback_export_close_the_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let config = CONFIG.to_owned() + "[model.capture]\nrate = 0.1\n";
    let gw = Gateway::start(dir.path(), &store, &config);
    const N: usize = 5000;
    let mut labels = Vec::with_capacity(N);
    for i in 0..N {
        let data: Vec<f64> = (0..64).map(|j| ((i * 7 + j * 13) % 101) as f64 / 101.0).collect();
        let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": data}]});
        let id = format!("loop-{i}");
        let r = crate::support::request(
            gw.public,
            "POST",
            "/v2/models/mlp/infer",
            &[("x-request-id", &id), ("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200);
        labels.push((id, argmax(r.json()["outputs"][0]["data"].as_array().expect("scores"))));
    }
    // Truth for every other request: right for a third of them, wrong for the rest.
    std::thread::sleep(Duration::from_millis(500)); // lineage commits every 100 ms
    let items: Vec<Value> = labels
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, (id, predicted))| json!({"request_id": id, "label": if i % 3 == 0 { *predicted } else { predicted + 1 }}))
        .collect();
    let r = post_json(gw.public, "/v2/models/mlp/feedback", &json!({ "feedback": items }));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stored"], N / 2);
    let accuracy =
        |v: &str| metric_value(&gw, "switchyard_online_accuracy_ratio", &[("version", v), ("window", "all")]);
    let live = [accuracy("1"), accuracy("2")];
    std::thread::sleep(Duration::from_millis(500)); // captures reach their files
    assert!(gw.terminate().success());

    let out = std::process::Command::new(crate::support::bin())
        .args(["feedback", "export", "--model", "mlp", "--store"])
        .arg(&store)
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> =
        String::from_utf8(out.stdout).expect("utf8").lines().map(|l| serde_json::from_str(l).expect("row")).collect();
    assert_eq!(rows.len(), N, "one row per answered request");
    let captured = rows.iter().filter(|r| r["inputs"].is_array()).count();
    // Binomial(5000, 0.1): mean 500, sd 21.2; six sd either way.
    assert!((373..=627).contains(&captured), "{captured} of {N} captured at 10 %");
    let row = rows.iter().find(|r| r["inputs"].is_array()).expect("a captured row");
    assert_eq!(row["inputs"][0]["shape"], json!([1, 64]));
    assert_eq!(row["outputs"][0]["name"], "output");
    for (i, v) in ["1", "2"].iter().enumerate() {
        let judged: Vec<&Value> =
            rows.iter().filter(|r| r["version"] == v.parse::<u64>().expect("n") && r["feedback"].is_object()).collect();
        let right = judged.iter().filter(|r| r["feedback"]["correct"] == true).count();
        let exported = right as f64 / judged.len() as f64;
        let metric = live[i].expect("accuracy exported");
        assert!((exported - metric).abs() < 1e-9, "v{v}: export {exported} vs metric {metric}");
    }
    // Into a file: its sha256 is recorded for the next manifest to cite.
    let file = dir.path().join("next-training.jsonl");
    let summary = crate::support::cli_json(&[
        "feedback",
        "export",
        "--json",
        "--with-feedback",
        "--model",
        "mlp",
        "--store",
        store.to_str().expect("utf8"),
        "--output",
        file.to_str().expect("utf8"),
    ]);
    assert_eq!(summary["rows"], N / 2);
    let events =
        crate::support::cli_json(&["models", "show", "--json", "--store", store.to_str().expect("utf8"), "mlp:1"]);
    assert!(events.is_object());
}
