//! Config hot reload through the real binary: POST /admin/reload, SIGHUP and the file watcher;
//! a storm of reloads under load fails no request; broken configs are refused and the running
//! one keeps serving.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Gateway, full_store, get, metric_value, mlp_body, request};

fn config(store: &Path, versions: &str, routing: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[store]
path = "{}"
[[model]]
name = "mlp"
versions = [{versions}]
[model.engine]
instances = 2
[model.routing]
{routing}
"#,
        store.display()
    )
}

fn routing(gw: &Gateway) -> Value {
    crate::support::admin(gw).model("mlp").expect("model state")["routing"].clone()
}

/// Waits until `check` holds on the model's admin state (the watcher polls the file).
fn eventually(gw: &Gateway, what: &str, check: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = get(gw.admin, "/admin/models/mlp").json();
        if check(&state) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within 10 s; state {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn twenty_reloads_under_load_fail_no_request_and_broken_configs_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let path = dir.path().join("config.toml");
    let gw = Gateway::start(dir.path(), &store, &config(&store, "1", "champion = 1\nchallengers = { 2 = 10 }"));
    let admin = crate::support::admin(&gw);
    let stop = AtomicBool::new(false);
    let (answers, failures) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|t| {
                let stop = &stop;
                let addr = gw.public;
                s.spawn(move || {
                    let (mut ok, mut bad) = (0u64, Vec::new());
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        // Unpinned, and pinned to v1, which every config below keeps.
                        let path = if i % 4 == 0 { "/v2/models/mlp/versions/1/infer" } else { "/v2/models/mlp/infer" };
                        let r = request(addr, "POST", path, &[], mlp_body((t + i) as f32 / 100.0).as_bytes());
                        i += 1;
                        if r.status == 200 {
                            ok += 1
                        } else {
                            bad.push((r.status, String::from_utf8_lossy(&r.body).into_owned()))
                        }
                    }
                    (ok, bad)
                })
            })
            .collect();
        for n in 0..20 {
            // Weights change every time; version 3 comes and goes as a challenger.
            let text = if n % 2 == 0 {
                config(&store, "1", &format!("champion = 1\nchallengers = {{ 2 = {}, 3 = 5 }}", 10 + n))
            } else {
                config(&store, "1", &format!("champion = 2\nchallengers = {{ 1 = {} }}", 10 + n))
            };
            std::fs::write(&path, &text).expect("write config");
            if let Err(e) = admin.reload("storm") {
                panic!("reload {n}: {e}");
            }
            let expected_champion = if n % 2 == 0 { 1 } else { 2 };
            assert_eq!(routing(&gw)["champion"], expected_champion, "reload {n}");
            if n == 9 {
                // Broken in between: a half-written file, then a version the store lacks.
                std::fs::write(&path, &text[..text.len() / 2]).expect("truncate");
                let (status, body) = crate::support::refused(admin.reload("storm"));
                assert_eq!(status, 422, "{body}");
                std::fs::write(&path, config(&store, "1, 9", "champion = 1")).expect("write");
                let (status, body) = crate::support::refused(admin.reload("storm"));
                assert_eq!(status, 422);
                assert!(body["problems"].to_string().contains("version 9"), "{body}");
                assert_eq!(routing(&gw)["champion"], 2, "the running config keeps serving");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        let results: Vec<(u64, Vec<(u16, String)>)> = clients.into_iter().map(|c| c.join().expect("client")).collect();
        (results.iter().map(|r| r.0).sum::<u64>(), results.into_iter().flat_map(|r| r.1).collect::<Vec<_>>())
    });
    assert!(failures.is_empty(), "{} non-2xx during the storm, first: {:?}", failures.len(), failures.first());
    assert!(answers > 100, "only {answers} answers during the storm");
    assert!(metric_value(&gw, "switchyard_config_reloads_total", &[("result", "ok")]).expect("ok count") >= 20.0);
    assert!(metric_value(&gw, "switchyard_config_reloads_total", &[("result", "error")]).expect("errors") >= 2.0);
    // Version 3 was unloaded by the last reload (its in-flight requests long finished).
    let r = request(gw.public, "POST", "/v2/models/mlp/versions/3/infer", &[], mlp_body(0.1).as_bytes());
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    assert!(gw.terminate().success());
}

#[test]
fn the_file_watcher_and_sighup_reload_and_a_deleted_or_truncated_file_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let path = dir.path().join("config.toml");
    let gw = Gateway::start(dir.path(), &store, &config(&store, "1", "champion = 1"));

    // An edit is picked up by itself.
    std::fs::write(&path, config(&store, "1", "champion = 1\nchallengers = { 2 = 30 }")).expect("edit");
    eventually(&gw, "watcher applies the edit", |s| {
        s["routing"]["challengers"] == json!([{"version": 2, "weight_percent": 30.0}])
    });

    // Truncated to nothing, then deleted: refused / ignored, the last good config serves.
    std::fs::write(&path, "").expect("truncate");
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::remove_file(&path).expect("delete");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(routing(&gw)["challengers"], json!([{"version": 2, "weight_percent": 30.0}]));
    let r = request(gw.public, "POST", "/v2/models/mlp/infer", &[], mlp_body(0.2).as_bytes());
    assert_eq!(r.status, 200);
    let (status, body) = crate::support::refused(crate::support::admin(&gw).reload("test"));
    assert_eq!(status, 422);
    assert!(body["problems"].to_string().contains("cannot read the file"), "{body}");

    // SIGHUP reloads too (the watcher would as well; either way the result is the same).
    std::fs::write(&path, config(&store, "1", "champion = 2")).expect("write");
    let pid = gw.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().expect("kill -HUP").success());
    eventually(&gw, "SIGHUP reload", |s| s["routing"]["champion"] == 2);
    assert!(gw.terminate().success());
}

#[test]
fn editing_a_models_routing_in_the_config_ends_an_operator_override() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let path = dir.path().join("config.toml");
    let gw = Gateway::start(dir.path(), &store, &config(&store, "1", "champion = 1\nchallengers = { 2 = 10 }"));
    let admin = crate::support::admin(&gw);
    admin.promote("mlp", 2, "erin").expect("promote");
    // A reload that leaves the routing as it was keeps the override...
    std::fs::write(&path, config(&store, "1, 3", "champion = 1\nchallengers = { 2 = 10 }")).expect("write");
    admin.reload("erin").expect("reload");
    let state = get(gw.admin, "/admin/models/mlp").json();
    assert_eq!((state["routing"]["champion"].as_u64(), state["origin"]["kind"].as_str()), (Some(2), Some("operator")));
    // ...one that edits it ends it: the config speaks again.
    std::fs::write(&path, config(&store, "1, 3", "champion = 1\nchallengers = { 3 = 10 }")).expect("write");
    admin.reload("erin").expect("reload");
    let state = get(gw.admin, "/admin/models/mlp").json();
    assert_eq!((state["routing"]["champion"].as_u64(), state["origin"]["kind"].as_str()), (Some(1), Some("config")));
    assert!(gw.terminate().success());
}
