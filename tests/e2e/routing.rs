//! Traffic split through the real binary: weights, sticky keys, pinned versions, shadows.

use std::collections::BTreeMap;

use serde_json::json;

use crate::support::{Gateway, full_store, get, request};

const ROUTED: &str = r#"
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
challengers = { 2 = 20 }
shadows = { 3 = 10 }
backup = [3]
sticky_header = "x-user-id"
"#;

fn counts_of(
    gw: &Gateway,
    n: usize,
    threads: usize,
    key: impl Fn(usize) -> Option<String> + Sync,
) -> BTreeMap<String, usize> {
    let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.25; 64]}]})
        .to_string();
    let addr = gw.public;
    let per = n / threads;
    let results: Vec<Vec<(String, String)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (body, key) = (&body, &key);
                s.spawn(move || {
                    (0..per)
                        .map(|i| {
                            let k = key(t * per + i);
                            let mut headers = vec![];
                            if let Some(k) = &k {
                                headers.push(("x-user-id", k.as_str()));
                            }
                            let r = request(addr, "POST", "/v2/models/mlp/infer", &headers, body.as_bytes());
                            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                            let route = r.header("x-model-route").expect("route").to_owned();
                            (r.header("x-model-version").expect("version").to_owned(), route)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).collect()
    });
    let mut counts = BTreeMap::new();
    for (version, route) in results.into_iter().flatten() {
        let expected_route = if version == "1" { "champion" } else { "challenger" };
        assert_eq!(route, expected_route, "version {version}");
        *counts.entry(version).or_insert(0) += 1;
    }
    counts
}

#[test]
fn weighted_sticky_pinned_and_shadow_traffic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let gw = Gateway::start(dir.path(), &store, ROUTED);

    // 10,000 unkeyed requests split 80/20 within ±2 points.
    let counts = counts_of(&gw, 10_000, 4, |_| None);
    let share2 = counts.get("2").copied().unwrap_or(0) as f64 / 100.0;
    assert!((share2 - 20.0).abs() <= 2.0, "challenger share {share2}% ({counts:?})");

    // The same key always lands on the same version.
    for k in 0..50 {
        let key = format!("user-{k}");
        let first = counts_of(&gw, 4, 1, |_| Some(key.clone()));
        assert_eq!(first.len(), 1, "key {key} moved: {first:?}");
    }

    // Pinned requests answer from their version, backups included, and say so.
    let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.0; 64]}]});
    let r = request(gw.public, "POST", "/v2/models/mlp/versions/3/infer", &[], body.to_string().as_bytes());
    assert_eq!((r.status, r.header("x-model-version"), r.header("x-model-route")), (200, Some("3"), Some("pinned")));

    // Shadow copies: about 10% of the 10,200 routed requests, each compared with its primary.
    let admin = get(gw.admin, "/admin/models/mlp").json();
    assert_eq!(admin["routing"]["champion"], 1);
    assert_eq!(admin["routing"]["challengers"][0], json!({"version": 2, "weight_percent": 20.0}));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let metrics = String::from_utf8(get(gw.admin, "/metrics").body).expect("utf8");
    let shadow_ok: f64 = metrics
        .lines()
        .find(|l| l.starts_with("switchyard_shadow_requests_total{model=\"mlp\",version=\"3\",result=\"ok\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no shadow counter in:\n{metrics}"));
    assert!((700.0..=1_350.0).contains(&shadow_ok), "{shadow_ok} shadow copies for 10,200 requests");
    assert!(metrics.contains("switchyard_shadow_max_abs_diff_bucket{model=\"mlp\",version=\"3\""), "{metrics}");
    assert_eq!(gw.terminate().code(), Some(0));
}
