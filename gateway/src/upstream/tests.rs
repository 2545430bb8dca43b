//! The upstream client against scripted v2 servers on loopback: answers, errors, garbage,
//! hangs, refused connections, ejection and recovery.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use model_store::{Signature, TensorSpec, Upstream};
use protocol::tensor::{Tensor, TensorData};
use serde_json::{Value, json};
use settings::UpstreamConfig;
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::{ErrorKind, Remote};

/// What a scripted server answers a request: status and body (a JSON value or raw bytes).
type Script = dyn Fn(&str, &Value) -> Option<(StatusCode, Bytes)> + Send + Sync;

/// A v2 server on loopback answering model metadata of `signature()` and inference by `script`
/// (`None`: never answer). Runs until the test's runtime ends.
async fn upstream(script: Arc<Script>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let script = Arc::clone(&script);
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let script = Arc::clone(&script);
                    async move {
                        let path = request.uri().path().to_owned();
                        let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let answer = match path.as_str() {
                            "/v2/health/ready" => Some((StatusCode::OK, Bytes::new())),
                            "/v2/models/m" => Some((StatusCode::OK, Bytes::from(metadata().to_string()))),
                            "/v2/models/m/infer" => script(&path, &json),
                            _ => Some((
                                StatusCode::NOT_FOUND,
                                Bytes::from(json!({"error": "unknown model"}).to_string()),
                            )),
                        };
                        match answer {
                            Some((status, body)) => {
                                let mut response = Response::new(Full::new(body));
                                *response.status_mut() = status;
                                Ok::<_, Infallible>(response)
                            }
                            None => std::future::pending().await,
                        }
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

fn metadata() -> Value {
    json!({"name": "m", "versions": ["1"], "platform": "onnxruntime_onnx",
           "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
           "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]})
}

fn signature() -> Signature {
    let spec = |name: &str| TensorSpec { name: name.to_owned(), datatype: "FP32".to_owned(), shape: vec![-1, 2] };
    Signature { inputs: vec![spec("x")], outputs: vec![spec("y")] }
}

/// Doubles `x` into `y`, saying it is version 7 and echoing the `timeout` it was given.
fn doubler(_path: &str, request: &Value) -> Option<(StatusCode, Bytes)> {
    let data: Vec<f64> = request["inputs"][0]["data"].as_array()?.iter().filter_map(Value::as_f64).collect();
    let doubled: Vec<f64> = data.iter().map(|x| x * 2.0).collect();
    let answer = json!({"model_name": "m", "model_version": "7", "id": request["parameters"]["timeout"],
                        "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2], "data": doubled}]});
    Some((StatusCode::OK, Bytes::from(answer.to_string())))
}

fn config() -> UpstreamConfig {
    UpstreamConfig { health_interval: Duration::from_millis(50), eject_after: 2, ..UpstreamConfig::default() }
}

fn target(addr: SocketAddr) -> Upstream {
    Upstream::new(&format!("http://{addr}"), "m", None).expect("valid upstream")
}

fn input() -> Vec<Tensor> {
    vec![Tensor { name: "x".into(), shape: vec![1, 2], data: TensorData::Fp32(vec![1.5, -2.0]) }]
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[tokio::test]
async fn a_remote_version_answers_with_the_upstreams_outputs_and_version() {
    let addr = upstream(Arc::new(doubler)).await;
    let remote = Remote::connect(&target(addr), &signature(), &config()).await.expect("connects");
    let answer = remote.infer(&input(), soon()).await.expect("answers");
    assert_eq!(answer.outputs[0].data, TensorData::Fp32(vec![3.0, -4.0]));
    assert_eq!(answer.model_version.as_deref(), Some("7"));
    assert!(!remote.host().ejected());
}

#[tokio::test]
async fn the_deadline_travels_as_the_timeout_parameter() {
    let echo_timeout = |_: &str, request: &Value| {
        let us = request["parameters"]["timeout"].as_u64()?;
        let answer = json!({"model_name": "m", "model_version": us.to_string(), "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [0, 0]}]});
        Some((StatusCode::OK, Bytes::from(answer.to_string())))
    };
    let addr = upstream(Arc::new(echo_timeout)).await;
    let remote = Remote::connect(&target(addr), &signature(), &config()).await.expect("connects");
    let answer = remote.infer(&input(), Instant::now() + Duration::from_millis(800)).await.expect("answers");
    let told: u64 = answer.model_version.expect("version").parse().expect("microseconds");
    assert!((500_000..=800_000).contains(&told), "the upstream was told {told} µs");
}

#[tokio::test]
async fn a_changed_signature_fails_the_load_showing_both() {
    let addr = upstream(Arc::new(doubler)).await;
    let mut registered = signature();
    registered.inputs[0].shape = vec![-1, 4];
    let err = Remote::connect(&target(addr), &registered, &config()).await.expect_err("refused");
    assert!(err.message.contains("signature changed since registration"), "{err}");
    assert!(err.message.contains("x FP32 [-1, 4]") && err.message.contains("x FP32 [-1, 2]"), "{err}");
    let unknown = Upstream::new(&format!("http://{addr}"), "other", None).expect("valid");
    let err = Remote::connect(&unknown, &signature(), &config()).await.expect_err("no such model");
    assert_eq!(err.kind, ErrorKind::Status(404), "{err}");
}

#[tokio::test]
async fn error_answers_and_garbage_are_told_apart() {
    let script = |_: &str, request: &Value| {
        let first = request["inputs"][0]["data"][0].as_f64()?;
        Some(match first as i64 {
            1 => (StatusCode::INTERNAL_SERVER_ERROR, Bytes::from(json!({"error": "CUDA out of memory"}).to_string())),
            2 => (StatusCode::BAD_REQUEST, Bytes::from(json!({"error": "input 'x' is bad"}).to_string())),
            3 => (StatusCode::OK, Bytes::from_static(b"<html>hello</html>")),
            _ => (
                StatusCode::OK,
                Bytes::from(
                    json!({"model_name": "m", "outputs": [
                {"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1]}]})
                    .to_string(),
                ),
            ),
        })
    };
    let addr = upstream(Arc::new(script)).await;
    let remote = Remote::connect(&target(addr), &signature(), &config()).await.expect("connects");
    let with =
        |first: f32| vec![Tensor { name: "x".into(), shape: vec![1, 2], data: TensorData::Fp32(vec![first, 0.0]) }];
    let e = remote.infer(&with(1.0), soon()).await.expect_err("500");
    assert_eq!((e.kind, e.kind.status()), (ErrorKind::Status(500), 502));
    assert!(e.to_string().contains("CUDA out of memory"), "{e}");
    let e = remote.infer(&with(2.0), soon()).await.expect_err("400");
    assert_eq!(e.kind.status(), 400);
    assert!(e.to_string().contains("input 'x' is bad"), "{e}");
    let e = remote.infer(&with(3.0), soon()).await.expect_err("garbage");
    assert_eq!((e.kind, e.kind.status()), (ErrorKind::Malformed, 502));
    assert!(e.to_string().contains("not a v2 inference response"), "{e}");
    let e = remote.infer(&with(4.0), soon()).await.expect_err("short");
    assert!(e.to_string().contains("needs 2 elements"), "{e}");
}

#[tokio::test]
async fn a_hanging_upstream_costs_the_deadline_and_no_more() {
    let addr = upstream(Arc::new(|_: &str, _: &Value| None)).await;
    let remote = Remote::connect(&target(addr), &signature(), &config()).await.expect("connects");
    let started = std::time::Instant::now();
    let e = remote.infer(&input(), Instant::now() + Duration::from_millis(300)).await.expect_err("hangs");
    assert_eq!((e.kind, e.kind.status()), (ErrorKind::Timeout, 504));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(290) && took < Duration::from_secs(3), "took {took:?}");
}

#[tokio::test]
async fn an_unreachable_upstream_is_ejected_and_comes_back_when_ready() {
    // A port that refuses: bound, then closed.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let err = Remote::connect(&target(addr), &signature(), &config()).await.expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Connect, "{err}");

    // An upstream that answers, then goes away, then comes back on the same port.
    let up = Arc::new(AtomicBool::new(true));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let server = serve_while(addr, Arc::clone(&up)).await;
    let remote = Remote::connect(&target(addr), &signature(), &config()).await.expect("connects");
    remote.infer(&input(), soon()).await.expect("answers");
    up.store(false, Ordering::SeqCst);
    server.await.expect("server stopped");
    // Refused connections (and failed checks) eject it: then requests fail at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !remote.host().ejected() {
        assert!(std::time::Instant::now() < deadline, "never ejected");
        let _ = remote.infer(&input(), soon()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = remote.infer(&input(), soon()).await.expect_err("ejected");
    assert_eq!((e.kind, e.kind.status()), (ErrorKind::Ejected, 503), "{e}");
    // Back: the next passing check lets requests through again.
    up.store(true, Ordering::SeqCst);
    let _server = serve_while(addr, Arc::clone(&up)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while remote.host().ejected() {
        assert!(std::time::Instant::now() < deadline, "never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    remote.infer(&input(), soon()).await.expect("answers again");
}

/// Serves `doubler` on `addr` while `up` holds; the returned task ends (closing the listener and
/// every connection) once it is cleared.
async fn serve_while(addr: SocketAddr, up: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(addr).await.expect("bind again");
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while up.load(Ordering::SeqCst) {
            let Ok(Ok((stream, _))) = tokio::time::timeout(Duration::from_millis(20), listener.accept()).await else {
                continue;
            };
            connections.spawn(async move {
                let service = service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                    let path = request.uri().path().to_owned();
                    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (status, body) = match path.as_str() {
                        "/v2/health/ready" => (StatusCode::OK, Bytes::new()),
                        "/v2/models/m" => (StatusCode::OK, Bytes::from(metadata().to_string())),
                        _ => doubler(&path, &json).unwrap_or((StatusCode::BAD_REQUEST, Bytes::new())),
                    };
                    let mut response = Response::new(Full::new(body));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
        connections.abort_all();
    })
}
