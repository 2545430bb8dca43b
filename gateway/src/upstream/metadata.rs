//! A remote model's signature, as its upstream declares it (`GET /v2/models/{m}[/versions/{v}]`):
//! read at registration and checked again at every load.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use model_store::{Signature, TensorSpec, Upstream};
use protocol::tensor::DataType;
use serde::Deserialize;

use super::{ErrorKind, Host, UpstreamError, error_chain, error_text};

/// The most metadata read; a model's metadata is a few kilobytes.
const MAX_METADATA_BYTES: usize = 4 << 20;

#[derive(Deserialize)]
struct ModelMetadata {
    #[serde(default)]
    inputs: Vec<TensorMetadata>,
    #[serde(default)]
    outputs: Vec<TensorMetadata>,
}

#[derive(Deserialize)]
struct TensorMetadata {
    name: String,
    datatype: String,
    shape: Vec<i64>,
}

/// The signature `upstream` declares for its model, read within five connect timeouts (a
/// connection, and a model server's slower answer about metadata than about inference).
pub(super) async fn signature(
    host: &Host,
    upstream: &Upstream,
    config: &settings::UpstreamConfig,
) -> Result<Signature, UpstreamError> {
    let timeout: Duration = config.connect_timeout * 5;
    let fail = |kind, message: String| host.error(upstream, kind, message);
    let uri: http::Uri = format!("{}{}", upstream.url, upstream.model_path())
        .parse()
        .map_err(|e| fail(ErrorKind::Malformed, format!("bad URL: {e}")))?;
    let request = http::Request::get(uri).body(Full::new(Bytes::new())).expect("a GET of a parsed URI");
    let read = async {
        let response = host.client().request(request).await.map_err(|e| {
            if e.is_connect() {
                host.connect_failed()
            }
            fail(ErrorKind::Connect, format!("cannot read the model's metadata: {}", error_chain(&e)))
        })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_METADATA_BYTES)
            .collect()
            .await
            .map_err(|e| fail(ErrorKind::Malformed, format!("cannot read the model's metadata: {e}")))?
            .to_bytes();
        Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| fail(ErrorKind::Timeout, format!("no model metadata within {} ms", timeout.as_millis())))??;
    host.answered();
    if status != http::StatusCode::OK {
        return Err(fail(
            ErrorKind::Status(status.as_u16()),
            format!("model metadata answered {status}: {}", error_text(&body)),
        ));
    }
    let metadata: ModelMetadata = serde_json::from_slice(&body)
        .map_err(|e| fail(ErrorKind::Malformed, format!("the model metadata is not v2 model metadata: {e}")))?;
    if metadata.inputs.is_empty() || metadata.outputs.is_empty() {
        return Err(fail(
            ErrorKind::Malformed,
            "the model metadata declares no inputs or no outputs, so requests could not be checked: declare \
             the model's signature on the upstream (MLServer: inputs and outputs in model-settings.json; \
             KServe: a Model's get_input_types and get_output_types)"
                .to_owned(),
        ));
    }
    let spec = |t: TensorMetadata| {
        if DataType::from_v2(&t.datatype).is_none() {
            return Err(fail(
                ErrorKind::Malformed,
                format!("tensor '{}' has unknown datatype '{}'", t.name, t.datatype),
            ));
        }
        if t.shape.iter().any(|&d| d < -1) {
            return Err(fail(ErrorKind::Malformed, format!("tensor '{}' has shape {:?}", t.name, t.shape)));
        }
        Ok(TensorSpec { name: t.name, datatype: t.datatype, shape: t.shape })
    };
    Ok(Signature {
        inputs: metadata.inputs.into_iter().map(spec).collect::<Result<_, _>>()?,
        outputs: metadata.outputs.into_iter().map(spec).collect::<Result<_, _>>()?,
    })
}

/// A signature on one line: `inputs x FP32 [-1, 4]; outputs y FP32 [-1, 3]`.
pub(super) fn describe(signature: &Signature) -> String {
    let list = |specs: &[TensorSpec]| {
        specs.iter().map(|s| format!("{} {} {:?}", s.name, s.datatype, s.shape)).collect::<Vec<_>>().join(", ")
    };
    format!("inputs {}; outputs {}", list(&signature.inputs), list(&signature.outputs))
}

/// The signature of `upstream`'s model, for registering it (a host of default settings).
pub async fn read_signature(
    upstream: &Upstream,
    config: &settings::UpstreamConfig,
) -> Result<Signature, UpstreamError> {
    let host = Host::shared(&upstream.url, upstream.protocol, config);
    signature(&host, upstream, config).await
}
