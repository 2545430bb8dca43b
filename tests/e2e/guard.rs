//! The guard on real faults: the `slow` fixture (7 to 20 ms a call, by CPU) breaches a p99 threshold under
//! concurrent load, the `faulty` fixture fails for real on some inputs. Traffic must move to the
//! backup (or away from a challenger) without one failed request caused by the move, the trip
//! must be recorded and survive a restart, and an operator reset must bring the config back.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Gateway, Sample, admin_post, lineage, load_until, metric_value, mlp_body, register};

/// Interval of the guards below: the trip must come within two of them after `min_requests`.
const INTERVAL: Duration = Duration::from_millis(500);

fn guarded(model: &str, routing: &str, guard: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[store]
path = "{{store}}"
[[model]]
name = "{model}"
[model.routing]
{routing}
[model.guard]
window = "10s"
interval = "500ms"
cooldown = "60s"
min_requests = 20
{guard}
"#
    )
}

fn model_state(gw: &Gateway, model: &str) -> Value {
    crate::support::admin(gw).model(model).expect("model state")
}

/// Index of the first sample answered by `version`, if any.
fn first_from(samples: &[Sample], version: u32) -> Option<usize> {
    samples.iter().position(|s| s.version == Some(version))
}

fn slow_store(dir: &Path) -> std::path::PathBuf {
    let store = dir.join("store");
    register(&store, "ranker", "slow", None); // v1: 7 to 20 ms a call, by CPU
    register(&store, "ranker", "mlp_v1", Some("mlp_v1")); // v2: same answers, microseconds
    store
}

#[test]
fn a_slow_champion_trips_to_the_warm_backup_without_a_failed_request_and_stays_tripped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = slow_store(dir.path());
    // 20 ms: four clients queue on one session, so even where a call takes 7 ms (a fast CPU)
    // p99 is about 28 ms; the backup answers in well under a millisecond.
    let config = guarded("ranker", "champion = 1\nbackup = [2]", "p99_ms = 20");
    let gw = Gateway::start(dir.path(), &store, &config);

    // Four clients against one slow session: queueing puts p99 well above 20 ms.
    let samples = load_until(
        gw.public,
        "/v2/models/ranker/infer",
        4,
        |t, i| mlp_body((t * 1000 + i) as f32 / 1e4),
        |s| s.iter().filter(|x| x.version == Some(2)).count() >= 50 || s.len() >= 2000,
    );
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(failed.is_empty(), "{} non-2xx answers, first: {:?}", failed.len(), failed.first());
    let switch = first_from(&samples, 2).expect("traffic never moved to the backup");
    // Requests already queued on v1 at the swap finish there (at most one per other client);
    // everything sent after it is answered by the backup, as `backup`.
    let stragglers = samples[switch..].iter().filter(|s| s.version == Some(1)).count();
    assert!(stragglers <= 3, "{stragglers} answers from v1 after the swap");
    let last_v1 = samples.iter().rev().find(|s| s.version == Some(1)).expect("v1 answered").at;
    assert!(last_v1.saturating_duration_since(samples[switch].at) < Duration::from_secs(1), "the trip holds");
    assert!(samples[switch..].iter().filter(|s| s.version == Some(2)).all(|s| s.route.as_deref() == Some("backup")));
    // Within two evaluation intervals of the champion reaching min_requests (plus scheduling slack).
    let judged_from = samples.iter().filter(|s| s.version == Some(1)).nth(19).expect("20 requests on v1").at;
    let took = samples[switch].at.duration_since(judged_from);
    assert!(took <= 2 * INTERVAL + Duration::from_millis(400), "trip took {took:?} after min_requests");

    // The event holds the measured p99 and the thresholds; admin says why routing is what it is.
    let state = model_state(&gw, "ranker");
    assert_eq!(state["routing"]["champion"], 2, "{state}");
    assert_eq!(state["routing"]["champion_route"], "backup");
    assert_eq!(state["origin"]["kind"], "guard_trip");
    let detail = &state["origin"]["detail"];
    assert_eq!((detail["from"].as_u64(), detail["to"].as_u64()), (Some(1), Some(2)));
    assert_eq!(detail["reason"], "p99");
    assert!(detail["measured"]["p99_ms"].as_f64().expect("p99") > 20.0, "{detail}");
    assert!(detail["measured"]["requests"].as_u64().expect("requests") >= 20);
    assert_eq!(detail["thresholds"]["p99_ms"], 20.0);
    assert!(state["origin"]["event_id"].as_i64().expect("event id") > 0);
    assert_eq!(
        metric_value(
            &gw,
            "switchyard_guard_trips_total",
            &[("model", "ranker"), ("from", "1"), ("to", "2"), ("reason", "p99")]
        ),
        Some(1.0)
    );
    // Lineage shows the route change at the trip.
    let last_v1 = samples[..switch].iter().rev().find(|s| s.version == Some(1)).expect("a v1 answer");
    let before = lineage(&gw, last_v1.request_id.as_deref().expect("id"), 1);
    let after = lineage(&gw, samples[switch].request_id.as_deref().expect("id"), 1);
    assert_eq!(
        (before["records"][0]["version"].as_u64(), before["records"][0]["route"].as_str()),
        (Some(1), Some("champion"))
    );
    assert_eq!(
        (after["records"][0]["version"].as_u64(), after["records"][0]["route"].as_str()),
        (Some(2), Some("backup"))
    );
    let reason = after["records"][0]["reason"].as_str().expect("reason");
    assert!(reason.starts_with("backup after guard trip of version 1 (p99 "), "{reason}");

    // A restart keeps the trip in force until reset.
    assert!(gw.terminate().success());
    let gw = Gateway::start(dir.path(), &store, &config);
    let state = model_state(&gw, "ranker");
    assert_eq!(
        (state["routing"]["champion"].as_u64(), state["origin"]["kind"].as_str()),
        (Some(2), Some("guard_trip"))
    );
    let r = crate::support::request(gw.public, "POST", "/v2/models/ranker/infer", &[], mlp_body(0.5).as_bytes());
    assert_eq!((r.status, r.header("x-model-version")), (200, Some("2")));

    // The operator resets it: the configured routing serves again, and says so.
    let admin = crate::support::admin(&gw);
    let reset = admin.reset("ranker", "alice").expect("reset");
    assert_eq!(reset["changed"], true);
    assert_eq!(
        (reset["model"]["routing"]["champion"].as_u64(), reset["model"]["origin"]["kind"].as_str()),
        (Some(1), Some("config"))
    );
    let again = admin.reset("ranker", "alice").expect("reset again");
    assert_eq!(again["changed"], false, "a second reset has nothing to do");
    let r = crate::support::request(gw.public, "POST", "/v2/models/ranker/infer", &[], mlp_body(0.5).as_bytes());
    assert_eq!((r.status, r.header("x-model-route")), (200, Some("champion")));
    assert!(gw.terminate().success());
    // The history keeps both: the trip (against v1, by the guard) and the reset (by alice).
    let events =
        crate::support::cli_json(&["models", "show", "--json", "--store", store.to_str().expect("utf8"), "ranker:1"]);
    let kinds: Vec<&str> =
        events["events"].as_array().expect("events").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"guard_trip"), "{kinds:?}");
}

#[test]
fn a_failing_champion_trips_on_error_rate_and_the_failures_before_are_real_model_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    register(&store, "scorer", "faulty", None); // v1: fails when input[:, 0] >= 1000
    register(&store, "scorer", "mlp_v2", Some("mlp_v2")); // v2: same answers, never fails
    let config = guarded("scorer", "champion = 1\nbackup = [2]", "max_error_rate = 0.2");
    let gw = Gateway::start(dir.path(), &store, &config);

    // Every third request carries an input the faulty model fails on: a 33% error rate.
    const CLIENTS: usize = 3;
    let bad = |t: usize, i: usize| (t + i).is_multiple_of(3);
    let samples = load_until(
        gw.public,
        "/v2/models/scorer/infer",
        CLIENTS,
        |t, i| mlp_body(if bad(t, i) { 5000.0 } else { 0.25 }),
        |s| s.iter().filter(|x| x.version == Some(2)).count() >= 60 || s.len() >= 3000,
    );
    let switch = samples.iter().position(|s| s.version == Some(2)).expect("traffic never moved to the backup");
    let failures: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(!failures.is_empty(), "the faulty model failed on nothing before the trip");
    for f in &failures {
        // Real model failures: 500 with ONNX Runtime's message, recorded as model_error on v1.
        assert_eq!(f.status, 500);
        let body: Value = serde_json::from_slice(&f.body).expect("JSON error");
        assert!(body["error"].as_str().expect("message").contains("model execution failed"), "{body}");
        let rec = &lineage(&gw, f.request_id.as_deref().expect("id"), 1)["records"][0];
        assert_eq!((rec["version"].as_u64(), rec["error_class"].as_str()), (Some(1), Some("model_error")), "{rec}");
    }
    // The swap itself fails nothing and v2 handles every input: once the first backup answer is
    // in, the only failures left are v1 requests already in flight when the routing changed
    // (each checked above to be v1's own model error), at most one per client; a swap that kept
    // routing to v1 would fail a third of the requests after it.
    let late: Vec<&Sample> = samples.iter().filter(|s| s.at > samples[switch].at).collect();
    let late_failures = late.iter().filter(|s| s.status != 200).count();
    assert!(late_failures <= CLIENTS, "{late_failures} failures after the swap, of {} requests", late.len());
    assert!(late.len() >= 50, "too few requests after the swap to tell: {}", late.len());
    let state = model_state(&gw, "scorer");
    assert_eq!(state["origin"]["detail"]["reason"], "error_rate", "{state}");
    assert!(state["origin"]["detail"]["measured"]["error_rate"].as_f64().expect("rate") > 0.2);
    assert!(gw.terminate().success());
}

#[test]
fn a_breaching_challenger_is_ejected_while_the_champion_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = slow_store(dir.path());
    let config = guarded("ranker", "champion = 2\nchallengers = { 1 = 40 }", "p99_ms = 50");
    let gw = Gateway::start(dir.path(), &store, &config);
    let samples = load_until(
        gw.public,
        "/v2/models/ranker/infer",
        6,
        |_, i| mlp_body(i as f32 / 100.0),
        |s| {
            let state_changed = s.len() % 50 == 0 && model_state(&gw, "ranker")["origin"]["kind"] == "guard_trip";
            state_changed || s.len() >= 3000
        },
    );
    assert!(samples.iter().all(|s| s.status == 200), "no request fails");
    let state = model_state(&gw, "ranker");
    assert_eq!(state["origin"]["kind"], "guard_trip", "{state}");
    assert_eq!(state["origin"]["detail"]["role"], "challenger");
    assert_eq!(state["routing"]["champion"], 2);
    assert_eq!(state["routing"]["champion_route"], "champion", "the champion is not replaced");
    assert_eq!(state["routing"]["challengers"], json!([]), "the challenger's weight went to the champion");
    assert_eq!(state["ejected"], json!([1]));
    // From now on every unpinned request is the champion's.
    let after = load_until(gw.public, "/v2/models/ranker/infer", 2, |_, _| mlp_body(0.1), |s| s.len() >= 100);
    assert!(after.iter().all(|s| s.version == Some(2) && s.route.as_deref() == Some("champion")));
    assert!(gw.terminate().success());
}

#[test]
fn operators_promote_roll_back_set_weights_and_every_action_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::support::full_store(dir.path());
    let config = guarded("mlp", "champion = 1\nchallengers = { 2 = 10 }\nshadows = { 3 = 5 }", "p99_ms = 5000");
    let gw = Gateway::start(dir.path(), &store, &config);
    let post = |path: &str, body: Value| admin_post(&gw, path, &body);
    let admin = crate::support::admin(&gw);

    let m = admin.promote("mlp", 2, "alice").expect("promote");
    assert_eq!((m["routing"]["champion"].as_u64(), m["previous_champion"].as_u64()), (Some(2), Some(1)));
    assert_eq!(m["routing"]["challengers"], json!([]));
    assert_eq!((m["origin"]["kind"].as_str(), m["origin"]["actor"].as_str()), (Some("operator"), Some("alice")));

    let weights = admin.set_weights("mlp", &[(1, 25.0)], "bob").expect("weights");
    assert_eq!(weights["routing"]["challengers"], json!([{"version": 1, "weight_percent": 25.0}]));
    let rolled = admin.rollback("mlp", "carol").expect("rollback");
    assert_eq!((rolled["routing"]["champion"].as_u64(), rolled["previous_champion"].as_u64()), (Some(1), Some(2)));
    assert_eq!(rolled["routing"]["challengers"], json!([]), "the old champion left the split");

    // Refusals change nothing and say why: through the client, and as raw bodies the client
    // would never send.
    for (version, needle) in [(9, "not loaded"), (1, "already the champion"), (3, "is a shadow")] {
        let (status, body) = crate::support::refused(admin.promote("mlp", version, "dave"));
        assert_eq!(status, 409, "{body}");
        assert!(body["error"].as_str().expect("error").contains(needle), "{body}");
    }
    let (status, body) = crate::support::refused(admin.rollback("nope", "dave"));
    assert_eq!((status, &body["error"]), (404, &json!("unknown model 'nope'")));
    for (path, body, status, needle) in [
        ("/admin/models/mlp/promote", json!({}), 400, "version"),
        ("/admin/models/mlp/weights", json!({"challengers": {"2": 70, "3": 40}}), 400, "shadow"),
        ("/admin/models/mlp/weights", json!({"challengers": {"2": 170}}), 400, "between 0 and 100"),
        ("/admin/models/mlp/weights", json!({"challengers": {"x": 1}}), 400, "version number"),
    ] {
        let r = post(path, body.clone());
        assert_eq!(r.status, status, "{path} {body}: {}", String::from_utf8_lossy(&r.body));
        assert!(r.json()["error"].as_str().expect("error").contains(needle), "{path} {body}: {}", r.json());
    }
    let r = crate::support::request(gw.admin, "POST", "/admin/models/mlp/weights", &[], b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(model_state(&gw, "mlp")["routing"], rolled["routing"], "refused actions changed nothing");

    // Every action is an event with its actor; a restart serves the operator's routing.
    assert!(gw.terminate().success());
    let events =
        crate::support::cli_json(&["models", "show", "--json", "--store", store.to_str().expect("utf8"), "mlp:1"]);
    let actors: Vec<(&str, &str)> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| Some((e["kind"].as_str()?, e["actor"].as_str()?)))
        .collect();
    assert!(actors.contains(&("rolled_back", "carol")), "{actors:?}");
    let gw = Gateway::start(dir.path(), &store, &config);
    assert_eq!(model_state(&gw, "mlp")["origin"]["action"], "rolled_back");
    assert!(gw.terminate().success());
}

#[test]
fn with_no_healthy_backup_the_guard_says_so_loudly_and_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = slow_store(dir.path());
    // The only backup is the breaching champion itself: there is nowhere healthy to go.
    let config = guarded("ranker", "champion = 1\nbackup = [1]", "p99_ms = 20");
    let gw = Gateway::start(dir.path(), &store, &config);
    let samples = load_until(
        gw.public,
        "/v2/models/ranker/infer",
        4,
        |_, i| mlp_body(i as f32 / 100.0),
        |s| (s.len() % 20 == 0 && !model_state(&gw, "ranker")["guard_alarm"].is_null()) || s.len() >= 1500,
    );
    assert!(samples.iter().all(|s| s.status == 200 && s.version == Some(1)), "the least bad option keeps serving");
    let state = model_state(&gw, "ranker");
    assert_eq!(state["guard_alarm"]["no_healthy_backup"], true, "{state}");
    assert_eq!(state["routing"]["champion"], 1);
    assert_eq!(metric_value(&gw, "switchyard_guard_no_healthy_backup", &[("model", "ranker")]), Some(1.0));
    assert!(gw.terminate().success());
    let events =
        crate::support::cli_json(&["models", "show", "--json", "--store", store.to_str().expect("utf8"), "ranker:1"]);
    let raised =
        events["events"].as_array().expect("events").iter().filter(|e| e["kind"] == "guard_no_healthy_backup").count();
    assert_eq!(raised, 1, "raised once, not every interval: {events}");
}

#[test]
fn the_admin_cli_steers_a_running_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::support::full_store(dir.path());
    let config = guarded("mlp", "champion = 1\nchallengers = { 2 = 10 }", "p99_ms = 5000");
    let gw = Gateway::start(dir.path(), &store, &config);
    let url = format!("http://{}", gw.admin);
    let admin = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::bin())
            .args(["admin", "--url", &url, "--json"])
            .args(args)
            .output()
            .expect("run switchyard admin");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let json_of = |text: &str| -> Value { serde_json::from_str(text).expect("JSON") };

    let (code, out, err) = admin(&["promote", "mlp", "2", "--actor", "alice"]);
    assert_eq!(code, Some(0), "{err}");
    let m = json_of(&out);
    assert_eq!((m["routing"]["champion"].as_u64(), m["origin"]["actor"].as_str()), (Some(2), Some("cli:alice")));
    let (code, out, err) = admin(&["weights", "mlp", "1=20"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json_of(&out)["routing"]["challengers"], json!([{"version": 1, "weight_percent": 20.0}]));
    let (code, out, _) = admin(&["rollback", "mlp"]);
    assert_eq!((code, json_of(&out)["routing"]["champion"].as_u64()), (Some(0), Some(1)));
    let (code, _, err) = admin(&["promote", "mlp", "9"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("409") && err.contains("not loaded"), "{err}");
    let (code, out, _) = admin(&["reset", "mlp"]);
    assert_eq!((code, json_of(&out)["changed"].as_bool()), (Some(0), Some(true)));
    let (code, out, err) = admin(&["reload"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json_of(&out)["result"], "ok");

    // A request id with characters that need escaping resolves through the CLI.
    let r = crate::support::request(
        gw.public,
        "POST",
        "/v2/models/mlp/infer",
        &[("x-request-id", "order/42#7")],
        mlp_body(0.3).as_bytes(),
    );
    assert_eq!((r.status, r.header("x-request-id")), (200, Some("order/42#7")));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out, err) = admin(&["lineage", "order/42#7"]);
        if code == Some(0) {
            assert_eq!(json_of(&out)["records"][0]["request_id"], "order/42#7");
            break;
        }
        assert!(err.contains("404") && Instant::now() < deadline, "{err}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing listening: one clear line.
    drop(gw);
    let (code, _, err) = admin(&["status"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot reach the admin API"), "{err}");
}
