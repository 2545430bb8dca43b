//! A bare hyper 1 server: the HTTP limit of the side-by-side bench.
//!
//! It does what any v2 server must do per request and nothing else: accept keep-alive
//! connections (hyper-util's auto builder with HTTP/1 keep-alive, `TCP_NODELAY`, like
//! Switchyard's listener), read the whole request body, and answer every POST with a canned
//! response body read from a file at start (the harness captures Switchyard's own response for
//! the same request, so the size is the same). GETs answer canned bodies by exact path (so
//! perf_analyzer's metadata and config calls work); anything else is 404.
//!
//! ```text
//! bare --response infer.json [--binary-response FILE] [--get /v2/models/m=FILE]...
//!      [--header NAME:VALUE]... [--listen 127.0.0.1:0] [--threads N]
//! ```
//! `--binary-response` is answered to requests that carry binary tensors (an
//! `Inference-Header-Content-Length` header); without it they get `--response`. A canned file
//! whose name ends in `.bin` is sent as `application/octet-stream` with
//! `Inference-Header-Content-Length` set to the length of its first line's JSON, else as JSON.
//! `--header` adds a canned header to every inference answer (the harness passes Switchyard's
//! `x-model-*` and `x-request-id` headers, so the whole response has the same size).
//! `--threads` is the number of tokio worker threads (default: tokio's, one per core, which is
//! what Switchyard runs when `[server] worker_threads` is not set). Prints
//! `bare listening http://ADDR` on stdout once it accepts connections.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

const USAGE: &str = "usage: bare --response FILE [--binary-response FILE] [--get PATH=FILE]... \
                     [--header NAME:VALUE]... [--listen ADDR] [--threads N]";

#[derive(Clone)]
struct Canned {
    body: Bytes,
    /// `Some(n)`: binary tensor response, JSON header of n bytes.
    json_len: Option<usize>,
}

struct State {
    headers: Vec<(hyper::header::HeaderName, HeaderValue)>,
    json: Canned,
    binary: Canned,
    gets: HashMap<String, Canned>,
}

fn load(path: &str) -> Result<Canned, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if path.ends_with(".bin") {
        // A captured binary response: "<json header length>\n" then the body.
        let nl = data.iter().position(|&b| b == b'\n').ok_or_else(|| format!("{path}: no length line"))?;
        let len: usize = std::str::from_utf8(&data[..nl])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("{path}: the first line must be the JSON header length"))?;
        return Ok(Canned { body: Bytes::copy_from_slice(&data[nl + 1..]), json_len: Some(len) });
    }
    Ok(Canned { body: Bytes::from(data), json_len: None })
}

fn respond(c: &Canned) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(c.body.clone()));
    match c.json_len {
        Some(n) => {
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            r.headers_mut().insert("inference-header-content-length", HeaderValue::from(n));
        }
        None => {
            r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
    r
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let binary = req.headers().contains_key("inference-header-content-length");
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // Read the whole body, as a server that decodes it must.
    if req.into_body().collect().await.is_err() {
        let mut r = Response::new(Full::new(Bytes::from_static(b"{\"error\":\"bad body\"}")));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    }
    match method {
        Method::POST => {
            let mut r = respond(if binary { &state.binary } else { &state.json });
            for (name, value) in &state.headers {
                r.headers_mut().insert(name.clone(), value.clone());
            }
            r
        }
        Method::GET | Method::HEAD => match state.gets.get(&path) {
            Some(c) => respond(c),
            None => {
                let mut r = Response::new(Full::new(Bytes::from_static(b"{\"error\":\"not found\"}")));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
        },
        _ => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let (mut response, mut binary_response, mut threads) = (None, None, None);
    let mut gets = HashMap::new();
    let mut headers = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--listen" => listen = value.parse().map_err(|e| format!("--listen {value}: {e}"))?,
            "--response" => response = Some(load(&value)?),
            "--binary-response" => binary_response = Some(load(&value)?),
            "--threads" => threads = Some(value.parse::<usize>().map_err(|e| format!("--threads {value}: {e}"))?),
            "--header" => {
                let (name, v) = value.split_once(':').ok_or_else(|| format!("--header {value}: want NAME:VALUE"))?;
                let name = hyper::header::HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|e| format!("--header {value}: {e}"))?;
                let v = HeaderValue::from_str(v.trim()).map_err(|e| format!("--header {value}: {e}"))?;
                headers.push((name, v));
            }
            "--get" => {
                let (path, file) = value.split_once('=').ok_or_else(|| format!("--get {value}: want PATH=FILE"))?;
                gets.insert(path.to_owned(), load(file)?);
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    let json = response.ok_or_else(|| format!("--response is required\n{USAGE}"))?;
    let binary = binary_response.unwrap_or_else(|| json.clone());
    let state = Arc::new(State { headers, json, binary, gets });
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads = threads.unwrap_or(cores).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("bare-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).await.map_err(|e| format!("cannot bind {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("bare listening http://{addr} threads={threads}");
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().keep_alive(true);
        let builder = Arc::new(builder);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let state = Arc::clone(&state);
                    let builder = Arc::clone(&builder);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let state = Arc::clone(&state);
                            async move { Ok::<_, Infallible>(handle(state, req).await) }
                        });
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    })
}
