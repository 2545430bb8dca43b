//! Worker thread: owns one ORT session, takes jobs from the version's bounded queue, optionally
//! stacks compatible jobs into one call (dynamic batching), and splits the outputs back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use ort::session::Session;
use tokio::sync::oneshot;

use super::{InferError, InferOutcome, InstanceStats, convert};
use protocol::tensor::{Tensor, TensorData};

/// One queued request.
pub(super) struct Job {
    pub inputs: Vec<Tensor>,
    /// Rows along the batch dimension (1 when the model is not batchable).
    pub rows: usize,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<Result<InferOutcome, InferError>>,
}

/// What every worker of one version shares.
pub(super) struct WorkerConfig {
    /// Metric labels and log context.
    pub model: String,
    pub version: String,
    /// 1 when batching is off or the model cannot batch.
    pub max_batch: usize,
    pub batch_delay: Duration,
    pub output_names: Vec<String>,
    pub stats: Arc<InstanceStats>,
    /// `switchyard_batch_size{model,version}`, resolved once.
    pub batch_size: metrics::Histogram,
}

pub(super) struct Worker {
    pub session: Session,
    pub receiver: Receiver<Job>,
    pub config: Arc<WorkerConfig>,
}

impl Worker {
    /// Serves jobs until the queue is closed and empty.
    pub fn run(mut self) {
        let mut carry: Option<Job> = None;
        loop {
            let first = match carry.take() {
                Some(job) => job,
                None => match self.receiver.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            // The client gave up (deadline, disconnect) before we started: skip the work.
            if first.reply.is_closed() {
                continue;
            }
            let mut batch = vec![first];
            if self.config.max_batch > 1 {
                carry = self.gather(&mut batch);
            }
            self.execute(batch);
        }
        tracing::debug!(model = %self.config.model, version = %self.config.version, "worker stopped");
    }

    /// Adds queued jobs that fit (same non-batch dimensions, total rows ≤ max_batch) until the
    /// batch delay passes. Returns a job that was taken but did not fit, to start the next batch.
    fn gather(&self, batch: &mut Vec<Job>) -> Option<Job> {
        let deadline = Instant::now() + self.config.batch_delay;
        let mut rows = batch[0].rows;
        while rows < self.config.max_batch {
            let next = match self.receiver.recv_deadline(deadline) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            };
            if next.reply.is_closed() {
                continue;
            }
            if rows + next.rows > self.config.max_batch || !stackable(&batch[0], &next) {
                return Some(next);
            }
            rows += next.rows;
            batch.push(next);
        }
        None
    }

    fn execute(&mut self, mut batch: Vec<Job>) {
        let started = Instant::now();
        let total_rows: usize = batch.iter().map(|j| j.rows).sum();
        self.config.batch_size.record(total_rows as f64);
        if batch.len() == 1 {
            let job = batch.pop().expect("batch has one job");
            let result = self.run_session(job.inputs).map_err(InferError::Model);
            self.config.stats.record_execution(total_rows as u64);
            let queue = started.saturating_duration_since(job.enqueued);
            let compute = started.elapsed();
            let _ = job.reply.send(result.map(|outputs| InferOutcome {
                outputs,
                queue,
                compute,
                batch_rows: total_rows,
                upstream_version: None,
            }));
            return;
        }
        let result = self.run_session(stack(&batch));
        let compute = started.elapsed();
        self.config.stats.record_execution(total_rows as u64);
        match result {
            Ok(outputs) => {
                let mut offset = 0;
                for job in batch {
                    let queue = started.saturating_duration_since(job.enqueued);
                    let result = split(&outputs, total_rows, offset, job.rows)
                        .map(|outputs| InferOutcome {
                            outputs,
                            queue,
                            compute,
                            batch_rows: total_rows,
                            upstream_version: None,
                        })
                        .map_err(InferError::Model);
                    offset += job.rows;
                    // A receiver that went away (client gone) is not an error here.
                    let _ = job.reply.send(result);
                }
            }
            Err(_) => {
                // One bad input must not fail the requests it was batched with: run each alone,
                // so only the request that really fails gets the model's error.
                for job in batch {
                    let started = Instant::now();
                    let result = self.run_session(job.inputs).map_err(InferError::Model);
                    self.config.stats.record_execution(job.rows as u64);
                    let queue = started.saturating_duration_since(job.enqueued);
                    let compute = started.elapsed();
                    let _ = job.reply.send(result.map(|outputs| InferOutcome {
                        outputs,
                        queue,
                        compute,
                        batch_rows: job.rows,
                        upstream_version: None,
                    }));
                }
            }
        }
    }

    fn run_session(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, String> {
        run_session(&mut self.session, &self.config.output_names, inputs)
    }
}

/// One ORT call: converts the inputs, runs, and converts the outputs named `output_names`, in
/// that order. Errors are ONNX Runtime's (or a missing output), as text for the client.
pub(super) fn run_session(
    session: &mut Session,
    output_names: &[String],
    inputs: Vec<Tensor>,
) -> Result<Vec<Tensor>, String> {
    let mut values = Vec::with_capacity(inputs.len());
    for tensor in inputs {
        let name = tensor.name.clone();
        values.push((name, convert::to_ort(tensor).map_err(|e| e.to_string())?));
    }
    let outputs = session.run(values).map_err(|e| e.to_string())?;
    output_names
        .iter()
        .map(|name| {
            let value = outputs.get(name).ok_or_else(|| format!("the model produced no output '{name}'"))?;
            convert::from_ort(name, value).map_err(|e| e.to_string())
        })
        .collect()
}

/// True when `b`'s inputs can be stacked under `a`'s along the first dimension.
fn stackable(a: &Job, b: &Job) -> bool {
    a.inputs.len() == b.inputs.len()
        && a.inputs.iter().all(|x| {
            b.inputs
                .iter()
                .any(|y| y.name == x.name && y.datatype() == x.datatype() && y.shape.get(1..) == x.shape.get(1..))
        })
}

/// Concatenates the jobs' inputs along the first dimension, in job order. The jobs keep their
/// own inputs so a failed batch can be re-run one job at a time.
fn stack(batch: &[Job]) -> Vec<Tensor> {
    let total_rows: usize = batch.iter().map(|j| j.rows).sum();
    let mut stacked: Vec<Tensor> = Vec::new();
    for job in batch {
        for tensor in &job.inputs {
            match stacked.iter_mut().find(|t| t.name == tensor.name) {
                Some(target) => {
                    target.data.extend_from(&tensor.data);
                }
                None => {
                    let mut data = TensorData::with_capacity(tensor.datatype(), tensor.data.len() * total_rows);
                    data.extend_from(&tensor.data);
                    let mut shape = tensor.shape.clone();
                    shape[0] = total_rows as i64;
                    stacked.push(Tensor { name: tensor.name.clone(), shape, data });
                }
            }
        }
    }
    stacked
}

/// Takes rows `offset..offset + rows` of every output.
fn split(outputs: &[Tensor], total_rows: usize, offset: usize, rows: usize) -> Result<Vec<Tensor>, String> {
    outputs
        .iter()
        .map(|t| {
            if t.shape.first().copied() != Some(total_rows as i64) {
                return Err(format!(
                    "output '{}' has shape {:?}, whose first dimension is not the batch of {total_rows}; \
                     set max_batch = 1 for this model",
                    t.name, t.shape
                ));
            }
            let per_row = t.data.len().checked_div(total_rows).unwrap_or(0);
            let mut shape = t.shape.clone();
            shape[0] = rows as i64;
            Ok(Tensor { name: t.name.clone(), shape, data: t.data.slice(offset * per_row, (offset + rows) * per_row) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_takes_each_jobs_rows() {
        let out = Tensor { name: "y".into(), shape: vec![3, 2], data: TensorData::Int32(vec![1, 2, 3, 4, 5, 6]) };
        let part = split(std::slice::from_ref(&out), 3, 1, 2).expect("splits");
        assert_eq!(part[0].shape, vec![2, 2]);
        assert_eq!(part[0].data, TensorData::Int32(vec![3, 4, 5, 6]));
        let bad = Tensor { name: "y".into(), shape: vec![6], data: TensorData::Int32(vec![0; 6]) };
        assert!(split(&[bad], 3, 0, 1).is_err());
    }

    #[test]
    fn stack_concatenates_in_job_order() {
        let job = |v: Vec<f32>| {
            let (reply, _) = oneshot::channel();
            let rows = v.len() / 2;
            Job {
                inputs: vec![Tensor { name: "x".into(), shape: vec![rows as i64, 2], data: TensorData::Fp32(v) }],
                rows,
                enqueued: Instant::now(),
                reply,
            }
        };
        let a = job(vec![1.0, 2.0]);
        let b = job(vec![3.0, 4.0, 5.0, 6.0]);
        assert!(stackable(&a, &b));
        let stacked = stack(&[a, b]);
        assert_eq!(stacked[0].shape, vec![3, 2]);
        assert_eq!(stacked[0].data, TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    }
}
