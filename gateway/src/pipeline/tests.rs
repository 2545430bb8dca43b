//! The pipeline without a socket and without ONNX Runtime: scripted versions served by the real
//! serving and control code, lineage written by the real writer to a real registry.

use std::time::{Duration, Instant, SystemTime};

use http::HeaderMap;
use policy::router::{Reason, Route};
use protocol::request_id::RequestId;
use protocol::tensor::{Tensor, TensorData};
use protocol::v2::decode::InferRequest;
use serde_json::Map;
use settings::LineageConfig;

use super::{Outcome, Pipeline, PipelineError};
use crate::control::tests::fixture;
use crate::engine::InferError;
use crate::lineage::{self, LineageWriter};
use crate::serving::ServingState;

fn request(values: [f32; 4]) -> InferRequest {
    InferRequest {
        id: None,
        inputs: vec![Tensor { name: "input".into(), shape: vec![1, 4], data: TensorData::Fp32(values.to_vec()) }],
        outputs: None,
        binary_data_output: false,
        parameters: Map::new(),
    }
}

fn id(text: &str) -> RequestId {
    RequestId::from_client(text.as_bytes()).expect("a valid id")
}

/// A pipeline that writes lineage to the fixture's registry.
fn pipeline(store: &model_store::ModelStore) -> (Pipeline, LineageWriter) {
    let (sink, writer) = lineage::start(store.registry(), &LineageConfig::default(), "test").expect("lineage");
    (Pipeline::new(Some(sink), Duration::from_secs(5)), writer)
}

fn requests_in_window(state: &ServingState, version: u32) -> (u64, u64) {
    let s = state.models["m"].ready(version).expect("loaded").window.load().stats(Instant::now());
    (s.requests, s.errors)
}

#[tokio::test]
async fn a_request_is_decided_run_and_recorded_once() {
    let f = fixture("champion = 1\nchallengers = { 2 = 100 }\nsticky_header = \"x-user\"", "").await;
    let (pipeline, writer) = pipeline(f.control.store());
    let state = f.control.snapshot();
    let model = &state.models["m"];
    let mut headers = HeaderMap::new();
    headers.insert("x-user", "u-17".parse().expect("header"));
    let mut run = pipeline
        .decide(model, None, &headers, id("req-1"), Instant::now(), SystemTime::now())
        .expect("a version is loaded");
    // All the weight is on the challenger; the sticky key's hash is the reason, never the key.
    assert_eq!((run.choice.decision.version, run.choice.decision.route), (2, Route::Challenger));
    assert!(matches!(run.choice.decision.reason, Reason::StickyKey(_)));
    let answer = run.execute(request([0.5, 1.0, 1.5, 2.0])).await.expect("answered");
    assert_eq!(answer.outputs[0].name, "output");
    assert_eq!(answer.outputs[0].data, TensorData::Fp32(vec![0.5, 1.0, 1.5, 2.0]));
    run.finish(Outcome::OK).await.expect("recorded");
    assert_eq!(requests_in_window(&state, 2), (1, 0), "recorded in the guard window once");
    writer.drain(Duration::from_secs(5)).await;
    let chain = f.control.store().registry().lineage_chain("req-1").await.expect("recorded");
    assert_eq!(chain.records.len(), 1);
    let record = &chain.records[0];
    assert_eq!((record.version, record.route.as_str(), record.status), (2, "challenger", 200));
    assert!(record.reason.starts_with("sticky key "), "{}", record.reason);
    assert!(!record.reason.contains("u-17"), "the key itself is never stored");
}

#[tokio::test]
async fn pinned_versions_and_their_errors() {
    let f = fixture("champion = 1\nshadows = { 3 = 100 }", "").await;
    let pipeline = Pipeline::new(None, Duration::from_secs(5));
    let state = f.control.snapshot();
    let model = &state.models["m"];
    let none = HeaderMap::new();
    let run = pipeline.decide(model, Some(3), &none, id("p"), Instant::now(), SystemTime::now()).expect("pinned");
    assert_eq!((run.choice.decision.version, run.choice.decision.route), (3, Route::Pinned));
    assert!(run.shadows.is_empty(), "a pinned request is not mirrored");
    let err = pipeline.decide(model, Some(9), &none, id("p"), Instant::now(), SystemTime::now()).expect_err("9");
    assert!(matches!(err, PipelineError::VersionNotServed { version: 9, .. }));
    assert_eq!((err.status(), err.class()), (404, "not_found"));
}

#[tokio::test]
async fn bad_inputs_and_model_failures_are_told_apart_and_only_failures_count_against_the_version() {
    let f = fixture("champion = 1", "").await;
    let pipeline = Pipeline::new(None, Duration::from_secs(5));
    let state = f.control.snapshot();
    let model = &state.models["m"];
    let none = HeaderMap::new();

    let mut run = pipeline.decide(model, None, &none, id("bad"), Instant::now(), SystemTime::now()).expect("run");
    let mut wrong = request([0.0; 4]);
    wrong.inputs[0].name = "nope".into();
    let err = run.execute(wrong).await.expect_err("unknown input");
    assert!(matches!(err, PipelineError::Input(_)), "{err}");
    assert_eq!(err.status(), 400);
    run.finish(Outcome { status: err.status(), error_class: Some(err.class()) }).await.expect("recorded");

    let mut run = pipeline.decide(model, None, &none, id("nan"), Instant::now(), SystemTime::now()).expect("run");
    let err = run.execute(request([f32::NAN, 0.0, 0.0, 0.0])).await.expect_err("the model fails");
    assert!(matches!(err, PipelineError::Engine(InferError::Model(_))), "{err}");
    assert_eq!((err.status(), err.class()), (500, "model_error"));
    run.finish(Outcome { status: err.status(), error_class: Some(err.class()) }).await.expect("recorded");

    assert_eq!(requests_in_window(&state, 1), (1, 1), "the client's 400 says nothing of the version; the 500 does");
}

#[tokio::test]
async fn an_unknown_requested_output_is_refused_before_the_model_runs() {
    let f = fixture("champion = 1", "").await;
    let pipeline = Pipeline::new(None, Duration::from_secs(5));
    let state = f.control.snapshot();
    let mut run = pipeline
        .decide(&state.models["m"], None, &HeaderMap::new(), id("o"), Instant::now(), SystemTime::now())
        .expect("run");
    let mut r = request([0.0; 4]);
    r.outputs = Some(vec![protocol::v2::decode::RequestedOutput { name: "nope".into(), binary_data: None }]);
    let err = run.execute(r).await.expect_err("refused");
    assert_eq!(err.to_string(), "unknown output 'nope' (the model has output)");
    assert_eq!(state.models["m"].ready(1).expect("v1").instance.stats.snapshot().inference_count, 0, "never ran");
}

#[tokio::test]
async fn a_malformed_timeout_parameter_is_a_bad_request() {
    let f = fixture("champion = 1", "").await;
    let pipeline = Pipeline::new(None, Duration::from_secs(5));
    let state = f.control.snapshot();
    let mut run = pipeline
        .decide(&state.models["m"], None, &HeaderMap::new(), id("t"), Instant::now(), SystemTime::now())
        .expect("run");
    let mut r = request([0.0; 4]);
    r.parameters.insert("timeout".into(), serde_json::json!("soon"));
    let err = run.execute(r).await.expect_err("refused");
    assert!(err.to_string().contains("parameter 'timeout' must be a whole number of microseconds"), "{err}");
}

#[tokio::test]
async fn shadows_are_recorded_like_primaries_with_their_comparison() {
    let f = fixture("champion = 1\nshadows = { 3 = 100 }", "").await;
    let (pipeline, writer) = pipeline(f.control.store());
    let state = f.control.snapshot();
    let mut run = pipeline
        .decide(&state.models["m"], None, &HeaderMap::new(), id("mirrored"), Instant::now(), SystemTime::now())
        .expect("run");
    run.execute(request([1.0, 2.0, 3.0, 4.0])).await.expect("answered");
    run.finish(Outcome::OK).await.expect("recorded");
    assert!(pipeline.drain_shadows(tokio::time::Instant::now() + Duration::from_secs(5)).await);
    assert_eq!(requests_in_window(&state, 3), (1, 0), "the shadow's own window");
    let shadow = state.models["m"].ready(3).expect("v3");
    assert_eq!(shadow.shadow_rows.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(shadow.shadow_agree.load(std::sync::atomic::Ordering::Relaxed), 1, "an echo agrees with an echo");
    writer.drain(Duration::from_secs(5)).await;
    let chain = f.control.store().registry().lineage_chain("mirrored").await.expect("recorded");
    assert_eq!(chain.records.len(), 2, "{:?}", chain.records);
    let copy = chain.records.iter().find(|r| r.shadow_of.is_some()).expect("the shadow's record");
    assert_eq!((copy.version, copy.shadow_of, copy.status), (3, Some(1), 200));
    assert_eq!(copy.comparison.as_ref().expect("compared")["max_abs_diff"], 0.0);
}

#[tokio::test]
async fn with_ack_after_commit_an_answer_waits_for_its_record_and_is_withheld_without_it() {
    let f = fixture("champion = 1", "").await;
    // A linger far longer than the test: only the ack makes the writer commit at once.
    let config = LineageConfig {
        ack: settings::LineageAck::AfterCommit,
        ack_timeout: Duration::from_secs(5),
        flush_interval: Duration::from_secs(30),
        ..LineageConfig::default()
    };
    let (sink, writer) = lineage::start(f.control.store().registry(), &config, "test").expect("lineage");
    let pipeline = Pipeline::new(Some(sink), Duration::from_secs(5));
    let state = f.control.snapshot();
    let model = &state.models["m"];
    let started = Instant::now();
    let mut run = pipeline
        .decide(model, None, &HeaderMap::new(), id("acked"), Instant::now(), SystemTime::now())
        .expect("decided");
    run.execute(request([1.0, 2.0, 3.0, 4.0])).await.expect("answered");
    run.finish(Outcome::OK).await.expect("committed");
    assert!(started.elapsed() < Duration::from_secs(5), "no linger while an answer waits");
    // Committed before `finish` returned: readable now, before any drain.
    let chain = f.control.store().registry().lineage_chain("acked").await.expect("committed already");
    assert_eq!(chain.records.len(), 1);

    // Once the writer is gone, a record cannot be committed: the answer is withheld.
    writer.drain(Duration::from_secs(5)).await;
    let mut run = pipeline
        .decide(model, None, &HeaderMap::new(), id("lost"), Instant::now(), SystemTime::now())
        .expect("decided");
    run.execute(request([1.0, 2.0, 3.0, 4.0])).await.expect("answered");
    let err = run.finish(Outcome::OK).await.expect_err("not committed");
    assert!(err.to_string().contains("answer is withheld"), "{err}");
}
