//! The request pipeline: one inference request's run, the same for every front end. A front end
//! (REST today) decodes the request and calls, in order:
//!
//! 1. `Pipeline::decide`: which loaded version answers (pinned, sticky, weighted, or a fallback)
//!    and which shadows get a copy; the reason is kept as a `Choice`;
//! 2. `Run::execute`: validate against the version's signature, run it within the deadline,
//!    mirror the request to the shadows;
//! 3. `Run::finish`: record the run once (metrics, guard window, lineage), whatever happened in
//!    between, including failures of the front end's own (a body that did not decode).
//!
//! Nothing here knows of HTTP: request metadata comes through the `Metadata` trait, errors are
//! `PipelineError`s, outcomes are HTTP-equivalent status numbers (what metrics and lineage
//! record for every protocol).

mod decide;
mod error;
mod record;
mod shadow;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use protocol::request_id::RequestId;
use protocol::tensor::Tensor;
use protocol::v2::decode::{InferRequest, RequestedOutput};
use serde_json::{Map, Value};
use tokio_util::task::TaskTracker;

pub use decide::Choice;
pub use error::PipelineError;
pub use shadow::compare;

use crate::capture::{self, CaptureSink};
use crate::engine::{InferError, validate_inputs};
use crate::lineage::{LineageSink, Prediction, inputs_sha256, prediction_summary};
use crate::serving::{LoadedVersion, ServedModel};
use policy::router::{Decision, Route};

/// Request metadata a front end exposes to the pipeline: HTTP headers, gRPC metadata. Names are
/// lower-case.
pub trait Metadata {
    /// The value of `name`, if the request carries it.
    fn get(&self, name: &str) -> Option<&[u8]>;
}

impl Metadata for http::HeaderMap {
    fn get(&self, name: &str) -> Option<&[u8]> {
        http::HeaderMap::get(self, name).map(http::HeaderValue::as_bytes)
    }
}

/// What every run shares: where records go, the shadow runs in flight, the default deadline.
#[derive(Debug)]
pub struct Pipeline {
    /// Where lineage records go; `None` when `[lineage] enabled = false`.
    lineage: Option<LineageSink>,
    /// Shadow runs in flight: shutdown waits for them so their records are written too.
    shadow_tasks: TaskTracker,
    /// Deadline of a request from arrival (a request's v2 `timeout` parameter may shorten it).
    request_timeout: Duration,
    /// Where captured payloads go, when any model captures.
    capture: Option<CaptureSink>,
}

/// One request's run through the pipeline: chosen in `decide`, run by `execute`, recorded by
/// `finish`. Carries what the record needs, filled in as the run goes.
#[derive(Debug)]
pub struct Run<'a> {
    pipeline: &'a Pipeline,
    model: &'a ServedModel,
    /// The version that answers.
    pub loaded: &'a Arc<LoadedVersion>,
    /// Why that version.
    pub choice: Choice,
    shadows: Vec<Arc<LoadedVersion>>,
    facts: Facts,
}

/// What a run measured beyond its answer, for its record.
#[derive(Debug)]
struct Facts {
    request_id: RequestId,
    started: Instant,
    arrived: SystemTime,
    queue: Duration,
    compute: Duration,
    input_sha256: Option<[u8; 32]>,
    prediction: Option<Prediction>,
    /// Remote versions: the version the upstream says answered.
    upstream_version: Option<String>,
    /// The request's slice value (`[model.slices]`) and the label its figures go under.
    slice: Option<(String, Arc<str>)>,
}

/// What a run answered, and what the request said of its answer (for the front end to encode).
#[derive(Debug)]
pub struct Answer {
    /// Every output of the model, in its order.
    pub outputs: Vec<Tensor>,
    /// The outputs the request asked for (all when `None`); every name is one of `outputs`.
    pub requested: Option<Vec<RequestedOutput>>,
    /// The REST binary extension's default for outputs.
    pub binary_data_output: bool,
    /// The request's own `id`, echoed in the answer.
    pub id: Option<String>,
}

/// How a run ended, as recorded: the HTTP-equivalent status and, for failures, the short class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub status: u16,
    pub error_class: Option<&'static str>,
}

impl Outcome {
    pub const OK: Outcome = Outcome { status: 200, error_class: None };
}

impl Pipeline {
    pub fn new(lineage: Option<LineageSink>, request_timeout: Duration) -> Pipeline {
        Pipeline { lineage, shadow_tasks: TaskTracker::new(), request_timeout, capture: None }
    }

    /// This pipeline, capturing payloads of the models that ask for it into `sink`.
    pub fn with_capture(mut self, sink: Option<CaptureSink>) -> Pipeline {
        self.capture = sink;
        self
    }

    /// The lineage sink, when lineage is on.
    pub fn lineage(&self) -> Option<&LineageSink> {
        self.lineage.as_ref()
    }

    /// Waits (at most until `deadline`) for the shadow runs in flight, after which no more
    /// start. Returns whether they all finished.
    pub async fn drain_shadows(&self, deadline: tokio::time::Instant) -> bool {
        self.shadow_tasks.close();
        tokio::time::timeout_at(deadline, self.shadow_tasks.wait()).await.is_ok()
    }

    /// Chooses the version that answers a request for `model` that arrived at `started` /
    /// `arrived` (`pinned`: the version its path named), and the shadows that get a copy.
    pub fn decide<'a>(
        &'a self,
        model: &'a ServedModel,
        pinned: Option<u32>,
        metadata: &impl Metadata,
        request_id: RequestId,
        started: Instant,
        arrived: SystemTime,
    ) -> Result<Run<'a>, PipelineError> {
        let (choice, loaded) = decide::choose(model, pinned, metadata)?;
        let shadows = if pinned.is_some() {
            Vec::new()
        } else {
            model.routing.shadows_for_request().filter_map(|v| model.ready(v).cloned()).collect()
        };
        let slice = model.slices.as_ref().and_then(|tracker| {
            let value = metadata.get(&tracker.config.header)?;
            let raw = crate::telemetry::slices::clean(&String::from_utf8_lossy(value))?;
            let label = tracker.observe(&raw);
            Some((raw, label))
        });
        let facts = Facts {
            slice,
            request_id,
            started,
            arrived,
            queue: Duration::ZERO,
            compute: Duration::ZERO,
            input_sha256: None,
            prediction: None,
            upstream_version: None,
        };
        Ok(Run { pipeline: self, model, loaded, choice, shadows, facts })
    }
}

impl Run<'_> {
    /// Validates `request` against the chosen version, runs it within the deadline and mirrors
    /// it to the shadows. Returns every output of the model, in its order, with what the request
    /// said of its answer.
    pub async fn execute(&mut self, request: InferRequest) -> Result<Answer, PipelineError> {
        let inst = &self.loaded.instance;
        validate_inputs(&inst.signature, &request.inputs)?;
        if let Some(wanted) = &request.outputs
            && let Some(unknown) = wanted.iter().find(|w| !inst.signature.outputs.iter().any(|s| s.name == w.name))
        {
            let names: Vec<&str> = inst.signature.outputs.iter().map(|s| s.name.as_str()).collect();
            return Err(PipelineError::UnknownOutput { name: unknown.name.clone(), known: names.join(", ") });
        }
        if let Some(drift) = &self.loaded.drift
            && let Some(values) = request.inputs.iter().find(|t| t.name == drift.input).and_then(|t| t.data.to_f64())
        {
            if self.model.out_of_range == settings::OutOfRange::Refuse
                && let Some((feature, value, bound)) = drift.window.profile().out_of_range(&values)
            {
                return Err(PipelineError::OutOfProfile { input: drift.input.clone(), feature, value, bound });
            }
            drift.window.record(drift.origin, Instant::now(), &values);
        }
        if self.model.lineage_input_sha256 {
            self.facts.input_sha256 = Some(inputs_sha256(&request.inputs));
        }
        // Shadows get their own copy; cloning costs only the requests that are mirrored.
        let shadow_inputs = if self.shadows.is_empty() { None } else { Some(request.inputs.clone()) };
        // So does capture: only the sampled requests.
        let route = self.choice.decision.route.as_str();
        let capture = match (&self.pipeline.capture, &self.model.capture) {
            (Some(sink), Some(cfg)) if capture::sampled(cfg.rate_for(route)) => {
                Some((sink, capture::limits(cfg), request.inputs.clone()))
            }
            _ => None,
        };
        let budget = deadline(self.pipeline.request_timeout, &request.parameters)?;
        let remaining = budget.saturating_sub(self.facts.started.elapsed());
        let until = tokio::time::Instant::now() + remaining;
        // A remote version with a backup keeps the inputs, to fail over if its upstream cannot
        // be reached (the only copy a local version's run costs nothing).
        let failover = self.failover(&request);
        let kept = failover.map(|_| request.inputs.clone());
        let outcome = match (run_until(inst, request.inputs, until, budget).await, failover, kept) {
            (Err(PipelineError::Engine(InferError::Upstream(e))), Some(backup), Some(inputs))
                if e.kind.never_sent() =>
            {
                record::count_unanswered(self.loaded, &self.choice, e.kind.status(), self.facts.started.elapsed());
                tracing::debug!(model = %self.model.name, version = inst.version, backup = backup.instance.version, error = %e, "failing over to the backup");
                self.choice = Choice {
                    decision: Decision {
                        version: backup.instance.version,
                        route: Route::Backup,
                        ..self.choice.decision
                    },
                    fell_back: None,
                    note: Some(format!("after version {} could not reach its upstream ({})", inst.version, e.message)),
                };
                self.loaded = backup;
                run_until(&backup.instance, inputs, until, budget).await?
            }
            (result, ..) => result?,
        };
        let inst = &self.loaded.instance;
        self.facts.queue = outcome.queue;
        self.facts.compute = outcome.compute;
        self.facts.upstream_version = outcome.upstream_version;
        if let Some((sink, limits, inputs)) = capture {
            sink.submit(capture::Captured {
                request_id: self.facts.request_id,
                arrived: self.facts.arrived,
                model: Arc::clone(&inst.model),
                version: inst.version,
                route,
                inputs,
                outputs: outcome.outputs.clone(),
                limits,
            });
        }
        if self.pipeline.lineage.is_some() {
            self.facts.prediction = prediction_summary(&outcome.outputs);
        }
        if let Some(inputs) = shadow_inputs {
            let primary = shadow::Primary {
                request_id: self.facts.request_id,
                version: inst.version,
                arrived: self.facts.arrived,
                outputs: &outcome.outputs,
                input_sha256: self.facts.input_sha256,
            };
            shadow::mirror(self.pipeline, &primary, inputs, std::mem::take(&mut self.shadows));
        }
        Ok(Answer {
            outputs: outcome.outputs,
            requested: request.outputs,
            binary_data_output: request.binary_data_output,
            id: request.id,
        })
    }

    /// Records the run once, however it ended: the version's metrics, its guard window, and its
    /// lineage record (handed to the writer before the answer leaves, so an answered request's
    /// record is always in the writer's hands and a graceful shutdown writes it). With
    /// `[lineage] ack = "after_commit"` it returns once the record is committed, and
    /// `Err(Unrecorded)` when that did not happen within `ack_timeout`: the front end then
    /// withholds a successful answer (503).
    pub async fn finish(self, outcome: Outcome) -> Result<(), Unrecorded> {
        let facts = self.facts;
        let slice = match (facts.slice, &self.model.slices) {
            (Some((raw, label)), Some(tracker)) => {
                Some(record::SliceRun { metrics: tracker.metrics(self.loaded.instance.version, &label), raw })
            }
            _ => None,
        };
        let run = record::Finished {
            slice,
            loaded: self.loaded,
            role: record::Role::Answered { choice: self.choice, prediction: facts.prediction },
            request_id: facts.request_id,
            arrived: facts.arrived,
            total: facts.started.elapsed(),
            queue: facts.queue,
            compute: facts.compute,
            input_sha256: facts.input_sha256,
            upstream_version: facts.upstream_version,
            outcome,
        };
        let committed = record::record(self.pipeline.lineage.as_ref(), run).await;
        if committed.wait().await { Ok(()) } else { Err(Unrecorded) }
    }
}

/// A run whose lineage record was not committed in time (`[lineage] ack = "after_commit"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the answer is withheld: its lineage record could not be committed in time ([lineage] ack = \"after_commit\"); the lineage store is unavailable, retry later"
)]
pub struct Unrecorded;

impl<'a> Run<'a> {
    /// The version that takes the request over if this run's remote version cannot reach its
    /// upstream: the routing's first ready backup that is another version, takes the request's
    /// inputs and has the outputs it asks for. None for pinned requests and local versions.
    fn failover(&self, request: &InferRequest) -> Option<&'a Arc<LoadedVersion>> {
        if self.loaded.instance.upstream().is_none() || self.choice.decision.route == Route::Pinned {
            return None;
        }
        let current = self.loaded.instance.version;
        self.model.routing.backup.iter().filter(|&&v| v != current).filter_map(|&v| self.model.ready(v)).find(|b| {
            let signature = &b.instance.signature;
            validate_inputs(signature, &request.inputs).is_ok()
                && request.outputs.iter().flatten().all(|w| signature.output(&w.name).is_some())
        })
    }
}

/// Runs `inputs` on `inst` until `until` (then the future is dropped: a job not yet started is
/// skipped by its worker).
async fn run_until(
    inst: &crate::engine::ModelInstance,
    inputs: Vec<Tensor>,
    until: tokio::time::Instant,
    budget: Duration,
) -> Result<crate::engine::InferOutcome, PipelineError> {
    tokio::time::timeout_at(until, inst.infer(inputs, until))
        .await
        .map_err(|_| PipelineError::DeadlineExceeded {
            model: inst.model.to_string(),
            version: inst.version,
            budget_ms: budget.as_millis(),
        })?
        .map_err(PipelineError::Engine)
}

/// The request's deadline from arrival: the configured one, shortened by the v2 `timeout`
/// parameter (microseconds, as Triton reads it; 0 = no shortening).
fn deadline(configured: Duration, parameters: &Map<String, Value>) -> Result<Duration, PipelineError> {
    let Some(value) = parameters.get("timeout") else { return Ok(configured) };
    let us = value.as_u64().ok_or_else(|| {
        PipelineError::BadParameter(format!(
            "parameter 'timeout' must be a whole number of microseconds ≥ 0, not {value}"
        ))
    })?;
    Ok(if us == 0 { configured } else { configured.min(Duration::from_micros(us)) })
}
