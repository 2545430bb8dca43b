//! One `ModelInferRequest` through the pipeline, for `ModelInfer` and each message of
//! `ModelStreamInfer`: decide (pinned by `model_version`, else routed, sticky keys from the
//! call's metadata) → decode → execute → encode → finish (recorded once, whatever failed).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use protocol::grpc::inference::{ModelInferRequest, ModelInferResponse};
use protocol::grpc::{Parameters, decode_request, encode_response, parse_version};
use protocol::request_id::RequestId;
use protocol::tensor::Tensor;
use serde_json::Value;
use tonic::metadata::MetadataMap;

use super::GrpcError;
use crate::app::App;
use crate::pipeline::{Answer, Outcome, Run};
use crate::serving::ServedModel;

/// An answered request: the response, and what its metadata says of who answered.
#[derive(Debug)]
pub(super) struct Answered {
    pub response: ModelInferResponse,
    pub version: u32,
    pub sha256: Arc<str>,
    pub route: &'static str,
}

/// The request id (lineage key): `metadata`'s `x-request-id` when given and usable, else the
/// request's `id`, else a new one.
pub(super) fn request_id(metadata: Option<&MetadataMap>, msg: &ModelInferRequest) -> RequestId {
    metadata
        .and_then(|m| MetadataMap::get(m, super::REQUEST_ID))
        .and_then(|v| RequestId::from_client(v.as_bytes()))
        .or_else(|| RequestId::from_client(msg.id.as_bytes()))
        .unwrap_or_else(RequestId::generate)
}

/// The client's deadline from its `grpc-timeout` metadata (`<digits><H|M|S|m|u|n>`, at most 8
/// digits); `None` when absent or malformed.
pub(super) fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let text = MetadataMap::get(metadata, "grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Runs `msg` through the pipeline. `metadata` is the call's (sticky keys); `timeout` the time
/// the client still gives it. Records the run once when a version was chosen.
pub(super) async fn infer(
    app: &App,
    metadata: &MetadataMap,
    msg: ModelInferRequest,
    timeout: Option<Duration>,
    request_id: RequestId,
) -> Result<Answered, GrpcError> {
    let (started, arrived) = (Instant::now(), SystemTime::now());
    let state = app.control.snapshot();
    let model = state.models.get(&msg.model_name).ok_or_else(|| GrpcError::UnknownModel(msg.model_name.clone()))?;
    let pinned = parse_version(&msg.model_version)
        .map_err(|v| GrpcError::NoSuchVersion { model: model.name.clone(), version: v.to_owned() })?;
    let mut run = app.pipeline.decide(model, pinned, metadata, request_id, started, arrived)?;
    let result = answer(model, &mut run, msg, timeout).await;
    let outcome = match &result {
        Ok(_) => Outcome::OK,
        Err(e) => {
            let (status, class) = e.recorded();
            Outcome { status, error_class: Some(class) }
        }
    };
    match (run.finish(outcome).await, result) {
        // An answer whose record must be committed first is not sent without it.
        (Err(unrecorded), Ok(_)) => Err(GrpcError::Unavailable(unrecorded.to_string())),
        (_, result) => result,
    }
}

/// Decodes the request, runs it, and encodes the answer.
async fn answer(
    model: &ServedModel,
    run: &mut Run<'_>,
    msg: ModelInferRequest,
    timeout: Option<Duration>,
) -> Result<Answered, GrpcError> {
    let mut decoded = decode_request(msg)?;
    if let Some(t) = timeout {
        shorten_timeout(&mut decoded.request.parameters, t);
    }
    let answer = run.execute(decoded.request).await?;
    let inst = &run.loaded.instance;
    let route = run.choice.decision.route.as_str();
    let id = answer.id.clone();
    let outputs = selected(answer);
    let parameters = Parameters { model_sha256: &inst.sha256, model_version: inst.version, route };
    let response = encode_response(&model.name, id, parameters, outputs, decoded.raw_output);
    Ok(Answered { response, version: inst.version, sha256: Arc::clone(&inst.sha256), route })
}

/// The outputs the request asked for, in its order (all, in the model's order, when it named
/// none). The pipeline has checked that every name is an output.
fn selected(answer: Answer) -> Vec<Tensor> {
    let Some(wanted) = answer.requested else { return answer.outputs };
    let mut all: Vec<Option<Tensor>> = answer.outputs.into_iter().map(Some).collect();
    wanted
        .iter()
        .filter_map(|w| all.iter_mut().find(|t| t.as_ref().is_some_and(|t| t.name == w.name))?.take())
        .collect()
}

/// The client's deadline becomes the request's `timeout` parameter (microseconds, what the
/// pipeline reads), or shortens the one the request carries. A malformed `timeout` is left for
/// the pipeline to refuse.
fn shorten_timeout(parameters: &mut serde_json::Map<String, Value>, client: Duration) {
    // 0 would mean "no timeout" to the pipeline.
    let us = u64::try_from(client.as_micros()).unwrap_or(u64::MAX).max(1);
    match parameters.get("timeout") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|own| own != 0 && own <= us) => {}
        Some(v) if !v.is_number() || v.as_u64().is_none() => {}
        _ => {
            parameters.insert("timeout".to_owned(), Value::from(us));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().expect("ascii"));
        }
        m
    }

    #[test]
    fn grpc_timeouts_parse_every_unit_and_refuse_the_rest() {
        let t = |v: &str| grpc_timeout(&metadata(&[("grpc-timeout", v)]));
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("3M"), Some(Duration::from_secs(180)));
        assert_eq!(t("250m"), Some(Duration::from_millis(250)));
        assert_eq!(t("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(t("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "S", "123456789S", "5x", "-1S", "1.5S"] {
            assert_eq!(t(bad), None, "{bad}");
        }
        assert_eq!(grpc_timeout(&MetadataMap::new()), None);
    }

    #[test]
    fn the_client_deadline_shortens_the_timeout_parameter() {
        let mut p = serde_json::Map::new();
        shorten_timeout(&mut p, Duration::from_millis(5));
        assert_eq!(p["timeout"], Value::from(5000));
        shorten_timeout(&mut p, Duration::from_millis(10));
        assert_eq!(p["timeout"], Value::from(5000), "the shorter one stays");
        shorten_timeout(&mut p, Duration::from_millis(1));
        assert_eq!(p["timeout"], Value::from(1000));
        let mut zero = serde_json::Map::from_iter([("timeout".to_owned(), Value::from(0))]);
        shorten_timeout(&mut zero, Duration::from_millis(2));
        assert_eq!(zero["timeout"], Value::from(2000), "0 means none: the client's applies");
        let mut bad = serde_json::Map::from_iter([("timeout".to_owned(), Value::from(-5))]);
        shorten_timeout(&mut bad, Duration::from_millis(2));
        assert_eq!(bad["timeout"], Value::from(-5), "left for the pipeline to refuse");
    }

    #[test]
    fn request_ids_come_from_metadata_then_the_request() {
        let msg = ModelInferRequest { id: "from-request".into(), ..Default::default() };
        let md = metadata(&[("x-request-id", "from-metadata")]);
        assert_eq!(request_id(Some(&md), &msg).as_str(), "from-metadata");
        assert_eq!(request_id(None, &msg).as_str(), "from-request");
        assert_eq!(request_id(Some(&MetadataMap::new()), &ModelInferRequest::default()).as_str().len(), 36);
    }
}
