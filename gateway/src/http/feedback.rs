//! `POST /v2/models/{m}/feedback`: ground truth for earlier requests, by request id. Each item
//! is joined to the request's lineage record (so the version that predicted is known), judged
//! against the prediction recorded there, and stored once; online quality per version is
//! exported as metrics and read by promotion gates.
//!
//! Bodies: one item `{"request_id": "…", "label": 3}` (or `"value": 0.7`, or
//! `"outcome": true`), or a batch `{"feedback": [item, …]}` of up to `MAX_BATCH` items.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use model_store::{Feedback, FeedbackKind, Registry, StoreError};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::json_response;
use crate::app::App;

/// Most items in one batch.
pub const MAX_BATCH: usize = 10_000;
/// The recent window exported beside all-time figures.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// What happened to one item.
enum Outcome {
    Stored(Feedback),
    Duplicate(Feedback),
    Unknown(String),
    Invalid(String),
}

/// Answers a feedback body for `model`.
pub async fn handle(app: &App, model: &str, body: &[u8]) -> Result<http::Response<Full<Bytes>>, ApiError> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("feedback body is not valid JSON: {e}")))?;
    let Value::Object(map) = parsed else {
        return Err(ApiError::BadRequest("feedback must be a JSON object".to_owned()));
    };
    let registry = app.store.registry();
    if let Some(items) = map.get("feedback") {
        let Value::Array(items) = items else {
            return Err(ApiError::BadRequest("\"feedback\" must be an array of items".to_owned()));
        };
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(ApiError::BadRequest(format!(
                "a feedback batch holds 1 to {MAX_BATCH} items, not {}",
                items.len()
            )));
        }
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            outcomes.push(match item {
                Value::Object(m) => judge(registry, model, m).await?,
                _ => Outcome::Invalid("each item must be a JSON object".to_owned()),
            });
        }
        let outcomes = store(app, outcomes).await?;
        let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        let results: Vec<Value> = outcomes.iter().map(describe).collect();
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "stored": count(|o| matches!(o, Outcome::Stored(_))),
                "duplicates": count(|o| matches!(o, Outcome::Duplicate(_))),
                "unknown": count(|o| matches!(o, Outcome::Unknown(_))),
                "invalid": count(|o| matches!(o, Outcome::Invalid(_))),
                "results": results,
            }),
        ));
    }
    let outcome = judge(registry, model, &map).await?;
    let mut outcomes = store(app, vec![outcome]).await?;
    match outcomes.pop() {
        Some(Outcome::Unknown(m)) => Err(ApiError::NotFound(m)),
        Some(Outcome::Invalid(m)) => Err(ApiError::BadRequest(m)),
        Some(o) => Ok(json_response(StatusCode::OK, &describe(&o))),
        None => Err(ApiError::Internal("no feedback outcome".to_owned())),
    }
}

/// Joins one item to its lineage record and judges it. Store failures are errors of the whole
/// call; everything about the item itself is its outcome.
async fn judge(registry: &Registry, model: &str, item: &Map<String, Value>) -> Result<Outcome, ApiError> {
    let Some(request_id) = item.get("request_id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        return Ok(Outcome::Invalid("each item needs a \"request_id\" string".to_owned()));
    };
    let given: Vec<(FeedbackKind, &Value)> = [FeedbackKind::Label, FeedbackKind::Value, FeedbackKind::Outcome]
        .into_iter()
        .filter_map(|k| item.get(k.as_str()).map(|v| (k, v)))
        .collect();
    let [(kind, truth)] = given[..] else {
        return Ok(Outcome::Invalid(format!(
            "request '{request_id}': give exactly one of \"label\", \"value\" or \"outcome\""
        )));
    };
    if let Some(unknown) = item.keys().find(|k| !["request_id", "label", "value", "outcome"].contains(&k.as_str())) {
        return Ok(Outcome::Invalid(format!("request '{request_id}': unknown field \"{unknown}\"")));
    }
    let records = registry.lineage(request_id).await.map_err(store_error)?;
    let Some(primary) = records.iter().find(|r| !r.is_shadow()) else {
        return Ok(Outcome::Unknown(format!("no request '{request_id}' in lineage (unknown id, or not yet written)")));
    };
    if primary.model != model {
        return Ok(Outcome::Unknown(format!("request '{request_id}' was not answered by model '{model}'")));
    }
    Ok(match Feedback::judge(request_id, model, primary.version, primary.prediction.as_ref(), kind, truth.clone()) {
        Ok(f) => Outcome::Stored(f.in_slice(primary.slice.clone())),
        Err(reason) => Outcome::Invalid(format!("request '{request_id}': {reason}")),
    })
}

/// Stores the judged items in one transaction, marks duplicates, and refreshes the metrics of
/// every version that received something.
async fn store(app: &App, outcomes: Vec<Outcome>) -> Result<Vec<Outcome>, ApiError> {
    let registry = app.store.registry();
    let judged: Vec<Feedback> =
        outcomes.iter().filter_map(|o| if let Outcome::Stored(f) = o { Some(f.clone()) } else { None }).collect();
    let mut fresh = registry.insert_feedback(&judged).await.map_err(store_error)?.into_iter();
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|o| match o {
            Outcome::Stored(f) if !fresh.next().unwrap_or(false) => Outcome::Duplicate(f),
            other => other,
        })
        .collect();
    let mut touched: Vec<(String, u32)> = Vec::new();
    for o in &outcomes {
        let (result, f) = match o {
            Outcome::Stored(f) => ("stored", f),
            Outcome::Duplicate(f) => ("duplicate", f),
            _ => continue,
        };
        metrics::counter!("switchyard_feedback_total", "model" => f.model.clone(), "version" => f.version.to_string(),
            "kind" => f.kind.as_str(), "result" => result)
        .increment(1);
        if !touched.iter().any(|(m, v)| *m == f.model && *v == f.version) {
            touched.push((f.model.clone(), f.version));
        }
    }
    let serving = app.control.serving();
    for (model, version) in touched {
        export_quality(registry, &model, version).await;
        if let Some(tracker) = serving.models.get(&model).and_then(|m| m.slices.as_ref()) {
            export_slice_quality(registry, &model, version, &tracker.top()).await;
        }
    }
    Ok(outcomes)
}

/// Sets the online quality gauges of one version, all time and over the last hour.
pub async fn export_quality(registry: &Registry, model: &str, version: u32) {
    let hour_ago = SystemTime::now().checked_sub(WINDOW).and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let since = hour_ago.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    for (window, since) in [("all", None), ("1h", since)] {
        let Ok(s) = registry.feedback_summary(model, version, since).await else { continue };
        let labels = [("model", model.to_owned()), ("version", version.to_string()), ("window", window.to_owned())];
        if let Some(a) = s.accuracy {
            metrics::gauge!("switchyard_online_accuracy_ratio", &labels).set(a);
        }
        if let (Some(mae), Some(rmse)) = (s.mae, s.rmse) {
            metrics::gauge!("switchyard_online_mae", &labels).set(mae);
            metrics::gauge!("switchyard_online_rmse", &labels).set(rmse);
        }
    }
}

/// Sets `switchyard_slice_online_accuracy_ratio` of the top slices of one version, all time.
async fn export_slice_quality(registry: &Registry, model: &str, version: u32, top: &[std::sync::Arc<str>]) {
    let Ok(rows) = registry.feedback_by_slice(model, version).await else { return };
    for q in rows.iter().filter(|q| top.iter().any(|t| **t == *q.slice)) {
        if let Some(a) = q.accuracy() {
            let labels = [("model", model.to_owned()), ("version", version.to_string()), ("slice", q.slice.clone())];
            metrics::gauge!("switchyard_slice_online_accuracy_ratio", &labels).set(a);
        }
    }
}

fn describe(o: &Outcome) -> Value {
    match o {
        Outcome::Stored(f) | Outcome::Duplicate(f) => json!({
            "request_id": f.request_id, "status": if matches!(o, Outcome::Stored(_)) { "stored" } else { "duplicate" },
            "version": f.version, "kind": f.kind, "correct": f.correct, "abs_error": f.abs_error,
        }),
        Outcome::Unknown(m) => json!({ "status": "unknown", "error": m }),
        Outcome::Invalid(m) => json!({ "status": "invalid", "error": m }),
    }
}

fn store_error(e: StoreError) -> ApiError {
    ApiError::Unavailable { message: format!("the registry cannot be used right now: {e}"), retry_after: Some(1) }
}
