//! The gRPC service called as functions (no socket), on scripted versions (no ONNX Runtime), a
//! real registry and the real lineage writer: what it answers, the metadata that names who
//! answered, the codes of what it refuses, and that every run is recorded once, joinable by
//! feedback over REST.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use protocol::grpc::inference::model_infer_request::InferInputTensor;
use protocol::grpc::inference::*;
use tonic::{Code, Request};

use super::Inference;
use super::pb::grpc_inference_service_server::GrpcInferenceService;
use crate::app::App;
use crate::control::tests::{Fixture, fixture};
use crate::lineage::{self, LineageWriter};

fn app(f: &Fixture) -> (Arc<App>, LineageWriter) {
    let (sink, writer) = lineage::start(f.control.store().registry(), &f.config.lineage, "test").expect("lineage");
    (Arc::new(App::new(Arc::clone(&f.control), &f.config, Some(sink))), writer)
}

fn typed(version: &str, values: Vec<f32>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "m".into(),
        model_version: version.into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, values.len() as i64],
            contents: Some(InferTensorContents { fp32_contents: values, ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn with_id(msg: ModelInferRequest, id: &str) -> Request<ModelInferRequest> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert("x-request-id", id.parse().expect("ascii"));
    req
}

#[tokio::test]
async fn an_inference_is_answered_named_and_recorded() {
    let f = fixture("champion = 1", "").await;
    let (app, writer) = app(&f);
    let service = Inference::new(Arc::clone(&app));
    let r = service.model_infer(with_id(typed("", vec![1.0, 2.0, 3.0, 4.0]), "grpc-1")).await.expect("answered");
    let md = r.metadata().clone();
    let r = r.into_inner();
    assert_eq!(r.outputs[0].contents.as_ref().map(|c| c.fp32_contents.clone()), Some(vec![1.0, 2.0, 3.0, 4.0]));
    assert_eq!((r.outputs[0].name.as_str(), r.model_version.as_str()), ("output", "1"));
    assert_eq!(md.get("x-model-version").and_then(|v| v.to_str().ok()), Some("1"));
    assert_eq!(md.get("x-model-route").and_then(|v| v.to_str().ok()), Some("champion"));
    assert_eq!(md.get("x-request-id").and_then(|v| v.to_str().ok()), Some("grpc-1"));
    // Raw in, raw out.
    let mut raw = typed("2", vec![]);
    raw.inputs[0].contents = None;
    raw.inputs[0].shape = vec![1, 4];
    raw.raw_input_contents = vec![[0.5f32; 4].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>().into()];
    let r = service.model_infer(Request::new(raw)).await.expect("raw").into_inner();
    assert_eq!(r.raw_output_contents, vec![[0.5f32; 4].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()]);
    assert_eq!(r.model_version, "2");

    // A request that does not decode is refused with its code and still recorded, once.
    let mut bad = typed("", vec![1.0, 2.0, 3.0, 4.0]);
    bad.raw_input_contents = vec![vec![0; 16].into(), vec![0; 16].into()];
    let e = service.model_infer(with_id(bad, "grpc-2")).await.expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(e.metadata().get("x-request-id").and_then(|v| v.to_str().ok()), Some("grpc-2"));
    // Refusals before a version is chosen are not runs.
    let e = service.model_infer(Request::new(typed("9", vec![0.0; 4]))).await.expect_err("no version 9");
    assert_eq!(e.code(), Code::NotFound);
    let mut unknown = typed("", vec![0.0; 4]);
    unknown.model_name = "nope".into();
    assert_eq!(service.model_infer(Request::new(unknown)).await.expect_err("unknown").code(), Code::NotFound);
    let e = service.model_infer(Request::new(typed("", vec![0.0; 3]))).await.expect_err("wrong shape");
    assert_eq!(e.code(), Code::InvalidArgument, "the pipeline's own check: {e:?}");

    writer.drain(Duration::from_secs(5)).await;
    let registry = f.control.store().registry();
    let answered = registry.lineage_chain("grpc-1").await.expect("recorded");
    assert_eq!((answered.records.len(), answered.records[0].status, answered.records[0].version), (1, 200, 1));
    let refused = registry.lineage_chain("grpc-2").await.expect("recorded");
    assert_eq!((refused.records.len(), refused.records[0].status), (1, 400));
    assert_eq!(refused.records[0].error_class.as_deref(), Some("bad_request"));
}

#[tokio::test]
async fn metadata_config_statistics_and_readiness() {
    let f = fixture("champion = 2", "").await;
    let (app, _writer) = app(&f);
    let service = Inference::new(app);
    let ready =
        |name: &str, version: &str| Request::new(ModelReadyRequest { name: name.into(), version: version.into() });
    assert!(service.model_ready(ready("m", "")).await.expect("ready").into_inner().ready);
    assert!(!service.model_ready(ready("m", "4")).await.expect("not ready").into_inner().ready);
    assert!(!service.model_ready(ready("nope", "")).await.expect("not ready").into_inner().ready);
    assert!(service.server_ready(Request::new(ServerReadyRequest {})).await.expect("ready").into_inner().ready);
    let meta = |version: &str| Request::new(ModelMetadataRequest { name: "m".into(), version: version.into() });
    let m = service.model_metadata(meta("")).await.expect("metadata").into_inner();
    assert_eq!(m.versions, ["1", "2", "3"]);
    assert_eq!((m.inputs[0].name.as_str(), m.inputs[0].shape.as_slice()), ("input", &[-1, 4][..]));
    assert_eq!(service.model_metadata(meta("x")).await.expect_err("no version x").code(), Code::NotFound);
    let config = service
        .model_config(Request::new(ModelConfigRequest { name: "m".into(), version: String::new() }))
        .await
        .expect("config")
        .into_inner()
        .config
        .expect("config");
    assert_eq!(config.output[0].data_type, DataType::TypeFp32 as i32);
    let stats =
        |name: &str, version: &str| Request::new(ModelStatisticsRequest { name: name.into(), version: version.into() });
    let all = service.model_statistics(stats("", "")).await.expect("stats").into_inner().model_stats;
    assert_eq!(all.len(), 3);
    let v3 = service.model_statistics(stats("m", "3")).await.expect("stats").into_inner().model_stats;
    assert_eq!((v3.len(), v3[0].name.as_str(), v3[0].version.as_str()), (1, "m", "3"));
    let nope = service.model_statistics(stats("nope", "")).await.expect_err("unknown");
    assert_eq!(nope.code(), Code::NotFound);
}

#[tokio::test]
async fn feedback_over_rest_joins_a_grpc_request() {
    let f = fixture("champion = 1", "").await;
    let (app, writer) = app(&f);
    let service = Inference::new(Arc::clone(&app));
    service.model_infer(with_id(typed("", vec![0.0, 0.0, 9.0, 0.0]), "grpc-fb")).await.expect("answered");
    writer.drain(Duration::from_secs(5)).await;
    let body = serde_json::json!({"request_id": "grpc-fb", "label": 2}).to_string();
    let req = http::Request::post("/v2/models/m/feedback").body(Full::new(Bytes::from(body))).expect("request");
    let stored = crate::http::public::handle(Arc::clone(&app), req).await;
    assert_eq!(stored.status(), http::StatusCode::OK);
    let summary = f.control.store().registry().feedback_summary("m", 1, None).await.expect("summary");
    assert_eq!((summary.count, summary.judged, summary.correct), (1, 1, 1));
}
