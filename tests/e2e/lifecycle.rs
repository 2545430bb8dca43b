//! Start-up and shutdown of the real process: SIGTERM finishes in-flight requests and exits 0.

use std::time::Duration;

use serde_json::json;

use crate::support::{FULL_CONFIG, Gateway, full_store, post_json};

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let gw = Gateway::start(dir.path(), &store, FULL_CONFIG);
    let addr = gw.public;
    let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.1; 64]}]});
    // Six requests to the ~20 ms model queue up behind two sessions; SIGTERM arrives while
    // they are in flight, and every one must still be answered.
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || post_json(addr, "/v2/models/slow/infer", &body).status)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(15));
    let status = gw.terminate();
    for c in clients {
        assert_eq!(c.join().expect("client thread"), 200);
    }
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let mut gw = Gateway::start(dir.path(), &store, FULL_CONFIG);
    let addr = gw.public;
    let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.1; 64]}]});
    // 300 ~20 ms requests behind two sessions: 3 s or more of draining after the first signal.
    let clients: Vec<_> = (0..300)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                crate::support::try_request(addr, "POST", "/v2/models/slow/infer", &[], body.to_string().as_bytes())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let pid = gw.child.id().to_string();
    let kill = || std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    kill();
    std::thread::sleep(Duration::from_millis(30));
    let started = std::time::Instant::now();
    kill();
    let status = loop {
        if let Some(status) = gw.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no exit after the second SIGTERM");
        std::thread::sleep(Duration::from_millis(5));
    };
    // "At once" on a loaded CI machine: well before the drain could have finished.
    assert!(started.elapsed() < Duration::from_millis(2500), "took {:?}", started.elapsed());
    assert_eq!(status.code(), Some(130), "an interrupted drain is not a clean exit");
    let unanswered = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .filter(|r| !matches!(r, Ok(r) if r.status == 200))
        .count();
    assert!(unanswered > 0, "the drain was not cut short");
}

/// Clients that connected just before SIGTERM and send their request right after it are
/// answered, not cut off: the drain gives a connection that has not spoken yet a short grace
/// (`FIRST_REQUEST_GRACE`, 250 ms) to send its first request.
#[test]
fn a_request_sent_just_after_sigterm_on_an_open_connection_is_answered() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let mut gw = Gateway::start(dir.path(), &store, FULL_CONFIG);
    let body =
        json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": vec![0.1; 64]}]}).to_string();
    let request = format!(
        "POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut sockets: Vec<std::net::TcpStream> =
        (0..3).map(|_| std::net::TcpStream::connect(gw.public).expect("connect")).collect();
    std::thread::sleep(Duration::from_millis(200)); // accepted, silent
    let pid = gw.child.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    std::thread::sleep(Duration::from_millis(50));
    for socket in &mut sockets {
        socket.write_all(request.as_bytes()).expect("send");
    }
    for socket in &mut sockets {
        socket.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut answer = String::new();
        socket.read_to_string(&mut answer).expect("read the answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    // The one SIGTERM above ends the process (a second one would exit at once, with 130).
    assert_eq!(gw.wait_exit().code(), Some(0));
}

/// Waits up to `limit` for the process to exit after a signal; returns the status and how long
/// it took.
fn exit_within(gw: &mut Gateway, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = gw.child.try_wait().expect("try_wait") {
            return (status, started.elapsed());
        }
        assert!(started.elapsed() < limit, "no exit within {limit:?} of SIGTERM");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sigterm(gw: &Gateway) {
    let pid = gw.child.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
}

#[test]
fn an_idle_gateway_exits_within_two_seconds_of_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let mut gw = Gateway::start(dir.path(), &store, FULL_CONFIG);
    sigterm(&gw);
    let (status, took) = exit_within(&mut gw, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// One deadline for the whole shutdown (`[server] drain_timeout`): a request that never
/// finishes (its body never arrives) holds the drain only that long, and the records of the
/// requests answered before are still written.
#[test]
fn a_stuck_request_holds_shutdown_only_until_the_drain_timeout_and_lineage_is_written() {
    use std::io::Write;
    const DRAIN: Duration = Duration::from_secs(2);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let config = FULL_CONFIG.replace("[server]\n", "[server]\ndrain_timeout = \"2s\"\n");
    let mut gw = Gateway::start(dir.path(), &store, &config);
    let ids: Vec<String> = (0..20).map(|i| format!("drain-{i}")).collect();
    for id in &ids {
        let r = crate::support::request(
            gw.public,
            "POST",
            "/v2/models/mlp/infer",
            &[("content-type", "application/json"), ("x-request-id", id)],
            crate::support::mlp_body(0.5).as_bytes(),
        );
        assert_eq!(r.status, 200);
    }
    // Headers promise 1000 bytes of body; 10 arrive. The request stays in flight until the
    // request timeout (30 s), far past the drain deadline.
    let mut stuck = std::net::TcpStream::connect(gw.public).expect("connect");
    stuck
        .write_all(b"POST /v2/models/mlp/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n{\"inputs\":")
        .expect("write");
    std::thread::sleep(Duration::from_millis(200));
    sigterm(&gw);
    let (status, took) = exit_within(&mut gw, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "a drain cut short by its deadline is still a clean stop");
    assert!(took >= DRAIN - Duration::from_millis(200), "did not wait for the stuck request: {took:?}");
    assert!(took < DRAIN + Duration::from_secs(1), "took {took:?} with drain_timeout 2 s");
    drop(stuck);
    let store_arg = store.to_str().expect("utf8");
    for id in &ids {
        let chain = crate::support::cli_json(&["lineage", "show", "--json", "--store", store_arg, id]);
        assert_eq!(chain["records"][0]["request_id"], id.as_str(), "{chain}");
    }
}

/// A log that goes to a file (stderr not a terminal) is plain text: no ANSI colour codes.
#[test]
fn logs_to_a_file_have_no_colour_codes() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = full_store(dir.path());
    let config = dir.path().join("plain.toml");
    std::fs::write(&config, FULL_CONFIG.replace("{store}", &store.display().to_string())).expect("write");
    let log = dir.path().join("switchyard.log");
    let mut child = std::process::Command::new(crate::support::bin())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).expect("listening line");
    assert!(line.contains("switchyard listening"), "{line}");
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(child.wait().expect("wait").success());
    let text = std::fs::read_to_string(&log).expect("read log");
    assert!(text.contains("version loaded"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in a log file: {text:?}");
}
