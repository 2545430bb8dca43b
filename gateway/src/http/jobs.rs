//! Prediction jobs through a running gateway, on the admin port:
//! - `POST /admin/jobs` `{"model": "M[:V]", "input": "/abs/in.npy", "output": "/abs/out.npy|jsonl",
//!   "batch"?: 256, "fail_fast"?: false, "resume"?: "JOB_ID", "pipeline"?: "/abs/pipeline.toml"}`:
//!   202 with the job's id once it is checked and recorded; 400 with the reason otherwise;
//! - `GET /admin/jobs[?model=M]`, `GET /admin/jobs/{id}`: jobs as the registry records them.
//!
//! A job runs as a child process of this gateway, `switchyard predict` at the lowest CPU priority
//! (`nice -n 19`): online requests keep the processor, a job's memory is its own, and a job that
//! fails takes nothing else with it. Paths are the gateway host's. A job goes on when the gateway
//! stops (it is a process of its own); one that is killed stays `running` at its last
//! checkpoint: resume it with `"resume"` (or `switchyard predict --resume`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};

use super::error::ApiError;
use super::json_response;
use crate::app::App;

/// How long checking a job may take (reading the input, loading the version) before the
/// request gives up waiting for its id; the job itself is not bounded.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// `POST /admin/jobs`.
pub async fn start(app: &App, body: &Map<String, Value>) -> Result<http::Response<Full<Bytes>>, ApiError> {
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let path = |key: &str| -> Result<Option<&str>, ApiError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(p)) if Path::new(p).is_absolute() => Ok(Some(p.as_str())),
            Some(_) => Err(ApiError::BadRequest(format!("\"{key}\" must be an absolute path on the gateway's host"))),
        }
    };
    const FIELDS: [&str; 8] = ["model", "input", "output", "batch", "fail_fast", "resume", "pipeline", "actor"];
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!("unknown field \"{unknown}\"")));
    }
    let model =
        text("model").ok_or_else(|| ApiError::BadRequest("a job needs \"model\": \"NAME[:VERSION]\"".into()))?;
    let (Some(input), Some(output)) = (path("input")?, path("output")?) else {
        return Err(ApiError::BadRequest("a job needs \"input\" and \"output\" (absolute paths)".into()));
    };
    let batch = match body.get("batch") {
        None | Some(Value::Null) => 256,
        Some(v) => v
            .as_u64()
            .filter(|b| (1..=65_536).contains(b))
            .ok_or_else(|| ApiError::BadRequest("\"batch\" must be a number of rows between 1 and 65536".into()))?,
    };
    let Some(runtime) = app.control.loader().runtime() else {
        return Err(ApiError::Unavailable { message: "this gateway runs no ONNX Runtime".into(), retry_after: None });
    };
    let exe = std::env::current_exe().map_err(|e| ApiError::Internal(format!("cannot find this binary: {e}")))?;
    let mut command = tokio::process::Command::new("nice");
    command
        .args(["-n", "19"])
        .arg(exe)
        .args(["predict", "--json", "--store"])
        .arg(app.store.root())
        .args(["--model", model, "--input", input, "--output", output, "--batch", &batch.to_string()])
        .arg("--onnxruntime")
        .arg(runtime.library());
    if body.get("fail_fast").and_then(Value::as_bool) == Some(true) {
        command.arg("--fail-fast");
    }
    if let Some(id) = text("resume") {
        command.args(["--resume", id]);
    }
    if let Some(pipeline) = path("pipeline")? {
        command.args(["--pipeline", pipeline]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| ApiError::Internal(format!("cannot start the job: {e}")))?;
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped"));
    // The job's first line names it once it is checked and recorded; an earlier exit says why not.
    let mut first = String::new();
    let read = tokio::time::timeout(START_TIMEOUT, stderr.read_line(&mut first)).await;
    let id = first.strip_prefix("prediction job ").and_then(|rest| rest.split_whitespace().next()).map(str::to_owned);
    let Some(id) = id else {
        let mut rest = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stderr.read_to_string(&mut rest)).await;
        let _ = child.kill().await;
        let message = format!("{first}{rest}");
        let message = message.trim().trim_start_matches("error: ");
        return Err(match read {
            Err(_) => ApiError::Unavailable {
                message: format!("the job was not ready within {} s", START_TIMEOUT.as_secs()),
                retry_after: None,
            },
            Ok(_) => ApiError::BadRequest(format!("the job was refused: {message}")),
        });
    };
    tracing::info!(job = %id, model, input, output, "prediction job started");
    let job = id.clone();
    tokio::spawn(async move {
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log).await;
        match child.wait().await {
            Ok(status) if status.success() => tracing::info!(%job, "prediction job finished"),
            Ok(status) => tracing::warn!(%job, %status, error = %log.trim(), "prediction job failed"),
            Err(e) => tracing::warn!(%job, error = %e, "prediction job lost"),
        }
    });
    Ok(json_response(StatusCode::ACCEPTED, &json!({ "job": id, "status": "running", "model": model })))
}

/// `GET /admin/jobs/{id}`.
pub async fn show(app: &App, id: &str) -> Result<http::Response<Full<Bytes>>, ApiError> {
    match app.store.registry().job(id).await {
        Ok(Some(job)) => Ok(json_response(StatusCode::OK, &serde_json::to_value(job).unwrap_or(Value::Null))),
        Ok(None) => Err(ApiError::NotFound(format!("no prediction job '{id}'"))),
        Err(e) => {
            Err(ApiError::Unavailable { message: format!("the registry cannot be read: {e}"), retry_after: Some(1) })
        }
    }
}

/// `GET /admin/jobs[?model=M]`.
pub async fn list(app: &App, model: Option<&str>) -> Result<http::Response<Full<Bytes>>, ApiError> {
    match app.store.registry().jobs(model).await {
        Ok(jobs) => Ok(json_response(StatusCode::OK, &serde_json::to_value(jobs).unwrap_or(Value::Null))),
        Err(e) => {
            Err(ApiError::Unavailable { message: format!("the registry cannot be read: {e}"), retry_after: Some(1) })
        }
    }
}
