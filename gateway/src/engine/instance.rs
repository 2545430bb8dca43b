//! A loaded model version: its sessions (one per worker thread), signature, hash and queue.
//! Loading builds and warms every session before the instance exists, so a served version is
//! always ready; dropping the instance closes its queue and the workers exit once it is drained.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use model_store::Signature;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use tokio::sync::oneshot;

use super::inline::InlinePool;
use super::worker::{Job, Worker, WorkerConfig};
use super::{Device, EngineSettings, Execution, INLINE_BELOW, InstanceStats, Runtime, convert};
use protocol::tensor::{DataType, Tensor, TensorData, element_count};

/// One loaded, warmed model version.
#[derive(Debug)]
pub struct ModelInstance {
    pub model: Arc<str>,
    pub version: u32,
    /// Hex sha256 of the artifact the sessions were built from (verified before loading).
    pub sha256: Arc<str>,
    pub signature: Signature,
    /// As configured (`execution` may be `Auto`; `execution()` says what it became).
    pub settings: EngineSettings,
    /// Sessions loaded (`settings.instances`, or `inline_instances` when `Auto` chose inline).
    pub instances: usize,
    /// True when every input and output has a dynamic first dimension, so requests can be
    /// stacked along it.
    pub batchable: bool,
    pub stats: Arc<InstanceStats>,
    runner: Runner,
}

/// Where `infer` sends a request.
enum Runner {
    /// The workers' queue. Closing it (on drop) stops the workers after the queue drains.
    Workers(Sender<Job>),
    /// Sessions the caller's thread runs itself.
    Inline(InlinePool),
    /// Another v2 server answers (a remote version).
    Remote(crate::upstream::Remote),
    /// The test double of the layers above: answers on the caller's thread from a function,
    /// with no ONNX Runtime (see `engine::testing`).
    #[cfg(test)]
    Scripted(super::testing::Script),
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Runner::Workers(sender) => f.debug_struct("Workers").field("queued", &sender.len()).finish(),
            Runner::Inline(pool) => f.debug_struct("Inline").field("waiting", &pool.waiting()).finish(),
            Runner::Remote(remote) => f.debug_struct("Remote").field("upstream", &remote.upstream).finish(),
            #[cfg(test)]
            Runner::Scripted(_) => f.write_str("Scripted"),
        }
    }
}

/// The result of one inference.
#[derive(Debug)]
pub struct InferOutcome {
    /// Every model output, in the model's order.
    pub outputs: Vec<Tensor>,
    /// Time spent waiting for a session.
    pub queue: Duration,
    /// Time of the `Session::run` call that served this request (shared by a batch).
    pub compute: Duration,
    /// Rows in the ORT call that served this request.
    pub batch_rows: usize,
    /// Remote versions: the version the upstream says answered.
    pub upstream_version: Option<String>,
}

/// Why an inference did not produce outputs.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("the queue of {model} v{version} is full ({capacity} waiting)")]
    QueueFull { model: String, version: u32, capacity: usize },
    #[error("{model} v{version} is shutting down")]
    Stopped { model: String, version: u32 },
    /// ONNX Runtime refused or failed the call: a fault of the model on this input.
    #[error("model execution failed: {0}")]
    Model(String),
    /// A remote version's upstream did not answer, or answered with an error.
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
}

/// Why a version could not be loaded. Other versions are unaffected.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("ONNX Runtime refused the model: {0}")]
    Session(String),
    #[error("unsupported signature: {0}")]
    Signature(String),
    #[error("warm-up run failed: {0}")]
    WarmUp(String),
    #[error("device {device}: {reason}")]
    Device { device: Device, reason: String },
    #[error("cannot start worker thread: {0}")]
    Thread(String),
}

/// Builds one session from model bytes with the given settings.
pub fn build_session(runtime: &Runtime, bytes: &[u8], settings: &EngineSettings) -> Result<Session, LoadError> {
    let err = |e: ort::Error<ort::session::builder::SessionBuilder>| LoadError::Session(e.to_string());
    let mut builder = Session::builder(runtime.env())
        .map_err(|e| LoadError::Session(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(err)?
        .with_intra_threads(settings.intra_op_threads)
        .map_err(err)?
        .with_inter_threads(1)
        .map_err(err)?;
    builder = with_device(builder, settings.device)?;
    builder.commit_from_memory(bytes).map_err(|e| LoadError::Session(e.to_string()))
}

#[cfg(feature = "cuda")]
fn with_device(
    builder: ort::session::builder::SessionBuilder,
    device: Device,
) -> Result<ort::session::builder::SessionBuilder, LoadError> {
    match device {
        Device::Cpu => Ok(builder),
        Device::Cuda(id) => builder
            .with_execution_providers([ort::ep::CUDA::default().with_device_id(id).build().error_on_failure()])
            .map_err(|e| LoadError::Device { device, reason: e.to_string() }),
    }
}

#[cfg(not(feature = "cuda"))]
fn with_device(
    builder: ort::session::builder::SessionBuilder,
    device: Device,
) -> Result<ort::session::builder::SessionBuilder, LoadError> {
    match device {
        Device::Cpu => Ok(builder),
        Device::Cuda(_) => Err(LoadError::Device {
            device,
            reason: "this build has no CUDA support; rebuild with `--features cuda`".to_owned(),
        }),
    }
}

impl ModelInstance {
    /// Loads a version: builds its first session and warms it with one zero-filled run; with
    /// `Execution::Auto`, times more runs of it to choose inline or worker threads; then builds
    /// and warms the rest (`settings.instances`, or `inline_instances` when `Auto` chose inline)
    /// and, on worker threads, starts one per session. Blocking (tens of milliseconds per
    /// session): call it from a blocking context, never on an async worker.
    pub fn load(
        runtime: &Runtime,
        model: &str,
        version: u32,
        sha256: &str,
        bytes: &[u8],
        settings: EngineSettings,
    ) -> Result<ModelInstance, LoadError> {
        let mut first = build_session(runtime, bytes, &settings)?;
        let signature = convert::signature_of(&first).map_err(LoadError::Signature)?;
        let warm = warm_up(&mut first, &signature)?;
        let batchable = signature.inputs.iter().chain(&signature.outputs).all(|s| s.shape.first() == Some(&-1));
        let execution = match settings.execution {
            // A batching version needs its worker threads to batch.
            Execution::Auto if settings.max_batch > 1 && batchable => Execution::Workers,
            // On a GPU a large model can run in microseconds, and inline would load one copy
            // of its weights per server thread into the GPU's memory.
            Execution::Auto if settings.device != Device::Cpu => Execution::Workers,
            Execution::Auto => {
                let typical = time_runs(&mut first, warm)?;
                let chosen = if typical < INLINE_BELOW { Execution::Inline } else { Execution::Workers };
                tracing::info!(
                    model,
                    version,
                    warm_run_us = typical.as_micros() as u64,
                    execution = chosen.as_str(),
                    "execution chosen from the model's warm runs"
                );
                chosen
            }
            chosen => chosen,
        };
        let instances = match (settings.execution, execution) {
            (Execution::Auto, Execution::Inline) => settings.inline_instances,
            _ => settings.instances,
        }
        .max(1);
        let mut sessions = Vec::with_capacity(instances);
        sessions.push(first);
        while sessions.len() < instances {
            let mut session = build_session(runtime, bytes, &settings)?;
            warm_up(&mut session, &signature)?;
            sessions.push(session);
        }
        let stats = Arc::new(InstanceStats::default());
        let batch_size =
            metrics::histogram!("switchyard_batch_size", "model" => model.to_owned(), "version" => version.to_string());
        let output_names: Vec<String> = signature.outputs.iter().map(|s| s.name.clone()).collect();
        let runner = match execution {
            Execution::Inline => Runner::Inline(InlinePool::new(
                sessions,
                settings.queue_capacity,
                output_names,
                Arc::clone(&stats),
                batch_size,
            )),
            // `Auto` is decided above; it never reaches here.
            Execution::Workers | Execution::Auto => {
                let (sender, receiver) = crossbeam_channel::bounded(settings.queue_capacity.max(1));
                let config = Arc::new(WorkerConfig {
                    model: model.to_owned(),
                    version: version.to_string(),
                    max_batch: if batchable { settings.max_batch.max(1) } else { 1 },
                    batch_delay: settings.batch_delay,
                    output_names,
                    stats: Arc::clone(&stats),
                    batch_size,
                });
                for (i, session) in sessions.into_iter().enumerate() {
                    let worker = Worker { session, receiver: receiver.clone(), config: Arc::clone(&config) };
                    std::thread::Builder::new()
                        .name(format!("sy-{model}-v{version}-{i}"))
                        .spawn(move || worker.run())
                        .map_err(|e| LoadError::Thread(e.to_string()))?;
                }
                Runner::Workers(sender)
            }
        };
        Ok(ModelInstance {
            model: Arc::from(model),
            version,
            sha256: Arc::from(sha256),
            signature,
            settings,
            instances,
            batchable,
            stats,
            runner,
        })
    }

    /// A remote version: answered by `remote`'s upstream, whose signature `connect` checked.
    pub fn remote(
        model: &str,
        version: u32,
        sha256: &str,
        signature: Signature,
        settings: EngineSettings,
        remote: crate::upstream::Remote,
    ) -> ModelInstance {
        let batchable = signature.inputs.iter().chain(&signature.outputs).all(|s| s.shape.first() == Some(&-1));
        ModelInstance {
            model: Arc::from(model),
            version,
            sha256: Arc::from(sha256),
            signature,
            settings,
            instances: 0,
            batchable,
            stats: Arc::new(InstanceStats::default()),
            runner: Runner::Remote(remote),
        }
    }

    /// A remote version's client; `None` for a model run here.
    pub fn remote_client(&self) -> Option<&crate::upstream::Remote> {
        match &self.runner {
            Runner::Remote(remote) => Some(remote),
            _ => None,
        }
    }

    /// Where a remote version is answered; `None` for a model run here.
    pub fn upstream(&self) -> Option<&Arc<model_store::Upstream>> {
        match &self.runner {
            Runner::Remote(remote) => Some(&remote.upstream),
            _ => None,
        }
    }

    /// Runs one inference. Inputs must already be validated against `signature`. A full queue
    /// is refused at once. With `Execution::Workers` this never blocks; with `Inline` the
    /// calling thread runs the model; a remote version's upstream is told `deadline` (local
    /// runs are bounded by the caller dropping the future).
    pub async fn infer(&self, inputs: Vec<Tensor>, deadline: tokio::time::Instant) -> Result<InferOutcome, InferError> {
        let enqueued = Instant::now();
        let result = match &self.runner {
            Runner::Workers(sender) => self.enqueue(sender, inputs, enqueued).await,
            Runner::Inline(pool) => pool.run(inputs, enqueued, || self.queue_full()).await,
            Runner::Remote(remote) => remote
                .infer(&inputs, deadline)
                .await
                .map(|answer| InferOutcome {
                    outputs: answer.outputs,
                    queue: answer.queue,
                    compute: answer.round_trip,
                    batch_rows: 1,
                    upstream_version: answer.model_version,
                })
                .map_err(InferError::from),
            #[cfg(test)]
            Runner::Scripted(script) => script.run(inputs),
        };
        match &result {
            Ok(o) => self.stats.record_success(enqueued.elapsed(), o.queue, o.compute),
            Err(_) => self.stats.record_failure(enqueued.elapsed()),
        }
        result
    }

    async fn enqueue(
        &self,
        sender: &Sender<Job>,
        inputs: Vec<Tensor>,
        enqueued: Instant,
    ) -> Result<InferOutcome, InferError> {
        let rows = if self.batchable { inputs.first().and_then(|t| t.shape.first()).copied().unwrap_or(1) } else { 1 };
        let (reply, answer) = oneshot::channel();
        let job = Job { inputs, rows: usize::try_from(rows).unwrap_or(1), enqueued, reply };
        match sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(self.queue_full()),
            Err(TrySendError::Disconnected(_)) => return Err(self.stopped()),
        }
        answer.await.map_err(|_| self.stopped())?
    }

    /// How this version runs: `settings.execution`, with `Auto` decided at load.
    pub fn execution(&self) -> Execution {
        match &self.runner {
            Runner::Workers(_) => Execution::Workers,
            Runner::Inline(_) | Runner::Remote(_) => Execution::Inline,
            #[cfg(test)]
            Runner::Scripted(_) => Execution::Inline,
        }
    }

    /// Requests waiting for a session right now.
    pub fn queue_depth(&self) -> usize {
        match &self.runner {
            Runner::Workers(sender) => sender.len(),
            Runner::Inline(pool) => pool.waiting(),
            Runner::Remote(_) => 0,
            #[cfg(test)]
            Runner::Scripted(_) => 0,
        }
    }

    /// A version answered by `script` instead of ONNX Runtime: the engine test double.
    #[cfg(test)]
    pub(crate) fn scripted(
        model: &str,
        version: u32,
        sha256: &str,
        signature: Signature,
        settings: EngineSettings,
        script: super::testing::Script,
    ) -> ModelInstance {
        ModelInstance {
            model: Arc::from(model),
            version,
            sha256: Arc::from(sha256),
            signature,
            instances: 1,
            batchable: true,
            settings,
            stats: Arc::new(InstanceStats::default()),
            runner: Runner::Scripted(script),
        }
    }

    fn queue_full(&self) -> InferError {
        InferError::QueueFull {
            model: self.model.to_string(),
            version: self.version,
            capacity: self.settings.queue_capacity,
        }
    }

    fn stopped(&self) -> InferError {
        InferError::Stopped { model: self.model.to_string(), version: self.version }
    }
}

/// Runs the warm-up inputs `WARM_RUNS` more times; returns the median run time.
fn time_runs(session: &mut Session, warm: WarmInputs) -> Result<Duration, LoadError> {
    let mut times = Vec::with_capacity(WARM_RUNS);
    for _ in 0..WARM_RUNS {
        let inputs = warm.values()?;
        let start = Instant::now();
        session.run(inputs).map(drop).map_err(|e| LoadError::WarmUp(e.to_string()))?;
        times.push(start.elapsed());
    }
    times.sort_unstable();
    Ok(times[WARM_RUNS / 2])
}

/// Timed runs `Execution::Auto` judges a model by (after the first, untimed warm-up run).
const WARM_RUNS: usize = 9;

/// The zero-filled inputs of a warm-up run, kept to time more runs with.
struct WarmInputs(Vec<Tensor>);

impl WarmInputs {
    fn values(&self) -> Result<Vec<(String, ort::value::DynValue)>, LoadError> {
        self.0
            .iter()
            .map(|t| {
                let value = convert::to_ort(t.clone()).map_err(|e| LoadError::WarmUp(e.to_string()))?;
                Ok((t.name.clone(), value))
            })
            .collect()
    }
}

/// One run with zero-filled inputs (dynamic dimensions set to 1) so the first real request does
/// not pay for ORT's lazy initialisation, and a model that cannot run is refused at load time.
/// Returns the inputs it ran with.
fn warm_up(session: &mut Session, signature: &Signature) -> Result<WarmInputs, LoadError> {
    let mut inputs = Vec::with_capacity(signature.inputs.len());
    for spec in &signature.inputs {
        let shape: Vec<i64> = spec.shape.iter().map(|&d| if d < 0 { 1 } else { d }).collect();
        let datatype = DataType::from_v2(&spec.datatype).expect("signature_of only yields v2 datatypes");
        let len = element_count(&shape)
            .ok_or_else(|| LoadError::WarmUp(format!("input '{}' shape is too large", spec.name)))?;
        inputs.push(Tensor { name: spec.name.clone(), shape, data: TensorData::zeros(datatype, len) });
    }
    let warm = WarmInputs(inputs);
    session.run(warm.values()?).map(drop).map_err(|e| LoadError::WarmUp(e.to_string()))?;
    Ok(warm)
}
