//! The admin port: Prometheus `/metrics`, read-only `/admin/…` state (models and routing,
//! per-request lineage, writer status). Binds loopback by default.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

use super::error::ApiError;
use super::json_response;
use crate::app::App;
use crate::serving::{ServedModel, VersionSlot};
use model_store::StoreError;

/// Answers one request on the admin port.
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Response<Full<Bytes>> {
    match route(&app, &req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route<B>(app: &App, req: &Request<B>) -> Result<Response<Full<Bytes>>, ApiError> {
    let path = req.uri().path().trim_end_matches('/');
    if req.method() != Method::GET {
        return Err(ApiError::MethodNotAllowed { method: req.method().to_string(), path: path.to_owned() });
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let state = app.serving.load_full();
    match segments.as_slice() {
        ["metrics"] => {
            app.metrics.run_upkeep();
            let mut r = Response::new(Full::new(Bytes::from(app.metrics.render())));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            Ok(r)
        }
        ["admin", "models"] => {
            Ok(json_response(StatusCode::OK, &Value::Array(state.models.values().map(model_state).collect())))
        }
        ["admin", "models", name] => {
            let model = state.models.get(*name).ok_or_else(|| ApiError::NotFound(format!("unknown model '{name}'")))?;
            Ok(json_response(StatusCode::OK, &model_state(model)))
        }
        ["admin", "lineage", request_id] => lineage(app, request_id).await,
        ["admin", "status"] => Ok(json_response(StatusCode::OK, &status(app))),
        _ => Err(ApiError::NotFound(format!("no such endpoint: {path}"))),
    }
}

/// The full chain of one request: its records, the version, provenance and events.
async fn lineage(app: &App, request_id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    match app.store.registry().lineage_chain(request_id).await {
        Ok(chain) => {
            let body = serde_json::to_value(&chain).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(json_response(StatusCode::OK, &body))
        }
        Err(StoreError::LineageNotFound { .. }) => {
            let pending = app.lineage.as_ref().is_some_and(|s| s.queued() > 0);
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
    let lineage = match &app.lineage {
        Some(sink) => serde_json::to_value(sink.snapshot()).unwrap_or(Value::Null),
        None => json!({ "enabled": false }),
    };
    let degraded = app.lineage.as_ref().is_some_and(|s| !s.snapshot().healthy);
    json!({ "status": if degraded { "degraded" } else { "ok" }, "lineage": lineage })
}

fn model_state(model: &ServedModel) -> Value {
    let versions: Vec<Value> = model
        .versions
        .iter()
        .map(|(v, slot)| match slot {
            VersionSlot::Ready(l) => json!({
                "version": v, "state": "ready", "sha256": l.instance.sha256, "stage": l.stage.to_string(),
                "device": l.instance.settings.device.to_string(), "instances": l.instance.settings.instances,
                "queue_depth": l.instance.queue_depth(),
            }),
            VersionSlot::Failed { sha256, reason } => json!({
                "version": v, "state": "failed", "sha256": sha256, "reason": reason,
            }),
        })
        .collect();
    let r = &model.routing;
    let pct = |bp: u32| f64::from(bp) / 100.0;
    let routing = json!({
        "champion": r.champion,
        "champion_weight_percent": pct(r.champion_weight()),
        "challengers": r.challengers.iter().map(|(v, w)| json!({"version": v, "weight_percent": pct(*w)})).collect::<Vec<_>>(),
        "shadows": r.shadows.iter().map(|(v, w)| json!({"version": v, "percent": pct(*w)})).collect::<Vec<_>>(),
        "backup": r.backup,
        "sticky_header": r.sticky_header,
    });
    json!({ "name": model.name, "routing": routing, "versions": versions })
}
