//! Per-slice quality through the real binary: requests tagged with 50 slice values by a header
//! give six slice series per version (the five busiest and `other`), lineage keeps each
//! request's slice, and a candidate that is better on average but worse on one top slice is
//! refused promotion by the slice gate, which names that slice.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{Gateway, admin, get, post_json, refused, register};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[store]
path = "{store}"
[[model]]
name = "mlp"
[model.routing]
champion = 1
challengers = { 2 = 50 }
[model.slices]
header = "x-market"
top_k = 5
[model.promotion]
max_slice_regression = 0.05
max_slice_gap = 0.5
min_slice_labels = 10
"#;

fn argmax(data: &[Value]) -> u64 {
    let values: Vec<f64> = data.iter().map(|v| v.as_f64().expect("number")).collect();
    (0..values.len()).max_by(|&a, &b| values[a].total_cmp(&values[b])).expect("outputs") as u64
}

/// The slice of the `i`-th request: five busy markets carry 75 % of traffic, 45 others the rest.
fn market(i: usize) -> String {
    if i % 4 != 3 { format!("m{}", i % 5) } else { format!("rare{}", (i / 4) % 45) }
}

#[test]
fn top_slices_are_measured_apart_and_a_slice_regression_blocks_promotion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    register(&store, "mlp", "mlp_v1", Some("mlp_v1"));
    register(&store, "mlp", "mlp_v2", Some("mlp_v2"));
    let gw = Gateway::start(dir.path(), &store, CONFIG);

    // (request id, market, version, predicted label), one client at a time per thread.
    let answers: Vec<(String, String, u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let addr = gw.public;
                s.spawn(move || {
                    (0..600)
                        .map(|k| {
                            let i = t * 600 + k;
                            let data: Vec<f32> = (0..64).map(|j| (((i * 31 + j * 7) % 97) as f32 - 48.0) / 24.0).collect();
                            let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": data}]});
                            let m = market(i);
                            let r = crate::support::request(
                                addr,
                                "POST",
                                "/v2/models/mlp/infer",
                                &[("Content-Type", "application/json"), ("x-market", &m)],
                                body.to_string().as_bytes(),
                            );
                            assert_eq!(r.status, 200);
                            let j = r.json();
                            let version: u64 = j["model_version"].as_str().expect("version").parse().expect("n");
                            (r.header("x-request-id").expect("id").to_owned(), m, version, argmax(j["outputs"][0]["data"].as_array().expect("data")))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("client")).collect()
    });

    // Six slice series per version: m0..m4 and other, however many markets were sent.
    let text = String::from_utf8(get(gw.admin, "/metrics").body).expect("UTF-8");
    for version in ["1", "2"] {
        let slices: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| l.starts_with("switchyard_slice_requests_total{"))
            .filter(|l| l.contains("model=\"mlp\"") && l.contains(&format!("version=\"{version}\"")))
            .filter_map(|l| l.split("slice=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(
            slices.into_iter().collect::<Vec<_>>(),
            ["m0", "m1", "m2", "m3", "m4", "other"],
            "version {version}"
        );
    }

    // Lineage keeps each request's market as sent.
    let (id, m, ..) = &answers[7];
    assert_eq!(&crate::support::lineage(&gw, id, 1)["records"][0]["slice"], &json!(m));

    // Ground truth: the candidate (v2) is right everywhere but m4, where it is always wrong; the
    // champion (v1) is right on m4 and on every other request elsewhere. On average v2 wins.
    let mut hits: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let items: Vec<Value> = answers
        .iter()
        .enumerate()
        .map(|(i, (id, m, version, predicted))| {
            let right = match (version, m.as_str()) {
                (2, "m4") => false,
                (2, _) => true,
                (_, "m4") => true,
                _ => i % 2 == 0,
            };
            let e = hits.entry(*version).or_default();
            e.0 += u64::from(right);
            e.1 += 1;
            json!({"request_id": id, "label": if right { *predicted } else { (predicted + 1) % 10 }})
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500)); // the lineage writer commits within ~100 ms
    for chunk in items.chunks(1000) {
        let r = post_json(gw.public, "/v2/models/mlp/feedback", &json!({ "feedback": chunk }));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let share = |v: u64| hits[&v].0 as f64 / hits[&v].1 as f64;
    assert!(share(2) > share(1) + 0.1, "the candidate is better on average: {hits:?}");
    let m4 = crate::support::metric_value(
        &gw,
        "switchyard_slice_online_accuracy_ratio",
        &[("model", "mlp"), ("version", "2"), ("slice", "m4")],
    );
    assert_eq!(m4, Some(0.0), "the candidate's accuracy on m4");

    // The gate refuses, naming the slice; the champion stays.
    let (status, body) = refused(admin(&gw).promote("mlp", 2, "test"));
    assert_eq!(status, 409, "{body}");
    let gate =
        body["gates"].as_array().expect("gates").iter().find(|g| g["gate"] == "slice accuracy").expect("gate").clone();
    assert_eq!(gate["passed"], false, "{gate}");
    assert!(gate["measured"].as_str().expect("measured").contains("worst slice 'm4'"), "{gate}");
    assert_eq!(admin(&gw).model("mlp").expect("state")["routing"]["champion"], 1);
}

/// One market's requests all fail (inputs the `faulty` fixture fails on), 10 % of traffic: the
/// average stays under the guard's error rate, so traffic does not move, but that slice breaches
/// it and a `slice_breach` alert names the slice.
#[test]
fn a_failing_slice_under_a_healthy_average_is_alerted_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    register(&store, "scorer", "faulty", None); // fails when input[:, 0] >= 1000
    register(&store, "scorer", "mlp_v2", Some("mlp_v2"));
    let hook = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", hook.local_addr().expect("addr"));
    let got = crate::alerts::receiver(hook, std::time::Duration::from_secs(60));
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[store]\npath = \"{{store}}\"\n\
         [[model]]\nname = \"scorer\"\n[model.routing]\nchampion = 1\nbackup = [2]\n\
         [model.guard]\nwindow = \"10s\"\ninterval = \"500ms\"\nmin_requests = 20\nmax_error_rate = 0.2\n\
         [model.slices]\nheader = \"x-market\"\ntop_k = 4\n\
         [[alert]]\nkind = \"webhook\"\nurl = \"{url}\"\nevents = [\"slice_breach\", \"guard_trip\"]\n"
    );
    let gw = Gateway::start(dir.path(), &store, &config);
    for i in 0..600 {
        let market = ["eu", "us", "apac", "latam", "eu", "us", "apac", "eu", "us", "apac"][i % 10];
        let value = if market == "latam" { 5000.0 } else { 0.25 };
        let r = crate::support::request(
            gw.public,
            "POST",
            "/v2/models/scorer/infer",
            &[("Content-Type", "application/json"), ("x-market", market)],
            crate::support::mlp_body(value).as_bytes(),
        );
        assert_eq!(r.status, if market == "latam" { 500 } else { 200 });
    }
    let alerts = crate::alerts::wait_for(&got, "the slice alert", |g| !g.is_empty());
    let (_, alert) = &alerts[0];
    assert_eq!((alert["kind"].as_str(), alert["version"].as_u64()), (Some("slice_breach"), Some(1)), "{alert}");
    assert_eq!(alert["detail"]["slice"], "latam", "{alert}");
    assert_eq!(alert["detail"]["error_rate"], 1.0, "{alert}");
    // The average (10 % errors) is under the guard's 20 %: the champion still serves.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(admin(&gw).model("scorer").expect("state")["routing"]["champion"], 1);
    assert!(got.lock().expect("lock").iter().all(|(_, a)| a["kind"] == "slice_breach"), "no trip");
}
