//! The gRPC front end through the real binary, with a tonic client generated from the same
//! protos: metadata, typed and raw inference (compared with the fixtures' expected outputs),
//! pinned and routed versions, errors with their status codes, deadlines, health, reflection's
//! presence, streaming in order, the lineage record of a gRPC request, a guard trip on gRPC
//! traffic, and health watchers told NOT_SERVING at shutdown.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use gateway::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use protocol::grpc::inference::infer_parameter::ParameterChoice;
use protocol::grpc::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use protocol::grpc::inference::*;
use serde_json::Value;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{Gateway, fixtures, lineage, register};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
grpc_listen = "127.0.0.1:0"
max_body_bytes = 65536
[store]
path = "{store}"
[[model]]
name = "mlp"
[model.routing]
champion = 1
challengers = { 2 = 20 }
shadows = { 3 = 100 }
sticky_header = "x-user-id"
[[model]]
name = "dtypes"
versions = [1]
[[model]]
name = "slow"
versions = [1]
"#;

type Client = GrpcInferenceServiceClient<Channel>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn start(dir: &std::path::Path) -> Gateway {
    let store = dir.join("store");
    register(&store, "mlp", "mlp_v1", Some("mlp_v1"));
    register(&store, "mlp", "mlp_v2", Some("mlp_v2"));
    register(&store, "mlp", "mlp_v3", Some("mlp_v3"));
    register(&store, "dtypes", "dtypes", None);
    register(&store, "slow", "slow", None);
    let gw = Gateway::start(dir, &store, CONFIG);
    assert!(gw.grpc.is_some(), "the listening line names the gRPC address");
    gw
}

async fn client(gw: &Gateway) -> Client {
    let addr = gw.grpc.expect("grpc enabled");
    GrpcInferenceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
        .max_decoding_message_size(1 << 24)
}

/// The first case of a fixture's expected outputs: (inputs, outputs) as JSON tensors.
fn case(fixture: &str) -> (Vec<Value>, Vec<Value>) {
    let text = std::fs::read_to_string(fixtures().join(format!("expected/{fixture}.json"))).expect("expected");
    let v: Value = serde_json::from_str(&text).expect("json");
    let c = &v["cases"][0];
    (c["inputs"].as_array().expect("inputs").clone(), c["outputs"].as_array().expect("outputs").clone())
}

fn floats(v: &Value) -> Vec<f32> {
    v["data"].as_array().expect("data").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn shape(v: &Value) -> Vec<i64> {
    v["shape"].as_array().expect("shape").iter().map(|x| x.as_i64().expect("dim")).collect()
}

fn mlp_input(values: Vec<f32>, raw: bool) -> (InferInputTensor, Option<Vec<u8>>) {
    let mut tensor = InferInputTensor {
        name: "input".into(),
        datatype: "FP32".into(),
        shape: vec![1, values.len() as i64],
        ..Default::default()
    };
    if raw {
        return (tensor, Some(values.iter().flat_map(|x| x.to_le_bytes()).collect()));
    }
    tensor.contents = Some(InferTensorContents { fp32_contents: values, ..Default::default() });
    (tensor, None)
}

fn mlp_request(version: &str, values: Vec<f32>, raw: bool) -> ModelInferRequest {
    let (input, bytes) = mlp_input(values, raw);
    ModelInferRequest {
        model_name: "mlp".into(),
        model_version: version.into(),
        inputs: vec![input],
        raw_input_contents: bytes.into_iter().map(Into::into).collect(),
        ..Default::default()
    }
}

fn output_floats(r: &ModelInferResponse, i: usize) -> Vec<f32> {
    if r.raw_output_contents.is_empty() {
        r.outputs[i].contents.as_ref().expect("typed contents").fp32_contents.clone()
    } else {
        r.raw_output_contents[i].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-5, "{got:?} != {want:?}");
    }
}

fn text_param(r: &ModelInferResponse, key: &str) -> String {
    match &r.parameters[key].parameter_choice {
        Some(ParameterChoice::StringParam(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

async fn code_of(c: &mut Client, req: ModelInferRequest) -> (Code, String) {
    let e = c.model_infer(req).await.expect_err("refused");
    (e.code(), e.message().to_owned())
}

#[test]
fn metadata_inference_pinned_routed_errors_and_lineage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start(dir.path());
    runtime().block_on(async {
        let mut c = client(&gw).await;
        assert!(c.server_live(ServerLiveRequest {}).await.expect("live").into_inner().live);
        assert!(c.server_ready(ServerReadyRequest {}).await.expect("ready").into_inner().ready);
        let ready = |name: &str, version: &str| ModelReadyRequest { name: name.into(), version: version.into() };
        assert!(c.model_ready(ready("mlp", "")).await.expect("ready").into_inner().ready);
        assert!(c.model_ready(ready("mlp", "2")).await.expect("ready").into_inner().ready);
        assert!(!c.model_ready(ready("mlp", "7")).await.expect("ready").into_inner().ready);
        assert!(!c.model_ready(ready("nope", "")).await.expect("ready").into_inner().ready);
        let meta = c.server_metadata(ServerMetadataRequest {}).await.expect("server metadata").into_inner();
        assert_eq!(meta.name, "switchyard");
        assert!(meta.extensions.contains(&"model_configuration".to_owned()));
        let m = c
            .model_metadata(ModelMetadataRequest { name: "mlp".into(), version: String::new() })
            .await
            .expect("model metadata")
            .into_inner();
        assert_eq!(
            (m.versions.clone(), m.inputs[0].name.as_str(), m.inputs[0].datatype.as_str()),
            (vec!["1".to_owned(), "2".to_owned(), "3".to_owned()], "input", "FP32")
        );
        let config = c
            .model_config(ModelConfigRequest { name: "mlp".into(), version: "1".into() })
            .await
            .expect("model config")
            .into_inner()
            .config
            .expect("config");
        assert_eq!((config.name.as_str(), config.input[0].data_type), ("mlp", DataType::TypeFp32 as i32));
        let e = c.model_metadata(ModelMetadataRequest { name: "nope".into(), version: String::new() }).await;
        assert_eq!(e.expect_err("unknown").code(), Code::NotFound);

        // Typed and raw, pinned to version 1: the fixture's outputs, to 1e-5.
        let (inputs, outputs) = case("mlp_v1");
        let (x, want) = (floats(&inputs[0]), floats(&outputs[0]));
        for raw in [false, true] {
            let mut req = tonic::Request::new(mlp_request("1", x.clone(), raw));
            req.metadata_mut().insert("x-request-id", format!("grpc-pinned-{raw}").parse().expect("ascii"));
            let resp = c.model_infer(req).await.expect("infer");
            let md = resp.metadata().clone();
            let r = resp.into_inner();
            assert_eq!(r.raw_output_contents.is_empty(), !raw, "raw in, raw out");
            assert_close(&output_floats(&r, 0), &want);
            assert_eq!((r.model_name.as_str(), r.model_version.as_str()), ("mlp", "1"));
            assert_eq!(r.outputs[0].shape, shape(&outputs[0]));
            assert_eq!(text_param(&r, "route"), "pinned");
            assert_eq!(text_param(&r, "model_version"), "1");
            assert_eq!(text_param(&r, "model_sha256").len(), 64);
            assert_eq!(md.get("x-model-version").and_then(|v| v.to_str().ok()), Some("1"));
            assert_eq!(md.get("x-model-route").and_then(|v| v.to_str().ok()), Some("pinned"));
            assert_eq!(
                md.get("x-request-id").and_then(|v| v.to_str().ok()),
                Some(format!("grpc-pinned-{raw}").as_str())
            );
            assert_eq!(
                md.get("x-model-sha256").and_then(|v| v.to_str().ok()),
                Some(text_param(&r, "model_sha256").as_str())
            );
        }
        // Pinned to version 2: its own expected outputs.
        let (inputs2, outputs2) = case("mlp_v2");
        let r = c.model_infer(mlp_request("2", floats(&inputs2[0]), true)).await.expect("v2").into_inner();
        assert_close(&output_floats(&r, 0), &floats(&outputs2[0]));
        assert_eq!(r.model_version, "2");

        // Routed: 80/20 between the champion and the challenger, each answer named.
        let mut counts = BTreeMap::new();
        for _ in 0..400 {
            let r = c.model_infer(mlp_request("", vec![0.25; 64], false)).await.expect("routed").into_inner();
            let route = text_param(&r, "route");
            assert_eq!(route, if r.model_version == "1" { "champion" } else { "challenger" });
            *counts.entry(r.model_version).or_insert(0usize) += 1;
        }
        let share2 = counts.get("2").copied().unwrap_or(0) as f64 / 4.0;
        assert!((share2 - 20.0).abs() <= 7.0, "challenger share {share2}% ({counts:?})");
        // A sticky key from the call's metadata lands on one version every time.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let mut req = tonic::Request::new(mlp_request("", vec![0.5; 64], false));
            req.metadata_mut().insert("x-user-id", "user-7".parse().expect("ascii"));
            seen.insert(c.model_infer(req).await.expect("sticky").into_inner().model_version);
        }
        assert_eq!(seen.len(), 1, "{seen:?}");

        // Every datatype of the dtypes fixture, typed and raw, comes back as it went in.
        dtypes_round_trip(&mut c).await;

        // Hostile and mistaken requests: the right code, a clear message, and the process stays up.
        let mut unknown = mlp_request("", vec![0.0; 64], false);
        unknown.model_name = "nope".into();
        assert_eq!(code_of(&mut c, unknown).await, (Code::NotFound, "unknown model 'nope'".into()));
        assert_eq!(code_of(&mut c, mlp_request("9", vec![0.0; 64], false)).await.0, Code::NotFound);
        assert_eq!(code_of(&mut c, mlp_request("v1", vec![0.0; 64], false)).await.0, Code::NotFound);
        let mut wrong_type = mlp_request("", vec![0.0; 64], false);
        wrong_type.inputs[0].datatype = "INT64".into();
        wrong_type.inputs[0].contents = Some(InferTensorContents { int64_contents: vec![0; 64], ..Default::default() });
        let (code, message) = code_of(&mut c, wrong_type).await;
        assert_eq!(code, Code::InvalidArgument, "{message}");
        let mut short = mlp_request("", vec![0.0; 64], true);
        short.raw_input_contents[0].truncate(100);
        let (code, message) = code_of(&mut c, short).await;
        assert_eq!(code, Code::InvalidArgument);
        assert!(message.contains("raw contents are 100 bytes"), "{message}");
        let (code, _) = code_of(&mut c, mlp_request("", vec![0.0; 20_000], true)).await;
        assert_eq!(code, Code::ResourceExhausted, "80 KB over a 64 KiB limit");
        let mut outputs_bad = mlp_request("", vec![0.0; 64], false);
        outputs_bad.outputs = vec![InferRequestedOutputTensor { name: "nope".into(), parameters: HashMap::new() }];
        assert_eq!(code_of(&mut c, outputs_bad).await.0, Code::InvalidArgument);
        // Deadlines, 1 ms against a ~20 ms run. The request's own `timeout` parameter
        // (microseconds, as Triton reads it): DEADLINE_EXCEEDED from the server.
        let mut slow = mlp_request("", vec![0.5; 64], false);
        slow.model_name = "slow".into();
        let mut with_parameter = slow.clone();
        let timeout = InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(1000)) };
        with_parameter.parameters.insert("timeout".into(), timeout);
        let (code, message) = code_of(&mut c, with_parameter).await;
        assert_eq!(code, Code::DeadlineExceeded, "{message}");
        assert!(message.contains("within the deadline of 1 ms"), "{message}");
        // The client's grpc-timeout: tonic's client gives up at its own deadline (CANCELLED, where
        // other clients say DEADLINE_EXCEEDED), so the server's verdict is read from the record:
        // the pipeline ran under the client's deadline and recorded a 504.
        let mut req = tonic::Request::new(slow);
        req.set_timeout(Duration::from_millis(1));
        req.metadata_mut().insert("x-request-id", "grpc-deadline".parse().expect("ascii"));
        let e = c.model_infer(req).await.expect_err("past its deadline");
        assert!(matches!(e.code(), Code::DeadlineExceeded | Code::Cancelled), "{e:?}");
        assert_eq!(lineage(&gw, "grpc-deadline", 1)["records"][0]["status"], 504);
        assert!(c.server_live(ServerLiveRequest {}).await.is_ok(), "still up");
        let r = c.model_infer(mlp_request("1", x.clone(), false)).await.expect("still answers").into_inner();
        assert_close(&output_floats(&r, 0), &want);

        // Lineage: the x-request-id is the key of the record.
        let mut req = tonic::Request::new(mlp_request("", vec![0.1; 64], false));
        req.metadata_mut().insert("x-request-id", "grpc-lineage-1".parse().expect("ascii"));
        let version = c.model_infer(req).await.expect("infer").into_inner().model_version;
        let record = lineage(&gw, "grpc-lineage-1", 2);
        assert_eq!(record["records"][0]["request_id"], "grpc-lineage-1");
        assert_eq!(record["records"][0]["version"].to_string().trim_matches('"'), version);
        // The shadow got its copy, as over REST: recorded beside the primary, compared.
        let shadow = &record["records"][1];
        assert_eq!((shadow["route"].as_str(), shadow["version"].as_u64()), (Some("shadow"), Some(3)), "{shadow}");
        assert!(shadow["comparison"]["max_abs_diff"].as_f64().is_some(), "{shadow}");
        // Without metadata, the request's id is the key.
        let mut by_id = mlp_request("", vec![0.1; 64], false);
        by_id.id = "grpc-lineage-2".into();
        assert_eq!(c.model_infer(by_id).await.expect("infer").into_inner().id, "grpc-lineage-2");
        lineage(&gw, "grpc-lineage-2", 1);
    });
}

/// Every input of the dtypes fixture (an identity per datatype), typed where the datatype has a
/// typed field and raw, compared with the expected outputs.
async fn dtypes_round_trip(c: &mut Client) {
    let (inputs, outputs) = case("dtypes");
    let raw_of = |v: &Value| -> Vec<u8> {
        let data = v["data"].as_array().expect("data");
        let mut out = Vec::new();
        for x in data {
            match v["datatype"].as_str().expect("datatype") {
                "UINT8" => out.push(x.as_u64().expect("u8") as u8),
                "INT8" => out.push(x.as_i64().expect("i8") as i8 as u8),
                "UINT16" => out.extend((x.as_u64().expect("u16") as u16).to_le_bytes()),
                "INT16" => out.extend((x.as_i64().expect("i16") as i16).to_le_bytes()),
                "UINT32" => out.extend((x.as_u64().expect("u32") as u32).to_le_bytes()),
                "INT32" => out.extend((x.as_i64().expect("i32") as i32).to_le_bytes()),
                "UINT64" => out.extend(x.as_u64().expect("u64").to_le_bytes()),
                "INT64" => out.extend(x.as_i64().expect("i64").to_le_bytes()),
                "FP16" => out.extend(half::f16::from_f64(x.as_f64().expect("f16")).to_le_bytes()),
                "FP32" => out.extend((x.as_f64().expect("f32") as f32).to_le_bytes()),
                "FP64" => out.extend(x.as_f64().expect("f64").to_le_bytes()),
                "BOOL" => out.push(u8::from(x.as_bool().expect("bool"))),
                "BYTES" => {
                    let s = x.as_str().expect("text");
                    out.extend((s.len() as u32).to_le_bytes());
                    out.extend(s.as_bytes());
                }
                other => panic!("{other}"),
            }
        }
        out
    };
    let tensors: Vec<InferInputTensor> = inputs
        .iter()
        .map(|v| InferInputTensor {
            name: v["name"].as_str().expect("name").into(),
            datatype: v["datatype"].as_str().expect("datatype").into(),
            shape: shape(v),
            ..Default::default()
        })
        .collect();
    let req = ModelInferRequest {
        model_name: "dtypes".into(),
        inputs: tensors,
        raw_input_contents: inputs.iter().map(|t| raw_of(t).into()).collect(),
        ..Default::default()
    };
    let r = c.model_infer(req).await.expect("dtypes raw").into_inner();
    assert_eq!(r.outputs.len(), outputs.len());
    for (i, want) in outputs.iter().enumerate() {
        assert_eq!(r.outputs[i].name, want["name"].as_str().expect("name"));
        assert_eq!(r.outputs[i].datatype, want["datatype"].as_str().expect("datatype"));
        assert_eq!(r.raw_output_contents[i], raw_of(want), "output {}", r.outputs[i].name);
    }
}

#[test]
fn streaming_answers_in_order_health_and_reflection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start(dir.path());
    runtime().block_on(async {
        let mut c = client(&gw).await;
        let (inputs, outputs) = case("mlp_v1");
        let (x, want) = (floats(&inputs[0]), floats(&outputs[0]));
        let mut requests = Vec::new();
        for (i, raw) in [false, true, false].into_iter().enumerate() {
            let mut r = mlp_request("1", x.clone(), raw);
            r.id = format!("stream-{i}");
            requests.push(r);
        }
        // A mistake in the middle answers an error_message and the stream goes on.
        let mut bad = mlp_request("", vec![0.0; 64], false);
        bad.model_name = "nope".into();
        bad.id = "stream-bad".into();
        requests.insert(2, bad);
        let mut answers = c.model_stream_infer(tokio_stream::iter(requests)).await.expect("stream").into_inner();
        let mut got = Vec::new();
        while let Some(a) = answers.message().await.expect("stream message") {
            got.push(a);
        }
        assert_eq!(got.len(), 4);
        let ids: Vec<&str> = got.iter().map(|a| a.infer_response.as_ref().map_or("", |r| r.id.as_str())).collect();
        assert_eq!(ids, ["stream-0", "stream-1", "stream-bad", "stream-2"]);
        for (i, a) in got.iter().enumerate() {
            if i == 2 {
                assert_eq!(a.error_message, "unknown model 'nope'");
                continue;
            }
            assert_eq!(a.error_message, "");
            let r = a.infer_response.as_ref().expect("response");
            assert_eq!(r.raw_output_contents.is_empty(), i != 1);
            assert_close(&output_floats(r, 0), &want);
        }
        lineage(&gw, "stream-1", 1);

        // Health: the whole server and the inference service serve.
        let channel = Channel::from_shared(format!("http://{}", gw.grpc.expect("grpc"))).expect("uri");
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.connect().await.expect("connect"));
        for service in ["", "inference.GRPCInferenceService"] {
            let r = health
                .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
                .await
                .expect("health")
                .into_inner();
            assert_eq!(r.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
        }

        // Reflection lists the services (what grpcurl asks first).
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut reflection = ServerReflectionClient::new(channel.connect().await.expect("connect"));
        let ask = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut listed =
            reflection.server_reflection_info(tokio_stream::iter([ask])).await.expect("reflection").into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            listed.message().await.expect("reflection answer").and_then(|r| r.message_response)
        else {
            panic!("no service list")
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for want in ["inference.GRPCInferenceService", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == want), "{names:?}");
        }
    });
    assert!(gw.terminate().success(), "a graceful exit with the gRPC listener up");
}

/// The guard over gRPC, on a real fault: the champion (the faulty fixture) fails inside ONNX
/// Runtime on every third request sent over gRPC; the guard swaps to the warm backup as it does
/// for REST traffic, the failures before it are INTERNAL with the engine's message and recorded
/// as v1's model errors, and after the swap every answer is v2's.
#[test]
fn a_guard_trip_on_grpc_traffic_swaps_to_the_backup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    register(&store, "scorer", "faulty", None); // v1: fails when input[:, 0] >= 1000
    register(&store, "scorer", "mlp_v2", Some("mlp_v2")); // v2: same answers, never fails
    let config = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
grpc_listen = "127.0.0.1:0"
[store]
path = "{store}"
[[model]]
name = "scorer"
[model.routing]
champion = 1
backup = [2]
[model.guard]
window = "10s"
interval = "500ms"
cooldown = "60s"
min_requests = 20
max_error_rate = 0.2
"#;
    let gw = Gateway::start(dir.path(), &store, config);
    runtime().block_on(async {
        let mut c = client(&gw).await;
        // (request id, version that answered or None, status code, message), in order.
        let mut samples: Vec<(String, Option<String>, Code, String)> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        for i in 0..3000 {
            let mut values = vec![0.25f32; 64];
            if i % 3 == 0 {
                values[0] = 5000.0;
            }
            let mut req = mlp_request("", values, true);
            req.model_name = "scorer".into();
            let id = format!("grpc-guard-{i}");
            let mut call = tonic::Request::new(req);
            call.metadata_mut().insert("x-request-id", id.parse().expect("ascii"));
            match c.model_infer(call).await {
                Ok(r) => samples.push((id, Some(r.into_inner().model_version), Code::Ok, String::new())),
                Err(s) => samples.push((id, None, s.code(), s.message().to_owned())),
            }
            let from_backup = samples.iter().filter(|s| s.1.as_deref() == Some("2")).count();
            if from_backup >= 60 || Instant::now() > deadline {
                break;
            }
        }
        let switch =
            samples.iter().position(|s| s.1.as_deref() == Some("2")).expect("traffic never moved to the backup");
        let failures: Vec<_> = samples.iter().filter(|s| s.2 != Code::Ok).collect();
        assert!(!failures.is_empty(), "the faulty model failed nothing before the trip");
        for (id, _, code, message) in &failures {
            assert_eq!(*code, Code::Internal, "{message}");
            assert!(message.contains("model execution failed"), "{message}");
            let rec = &lineage(&gw, id, 1)["records"][0];
            assert_eq!((rec["version"].as_u64(), rec["error_class"].as_str()), (Some(1), Some("model_error")), "{rec}");
        }
        // One client, sequential calls: after the first backup answer nothing fails and no
        // answer comes from v1 (a swap that kept routing to v1 would fail a third of them).
        let late = &samples[switch..];
        assert!(late.iter().all(|s| s.2 == Code::Ok && s.1.as_deref() == Some("2")), "after the swap: {late:?}");
    });
    // (The typed admin client runs its own runtime, so it is asked outside the one above.)
    let state = crate::support::admin(&gw).model("scorer").expect("model state");
    assert_eq!(state["origin"]["kind"], "guard_trip", "{state}");
    assert_eq!(state["origin"]["detail"]["reason"], "error_rate", "{state}");
    assert!(gw.terminate().success());
}

/// At SIGTERM, health turns NOT_SERVING for a client already watching (new connections are no
/// longer accepted), and the process still exits once the drain deadline ends the watch.
#[test]
fn health_watchers_see_not_serving_at_shutdown() {
    use tonic_health::pb::health_check_response::ServingStatus;

    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    register(&store, "mlp", "mlp_v1", Some("mlp_v1"));
    let config = "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ngrpc_listen = \"127.0.0.1:0\"\n\
                  drain_timeout = \"1s\"\n[store]\npath = \"{store}\"\n[[model]]\nname = \"mlp\"\nversions = [1]\n";
    let mut gw = Gateway::start(dir.path(), &store, config);
    let addr = gw.grpc.expect("grpc");
    let pid = gw.child.id().to_string();
    runtime().block_on(async {
        let channel = Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect");
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        // Both watches open before the signal: the listener accepts no new connection after it.
        let mut watches = Vec::new();
        for service in ["", "inference.GRPCInferenceService"] {
            let request = tonic_health::pb::HealthCheckRequest { service: service.into() };
            let mut watch = health.watch(request).await.expect("watch").into_inner();
            let first = watch.message().await.expect("first status").expect("a status");
            assert_eq!(first.status, ServingStatus::Serving as i32, "{service:?}");
            watches.push((service, watch));
        }
        std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        for (service, watch) in &mut watches {
            let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
                .await
                .unwrap_or_else(|_| panic!("{service:?}: no status change within 5 s of SIGTERM"))
                .expect("status")
                .expect("a status before the stream ends");
            assert_eq!(next.status, ServingStatus::NotServing as i32, "{service:?}");
        }
    });
    let started = Instant::now();
    assert!(gw.wait_exit().success());
    assert!(started.elapsed() < Duration::from_secs(5), "exit held past the 1 s drain: {:?}", started.elapsed());
}

/// A connection that starts no call is closed after the first-call timeout (10 s), giving its
/// slot back, while the listener goes on serving others.
#[test]
fn a_connection_that_never_calls_is_closed() {
    use std::io::Read;

    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start(dir.path());
    let addr = gw.grpc.expect("grpc");
    let opened = Instant::now();
    let mut idle = std::net::TcpStream::connect(addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut buf = [0u8; 256];
    // The server may send its SETTINGS first; it then closes the connection: EOF (or a reset).
    loop {
        match idle.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the idle connection was not closed after {:?}: {e}", opened.elapsed()),
        }
    }
    let after = opened.elapsed();
    assert!((Duration::from_secs(9)..Duration::from_secs(15)).contains(&after), "closed after {after:?}");
    runtime().block_on(async {
        let mut c = client(&gw).await;
        assert!(c.server_live(ServerLiveRequest {}).await.expect("live").into_inner().live);
    });
    assert!(gw.terminate().success());
}
