//! The least a correct KServe v2 server does for one small model, written the way a user would
//! write it in an afternoon: hyper (the same auto builder and keep-alive as Switchyard), the body
//! read whole and parsed by serde_json, the one FP32 input checked against the model's width, ONNX
//! Runtime run inline on the request's thread (sessions built like Switchyard's: graph
//! optimisation level 3, one intra-op and one inter-op thread, one per tokio worker, borrowed from
//! a pool), the first output written back as v2 JSON. No routing, no lineage, no metrics, no
//! validation beyond the shape: the reference for what Switchyard's features cost per request.
//!
//! ```text
//! minimal --model FILE.onnx --name mlp --onnxruntime libonnxruntime.so [--listen 127.0.0.1:0] [--threads N]
//! ```
//! Prints `minimal listening http://ADDR` on stdout once it accepts connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{Tensor, ValueType};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

const USAGE: &str =
    "usage: minimal --model FILE.onnx --name NAME --onnxruntime LIB [--listen ADDR] [--threads N]";

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<Input>,
}

#[derive(Deserialize)]
struct Input {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Vec<f32>,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    outputs: [Output<'a>; 1],
}

#[derive(Serialize)]
struct Output<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: Vec<i64>,
    data: &'a [f32],
}

struct Model {
    name: String,
    input: String,
    width: i64,
    output: String,
    sessions: Mutex<Vec<Session>>,
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn infer(model: &Model, body: &[u8]) -> Response<Full<Bytes>> {
    let request: InferRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("malformed request: {e}")),
    };
    let [input] = request.inputs.as_slice() else {
        return error(StatusCode::BAD_REQUEST, "one input expected");
    };
    let rows = match input.shape.as_slice() {
        [rows, w] if *w == model.width && input.name == model.input && input.datatype == "FP32" => *rows,
        _ => return error(StatusCode::BAD_REQUEST, "the input does not fit the model"),
    };
    if rows < 0 || input.data.len() as i64 != rows * model.width {
        return error(StatusCode::BAD_REQUEST, "the data does not fit the shape");
    }
    let Some(mut session) = model.sessions.lock().ok().and_then(|mut s| s.pop()) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no free session");
    };
    let answer = (|| -> Result<Vec<u8>, String> {
        let tensor = Tensor::from_array((input.shape.clone(), input.data.clone())).map_err(|e| e.to_string())?;
        let outputs = session.run(ort::inputs![model.input.as_str() => tensor]).map_err(|e| e.to_string())?;
        let (shape, data) = outputs[model.output.as_str()].try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
        let response = InferResponse {
            model_name: &model.name,
            model_version: "1",
            id: request.id.clone(),
            outputs: [Output { name: &model.output, datatype: "FP32", shape: shape.to_vec(), data }],
        };
        serde_json::to_vec(&response).map_err(|e| e.to_string())
    })();
    if let Ok(mut pool) = model.sessions.lock() {
        pool.push(session);
    }
    match answer {
        Ok(body) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

async fn handle(model: Arc<Model>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = format!("/v2/models/{}/infer", model.name);
    if req.method() != Method::POST || req.uri().path() != path {
        return Ok(error(StatusCode::NOT_FOUND, "not found"));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, &e.to_string())),
    };
    Ok(infer(&model, &body))
}

struct Args {
    model: String,
    name: String,
    library: String,
    listen: SocketAddr,
    threads: usize,
}

fn args() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let (mut model, mut name, mut library) = (None, None, None);
    let mut listen: SocketAddr = "127.0.0.1:0".parse().map_err(|_| "bad default")?;
    let mut threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    while let Some(flag) = a.next() {
        let mut value = || a.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--model" => model = Some(value()?),
            "--name" => name = Some(value()?),
            "--onnxruntime" => library = Some(value()?),
            "--listen" => listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--threads" => threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    match (model, name, library) {
        (Some(model), Some(name), Some(library)) => Ok(Args { model, name, library, listen, threads }),
        _ => Err(USAGE.to_owned()),
    }
}

fn load(a: &Args) -> Result<Model, String> {
    let env = ort::init_from(&a.library)
        .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", a.library))?
        .with_name("minimal")
        .build()
        .map_err(|e| e.to_string())?;
    let env = Box::leak(Box::new(env));
    let mut sessions = Vec::new();
    for _ in 0..a.threads.max(1) {
        let e = |e: ort::Error<ort::session::builder::SessionBuilder>| e.to_string();
        let session = Session::builder(env)
            .map_err(|e| e.to_string())?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(e)?
            .with_intra_threads(1)
            .map_err(e)?
            .with_inter_threads(1)
            .map_err(e)?
            .commit_from_file(&a.model)
            .map_err(|e| format!("cannot load {}: {e}", a.model))?;
        sessions.push(session);
    }
    let first = &sessions[0];
    let input = first.inputs().first().ok_or("the model has no input")?;
    let width = match input.dtype() {
        ValueType::Tensor { shape, .. } => shape.get(1).copied().ok_or("the input is not [batch, width]")?,
        _ => return Err("the input is not a tensor".to_owned()),
    };
    let (input, output) =
        (input.name().to_owned(), first.outputs().first().ok_or("the model has no output")?.name().to_owned());
    Ok(Model { name: a.name.clone(), input, width, output, sessions: Mutex::new(sessions) })
}

async fn serve(model: Arc<Model>, listen: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("minimal listening http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let model = Arc::clone(&model);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(Arc::clone(&model), req));
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn main() -> ExitCode {
    let run = || -> Result<(), String> {
        let a = args()?;
        let model = Arc::new(load(&a)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(a.threads.max(1))
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(serve(model, a.listen))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minimal: {e}");
            ExitCode::FAILURE
        }
    }
}
