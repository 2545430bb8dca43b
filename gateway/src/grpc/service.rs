//! `inference.GRPCInferenceService`: health, metadata, configuration and statistics answered
//! from one serving snapshot; `ModelInfer` and `ModelStreamInfer` through the pipeline
//! (`infer`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use protocol::grpc::inference::model_config::SchedulingChoice;
use protocol::grpc::inference::model_instance_group::Kind;
use protocol::grpc::inference::model_metadata_response::TensorMetadata;
use protocol::grpc::inference::model_version_policy::{PolicyChoice, Specific};
use protocol::grpc::inference::*;
use protocol::grpc::parse_version;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status, Streaming};

use super::GrpcError;
use super::infer::{Answered, grpc_timeout, infer, request_id};
use super::pb::grpc_inference_service_server::GrpcInferenceService;
use crate::app::{App, EXTENSIONS, max_batch_size, server_ready};
use crate::engine::{Device, StatsSnapshot};
use crate::serving::{LoadedVersion, ServedModel, VersionSlot};

/// The service, on the shared `App`.
#[derive(Debug, Clone)]
pub struct Inference {
    app: Arc<App>,
}

/// Answers of a stream waiting to be sent: a slow reader holds up its own stream only.
const STREAM_BUFFER: usize = 16;

impl Inference {
    pub fn new(app: Arc<App>) -> Inference {
        Inference { app }
    }
}

/// The version asked for (`""`: the champion): NOT_FOUND when not served, UNAVAILABLE when it
/// failed to load.
fn select<'a>(model: &'a ServedModel, version: &str) -> Result<&'a Arc<LoadedVersion>, GrpcError> {
    let not_found = || GrpcError::NoSuchVersion { model: model.name.clone(), version: version.to_owned() };
    let v = parse_version(version).map_err(|_| not_found())?.unwrap_or(model.routing.champion);
    match model.versions.get(&v) {
        Some(VersionSlot::Ready(loaded)) => Ok(loaded),
        Some(VersionSlot::Failed { reason, .. }) => {
            Err(GrpcError::Unavailable(format!("version {v} of model '{}' is not available: {reason}", model.name)))
        }
        None => Err(not_found()),
    }
}

fn data_type(datatype: &str) -> i32 {
    let name = if datatype == "BYTES" { "TYPE_STRING".to_owned() } else { format!("TYPE_{datatype}") };
    DataType::from_str_name(&name).unwrap_or(DataType::TypeInvalid) as i32
}

/// Triton's model configuration, as `GET …/config` answers it over REST.
fn model_config(model: &ServedModel, shown: &LoadedVersion) -> ModelConfig {
    let inst = &shown.instance;
    let batch = max_batch_size(model, shown);
    let dims = |shape: &[i64]| if batch > 0 { shape[1..].to_vec() } else { shape.to_vec() };
    let (kind, gpus) = match inst.settings.device {
        Device::Cpu => (Kind::Cpu, Vec::new()),
        Device::Cuda(n) => (Kind::Gpu, vec![n]),
    };
    let dynamic = inst.batchable && inst.settings.max_batch > 1;
    ModelConfig {
        name: model.name.clone(),
        platform: "onnxruntime_onnx".to_owned(),
        backend: "onnxruntime".to_owned(),
        version_policy: Some(ModelVersionPolicy {
            policy_choice: Some(PolicyChoice::Specific(Specific {
                versions: model.ready_versions().map(|l| i64::from(l.instance.version)).collect(),
            })),
        }),
        max_batch_size: i32::try_from(batch).unwrap_or(i32::MAX),
        input: inst
            .signature
            .inputs
            .iter()
            .map(|s| ModelInput { name: s.name.clone(), data_type: data_type(&s.datatype), dims: dims(&s.shape) })
            .collect(),
        output: inst
            .signature
            .outputs
            .iter()
            .map(|s| ModelOutput { name: s.name.clone(), data_type: data_type(&s.datatype), dims: dims(&s.shape) })
            .collect(),
        scheduling_choice: dynamic.then(|| {
            SchedulingChoice::DynamicBatching(ModelDynamicBatching {
                preferred_batch_size: Vec::new(),
                max_queue_delay_microseconds: u64::try_from(inst.settings.batch_delay.as_micros()).unwrap_or(u64::MAX),
            })
        }),
        instance_group: vec![ModelInstanceGroup {
            name: String::new(),
            kind: kind as i32,
            count: i32::try_from(inst.instances).unwrap_or(i32::MAX),
            gpus,
        }],
    }
}

fn duration(pair: (u64, u64)) -> Option<StatisticDuration> {
    Some(StatisticDuration { count: pair.0, ns: pair.1 })
}

/// One entry of `model_stats`, as Triton's statistics extension has it.
fn version_stats(model: &str, version: u32, s: &StatsSnapshot) -> ModelStatistics {
    ModelStatistics {
        name: model.to_owned(),
        version: version.to_string(),
        last_inference: s.last_inference_ms,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: Some(InferStatistics {
            success: duration(s.success),
            fail: duration(s.fail),
            queue: duration(s.queue),
            compute_input: duration((s.compute.0, 0)),
            compute_infer: duration(s.compute),
            compute_output: duration((s.compute.0, 0)),
            cache_hit: duration((0, 0)),
            cache_miss: duration((0, 0)),
        }),
        batch_stats: Vec::new(),
    }
}

/// The unary answer: the response with who answered in its metadata, as REST's headers.
fn answered(a: Answered, request_id: &str) -> Response<ModelInferResponse> {
    let mut response = Response::new(a.response);
    let m = response.metadata_mut();
    m.insert("x-model-version", MetadataValue::from(a.version));
    if let Ok(v) = MetadataValue::try_from(&*a.sha256) {
        m.insert("x-model-sha256", v);
    }
    m.insert("x-model-route", MetadataValue::from_static(a.route));
    insert_request_id(m, request_id);
    response
}

fn insert_request_id(m: &mut MetadataMap, request_id: &str) {
    // A request id is visible ASCII (`RequestId`), always a valid metadata value.
    if let Ok(v) = MetadataValue::try_from(request_id) {
        m.insert(super::REQUEST_ID, v);
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: server_ready(&self.app.control.snapshot()) }))
    }

    /// Ready when the version (default: the champion) is loaded; an unknown model or version is
    /// not ready rather than an error, as Triton answers.
    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let r = request.into_inner();
        let state = self.app.control.snapshot();
        let ready = state.models.get(&r.name).is_some_and(|m| select(m, &r.version).is_ok());
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "switchyard".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        let state = self.app.control.snapshot();
        let model = state.models.get(&r.name).ok_or_else(|| GrpcError::UnknownModel(r.name.clone()).to_status())?;
        let shown = select(model, &r.version).map_err(|e| e.to_status())?;
        let tensors = |specs: &[model_store::TensorSpec]| -> Vec<TensorMetadata> {
            specs
                .iter()
                .map(|s| TensorMetadata { name: s.name.clone(), datatype: s.datatype.clone(), shape: s.shape.clone() })
                .collect()
        };
        let sig = &shown.instance.signature;
        Ok(Response::new(ModelMetadataResponse {
            name: model.name.clone(),
            versions: model.ready_versions().map(|l| l.instance.version.to_string()).collect(),
            platform: "onnxruntime_onnx".to_owned(),
            inputs: tensors(&sig.inputs),
            outputs: tensors(&sig.outputs),
        }))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        let r = request.into_inner();
        let state = self.app.control.snapshot();
        let model = state.models.get(&r.name).ok_or_else(|| GrpcError::UnknownModel(r.name.clone()).to_status())?;
        let shown = select(model, &r.version).map_err(|e| e.to_status())?;
        Ok(Response::new(ModelConfigResponse { config: Some(model_config(model, shown)) }))
    }

    /// Every loaded version of every model when `name` is empty; of one model, or one version.
    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        let r = request.into_inner();
        let state = self.app.control.snapshot();
        let stats = |m: &ServedModel, l: &LoadedVersion| {
            version_stats(&m.name, l.instance.version, &l.instance.stats.snapshot())
        };
        let model_stats = if r.name.is_empty() {
            state.models.values().flat_map(|m| m.ready_versions().map(move |l| stats(m, l))).collect()
        } else {
            let model = state.models.get(&r.name).ok_or_else(|| GrpcError::UnknownModel(r.name.clone()).to_status())?;
            if r.version.is_empty() {
                model.ready_versions().map(|l| stats(model, l)).collect()
            } else {
                vec![stats(model, select(model, &r.version).map_err(|e| e.to_status())?)]
            }
        };
        Ok(Response::new(ModelStatisticsResponse { model_stats }))
    }

    /// A call with a deadline runs on a task of its own: at its deadline the client cancels the
    /// call (RST_STREAM), which drops this future; the run goes on to its own
    /// DEADLINE_EXCEEDED and is recorded, so the guard's windows see the timeouts. Without a
    /// deadline it runs inline (a task costs 6-9 µs of CPU per call here; a client that cancels
    /// such a call leaves no record, as over REST).
    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let (metadata, _, msg) = request.into_parts();
        let id = request_id(Some(&metadata), &msg);
        let timeout = grpc_timeout(&metadata);
        let result = if timeout.is_some() {
            let app = Arc::clone(&self.app);
            let run = tokio::spawn(async move { infer(&app, &metadata, msg, timeout, id).await });
            run.await.map_err(|e| {
                tracing::error!(request_id = %id, error = %e, "gRPC inference task failed");
                Status::internal("internal error")
            })?
        } else {
            infer(&self.app, &metadata, msg, None, id).await
        };
        match result {
            Ok(a) => Ok(answered(a, id.as_str())),
            Err(e) => {
                let mut status = e.to_status();
                insert_request_id(status.metadata_mut(), id.as_str());
                Err(status)
            }
        }
    }

    type ModelStreamInferStream = Pin<Box<dyn Stream<Item = Result<ModelStreamInferResponse, Status>> + Send>>;

    /// Each request answered in order on the stream; a request that fails gets its
    /// `error_message` (and the stream goes on), as Triton does. The stream's deadline, if the
    /// client set one, bounds every request on it. Each request's lineage key is its own `id`
    /// (or a generated one): the call's metadata is shared by all of them.
    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        let (metadata, _, mut inbound) = request.into_parts();
        let deadline = grpc_timeout(&metadata).map(|t| Instant::now() + t);
        let app = Arc::clone(&self.app);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            loop {
                let msg = match inbound.message().await {
                    Ok(Some(msg)) => msg,
                    Ok(None) => break,
                    Err(status) => {
                        let _ = tx.send(Err(super::server::size_status(status, app.max_body_bytes))).await;
                        break;
                    }
                };
                let id = request_id(None, &msg);
                let (model_name, request_id_text) = (msg.model_name.clone(), msg.id.clone());
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                let reply = match infer(&app, &metadata, msg, left, id).await {
                    Ok(a) => {
                        ModelStreamInferResponse { error_message: String::new(), infer_response: Some(a.response) }
                    }
                    Err(e) => ModelStreamInferResponse {
                        error_message: e.to_string(),
                        infer_response: Some(ModelInferResponse {
                            model_name,
                            id: request_id_text,
                            ..ModelInferResponse::default()
                        }),
                    },
                };
                if tx.send(Ok(reply)).await.is_err() {
                    break; // the client went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
