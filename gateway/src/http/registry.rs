//! The registry over HTTP, on the admin port: a training pipeline on another machine registers,
//! lists, shows, stages and aliases versions without a shell on the gateway's host, through the
//! same checks as the CLI (the engine reads the artifact's signature; the manifest is checked;
//! a served version is not archived or unaliased without `force`).
//!
//! - `GET  /admin/registry/models`                          models, their version counts and aliases
//! - `GET  /admin/registry/models/{m}`                      its versions
//! - `GET  /admin/registry/models/{m}/events`               its events, oldest first
//! - `GET  /admin/registry/models/{m}/versions/{v}`         one version (number or alias), provenance, events
//! - `POST /admin/registry/models/{m}/versions`             register: `{"artifact": BASE64, "manifest": {..} | "TOML", "actor"}`,
//!   or a remote version: `{"upstream": {"url", "model", "version"?}, "manifest", "actor"}`
//! - `POST /admin/registry/models/{m}/versions/{v}/stage`   `{"stage", "force", "actor"}`
//! - `POST /admin/registry/models/{m}/aliases/{alias}`      `{"version", "actor"}`
//! - `DELETE /admin/registry/models/{m}/aliases/{alias}`    `{"force", "actor"}`

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use model_store::{Manifest, NewVersion, Stage, StoreError};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::json_response;
use crate::app::App;

type Body = Map<String, Value>;

/// Answers `/admin/registry/...` (`rest` is the path after `/admin/registry`).
pub async fn handle(
    app: &App,
    method: &Method,
    rest: &[&str],
    body: Body,
    actor: String,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let registry = app.store.registry();
    let get = method == Method::GET || method == Method::HEAD;
    let not_allowed = |allow| ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: format!("/admin/registry/{}", rest.join("/")),
        allow,
    };
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match rest {
        ["models"] if get => {
            let models = registry.models().await.map_err(store_error)?;
            let listed: Vec<Value> = models
                .iter()
                .map(|m| {
                    let aliases: Vec<Value> =
                        m.aliases.iter().map(|(a, v)| json!({ "alias": a, "version": v })).collect();
                    json!({ "name": m.name, "versions": m.versions, "latest": m.latest,
                            "created_at": m.created_at, "aliases": aliases })
                })
                .collect();
            ok(Value::Array(listed))
        }
        ["models", model] if get => ok(json!(registry.versions(model).await.map_err(store_error)?)),
        ["models", model, "events"] if get => ok(json!(registry.events(model, None).await.map_err(store_error)?)),
        ["models", model, "versions"] if *method == Method::POST => register(app, model, body, actor).await,
        ["models", model, "versions", selector] if get => {
            let v = registry.resolve(model, selector).await.map_err(store_error)?;
            let provenance = registry.provenance(model, v.version).await.map_err(store_error)?;
            let events = registry.events(model, Some(v.version)).await.map_err(store_error)?;
            ok(json!({ "version": v, "provenance": provenance, "events": events }))
        }
        ["models", model, "versions", selector, "stage"] if *method == Method::POST => {
            let stage: Stage = match body.get("stage") {
                Some(Value::String(s)) => s.parse().map_err(|e| ApiError::BadRequest(format!("{e}")))?,
                _ => {
                    return Err(ApiError::BadRequest(
                        "stage needs {\"stage\": \"staging|production|archived\"}".into(),
                    ));
                }
            };
            let v = registry.resolve(model, selector).await.map_err(store_error)?;
            if stage == Stage::Archived {
                refuse_if_served(app, model, v.version, "archive it", force(&body)?).await?;
            }
            ok(json!(registry.set_stage(model, v.version, stage, &actor).await.map_err(store_error)?))
        }
        ["models", model, "aliases", alias] if *method == Method::POST => {
            let selector = match body.get("version") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => return Err(ApiError::BadRequest("alias needs {\"version\": N}".into())),
            };
            let v = registry.resolve(model, &selector).await.map_err(store_error)?;
            ok(json!(registry.set_alias(model, alias, v.version, &actor).await.map_err(store_error)?))
        }
        ["models", model, "aliases", alias] if *method == Method::DELETE => {
            let v = registry.resolve(model, alias).await.map_err(store_error)?;
            refuse_if_served(app, model, v.version, &format!("remove alias '{alias}'"), force(&body)?).await?;
            ok(json!(registry.remove_alias(model, alias, &actor).await.map_err(store_error)?))
        }
        ["models"] | ["models", _] | ["models", _, "versions", _] => Err(not_allowed(super::public::GET)),
        ["models", _, "versions"] | ["models", _, "versions", _, "stage"] => Err(not_allowed(super::public::POST)),
        ["models", _, "aliases", _] => Err(not_allowed("POST, DELETE")),
        _ => Err(ApiError::NotFound(format!("no such endpoint: /admin/registry/{}", rest.join("/")))),
    }
}

/// Registers the base64 `artifact` of the body under `model`, with its `manifest`, after the
/// engine has read its signature. 201 when a version was created, 200 when the same bytes were
/// already registered.
async fn register(app: &App, model: &str, body: Body, actor: String) -> Result<Response<Full<Bytes>>, ApiError> {
    let upstream = match body.get("upstream") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let given: model_store::Upstream = serde_json::from_value(value.clone()).map_err(|e| {
                ApiError::BadRequest(format!(
                    "upstream must be {{\"url\", \"model\", \"version\"?, \"protocol\"?: \"http1\" | \"h2c\"}}: {e}"
                ))
            })?;
            let checked = model_store::Upstream::new(&given.url, &given.model, given.version.as_deref())
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            Some(model_store::Upstream { protocol: given.protocol, binary: given.binary, ..checked })
        }
    };
    let bytes = match (body.get("artifact"), &upstream) {
        (Some(Value::String(_)), Some(_)) => {
            return Err(ApiError::BadRequest("give an artifact or an upstream, not both".into()));
        }
        (Some(Value::String(encoded)), None) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| ApiError::BadRequest(format!("artifact is not valid base64: {e}")))?,
        (_, Some(up)) => up.descriptor(),
        (_, None) => {
            return Err(ApiError::BadRequest(
                "register needs {\"artifact\": \"<the model file, base64>\"} or {\"upstream\": {\"url\", \"model\"}}"
                    .into(),
            ));
        }
    };
    let manifest = match body.get("manifest") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            Some(Manifest::from_toml_str(text).map_err(|e| ApiError::BadRequest(e.to_string()))?)
        }
        Some(object @ Value::Object(_)) => {
            Some(Manifest::from_json_str(&object.to_string()).map_err(|e| ApiError::BadRequest(e.to_string()))?)
        }
        Some(_) => return Err(ApiError::BadRequest("manifest must be an object (JSON) or a string (TOML)".into())),
    };
    let signature = match &upstream {
        Some(up) => crate::upstream::read_signature(up, &app.control.upstream_config().await)
            .await
            .map_err(|e| ApiError::BadGateway(format!("cannot read the remote model's signature: {e}")))?,
        None => {
            let loader = app.control.loader();
            let checked = bytes.clone();
            tokio::task::spawn_blocking(move || loader.signature(&checked))
                .await
                .map_err(|e| ApiError::Internal(format!("signature task failed: {e}")))?
                .map_err(|e| ApiError::BadRequest(format!("the artifact is not a model the engine can load: {e}")))?
        }
    };
    let registered = app
        .store
        .register(NewVersion { model: model.to_owned(), bytes, upstream, signature, manifest, actor })
        .await
        .map_err(store_error)?;
    let v = &registered.version;
    let status = if registered.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json_response(
        status,
        &json!({ "model": v.model, "version": v.version, "sha256": v.sha256, "size": v.size, "created": registered.created,
                 "upstream": v.upstream }),
    ))
}

/// 409 naming who serves `version` and how, unless `force`: this gateway's own snapshot first,
/// then the registry's claims of other replicas.
async fn refuse_if_served(app: &App, model: &str, version: u32, what: &str, force: bool) -> Result<(), ApiError> {
    if force {
        return Ok(());
    }
    let claims = app.store.registry().served_by(model, version).await.map_err(store_error)?;
    let local = crate::control::publish::served_versions(&app.control.snapshot())
        .into_iter()
        .find(|s| s.model == model && s.version == version);
    let mut by: Vec<String> = claims.iter().map(|c| format!("{} (as {})", c.replica, c.roles.join(", "))).collect();
    if let Some(s) = local
        && !claims.iter().any(|c| c.replica == app.control.replica())
    {
        by.push(format!("{} (as {})", app.control.replica(), s.roles.join(", ")));
    }
    if by.is_empty() {
        return Ok(());
    }
    Err(ApiError::Conflict(format!(
        "refusing to {what}: version {version} of '{model}' is being served by {}; change the routing first, \
         or send \"force\": true",
        by.join(", ")
    )))
}

fn force(body: &Body) -> Result<bool, ApiError> {
    match body.get("force") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::BadRequest("force must be true or false".to_owned())),
    }
}

/// The registry's refusals as statuses: what does not exist 404, what is malformed 400, what
/// conflicts 409, a registry that cannot be used 503.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::ModelNotFound { .. } | StoreError::VersionNotFound { .. } | StoreError::AliasNotFound { .. } => {
            ApiError::NotFound(e.to_string())
        }
        StoreError::InvalidAlias { .. }
        | StoreError::InvalidModelName { .. }
        | StoreError::InvalidUpstream(_)
        | StoreError::Manifest(_) => ApiError::BadRequest(e.to_string()),
        StoreError::ArtifactCollected { .. } => ApiError::Conflict(e.to_string()),
        other => {
            ApiError::Unavailable { message: format!("the registry cannot be used: {other}"), retry_after: Some(1) }
        }
    }
}
