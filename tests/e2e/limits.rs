//! Limits through the real binary: request deadlines (config and the v2 `timeout` parameter),
//! the admin bearer token, connection and header-size limits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Gateway, get, mlp_body, register, request};

fn config(server_extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{server_extra}
[store]
path = "{{store}}"
[[model]]
name = "slow"
versions = [1]
[[model]]
name = "mlp"
versions = [1]
"#
    )
}

fn slow_body(timeout_us: Option<Value>) -> String {
    let mut body: Value = serde_json::from_str(&mlp_body(0.5)).expect("json");
    if let Some(t) = timeout_us {
        body["parameters"] = json!({ "timeout": t });
    }
    body.to_string()
}

fn store(dir: &std::path::Path) -> std::path::PathBuf {
    let store = dir.join("store");
    register(&store, "slow", "slow", None);
    register(&store, "mlp", "mlp_v1", None);
    store
}

#[test]
fn deadlines_answer_504_and_abandon_work_not_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let gw = Gateway::start(dir.path(), &store, &config(""));
    // The v2 timeout (microseconds) shortens the configured deadline: 1 ms < one ~20 ms run.
    let r = request(gw.public, "POST", "/v2/models/slow/infer", &[], slow_body(Some(json!(1000))).as_bytes());
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["error"].as_str().expect("error").contains("within the deadline of 1 ms"), "{}", r.json());
    for bad in [json!(-5), json!("soon"), json!(1.5)] {
        let r = request(gw.public, "POST", "/v2/models/slow/infer", &[], slow_body(Some(bad.clone())).as_bytes());
        assert_eq!(r.status, 400, "timeout {bad}");
        assert!(r.json()["error"].as_str().expect("error").contains("'timeout'"));
    }
    // Twelve requests queue behind one ~20 ms session with a 60 ms deadline: the late ones time
    // out, and the session never runs the work of those that gave up before it started.
    let before = executions(&gw);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                s.spawn(|| {
                    request(gw.public, "POST", "/v2/models/slow/infer", &[], slow_body(Some(json!(60_000))).as_bytes())
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).collect()
    });
    let timed_out = statuses.iter().filter(|s| **s == 504).count();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 504), "{statuses:?}");
    assert!(timed_out >= 4, "{statuses:?}");
    std::thread::sleep(Duration::from_millis(500)); // let the session finish what it started
    let ran = executions(&gw) - before;
    assert!(ran < 12, "all 12 ran ({statuses:?}): abandoned work was not skipped");
    // Without a timeout the same model answers.
    let r = request(gw.public, "POST", "/v2/models/slow/infer", &[], slow_body(None).as_bytes());
    assert_eq!(r.status, 200);
    assert!(gw.terminate().success());
}

/// ONNX Runtime calls made by `slow` v1 so far (Triton-style statistics).
fn executions(gw: &Gateway) -> u64 {
    let stats = get(gw.public, "/v2/models/slow/versions/1/stats").json();
    stats["model_stats"][0]["execution_count"].as_u64().expect("execution_count")
}

#[test]
fn the_admin_port_wants_its_bearer_token_when_one_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let token = "s3cret-token-0123456789";
    let gw = Gateway::start(dir.path(), &store, &config(&format!("admin_token = \"{token}\"")));
    for path in ["/metrics", "/admin/models", "/admin/status"] {
        let r = get(gw.admin, path);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let wrong = request(gw.admin, "GET", path, &[("Authorization", "Bearer s3cret-token-0123456788")], b"");
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let ok = request(gw.admin, "GET", path, &[("Authorization", &format!("Bearer {token}"))], b"");
        assert_eq!(ok.status, 200, "{path} with the token");
    }
    let r = request(gw.admin, "POST", "/admin/models/mlp/reset", &[], b"{}");
    assert_eq!(r.status, 401, "actions too");
    // The public port is not affected.
    assert_eq!(get(gw.public, "/v2/health/ready").status, 200);
    // The CLI sends it.
    let out = std::process::Command::new(crate::support::bin())
        .args(["admin", "--url", &format!("http://{}", gw.admin), "--json", "status"])
        .env("SWITCHYARD_ADMIN_TOKEN", token)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(gw.terminate().success());
}

#[test]
fn too_short_a_token_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, config("admin_token = \"short\"").replace("{store}", "/nonexistent")).expect("write");
    let out =
        std::process::Command::new(crate::support::bin()).args(["config", "check"]).arg(&path).output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin_token must be at least 16"));
}

#[test]
fn connections_past_the_limit_wait_and_oversized_headers_get_431() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let gw = Gateway::start(dir.path(), &store, &config("max_connections = 2\nmax_header_bytes = 16384"));
    // Two keep-alive connections hold both slots.
    let hold = |addr| {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        s
    };
    let first = hold(gw.public);
    let _second = hold(gw.public);
    let mut third = TcpStream::connect(gw.public).expect("the kernel still accepts into the backlog");
    third.set_read_timeout(Some(Duration::from_millis(700))).expect("timeout");
    third.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    let mut buf = [0u8; 512];
    assert!(third.read(&mut buf).is_err(), "a third connection is served while two hold the limit");
    drop(first);
    third.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let started = Instant::now();
    let n = third.read(&mut buf).expect("served once a slot frees");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{:?}", started.elapsed());
    drop(_second);

    let big = "x".repeat(20_000);
    let r = request(gw.public, "GET", "/v2/health/live", &[("x-big", &big)], b"");
    assert_eq!(r.status, 431);
    assert_eq!(get(gw.public, "/v2/health/live").status, 200, "still healthy");
    assert!(gw.terminate().success());
}

#[test]
fn a_body_that_stops_arriving_gets_408_within_the_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(dir.path());
    let gw = Gateway::start(dir.path(), &store, &config("request_timeout = \"1s\""));
    let mut s = TcpStream::connect(gw.public).expect("connect");
    s.write_all(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"in").expect("write");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).expect("an answer, not a hang");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(gw.terminate().success());
}
