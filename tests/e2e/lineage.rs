//! Per-request lineage through the real binary: every answer's request id leads back to the
//! version, artifact and provenance that produced it, and a graceful shutdown under load loses
//! no record.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Gateway, full_store, get, lineage, request, try_request};

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
max_batch = 4
batch_delay_us = 200
[model.routing]
champion = 1
challengers = { 2 = 30 }
shadows = { 3 = 50 }
sticky_header = "x-user-id"
[model.lineage]
input_sha256 = true
"#;

fn body(seed: f32) -> String {
    json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![seed; 64]}]}).to_string()
}

fn manifest_commit(version: u64) -> String {
    let path = crate::support::fixtures().join(format!("manifests/mlp_v{version}.toml"));
    let text = std::fs::read_to_string(path).expect("manifest");
    let table: toml::Table = text.parse().expect("manifest TOML");
    table["training"]["code_commit"].as_str().expect("code_commit").to_owned()
}

#[test]
fn every_answer_resolves_to_the_version_hash_and_provenance_that_served_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    // Every record names the gateway that answered.
    let gw = Gateway::start(dir.path(), &store, &ROUTED.replace("[store]", "replica_id = \"gw-7\"\n[store]"));
    let mut seen_routes = std::collections::BTreeSet::new();
    let mut shadowed = 0;
    for i in 0..40 {
        let user = format!("user-{i}");
        let r = request(
            gw.public,
            "POST",
            "/v2/models/mlp/infer",
            &[("x-user-id", &user), ("Content-Type", "application/json")],
            body(i as f32 / 40.0).as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let id = r.header("x-request-id").expect("x-request-id").to_owned();
        let version: u64 = r.header("x-model-version").expect("version").parse().expect("number");
        let c = lineage(&gw, &id, 1);
        let primary = &c["records"][0];
        assert_eq!(primary["request_id"], id.as_str());
        assert_eq!(primary["version"], version);
        assert_eq!(primary["sha256"], r.header("x-model-sha256").expect("sha"));
        assert_eq!(primary["route"], r.header("x-model-route").expect("route"));
        assert_eq!(primary["status"], 200);
        assert_eq!(primary["replica"], "gw-7");
        assert!(primary["reason"].as_str().expect("reason").starts_with("sticky key "), "{primary}");
        let key_hash = primary["sticky_key_hash"].as_str().expect("sticky key hash");
        assert!(!key_hash.contains(&user) && key_hash.len() == 16, "the key itself is never stored: {key_hash}");
        assert_eq!(primary["input_sha256"].as_str().map(str::len), Some(64), "input_sha256 is on for this model");
        assert!(primary["total_us"].as_u64().expect("total_us") >= primary["compute_us"].as_u64().expect("compute"));
        // The version, its artifact and where it came from.
        assert_eq!(c["version"]["version"], version);
        assert_eq!(c["version"]["sha256"], primary["sha256"]);
        assert_eq!(c["provenance"]["training"]["code_commit"], manifest_commit(version).as_str());
        let kinds: Vec<&str> =
            c["events"].as_array().expect("events").iter().filter_map(|e| e["kind"].as_str()).collect();
        assert!(kinds.contains(&"registered"), "{kinds:?}");
        seen_routes.insert(primary["route"].as_str().expect("route").to_owned());
        // Shadow records, when the copy ran, are marked and compared.
        for s in c["records"].as_array().expect("records").iter().skip(1) {
            assert_eq!(s["route"], "shadow");
            assert_eq!(s["version"], 3);
            assert_eq!(s["shadow_of"], version);
            assert!(s["comparison"]["max_abs_diff"].as_f64().is_some(), "{s}");
            shadowed += 1;
        }
    }
    assert_eq!(seen_routes, ["challenger", "champion"].map(str::to_owned).into(), "both live versions answered");
    assert!(shadowed > 0, "a 50% shadow saw no copy in 40 requests");

    // Pinned requests are recorded as pinned; the same inputs give the same input hash.
    let pinned = |seed: f32| {
        let r = request(gw.public, "POST", "/v2/models/mlp/versions/3/infer", &[], body(seed).as_bytes());
        assert_eq!(r.status, 200);
        lineage(&gw, r.header("x-request-id").expect("id"), 1)
    };
    let (a, b, c) = (pinned(0.5), pinned(0.5), pinned(0.75));
    assert_eq!(a["records"][0]["route"], "pinned");
    assert_eq!(a["records"][0]["reason"], "pinned by path");
    assert_eq!(a["records"][0]["input_sha256"], b["records"][0]["input_sha256"]);
    assert_ne!(a["records"][0]["input_sha256"], c["records"][0]["input_sha256"]);

    // A client-supplied request id is kept; a failed request is recorded with its error class.
    let r = request(gw.public, "POST", "/v2/models/mlp/infer", &[("x-request-id", "client-id-42")], b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-request-id"), Some("client-id-42"));
    let failed = lineage(&gw, "client-id-42", 1);
    assert_eq!(failed["records"][0]["status"], 400);
    assert_eq!(failed["records"][0]["error_class"], "bad_request");

    let missing = get(gw.admin, "/admin/lineage/no-such-request");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].as_str().expect("error").contains("no-such-request"));
    let status = get(gw.admin, "/admin/status").json();
    assert_eq!(status["status"], "ok");
    assert!(status["lineage"]["written"].as_u64().expect("written") >= 44, "{status}");
}

/// Primary (non-shadow) records in a stopped gateway's store.
fn primary_records(store: &Path) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let store = model_store::ModelStore::open(store).await.expect("open store");
        store.registry().count_lineage(Some("mlp"), true).await.expect("count")
    })
}

#[test]
fn sigterm_under_concurrent_load_loses_no_lineage_record() {
    sigterm_under_load_loses_nothing(ROUTED);
}

/// Without an fsync per batch the records are as complete: `normal` only gives up what a
/// power loss would take, never what a graceful exit writes.
#[test]
fn sigterm_under_load_loses_no_record_with_durability_normal() {
    sigterm_under_load_loses_nothing(&format!("{ROUTED}\n[lineage]\ndurability = \"normal\"\n"));
}

/// Six clients send until the gateway, stopped by SIGTERM mid-load, refuses them; then the
/// store must hold exactly one primary record per 200 the clients saw, and the exit be 0.
fn sigterm_under_load_loses_nothing(config: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let gw = Gateway::start(dir.path(), &store, config);
    let addr = gw.public;
    let ok = AtomicU64::new(0);
    let other = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let status = std::thread::scope(|s| {
        for t in 0..6 {
            let (ok, other, stop) = (&ok, &other, &stop);
            s.spawn(move || {
                let payload = body(t as f32 / 10.0);
                let mut i = 0u64;
                // Clients keep going until the server refuses connections, then stop.
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("client-{t}-{i}");
                    i += 1;
                    match try_request(addr, "POST", "/v2/models/mlp/infer", &[("x-user-id", &key)], payload.as_bytes())
                    {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        Ok(_) => other.fetch_add(1, Ordering::Relaxed),
                        Err(_) => break,
                    };
                }
            });
        }
        // Let load build up, then stop the gateway in the middle of it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while ok.load(Ordering::Relaxed) < 300 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = gw.terminate();
        stop.store(true, Ordering::Relaxed);
        status
    });
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let ok = ok.load(Ordering::Relaxed);
    assert!(ok >= 300, "only {ok} answers before SIGTERM");
    assert_eq!(other.load(Ordering::Relaxed), 0, "every answered request is a 200");
    assert_eq!(primary_records(&store), ok, "2xx answers seen by clients == primary lineage records stored");
}

/// `[lineage] ack = "after_commit"`: a SIGKILL mid-load (no drain, no flush) loses no record of
/// an answered request, since no answer leaves before its record is committed. (With the
/// default `submit`, up to one flush interval of records dies with the process: run with
/// `submit`, this test finds every answer of a short burst without its record.)
#[test]
fn sigkill_under_load_loses_no_answered_record_with_ack_after_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let config = format!("{ROUTED}\n[lineage]\nack = \"after_commit\"\n");
    let mut gw = Gateway::start(dir.path(), &store, &config);
    let addr = gw.public;
    let answered = std::sync::Mutex::new(Vec::<String>::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..6 {
            let (answered, stop) = (&answered, &stop);
            s.spawn(move || {
                let payload = body(t as f32 / 10.0);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("client-{t}-{i}");
                    i += 1;
                    match try_request(addr, "POST", "/v2/models/mlp/infer", &[("x-user-id", &key)], payload.as_bytes())
                    {
                        Ok(r) if r.status == 200 => {
                            let id = r.header("x-request-id").expect("request id").to_owned();
                            answered.lock().expect("ids").push(id);
                        }
                        Ok(r) => panic!("status {}: {}", r.status, String::from_utf8_lossy(&r.body)),
                        Err(_) => break,
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while answered.lock().expect("ids").len() < 300 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = gw.child.kill(); // SIGKILL: nothing gets flushed
        let _ = gw.child.wait();
        stop.store(true, Ordering::Relaxed);
    });
    let answered = answered.into_inner().expect("ids");
    assert!(answered.len() >= 300, "only {} answers before the kill", answered.len());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let missing: Vec<&String> = rt.block_on(async {
        let store = model_store::ModelStore::open(&store).await.expect("open store");
        let mut missing = Vec::new();
        for id in &answered {
            if store.registry().lineage(id).await.expect("read").iter().all(|r| r.is_shadow()) {
                missing.push(id);
            }
        }
        missing
    });
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no record, e.g. {:?}",
        missing.len(),
        answered.len(),
        missing.first()
    );
}
