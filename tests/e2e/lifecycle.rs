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
