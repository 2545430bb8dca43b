//! Remote versions: a second `switchyard` process is the upstream v2 server of versions the
//! gateway under test registers with `models register --upstream`. Its answers must come
//! through exactly, routing and lineage must treat the remote version as any other, and an
//! upstream that dies, hangs or answers garbage must cost a clear error and trip the guard,
//! never a hang.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Gateway, bin, get, lineage, load_until, mlp_body, post_json, register};

/// A real Switchyard serving `mlp` (the `mlp_v1` fixture): the upstream.
fn upstream_gateway(dir: &Path) -> Gateway {
    let store = dir.join("upstream-store");
    register(&store, "mlp", "mlp_v1", Some("mlp_v1"));
    let config = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[store]
path = "{store}"
[[model]]
name = "mlp"
[model.routing]
champion = 1
"#;
    let upstream_dir = dir.join("upstream");
    std::fs::create_dir_all(&upstream_dir).expect("dir");
    Gateway::start(&upstream_dir, &store, config)
}

/// `switchyard models register --upstream URL …`, asserting success.
fn register_remote(store: &Path, model: &str, url: &str, upstream_model: &str) -> Value {
    let out = Command::new(bin())
        .args(["models", "register", "--json", "--model", model, "--upstream", url, "--upstream-model", upstream_model])
        .arg("--store")
        .arg(store)
        .output()
        .expect("run switchyard");
    assert!(out.status.success(), "register --upstream failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The gateway's store: mlp v1 local (`mlp_v2` fixture: other answers than the upstream's),
/// v2 remote (the upstream's `mlp`).
fn gateway_store(dir: &Path, upstream: SocketAddr) -> PathBuf {
    let store = dir.join("store");
    register(&store, "mlp", "mlp_v2", Some("mlp_v2"));
    let v = register_remote(&store, "mlp", &format!("http://{upstream}"), "mlp");
    assert_eq!(v["version"], 2, "{v}");
    assert_eq!(v["upstream"], json!({"url": format!("http://{upstream}"), "model": "mlp"}));
    store
}

fn config(routing: &str, guard: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[store]
path = "{{store}}"
[upstream]
health_interval = "200ms"
[[model]]
name = "mlp"
[model.routing]
{routing}
{guard}
"#
    )
}

const GUARD: &str = "[model.guard]\nwindow = \"10s\"\ninterval = \"500ms\"\ncooldown = \"60s\"\nmin_requests = 20\nmax_error_rate = 0.05\np99_ms = 2000";

#[test]
fn a_remote_version_answers_exactly_as_its_upstream_and_lineage_says_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = upstream_gateway(dir.path());
    let store = gateway_store(dir.path(), upstream.public);
    let gw = Gateway::start(dir.path(), &store, &config("champion = 2\nbackup = [1]", ""));

    let body = json!({"id": "q-1", "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                      "data": (0..64).map(|i| i as f32 / 64.0).collect::<Vec<_>>()}]});
    let direct = post_json(upstream.public, "/v2/models/mlp/infer", &body);
    assert_eq!(direct.status, 200);
    let through = post_json(gw.public, "/v2/models/mlp/infer", &body);
    assert_eq!(through.status, 200, "{}", String::from_utf8_lossy(&through.body));
    // The upstream's outputs, exactly; the gateway's version and id.
    assert_eq!(through.json()["outputs"], direct.json()["outputs"]);
    assert_eq!(through.json()["model_version"], "2");
    assert_eq!(through.json()["id"], "q-1");
    assert_eq!(through.header("x-model-version"), Some("2"));
    assert_eq!(through.header("x-model-route"), Some("champion"));

    // Pinned to the remote version, and to the local one (which answers otherwise).
    let pinned = post_json(gw.public, "/v2/models/mlp/versions/2/infer", &body);
    assert_eq!(pinned.json()["outputs"], direct.json()["outputs"]);
    let local = post_json(gw.public, "/v2/models/mlp/versions/1/infer", &body);
    assert_eq!(local.status, 200);
    assert_ne!(local.json()["outputs"], direct.json()["outputs"], "the local version is another model");

    // Metadata is the registered signature; the admin view says where the version is answered.
    let meta = get(gw.public, "/v2/models/mlp/versions/2").json();
    assert_eq!(meta["inputs"], get(upstream.public, "/v2/models/mlp").json()["inputs"]);
    let state = crate::support::admin(&gw).model("mlp").expect("state");
    let v2 = state["versions"].as_array().expect("versions").iter().find(|v| v["version"] == 2).expect("v2").clone();
    assert_eq!(v2["execution"], "remote", "{v2}");
    assert_eq!(v2["upstream"]["url"], format!("http://{}", upstream.public));

    // Lineage names the upstream and the version it says answered.
    let id = through.header("x-request-id").expect("request id");
    let chain = lineage(&gw, id, 1);
    let record = &chain["records"][0];
    assert_eq!(record["version"], 2);
    assert_eq!(
        record["upstream"],
        json!({"url": format!("http://{}", upstream.public), "model": "mlp", "version": "1"}),
        "{record}"
    );
    let local_id = local.header("x-request-id").expect("request id");
    assert!(lineage(&gw, local_id, 1)["records"][0].get("upstream").is_none(), "local runs name no upstream");
}

#[test]
fn an_80_20_split_between_a_local_champion_and_a_remote_challenger_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = upstream_gateway(dir.path());
    let store = gateway_store(dir.path(), upstream.public);
    let gw = Gateway::start(dir.path(), &store, &config("champion = 1\nchallengers = { 2 = 20 }", ""));
    const N: usize = 10_000;
    let samples =
        load_until(gw.public, "/v2/models/mlp/infer", 4, |t, i| mlp_body((t * N + i) as f32 / 1e5), |s| s.len() >= N);
    let failed = samples.iter().filter(|s| s.status != 200).count();
    assert_eq!(failed, 0, "failed requests");
    let remote = samples.iter().filter(|s| s.version == Some(2)).count();
    let share = remote as f64 / samples.len() as f64;
    assert!((0.18..=0.22).contains(&share), "remote share {share:.4} of {}", samples.len());
    // Every answer has its one lineage record, naming where it was answered.
    let records = lineage_records(&store, samples.len());
    let answered: std::collections::HashMap<&str, Option<u32>> =
        samples.iter().map(|s| (s.request_id.as_deref().expect("request id"), s.version)).collect();
    assert_eq!(answered.len(), samples.len(), "request ids are unique");
    let url = format!("http://{}", upstream.public);
    for record in &records {
        let id = record["request_id"].as_str().expect("id");
        let version = record["version"].as_u64().map(|v| v as u32);
        assert_eq!(answered.get(id), Some(&version), "record {record} matches no answer of its version");
        match version {
            Some(2) => assert_eq!(record["upstream"], json!({"url": url, "model": "mlp", "version": "1"}), "{record}"),
            _ => assert!(record.get("upstream").is_none(), "{record}"),
        }
    }
}

/// The model's lineage records from the store, once there are `count` (polled for up to 10 s: the
/// writer commits in batches).
fn lineage_records(store: &Path, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(bin())
            .args(["lineage", "query", "--model", "mlp", "--limit", "100000", "--store"])
            .arg(store)
            .output()
            .expect("run switchyard");
        assert!(out.status.success(), "lineage query: {}", String::from_utf8_lossy(&out.stderr));
        let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        if records.len() >= count {
            assert_eq!(records.len(), count, "one record per answered request");
            return records;
        }
        assert!(Instant::now() < deadline, "{} lineage records of {count} after 10 s", records.len());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An upstream that answers model metadata like the real one but misbehaves on inference:
/// `hang` accepts and never answers; otherwise it answers 200 with a body that is not v2.
fn misbehaving_upstream(metadata: Value, hang: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let metadata = metadata.clone();
            std::thread::spawn(move || serve_misbehaving(stream, &metadata, hang));
        }
    });
    addr
}

fn serve_misbehaving(mut stream: TcpStream, metadata: &Value, hang: bool) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_owned();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = match path.as_str() {
            "/v2/health/ready" => String::new(),
            p if p.ends_with("/infer") && hang => {
                std::thread::sleep(Duration::from_secs(600));
                return;
            }
            p if p.ends_with("/infer") => "<html><body>502 from a proxy</body></html>".to_owned(),
            _ => metadata.to_string(),
        };
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", answer.len());
        if stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(answer.as_bytes())).is_err() {
            return;
        }
    }
}

/// A store with mlp v1 local (`mlp_v2` fixture) and v2 remote on a misbehaving upstream that
/// declares the real model's metadata (read from a Switchyard serving it, then stopped).
fn misbehaving_store(dir: &Path, hang: bool) -> (PathBuf, SocketAddr) {
    let upstream = upstream_gateway(dir);
    let metadata = get(upstream.public, "/v2/models/mlp").json();
    drop(upstream);
    let store = dir.join("store");
    register(&store, "mlp", "mlp_v2", Some("mlp_v2"));
    let addr = misbehaving_upstream(metadata, hang);
    register_remote(&store, "mlp", &format!("http://{addr}"), "mlp");
    (store, addr)
}

#[test]
fn a_hanging_upstream_costs_each_request_its_deadline_and_trips_the_guard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = misbehaving_store(dir.path(), true);
    let guard = GUARD.replace("min_requests = 20", "min_requests = 5");
    let gw = Gateway::start(dir.path(), &store, &config("champion = 2\nbackup = [1]", &guard));

    // Each request waits its own deadline (the v2 `timeout` parameter), no longer.
    let mut body: Value = serde_json::from_str(&mlp_body(0.1)).expect("JSON");
    body["parameters"] = json!({"timeout": 300_000});
    let started = Instant::now();
    let r = post_json(gw.public, "/v2/models/mlp/infer", &body);
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(took >= Duration::from_millis(290) && took < Duration::from_secs(3), "took {took:?}");
    assert!(r.json()["error"].as_str().expect("message").contains("deadline"), "{}", r.json());

    // Timeouts are errors to the guard: traffic moves to the local backup.
    let samples = load_until(
        gw.public,
        "/v2/models/mlp/infer",
        4,
        |_, _| body.to_string(),
        |s| s.iter().filter(|x| x.version == Some(1)).count() >= 20 || s.len() >= 200,
    );
    let backup = samples.iter().filter(|s| s.version == Some(1)).count();
    assert!(backup >= 20, "traffic never moved to the backup: {} answers", samples.len());
    let state = crate::support::admin(&gw).model("mlp").expect("state");
    assert_eq!(state["routing"]["champion"], 1, "{state}");
}

#[test]
fn an_upstream_answering_garbage_gets_a_clear_502() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, garbage) = misbehaving_store(dir.path(), false);
    let gw = Gateway::start(dir.path(), &store, &config("champion = 2\nbackup = [1]", ""));
    let r = post_json(gw.public, "/v2/models/mlp/infer", &serde_json::from_str(&mlp_body(0.1)).expect("JSON"));
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let message = r.json()["error"].as_str().expect("message").to_owned();
    assert!(message.contains("not a v2 inference response") && message.contains(&garbage.to_string()), "{message}");
}

#[test]
fn killing_the_upstream_under_load_fails_only_the_requests_in_flight_and_trips_to_the_local_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = upstream_gateway(dir.path());
    let store = gateway_store(dir.path(), upstream.public);
    let gw = Gateway::start(dir.path(), &store, &config("champion = 2\nbackup = [1]", GUARD));
    let upstream = std::sync::Mutex::new(upstream);
    const CLIENTS: usize = 4;
    let killed = std::sync::OnceLock::<Instant>::new();
    let samples = load_until(
        gw.public,
        "/v2/models/mlp/infer",
        CLIENTS,
        |t, i| mlp_body((t * 100_000 + i) as f32 / 1e6),
        |s| {
            if s.len() >= 300 && killed.get().is_none() {
                let _ = upstream.lock().expect("upstream").child.kill(); // SIGKILL
                let _ = killed.set(Instant::now());
            }
            killed.get().is_some_and(|at| s.iter().filter(|x| x.at > *at && x.version == Some(1)).count() >= 300)
        },
    );
    let _ = upstream.lock().expect("upstream").child.wait();
    let killed = *killed.get().expect("killed");
    let before = samples.iter().filter(|s| s.at < killed).count();
    assert!(samples[..before].iter().all(|s| s.status == 200 && s.version == Some(2)), "the remote champion answered");
    // Only requests the upstream had when it died fail: one in flight per client, plus at most
    // one written to each pooled connection the dead process still held before the gateway saw
    // it close (the upstream may have read such a request: it is not sent again). Every request
    // after that goes to the local backup, first as a failover, then by the guard's trip.
    let failed: Vec<_> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(failed.len() <= 2 * CLIENTS, "{} failed requests: {:?}", failed.len(), failed.first());
    for f in &failed {
        assert_eq!(f.status, 502, "{}", String::from_utf8_lossy(&f.body));
    }
    eprintln!("requests in flight at the kill that failed: {}", failed.len());
    let after: Vec<_> = samples.iter().filter(|s| s.at > killed && s.status == 200).collect();
    // Answers the upstream sent just before it died may arrive just after (one per client).
    let late = after.iter().take_while(|s| s.version == Some(2)).count();
    assert!(late <= CLIENTS, "{late} answers from the dead upstream");
    let strays: Vec<_> =
        after[late..].iter().filter(|s| s.version != Some(1) || s.route.as_deref() != Some("backup")).collect();
    assert!(strays.is_empty(), "answers not from the backup after the kill: {:?}", strays.first());

    // The admin API shows the dead upstream ejected by its health checks.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = get(gw.admin, "/admin/status").json();
        let up = &status["upstreams"][0];
        assert_eq!(up["url"], format!("http://{}", upstream.lock().expect("upstream").public), "{status}");
        if up["ejected"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "never shown ejected: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The guard trips within its interval (500 ms) and a second.
    let deadline = killed + Duration::from_millis(1500);
    loop {
        let state = crate::support::admin(&gw).model("mlp").expect("state");
        if state["routing"]["champion"] == 1 {
            assert_eq!(state["origin"]["detail"]["reason"], "error_rate", "{state}");
            break;
        }
        assert!(Instant::now() < deadline, "no trip 1.5 s after the kill: {state}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Failed-over answers say why in their lineage.
    // Failed-over answers (before the trip) say why in their lineage; later ones name the trip.
    let reason = |s: &crate::support::Sample| {
        let id = s.request_id.as_deref().expect("request id");
        lineage(&gw, id, 1)["records"][0]["reason"].as_str().expect("reason").to_owned()
    };
    let first = reason(after[late]);
    assert!(first.starts_with("backup after version 2 could not reach its upstream"), "{first}");
    let next = post_json(gw.public, "/v2/models/mlp/infer", &serde_json::from_str(&mlp_body(0.2)).expect("JSON"));
    let id = next.header("x-request-id").expect("request id");
    let last = lineage(&gw, id, 1)["records"][0]["reason"].as_str().expect("reason").to_owned();
    assert!(last.starts_with("backup after guard trip of version 2"), "{last}");
}

#[test]
fn shadows_run_across_local_and_remote_versions_and_are_compared_on_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = upstream_gateway(dir.path());
    let store = gateway_store(dir.path(), upstream.public);
    // v3: the upstream's model again, as a local file: a local shadow that must agree exactly.
    register(&store, "mlp", "mlp_v1", Some("mlp_v1"));
    let url = format!("http://{}", upstream.public);
    for (champion, shadow, agrees) in [(1, 2, false), (2, 3, true)] {
        let routing = format!("champion = {champion}\nshadows = {{ {shadow} = 100 }}");
        let gw = Gateway::start(dir.path(), &store, &config(&routing, ""));
        let r = post_json(gw.public, "/v2/models/mlp/infer", &serde_json::from_str(&mlp_body(0.25)).expect("JSON"));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("x-model-version"), Some(champion.to_string().as_str()));
        let chain = lineage(&gw, r.header("x-request-id").expect("id"), 2);
        let records = chain["records"].as_array().expect("records");
        let primary = records.iter().find(|x| x["route"] != "shadow").expect("primary");
        let mirrored = records.iter().find(|x| x["route"] == "shadow").expect("shadow");
        assert_eq!((primary["version"].as_u64(), mirrored["version"].as_u64()), (Some(champion), Some(shadow)));
        assert_eq!(mirrored["shadow_of"], champion);
        let remote = if champion == 2 { primary } else { mirrored };
        assert_eq!(remote["upstream"], json!({"url": url, "model": "mlp", "version": "1"}), "{remote}");
        let diff = mirrored["comparison"]["max_abs_diff"].as_f64().expect("compared");
        if agrees {
            assert_eq!(diff, 0.0, "the same model, local and remote, answers alike: {mirrored}");
        } else {
            assert!(diff > 0.0, "two models differ: {mirrored}");
        }
    }
}

#[test]
fn an_h2c_upstream_answers_over_one_multiplexed_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = upstream_gateway(dir.path());
    let store = dir.path().join("store");
    let url = format!("http://{}", upstream.public);
    let out = Command::new(bin())
        .args(["models", "register", "--json", "--model", "mlp", "--upstream", &url, "--upstream-protocol", "h2c"])
        .arg("--store")
        .arg(&store)
        .output()
        .expect("run switchyard");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["upstream"], json!({"url": url, "model": "mlp", "protocol": "h2c"}));
    let gw = Gateway::start(dir.path(), &store, &config("champion = 1", ""));
    let body: Value = serde_json::from_str(&mlp_body(0.5)).expect("JSON");
    let direct = post_json(upstream.public, "/v2/models/mlp/infer", &body).json();
    let samples = load_until(gw.public, "/v2/models/mlp/infer", 4, |_, _| body.to_string(), |s| s.len() >= 200);
    for s in &samples {
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
        let answer: Value = serde_json::from_slice(&s.body).expect("JSON");
        assert_eq!(answer["outputs"], direct["outputs"]);
    }
    // An upstream that speaks only HTTP/1.1 fails registration over h2c with the reason.
    let out = Command::new(bin())
        .args(["models", "register", "--model", "other", "--upstream-protocol", "h2c", "--upstream"])
        .arg(format!("http://{}", misbehaving_upstream(json!({}), false)))
        .arg("--store")
        .arg(&store)
        .output()
        .expect("run switchyard");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the remote model's signature"));
}
