//! The public port: KServe v2 REST endpoints. Routing is a match on path segments; each handler
//! loads the serving snapshot once and answers from it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use serde_json::{Value, json};

use super::error::ApiError;
use super::json_response;
use crate::app::{App, server_ready};
use crate::http::metadata;
use crate::pipeline::{Outcome, Run};
use crate::serving::{LoadedVersion, ServedModel, ServingState, VersionSlot};
use protocol::request_id::RequestId;
use protocol::v2::decode::decode_request;
use protocol::v2::encode::{EncodedOutput, ResponseHead, ResponseParameters, encode_response};

/// Header carrying the request id: the client's when valid, else generated.
pub const REQUEST_ID: &str = "x-request-id";
const INFERENCE_HEADER_LENGTH: &str = "inference-header-content-length";

/// Answers one request on the public port.
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let request_id = request_id(req.headers());
    let mut response = match route(&app, req, request_id).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

/// The client's request id when it is usable, else a new UUIDv7 (see `RequestId`).
fn request_id(headers: &HeaderMap) -> RequestId {
    headers.get(REQUEST_ID).and_then(|v| RequestId::from_client(v.as_bytes())).unwrap_or_else(RequestId::generate)
}

fn ok(body: &Value) -> Result<Response<Full<Bytes>>, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

async fn route<B>(app: &App, req: Request<B>, request_id: RequestId) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let method = req.method().clone();
    let not_allowed = |allow| ApiError::MethodNotAllowed { method: method.to_string(), path: path.clone(), allow };
    let get = method == Method::GET || method == Method::HEAD;
    let state = app.control.snapshot();
    match segments.as_slice() {
        ["v2"] if get => ok(&metadata::server_metadata()),
        ["v2", "health", "live"] if get => ok(&json!({ "live": true })),
        ["v2", "health", "ready"] if get => {
            let ready = server_ready(&state);
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            Ok(json_response(status, &json!({ "ready": ready })))
        }
        ["v2", "models", "stats"] if get => ok(&all_stats(&state)),
        ["v2", "models", "stats"] => Err(not_allowed(GET)),
        ["v2", "models", name, "feedback"] if method == Method::POST => {
            feedback_allowed(app, &req)?;
            let name = (*name).to_owned();
            let (_, body) = read_body(req, app.max_body_bytes, app.request_timeout).await?;
            super::feedback::handle(app, &name, &body).await
        }
        ["v2", "models", _, "feedback"] => Err(not_allowed(POST)),
        ["v2", "models", name, rest @ ..] => {
            let model = state.models.get(*name).ok_or_else(|| unknown_model(name))?;
            let (version, rest) = match rest {
                ["versions", v, rest @ ..] => (Some(parse_version(model, v)?), rest),
                other => (None, other),
            };
            match rest {
                [] if get => {
                    let v = select(model, version)?;
                    ok(&metadata::model_metadata(model, v))
                }
                ["ready"] if get => {
                    let v = select(model, version)?;
                    ok(&json!({ "name": model.name, "version": v.instance.version.to_string(), "ready": true }))
                }
                ["config"] if get => ok(&metadata::model_config(model, select(model, version)?)),
                ["stats"] if get => ok(&model_stats(model, version)?),
                ["infer"] if method == Method::POST => infer(app, model, version, req, request_id).await,
                ["infer"] => Err(not_allowed(POST)),
                [] | ["ready"] | ["config"] | ["stats"] => Err(not_allowed(GET)),
                _ => Err(ApiError::NotFound(format!("no such endpoint: {path}"))),
            }
        }
        ["v2"] | ["v2", "health", "live" | "ready"] => Err(not_allowed(GET)),
        _ => Err(ApiError::NotFound(format!("no such endpoint: {path}"))),
    }
}

const FEEDBACK_TOKEN_NEEDED: &str = "feedback needs `Authorization: Bearer <token>` (the [server] feedback_token / \
     SWITCHYARD_FEEDBACK_TOKEN, or the admin token)";

/// Whether this request may post feedback: its token (or an open loopback port), then its
/// client's rate.
fn feedback_allowed<B>(app: &App, req: &Request<B>) -> Result<(), ApiError> {
    let access = &app.feedback;
    if !access.open {
        if access.tokens.is_empty() {
            return Err(ApiError::Forbidden(
                "feedback is refused on a public port that is not on loopback until a token is configured: \
                 set [server] feedback_token (or SWITCHYARD_FEEDBACK_TOKEN)"
                    .to_owned(),
            ));
        }
        if !access.tokens.iter().any(|t| super::admin::authorized(req.headers(), t)) {
            return Err(ApiError::Unauthorized(FEEDBACK_TOKEN_NEEDED));
        }
    }
    let client = req.extensions().get::<super::ClientAddr>().map(|c| c.0.ip());
    let client = client.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    access.limiter.check(client, Instant::now()).map_err(|wait| ApiError::TooManyRequests {
        message: format!("too many feedback requests from {client}; retry in {} ms", wait.as_millis().max(1)),
        retry_after: u32::try_from(wait.as_secs().max(1)).unwrap_or(u32::MAX),
    })
}

/// The `Allow` of read-only and of action endpoints.
pub(super) const GET: &str = "GET, HEAD";
pub(super) const POST: &str = "POST";

fn unknown_model(name: &str) -> ApiError {
    ApiError::NotFound(format!("unknown model '{name}'"))
}

/// The version a path names: a number, or a registry alias of one of the model's versions.
fn parse_version(model: &ServedModel, text: &str) -> Result<u32, ApiError> {
    model.version_named(text).filter(|v| *v >= 1).ok_or_else(|| {
        ApiError::NotFound(format!(
            "model '{}' has no version '{text}': name a loaded version by number or alias ({})",
            model.name,
            model.names_text()
        ))
    })
}

/// The version asked for, or the default one; 404 when not configured, 503 when it failed to load.
fn select(model: &ServedModel, version: Option<u32>) -> Result<&Arc<LoadedVersion>, ApiError> {
    let v = version.unwrap_or(model.routing.champion);
    match model.versions.get(&v) {
        Some(VersionSlot::Ready(loaded)) => Ok(loaded),
        Some(VersionSlot::Failed { reason, .. }) => Err(ApiError::Unavailable {
            message: format!("version {v} of model '{}' is not available: {reason}", model.name),
            retry_after: None,
        }),
        None => Err(ApiError::NotFound(format!(
            "model '{}' has no loaded version {v} (loaded: {})",
            model.name,
            model.names_text()
        ))),
    }
}

fn model_stats(model: &ServedModel, version: Option<u32>) -> Result<Value, ApiError> {
    let stats: Vec<Value> = match version {
        Some(_) => {
            let v = select(model, version)?;
            vec![metadata::version_stats(&model.name, v.instance.version, &v.instance.stats.snapshot())]
        }
        None => model
            .ready_versions()
            .map(|v| metadata::version_stats(&model.name, v.instance.version, &v.instance.stats.snapshot()))
            .collect(),
    };
    Ok(json!({ "model_stats": stats }))
}

fn all_stats(state: &ServingState) -> Value {
    let stats: Vec<Value> = state
        .models
        .values()
        .flat_map(|m| {
            m.ready_versions()
                .map(|v| metadata::version_stats(&m.name, v.instance.version, &v.instance.stats.snapshot()))
        })
        .collect();
    json!({ "model_stats": stats })
}

/// Reads the body, refusing it with 413 past `limit` (before reading when Content-Length says
/// so) and with 408 when it has not all arrived within `timeout`.
pub(super) async fn read_body<B>(
    req: Request<B>,
    limit: usize,
    timeout: Duration,
) -> Result<(HeaderMap, Bytes), ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = req.into_parts();
    // Content codings are case-insensitive (RFC 9110 §8.4.1); only `identity` is accepted.
    if let Some(encoding) = parts.headers.get(header::CONTENT_ENCODING)
        && !encoding.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity")
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding {:?} is not accepted; send the body uncompressed",
            String::from_utf8_lossy(encoding.as_bytes())
        )));
    }
    // Transfer codings other than `chunked` (e.g. `gzip, chunked`) would leave the body still
    // compressed after de-chunking.
    for value in parts.headers.get_all(header::TRANSFER_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        if text.split(',').map(str::trim).any(|c| !c.eq_ignore_ascii_case("chunked")) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Transfer-Encoding {text:?} is not accepted; only chunked is (send the body uncompressed)"
            )));
        }
    }
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // A client that stops sending mid-body does not hold the connection (or its slot) forever.
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| {
            ApiError::RequestTimeout(format!("the request body did not arrive within {} s", timeout.as_secs_f64()))
        })?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            }
        })?;
    Ok((parts.headers, collected.to_bytes()))
}

/// `POST …/infer`: the pipeline chooses the version first (an unavailable model answers 503
/// before its body is read), then the body is read and decoded, then the pipeline runs it; the
/// run is recorded once, whatever failed.
async fn infer<B>(
    app: &App,
    model: &ServedModel,
    version: Option<u32>,
    req: Request<B>,
    request_id: RequestId,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (started, arrived) = (Instant::now(), SystemTime::now());
    let mut run = app.pipeline.decide(model, version, req.headers(), request_id, started, arrived)?;
    let result = answer(app, model, &mut run, req).await;
    let outcome = match &result {
        Ok(_) => Outcome::OK,
        Err(e) => Outcome { status: e.status().as_u16(), error_class: Some(e.class()) },
    };
    match (run.finish(outcome).await, result) {
        // An answer whose record must be committed first is not sent without it.
        (Err(unrecorded), Ok(_)) => {
            Err(ApiError::Unavailable { message: unrecorded.to_string(), retry_after: Some(1) })
        }
        (_, result) => result,
    }
}

/// Reads and decodes the request, runs it, and encodes the answer.
async fn answer<B>(
    app: &App,
    model: &ServedModel,
    run: &mut Run<'_>,
    req: Request<B>,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (headers, body) = read_body(req, app.max_body_bytes, app.request_timeout).await?;
    let request = decode_request(&body, headers.get(INFERENCE_HEADER_LENGTH).map(HeaderValue::as_bytes))?;
    drop(body);
    let answer = run.execute(request).await?;
    let (loaded, route) = (run.loaded, run.choice.decision.route.as_str());
    let inst = &loaded.instance;
    let binary = answer.binary_data_output;
    let selected: Vec<EncodedOutput<'_>> = match &answer.requested {
        None => answer.outputs.iter().map(|t| EncodedOutput { tensor: t, binary }).collect(),
        Some(wanted) => wanted
            .iter()
            .filter_map(|w| {
                let tensor = answer.outputs.iter().find(|t| t.name == w.name)?;
                Some(EncodedOutput { tensor, binary: w.binary_data.unwrap_or(binary) })
            })
            .collect(),
    };
    let parameters = ResponseParameters { model_sha256: &inst.sha256, model_version: inst.version, route };
    let head = ResponseHead {
        model_name: &model.name,
        model_version: inst.version,
        id: answer.id.as_deref(),
        parameters: Some(parameters),
    };
    let encoded = encode_response(&head, &selected);
    let mut response = Response::new(Full::new(encoded.body));
    let h = response.headers_mut();
    match encoded.json_len {
        Some(len) => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            h.insert(INFERENCE_HEADER_LENGTH, HeaderValue::from(len));
        }
        None => {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
    }
    h.insert("x-model-version", loaded.headers.version.clone());
    h.insert("x-model-sha256", loaded.headers.sha256.clone());
    h.insert("x-model-route", HeaderValue::from_static(route));
    Ok(response)
}
