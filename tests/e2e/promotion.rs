//! Promotion gates and retirement through the real binary: a candidate that falls short of the
//! policy is refused with a table, one that passes is promoted with the evidence recorded, a
//! forced promotion is marked as such, and archived versions cannot be routed to.

use serde_json::{Value, json};

use crate::support::{Gateway, admin_post, cli_json, full_store, get, load_until, mlp_body};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[store]
path = "{store}"
[[model]]
name = "mlp"
[model.routing]
champion = 2
challengers = { 1 = 20, 3 = 20 }
[model.promotion]
min_gain = { auc = 0.005 }
max_drift = { accuracy = 0.05 }
max_p99_ms = 2000
max_error_rate = 0.01
min_requests = 20
"#;

fn events(store: &std::path::Path, target: &str) -> Vec<Value> {
    let shown = cli_json(&["models", "show", "--json", "--store", store.to_str().expect("utf8"), target]);
    shown["events"].as_array().expect("events").clone()
}

#[test]
fn gates_refuse_with_a_table_promote_with_evidence_and_mark_forced_promotions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let gw = Gateway::start(dir.path(), &store, CONFIG);
    // Live evidence: both challengers serve their share.
    let samples =
        load_until(gw.public, "/v2/models/mlp/infer", 2, |_, i| mlp_body(i as f32 / 50.0), |s| s.len() >= 300);
    assert!(samples.iter().all(|s| s.status == 200));

    // v1's manifest AUC (0.874) is below the champion's (0.891) + 0.005: refused, with the table.
    let admin = crate::support::admin(&gw);
    let (status, body) = crate::support::refused(admin.promote("mlp", 1, "alice"));
    assert_eq!(status, 409, "{body}");
    let message = body["error"].as_str().expect("error");
    assert!(message.contains("refused: 1 of 5 gates failed"), "{message}");
    assert!(message.contains("FAIL offline auc"), "{message}");
    let gates = body["gates"].as_array().expect("gates");
    assert_eq!(gates.iter().filter(|g| g["passed"] == false).count(), 1);
    assert_eq!(get(gw.admin, "/admin/models/mlp").json()["routing"]["champion"], 2, "nothing changed");

    // v3 (0.903) passes every gate: promoted, and the event holds the evidence.
    let view = admin.gates("mlp", 3).expect("gates");
    assert_eq!(view["passed"], true, "{view}");
    let promoted = admin.promote("mlp", 3, "alice").expect("promote");
    assert_eq!(promoted["routing"]["champion"], 3);

    // Forced past a failing gate: allowed, and marked forced with its actor.
    let out = std::process::Command::new(crate::support::bin())
        .args(["admin", "--url", &format!("http://{}", gw.admin), "promote", "mlp", "1", "--force", "--actor", "bob"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(gw.terminate().success());

    let promoted: Vec<Value> = events(&store, "mlp:3").into_iter().filter(|e| e["kind"] == "promoted").collect();
    assert_eq!(promoted.len(), 1);
    let evidence = &promoted[0]["detail"]["evidence"];
    assert_eq!(evidence["forced"], false);
    assert!(evidence["gates"].as_array().expect("gates").iter().all(|g| g["passed"] == true), "{evidence}");
    let forced: Vec<Value> = events(&store, "mlp:1").into_iter().filter(|e| e["kind"] == "promoted").collect();
    assert_eq!(
        (forced[0]["detail"]["evidence"]["forced"].as_bool(), forced[0]["actor"].as_str()),
        (Some(true), Some("cli:bob"))
    );
    // The registry follows the champion: alias and stage.
    let v1 = cli_json(&["models", "show", "--json", "--store", store.to_str().expect("utf8"), "mlp:champion"]);
    assert_eq!((v1["version"]["version"].as_u64(), v1["version"]["stage"].as_str()), (Some(1), Some("production")));
}

#[test]
fn archived_versions_cannot_be_routed_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let s = store.to_str().expect("utf8");
    cli_json(&["models", "stage", "--json", "--store", s, "mlp:3", "archived"]);
    let config = CONFIG.replace("{store}", s);
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &config).expect("write");
    // config check --resolve names the archived version and what to do.
    let out = std::process::Command::new(crate::support::bin())
        .args(["config", "check", "--resolve"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("version 3 (v3) is archived and cannot be served"), "{text}");
    // Serving it is refused at start...
    let out =
        std::process::Command::new(crate::support::bin()).args(["serve", "--config"]).arg(&path).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is archived"));
    // ...and at reload, while the running config keeps serving; the archived version's records
    // stay queryable.
    let gw = Gateway::start(
        dir.path(),
        &store,
        &config.replace("challengers = { 1 = 20, 3 = 20 }", "challengers = { 1 = 20 }"),
    );
    std::fs::write(&path, &config).expect("write");
    let r = admin_post(&gw, "/admin/reload", &json!({}));
    assert_eq!(r.status, 422);
    assert!(r.json()["problems"].to_string().contains("archived"), "{}", r.json());
    assert_eq!(
        crate::support::request(gw.public, "POST", "/v2/models/mlp/infer", &[], mlp_body(0.1).as_bytes()).status,
        200
    );
    assert!(gw.terminate().success());
    let shown = cli_json(&["models", "show", "--json", "--store", s, "mlp:3"]);
    assert_eq!(shown["version"]["stage"], "archived");
    assert!(shown["provenance"].is_object());
}
