//! The public and admin handlers called as functions (no socket), on scripted versions (no ONNX
//! Runtime), a real registry and the real lineage writer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::app::App;
use crate::control::tests::{Fixture, fixture};
use crate::lineage::{self, LineageWriter};

/// A running app over the fixture, with lineage written to its registry.
fn app(f: &Fixture) -> (Arc<App>, LineageWriter) {
    let (sink, writer) = lineage::start(f.control.store().registry(), &f.config.lineage, "test").expect("lineage");
    (Arc::new(App::new(Arc::clone(&f.control), &f.config, Some(sink))), writer)
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Value,
}

async fn call(app: &Arc<App>, admin: bool, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).expect("request");
    let response = if admin {
        super::admin::handle(Arc::clone(app), req).await
    } else {
        super::public::handle(Arc::clone(app), req).await
    };
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer { status: parts.status, headers: parts.headers, body }
}

fn infer_body(values: [f32; 4]) -> String {
    json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": values}]}).to_string()
}

#[tokio::test]
async fn health_metadata_and_errors_of_the_public_port() {
    let f = fixture("champion = 1", "").await;
    let (app, _writer) = app(&f);
    let ready = call(&app, false, "GET", "/v2/health/ready", &[], "").await;
    assert_eq!((ready.status, &ready.body), (StatusCode::OK, &json!({"ready": true})));
    let meta = call(&app, false, "GET", "/v2/models/m", &[], "").await;
    assert_eq!(meta.body["versions"], json!(["1", "2", "3"]));
    assert_eq!(meta.body["inputs"][0]["name"], "input");
    let unknown = call(&app, false, "GET", "/v2/models/nope", &[], "").await;
    assert_eq!((unknown.status, &unknown.body["error"]), (StatusCode::NOT_FOUND, &json!("unknown model 'nope'")));
    let wrong_method = call(&app, false, "PUT", "/v2/models/m/infer", &[], "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    let pinned_missing = call(&app, false, "POST", "/v2/models/m/versions/9/infer", &[], &infer_body([0.0; 4])).await;
    assert_eq!(pinned_missing.status, StatusCode::NOT_FOUND);
    assert_eq!(pinned_missing.body["error"], "model 'm' has no loaded version 9 (loaded: 1, 2, 3)");
    assert!(pinned_missing.headers.contains_key("x-request-id"), "every answer names its request");
    assert_eq!(wrong_method.headers["allow"], "POST");
    let not_a_version = call(&app, false, "GET", "/v2/models/m/versions/newest", &[], "").await;
    assert_eq!(not_a_version.status, StatusCode::NOT_FOUND);
    assert!(not_a_version.body["error"].as_str().expect("message").contains("by number or alias (1, 2, 3)"));
    let on_admin = call(&app, true, "POST", "/v2/models/m/infer", &[], &infer_body([0.0; 4])).await;
    assert_eq!(on_admin.status, StatusCode::NOT_FOUND);
    assert!(on_admin.body["error"].as_str().expect("message").contains("are on the public port"), "{}", on_admin.body);
}

#[tokio::test]
async fn an_inference_is_answered_named_and_recorded() {
    let f = fixture("champion = 1", "").await;
    let (app, writer) = app(&f);
    let headers = [("x-request-id", "handler-1"), ("content-type", "application/json")];
    let r = call(&app, false, "POST", "/v2/models/m/infer", &headers, &infer_body([1.0, 2.0, 3.0, 4.0])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["outputs"][0]["data"], json!([1.0, 2.0, 3.0, 4.0]));
    assert_eq!(r.body["parameters"]["route"], "champion");
    assert_eq!(r.headers["x-model-version"], "1");
    assert_eq!(r.headers["x-model-route"], "champion");
    assert_eq!(r.headers["x-request-id"], "handler-1");
    let bad =
        call(&app, false, "POST", "/v2/models/m/infer", &[("x-request-id", "handler-2")], "{\"inputs\": 5}").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    writer.drain(Duration::from_secs(5)).await;
    let registry = f.control.store().registry();
    let answered = registry.lineage_chain("handler-1").await.expect("recorded");
    assert_eq!((answered.records[0].status, answered.records[0].version), (200, 1));
    // A body that does not decode is still recorded, once, with its class.
    let refused = registry.lineage_chain("handler-2").await.expect("recorded");
    assert_eq!(refused.records[0].status, 400);
    assert_eq!(refused.records[0].error_class.as_deref(), Some("bad_request"));
}

#[tokio::test]
async fn feedback_joins_the_record_of_an_answered_request() {
    let f = fixture("champion = 1", "").await;
    let (app, writer) = app(&f);
    let r =
        call(&app, false, "POST", "/v2/models/m/infer", &[("x-request-id", "fb-1")], &infer_body([0.0, 0.0, 9.0, 0.0]))
            .await;
    assert_eq!(r.status, StatusCode::OK);
    writer.drain(Duration::from_secs(5)).await;
    let item = json!({"request_id": "fb-1", "label": 2}).to_string();
    let stored = call(&app, false, "POST", "/v2/models/m/feedback", &[], &item).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.body);
    let again = call(&app, false, "POST", "/v2/models/m/feedback", &[], &item).await;
    assert_eq!(again.status, StatusCode::OK, "a duplicate is not an error: {}", again.body);
    let unknown = json!({"request_id": "never-seen", "label": 2}).to_string();
    assert_eq!(call(&app, false, "POST", "/v2/models/m/feedback", &[], &unknown).await.status, StatusCode::NOT_FOUND);
    let summary = f.control.store().registry().feedback_summary("m", 1, None).await.expect("summary");
    assert_eq!((summary.count, summary.judged, summary.correct), (1, 1, 1), "argmax 2 was right, stored once");
}

#[tokio::test]
async fn a_path_may_name_a_version_by_its_alias_and_the_champion_alias_follows_a_promotion() {
    let f = fixture("champion = 1\nchallengers = { 2 = 10 }", "").await;
    let (app, _writer) = app(&f);
    let unknown = call(&app, false, "POST", "/v2/models/m/versions/champion/infer", &[], &infer_body([0.0; 4])).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "no champion alias yet: {}", unknown.body);
    f.control.promote("m", 2, "ops", false).await.expect("promote");
    let r = call(&app, false, "POST", "/v2/models/m/versions/champion/infer", &[], &infer_body([0.0; 4])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["model_version"].as_str(), r.body["parameters"]["route"].as_str()), (Some("2"), Some("pinned")));
    let ready = call(&app, false, "GET", "/v2/models/m/versions/champion/ready", &[], "").await;
    assert_eq!(ready.body["version"], "2", "the resolved number");
}

#[tokio::test]
async fn operator_actions_through_the_admin_port() {
    let f = fixture("champion = 1\nchallengers = { 2 = 10 }", "").await;
    let (app, _writer) = app(&f);
    let state = call(&app, true, "GET", "/admin/models/m", &[], "").await;
    assert_eq!(state.body["routing"]["champion"], 1);
    let promoted = call(&app, true, "POST", "/admin/models/m/promote", &[], r#"{"version": 2, "actor": "ops"}"#).await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    assert_eq!(promoted.body["routing"]["champion"], 2);
    assert_eq!(promoted.body["origin"]["actor"], "ops");
    let again = call(&app, true, "POST", "/admin/models/m/promote", &[], r#"{"version": 2}"#).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["error"], "version 2 of model 'm' is already the champion");
    let weights = call(&app, true, "POST", "/admin/models/m/weights", &[], r#"{"challengers": {"3": 150}}"#).await;
    assert_eq!(weights.status, StatusCode::BAD_REQUEST);
    let missing = call(&app, true, "POST", "/admin/models/nope/rollback", &[], "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let reset = call(&app, true, "POST", "/admin/models/m/reset", &[], "").await;
    assert_eq!((reset.body["changed"].as_bool(), &reset.body["model"]["routing"]["champion"]), (Some(true), &json!(1)));
}

#[tokio::test]
async fn gates_refusals_carry_every_gate() {
    let f = fixture("champion = 1\nchallengers = { 2 = 10 }", "[model.promotion]\nmin_requests = 100").await;
    let (app, _writer) = app(&f);
    let refused = call(&app, true, "POST", "/admin/models/m/promote", &[], r#"{"version": 2}"#).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["gates"][0]["passed"], false, "{}", refused.body);
    assert!(refused.body["error"].as_str().expect("message").contains("1 of 1 gates failed"));
}

#[tokio::test]
async fn the_admin_token_is_required_when_set() {
    let f = fixture("champion = 1", "[server]\nadmin_token = \"0123456789abcdef0123\"").await;
    let (app, _writer) = app(&f);
    let denied = call(&app, true, "GET", "/admin/models", &[], "").await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.headers["www-authenticate"], "Bearer");
    let wrong = call(&app, true, "GET", "/admin/models", &[("authorization", "Bearer 0123456789abcdef0124")], "").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let allowed =
        call(&app, true, "GET", "/admin/models", &[("authorization", "Bearer 0123456789abcdef0123")], "").await;
    assert_eq!(allowed.status, StatusCode::OK);
    // The public port never asks for it.
    assert_eq!(call(&app, false, "GET", "/v2/health/live", &[], "").await.status, StatusCode::OK);
}

#[tokio::test]
async fn feedback_needs_a_token_once_one_is_set_and_an_exposed_port_needs_one_set() {
    let token = "feedback-token-0123456789";
    let f = fixture("champion = 1", &format!("[server]\nfeedback_token = \"{token}\"")).await;
    let (app, writer) = app(&f);
    let r = call(&app, false, "POST", "/v2/models/m/infer", &[("x-request-id", "auth-1")], &infer_body([1.0; 4])).await;
    assert_eq!(r.status, StatusCode::OK);
    writer.drain(Duration::from_secs(5)).await;
    let item = json!({"request_id": "auth-1", "label": 0}).to_string();
    let denied = call(&app, false, "POST", "/v2/models/m/feedback", &[], &item).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED, "{}", denied.body);
    assert!(denied.body["error"].as_str().expect("message").contains("feedback_token"));
    let bearer = format!("Bearer {token}");
    let stored = call(&app, false, "POST", "/v2/models/m/feedback", &[("authorization", &bearer)], &item).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.body);
    // Inference on the same port needs nothing.
    let r = call(&app, false, "POST", "/v2/models/m/infer", &[], &infer_body([1.0; 4])).await;
    assert_eq!(r.status, StatusCode::OK);

    let exposed = fixture("champion = 1", "[server]\nlisten = \"0.0.0.0:0\"").await;
    let (app, _writer) = self::app(&exposed);
    let refused = call(&app, false, "POST", "/v2/models/m/feedback", &[], &item).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body["error"].as_str().expect("message").contains("set [server] feedback_token"));
}

#[tokio::test]
async fn feedback_is_rate_limited_per_client() {
    let f = fixture("champion = 1", "[server]\nfeedback_rate = 1").await;
    let (app, _writer) = app(&f);
    let item = json!({"request_id": "nobody", "label": 0}).to_string();
    // A burst of twice the rate, then 429 with Retry-After.
    for _ in 0..2 {
        let r = call(&app, false, "POST", "/v2/models/m/feedback", &[], &item).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "allowed through, and the id is unknown: {}", r.body);
    }
    let limited = call(&app, false, "POST", "/v2/models/m/feedback", &[], &item).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    assert_eq!(limited.headers["retry-after"], "1");
}

#[tokio::test]
async fn the_registry_over_http_registers_lists_shows_stages_and_aliases() {
    use base64::Engine as _;
    let f = fixture("champion = 1\nchallengers = { 2 = 10 }", "").await;
    let (app, _writer) = app(&f);
    let upload = json!({
        "artifact": base64::engine::general_purpose::STANDARD.encode(b"echo-4"),
        "manifest": {"description": "from a pipeline", "metrics": {"auc": 0.91}},
        "actor": "pipeline",
    })
    .to_string();
    let created = call(&app, true, "POST", "/admin/registry/models/m/versions", &[], &upload).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!((created.body["version"].as_u64(), created.body["created"].as_bool()), (Some(4), Some(true)));
    let again = call(&app, true, "POST", "/admin/registry/models/m/versions", &[], &upload).await;
    assert_eq!(
        (again.status, again.body["created"].as_bool()),
        (StatusCode::OK, Some(false)),
        "same bytes, same version"
    );
    let refused = json!({"artifact": base64::engine::general_purpose::STANDARD.encode(b"refuse: junk")}).to_string();
    let bad = call(&app, true, "POST", "/admin/registry/models/m/versions", &[], &refused).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let bad_manifest = json!({"artifact": "ZWNoby01", "manifest": {"bogus": 1}}).to_string();
    assert_eq!(
        call(&app, true, "POST", "/admin/registry/models/m/versions", &[], &bad_manifest).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(f.control.store().registry().versions("m").await.expect("versions").len(), 4, "nothing more written");

    let listed = call(&app, true, "GET", "/admin/registry/models", &[], "").await;
    assert_eq!(listed.body[0]["versions"], 4);
    let shown = call(&app, true, "GET", "/admin/registry/models/m/versions/4", &[], "").await;
    assert_eq!(shown.body["provenance"]["metrics"]["auc"], 0.91);
    assert_eq!(shown.body["events"][0]["actor"], "pipeline");

    // Archiving a version this gateway serves is refused, naming how it is served; force does it.
    let archive = |force: bool| json!({"stage": "archived", "force": force}).to_string();
    let served = call(&app, true, "POST", "/admin/registry/models/m/versions/2/stage", &[], &archive(false)).await;
    assert_eq!(served.status, StatusCode::CONFLICT, "{}", served.body);
    assert!(served.body["error"].as_str().expect("message").contains("(as challenger)"), "{}", served.body);
    let idle = call(&app, true, "POST", "/admin/registry/models/m/versions/4/stage", &[], &archive(false)).await;
    assert_eq!(idle.status, StatusCode::OK, "version 4 is not served: {}", idle.body);
    let alias = call(&app, true, "POST", "/admin/registry/models/m/aliases/stable", &[], r#"{"version": 3}"#).await;
    assert_eq!(alias.status, StatusCode::OK, "{}", alias.body);
    let removed = call(&app, true, "DELETE", "/admin/registry/models/m/aliases/stable", &[], "{}").await;
    assert_eq!(removed.status, StatusCode::CONFLICT, "version 3 is loaded here: {}", removed.body);
    let forced = call(&app, true, "DELETE", "/admin/registry/models/m/aliases/stable", &[], r#"{"force": true}"#).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.body);
    assert_eq!(call(&app, true, "GET", "/admin/registry/models/nope", &[], "").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn two_versions_compared_through_the_admin_port() {
    let f = fixture("champion = 1", "").await;
    let (app, writer) = app(&f);
    for _ in 0..3 {
        let r = call(&app, false, "POST", "/v2/models/m/versions/2/infer", &[], &infer_body([1.0; 4])).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    writer.drain(Duration::from_secs(5)).await;
    let d = call(&app, true, "GET", "/admin/models/m/diff?a=1&b=2", &[], "").await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!((d.body["a"]["version"].as_u64(), d.body["b"]["version"].as_u64()), (Some(1), Some(2)));
    assert_eq!(d.body["live"]["b"]["requests"], 3);
    assert_eq!(d.body["live"]["a"]["requests"], 0);
    assert_eq!(d.body["signature"]["compatible"], true);
    assert_eq!(call(&app, true, "GET", "/admin/models/m/diff?a=1", &[], "").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(call(&app, true, "GET", "/admin/models/m/diff?a=1&b=9", &[], "").await.status, StatusCode::NOT_FOUND);
}
