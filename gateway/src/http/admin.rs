//! The admin port: Prometheus `/metrics`; `/admin/…` state (models, routing and why it is what
//! it is, per-request lineage, writer status); operator actions (promote, rollback, weights,
//! reset, reload), each recorded with its actor. Binds loopback by default.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Body;
use serde_json::{Value, json};

use super::error::ApiError;
use super::json_response;
use crate::app::App;
use crate::serving::{ServedModel, VersionSlot};
use model_store::StoreError;

/// Admin request bodies are small JSON objects, sent at once.
const MAX_ADMIN_BODY: usize = 64 << 10;
const ADMIN_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Answers one request on the admin port.
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    // The console's page and assets carry no data (the page asks for the token and sends it
    // with every API call), so they are served without it: a browser without the token gets
    // the sign-in form.
    if let Some(asset) = super::console::asset(req.method(), req.uri().path()) {
        return asset;
    }
    if req.uri().path() == "/ui/auth" {
        return json_response(StatusCode::OK, &json!({ "token_required": app.admin_token.is_some() }));
    }
    if let Some(token) = &app.admin_token
        && !authorized(req.headers(), token)
    {
        return ApiError::Unauthorized(ADMIN_TOKEN_NEEDED).into_response();
    }
    match route(&app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

const ADMIN_TOKEN_NEEDED: &str =
    "this admin API needs `Authorization: Bearer <token>` (the [server] admin_token / SWITCHYARD_ADMIN_TOKEN)";

/// Whether the request carries `Authorization: Bearer <token>`, compared in constant time.
pub(super) fn authorized(headers: &http::HeaderMap, token: &str) -> bool {
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer ")) else {
        return false;
    };
    given.len() == token.len() && given.iter().zip(token.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn route<B>(app: &App, req: Request<B>) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let not_allowed = |allow| Err(ApiError::MethodNotAllowed { method: method.to_string(), path: path.clone(), allow });
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    match segments.as_slice() {
        ["metrics"] if get => {
            // Rendering folds the histograms' pending samples in first (as the upkeep does).
            let mut r = Response::new(Full::new(Bytes::from(app.metrics.render())));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            Ok(r)
        }
        ["admin", "models"] if get => {
            let state = app.control.snapshot();
            Ok(json_response(StatusCode::OK, &Value::Array(state.models.values().map(model_state).collect())))
        }
        ["admin", "models", name] if get => {
            let state = app.control.snapshot();
            let model = state.models.get(*name).ok_or_else(|| unknown_model(name))?;
            let mut body = model_state(model);
            body["guard_alarm"] = app.control.alarm(name).unwrap_or(Value::Null);
            Ok(json_response(StatusCode::OK, &body))
        }
        ["admin", "models", name, action @ ("promote" | "rollback" | "weights" | "reset")] if post => {
            let (name, action) = ((*name).to_owned(), *action);
            let body = json_body(req, MAX_ADMIN_BODY).await?;
            let actor = actor(&body)?;
            let model = match action {
                "promote" => {
                    let version = body
                        .get("version")
                        .and_then(version_of)
                        .ok_or_else(|| ApiError::BadRequest("promote needs {\"version\": N} with N ≥ 1".to_owned()))?;
                    app.control.promote(&name, version, &actor, force(&body)?).await?
                }
                "rollback" => app.control.rollback(&name, &actor, force(&body)?).await?,
                "weights" => app.control.set_weights(&name, weights_of(&body)?, &actor).await?,
                _ => {
                    let (changed, model) = app.control.reset(&name, &actor).await?;
                    return Ok(json_response(
                        StatusCode::OK,
                        &json!({ "changed": changed, "model": model_state(&model) }),
                    ));
                }
            };
            Ok(json_response(StatusCode::OK, &model_state(&model)))
        }
        ["admin", "reload"] if post => {
            let body = json_body(req, MAX_ADMIN_BODY).await?;
            let actor = actor(&body)?;
            match app.control.reload(&format!("admin:{actor}")).await {
                Ok(report) => Ok(json_response(StatusCode::OK, &serde_json::to_value(report).unwrap_or(Value::Null))),
                Err(refused) => Ok(json_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &serde_json::to_value(refused).unwrap_or(Value::Null),
                )),
            }
        }
        ["admin", "models", name, "diff"] if get => {
            let query = req.uri().query().unwrap_or_default().to_owned();
            let param = |key: &str| {
                query.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')).and_then(super::percent_decode)
            };
            let (Some(a), Some(b)) = (param("a"), param("b")) else {
                return Err(ApiError::BadRequest("diff needs ?a=VERSION&b=VERSION (numbers or aliases)".to_owned()));
            };
            match app.store.registry().diff(name, &a, &b).await {
                Ok(d) => Ok(json_response(StatusCode::OK, &serde_json::to_value(d).unwrap_or(Value::Null))),
                Err(
                    e @ (StoreError::ModelNotFound { .. }
                    | StoreError::VersionNotFound { .. }
                    | StoreError::AliasNotFound { .. }),
                ) => Err(ApiError::NotFound(e.to_string())),
                Err(e) => Err(ApiError::Unavailable {
                    message: format!("the registry cannot be read: {e}"),
                    retry_after: Some(1),
                }),
            }
        }
        ["admin", "models", name, "gates", version] if get => {
            let version = version_of(&Value::String((*version).to_owned()))
                .ok_or_else(|| ApiError::BadRequest(format!("'{version}' is not a version number ≥ 1")))?;
            let gates = app.control.promotion_gates(name, version).await?;
            let passed = gates.iter().all(|g| g.passed);
            Ok(json_response(
                StatusCode::OK,
                &json!({ "model": name, "version": version, "passed": passed, "gates": gates }),
            ))
        }
        ["admin", "lineage", request_id] if get => {
            let id = super::percent_decode(request_id).ok_or_else(|| {
                ApiError::BadRequest(format!("request id '{request_id}' is not validly percent-encoded"))
            })?;
            lineage(app, &id).await
        }
        ["admin", "status"] if get => Ok(json_response(StatusCode::OK, &status(app))),
        ["admin", "jobs"] if post => {
            let body = json_body(req, MAX_ADMIN_BODY).await?;
            super::jobs::start(app, &body).await
        }
        ["admin", "jobs"] if get => {
            let query = req.uri().query().unwrap_or_default().to_owned();
            let model = query.split('&').find_map(|kv| kv.strip_prefix("model=")).and_then(super::percent_decode);
            super::jobs::list(app, model.as_deref()).await
        }
        ["admin", "jobs", id] if get => {
            let id = super::percent_decode(id)
                .ok_or_else(|| ApiError::BadRequest(format!("job id '{id}' is not validly percent-encoded")))?;
            super::jobs::show(app, &id).await
        }
        ["admin", "jobs"] => not_allowed("GET, POST"),
        ["admin", "jobs", _] => not_allowed(super::public::GET),
        ["admin", "registry", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
            // An upload carries the artifact: it may be as large as any request body.
            let limit =
                if post && rest.len() == 3 && rest[2] == "versions" { app.max_body_bytes } else { MAX_ADMIN_BODY };
            let body = json_body(req, limit).await?;
            let actor = actor(&body)?;
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            super::registry::handle(app, &method, &rest, body, actor).await
        }
        ["metrics"] | ["admin", "models"] | ["admin", "models", _] | ["admin", "lineage", _] | ["admin", "status"] => {
            not_allowed(super::public::GET)
        }
        ["admin", "models", _, "promote" | "rollback" | "weights" | "reset"] | ["admin", "reload"] => {
            not_allowed(super::public::POST)
        }
        ["v2", ..] => Err(ApiError::NotFound(format!(
            "no such endpoint on the admin port: {path}; the KServe v2 endpoints (/v2/…) are on the public port \
             ([server] listen)"
        ))),
        _ => Err(ApiError::NotFound(format!("no such endpoint: {path}"))),
    }
}

fn unknown_model(name: &str) -> ApiError {
    ApiError::NotFound(format!("unknown model '{name}'"))
}

/// The body as a JSON object (at most `limit` bytes); an empty body is `{}`.
async fn json_body<B>(req: Request<B>, limit: usize) -> Result<serde_json::Map<String, Value>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (_, body) = super::public::read_body(req, limit, ADMIN_BODY_TIMEOUT).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadRequest("the body must be a JSON object".to_owned())),
        Err(e) => Err(ApiError::BadRequest(format!("the body is not valid JSON: {e}"))),
    }
}

/// Who acts, recorded with the event: the body's `actor`, else "admin-api".
fn actor(body: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    match body.get("actor") {
        None | Some(Value::Null) => Ok("admin-api".to_owned()),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control) => Ok(s.clone()),
        Some(_) => Err(ApiError::BadRequest("actor must be a non-empty string of at most 128 characters".to_owned())),
    }
}

/// `force`: act although the promotion gates fail (recorded); false when absent.
fn force(body: &serde_json::Map<String, Value>) -> Result<bool, ApiError> {
    match body.get("force") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::BadRequest("force must be true or false".to_owned())),
    }
}

fn version_of(v: &Value) -> Option<u32> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    u32::try_from(n).ok().filter(|n| *n >= 1)
}

/// `{"challengers": {"2": 30, "3": 5.5}}` → (version, basis points).
fn weights_of(body: &serde_json::Map<String, Value>) -> Result<Vec<(u32, u32)>, ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    let Some(Value::Object(map)) = body.get("challengers") else {
        return Err(bad(
            "weights needs {\"challengers\": {\"VERSION\": PERCENT, ...}} (an empty object clears them)".into()
        ));
    };
    map.iter()
        .map(|(k, v)| {
            let version = k
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad(format!("'{k}' is not a version number ≥ 1")))?;
            let pct = v.as_f64().filter(|p| (0.0..=100.0).contains(p)).ok_or_else(|| {
                bad(format!("weight of version {version} must be a percentage between 0 and 100, not {v}"))
            })?;
            Ok((version, (pct * 100.0).round() as u32))
        })
        .collect()
}

/// The full chain of one request: its records, the version, provenance and events.
async fn lineage(app: &App, request_id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    match app.store.registry().lineage_chain(request_id).await {
        Ok(chain) => {
            let body = serde_json::to_value(&chain).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(json_response(StatusCode::OK, &body))
        }
        Err(StoreError::LineageNotFound { .. }) => {
            let pending = app.pipeline.lineage().is_some_and(|s| s.queued() > 0);
            let hint = if pending { " (records are still being written; retry shortly)" } else { "" };
            Err(ApiError::NotFound(format!("no lineage record for request '{request_id}'{hint}")))
        }
        Err(e) => {
            Err(ApiError::Unavailable { message: format!("the registry cannot be read: {e}"), retry_after: Some(1) })
        }
    }
}

/// The process's health beyond readiness: the lineage writer's state.
fn status(app: &App) -> Value {
    let lineage = match app.pipeline.lineage() {
        Some(sink) => serde_json::to_value(sink.snapshot()).unwrap_or(Value::Null),
        None => json!({ "enabled": false }),
    };
    let degraded = app.pipeline.lineage().is_some_and(|s| !s.snapshot().healthy);
    let upstreams: Vec<Value> = crate::upstream::Host::all().iter().map(|h| h.view()).collect();
    json!({ "status": if degraded { "degraded" } else { "ok" }, "lineage": lineage, "upstreams": upstreams })
}

fn model_state(model: &ServedModel) -> Value {
    let now = std::time::Instant::now();
    let versions: Vec<Value> = model
        .versions
        .iter()
        .map(|(v, slot)| match slot {
            VersionSlot::Ready(l) => {
                let s = l.window.load().stats(now);
                json!({
                    "version": v, "state": "ready", "sha256": l.instance.sha256, "stage": l.stage.get().to_string(),
                    "device": l.instance.settings.device.to_string(), "instances": l.instance.instances,
                    "execution": if l.instance.upstream().is_some() { "remote" } else { l.instance.execution().as_str() },
                    "execution_configured": l.instance.settings.execution.as_str(),
                    "queue_depth": l.instance.queue_depth(),
                    "upstream": l.instance.upstream(),
                    "upstream_health": l.instance.remote_client().map(|r| r.host().view()),
                    "recent": { "requests": s.requests, "errors": s.errors, "error_rate": s.error_rate(), "p99_ms": s.p99_ms,
                                "window_ms": l.window.load().length().as_millis() as u64 },
                    // The same window as a time series (one point per tenth of it, oldest first):
                    // what the console draws, read from what the guard keeps anyway.
                    "series": l.window.load().series(now),
                    "ejected": model.ejected.contains(v),
                })
            }
            VersionSlot::Failed { sha256, reason } => json!({
                "version": v, "state": "failed", "sha256": sha256, "reason": reason,
            }),
        })
        .collect();
    let guard = model.guard.as_ref().map(|g| {
        json!({
            "window_ms": g.window.as_millis() as u64, "p99_ms": g.p99_ms, "max_error_rate": g.max_error_rate,
            "min_requests": g.min_requests, "interval_ms": g.interval.as_millis() as u64,
            "cooldown_ms": g.cooldown.as_millis() as u64,
        })
    });
    json!({
        "name": model.name,
        "routing": routing_json(&model.routing),
        "origin": model.origin,
        "configured_routing": routing_json(&model.configured),
        "previous_champion": model.previous_champion,
        "ejected": model.ejected,
        "guard": guard,
        "versions": versions,
    })
}

fn routing_json(r: &policy::router::RoutingTable) -> Value {
    let pct = |bp: u32| f64::from(bp) / 100.0;
    json!({
        "champion": r.champion,
        "champion_route": r.champion_route.as_str(),
        "champion_weight_percent": pct(r.champion_weight()),
        "challengers": r.challengers.iter().map(|(v, w)| json!({"version": v, "weight_percent": pct(*w)})).collect::<Vec<_>>(),
        "shadows": r.shadows.iter().map(|(v, w)| json!({"version": v, "percent": pct(*w)})).collect::<Vec<_>>(),
        "backup": r.backup,
        "sticky_header": r.sticky_header,
    })
}
