//! Alerts reach real HTTP receivers started by the test: a webhook per guard trip with its
//! figures, Alertmanager's format for an operator action, and a receiver that was down when the
//! alert was raised still gets it once it is up. Serving is unaffected throughout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Gateway, full_store, load_until, mlp_body, register};

/// One request a receiver got: its path and JSON body.
pub type Got = Arc<Mutex<Vec<(String, Value)>>>;

/// An HTTP receiver on `listener` that answers 200 to every POST and keeps what it got; it
/// stops by itself after `lifetime`.
pub fn receiver(listener: TcpListener, lifetime: Duration) -> Got {
    let got: Got = Arc::default();
    let keep = Arc::clone(&got);
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let until = Instant::now() + lifetime;
        while Instant::now() < until {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            stream.set_nonblocking(false).expect("blocking");
            stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
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
                continue;
            }
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            keep.lock().expect("lock").push((path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
        }
    });
    got
}

pub fn wait_for(got: &Got, what: &str, enough: impl Fn(&[(String, Value)]) -> bool) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = got.lock().expect("lock").clone();
        if enough(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what}: got {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr")
}

#[test]
fn a_guard_trip_sends_one_webhook_with_its_figures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    register(&store, "ranker", "slow", None);
    register(&store, "ranker", "mlp_v1", None);
    let hook = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", hook.local_addr().expect("addr"));
    let got = receiver(hook, Duration::from_secs(60));
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[store]\npath = \"{{store}}\"\n\
         [[model]]\nname = \"ranker\"\n[model.routing]\nchampion = 1\nbackup = [2]\n\
         [model.guard]\nwindow = \"10s\"\ninterval = \"500ms\"\ncooldown = \"60s\"\nmin_requests = 20\np99_ms = 20\n\
         [[alert]]\nkind = \"webhook\"\nurl = \"{url}\"\nevents = [\"guard_trip\", \"guard_no_healthy_backup\"]\n"
    );
    let gw = Gateway::start(dir.path(), &store, &config);
    let samples = load_until(
        gw.public,
        "/v2/models/ranker/infer",
        4,
        |t, i| mlp_body((t * 1000 + i) as f32 / 1e4),
        |s| s.iter().filter(|x| x.version == Some(2)).count() >= 50 || s.len() >= 2000,
    );
    assert!(samples.iter().all(|s| s.status == 200), "serving unaffected");
    wait_for(&got, "the trip's webhook", |g| !g.is_empty());
    std::thread::sleep(Duration::from_millis(1500)); // any second one would have come by now
    let alerts: Vec<_> = got.lock().expect("lock").clone();
    assert_eq!(alerts.len(), 1, "one webhook per trip: {alerts:?}");
    let (path, body) = &alerts[0];
    assert_eq!(path, "/hook");
    assert_eq!(
        (body["kind"].as_str(), body["model"].as_str(), body["version"].as_u64()),
        (Some("guard_trip"), Some("ranker"), Some(1))
    );
    assert!(body["detail"]["measured"]["p99_ms"].as_f64().expect("figures") > 20.0, "{body}");
    assert!(body["summary"].as_str().expect("summary").contains("from version 1 to 2"), "{body}");
    assert!(gw.terminate().success());
}

#[test]
fn alertmanager_gets_its_format_and_a_receiver_that_was_down_still_gets_the_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let am = TcpListener::bind("127.0.0.1:0").expect("bind");
    let am_url = format!("http://{}", am.local_addr().expect("addr"));
    let am_got = receiver(am, Duration::from_secs(60));
    let late = free_port(); // nothing listens there yet
    let config = crate::support::FULL_CONFIG.to_owned()
        + &format!(
            "[[alert]]\nkind = \"alertmanager\"\nurl = \"{am_url}\"\n\
             [[alert]]\nkind = \"slack\"\nurl = \"http://{late}/services/T/B/X\"\nevents = [\"promoted\"]\n"
        );
    let gw = Gateway::start(dir.path(), &store, &config);
    crate::support::admin(&gw).promote("mlp", 3, "alice").expect("promote");
    let posts = wait_for(&am_got, "the Alertmanager post", |g| !g.is_empty());
    let (path, body) = &posts[0];
    assert_eq!(path, "/api/v2/alerts");
    let alert = &body[0];
    assert_eq!(
        (alert["labels"]["alertname"].as_str(), alert["labels"]["model"].as_str()),
        (Some("promoted"), Some("mlp"))
    );
    assert_eq!(alert["labels"]["version"], "3", "label values are strings");
    assert!(alert["startsAt"].as_str().expect("startsAt").ends_with('Z'), "{alert}");
    assert!(alert["annotations"]["summary"].as_str().expect("summary").contains("promoted by alice"), "{alert}");

    // The Slack receiver comes up two seconds later; the retry reaches it.
    std::thread::sleep(Duration::from_secs(2));
    let slack = receiver(TcpListener::bind(late).expect("bind the late receiver"), Duration::from_secs(60));
    let posts = wait_for(&slack, "the retried Slack post", |g| !g.is_empty());
    assert!(posts[0].1["text"].as_str().expect("text").contains("mlp: promoted by alice"), "{:?}", posts[0]);
    let r = crate::support::post_json(
        gw.public,
        "/v2/models/mlp/infer",
        &serde_json::from_str(&mlp_body(0.1)).expect("json"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        crate::support::metric_value(&gw, "switchyard_alerts_total", &[("sink", "slack"), ("result", "sent")]),
        Some(1.0)
    );
    assert!(gw.terminate().success());
}
