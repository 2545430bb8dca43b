//! Shadow traffic: a mirrored copy of a request runs on a shadow version after the primary has
//! answered, off the client's path. Its output is compared with the primary's and the
//! comparison is recorded (metrics, the shadow's guard window, its lineage record) as every run
//! is (`record`). A full shadow queue drops the copy (counted), never waits.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use protocol::request_id::RequestId;
use protocol::tensor::{Tensor, argmax};

use super::record::{self, Finished, Role};
use super::{Outcome, Pipeline, PipelineError};
use crate::engine::InferError;
use crate::lineage::Comparison;
use crate::serving::LoadedVersion;

/// The primary run a shadow copy is compared with.
#[derive(Debug)]
pub struct Primary<'a> {
    pub request_id: RequestId,
    pub version: u32,
    /// When the request arrived: shadow records carry the request's time.
    pub arrived: SystemTime,
    pub outputs: &'a [Tensor],
    pub input_sha256: Option<[u8; 32]>,
}

/// Spawns one background run per shadow, tracked so that shutdown waits for them. Returns at once.
pub fn mirror(pipeline: &Pipeline, primary: &Primary<'_>, inputs: Vec<Tensor>, shadows: Vec<Arc<LoadedVersion>>) {
    let outputs = Arc::new(primary.outputs.to_vec());
    let last = shadows.len().saturating_sub(1);
    let mut owned = Some(inputs);
    for (i, shadow) in shadows.into_iter().enumerate() {
        // Every shadow but the last gets a copy; the last takes the caller's.
        let inputs = if i == last { owned.take() } else { owned.clone() }.expect("inputs are taken only by the last");
        let primary_outputs = Arc::clone(&outputs);
        let sink = pipeline.lineage.clone();
        let budget = pipeline.request_timeout;
        let (request_id, arrived, input_sha256, of) =
            (primary.request_id, primary.arrived, primary.input_sha256, primary.version);
        pipeline.shadow_tasks.spawn(async move {
            let started = Instant::now();
            // A shadow gets the deadline a request would: a hanging upstream holds no task past it.
            let until = tokio::time::Instant::now() + budget;
            let result = super::run_until(&shadow.instance, inputs, until, budget).await;
            if let Err(PipelineError::Engine(InferError::QueueFull { .. })) = &result {
                // A full shadow queue drops the copy: counted, never waited for, no lineage.
                metrics::counter!("switchyard_shadow_requests_total",
                    "model" => shadow.instance.model.to_string(), "version" => shadow.instance.version.to_string(),
                    "result" => "dropped")
                .increment(1);
                return;
            }
            let total = started.elapsed();
            let (outcome, queue, compute, comparison, upstream_version) = match result {
                Ok(out) => {
                    let comparison = Some(compare(&primary_outputs, &out.outputs));
                    (Outcome::OK, out.queue, out.compute, comparison, out.upstream_version)
                }
                Err(e) => {
                    let outcome = Outcome { status: e.status(), error_class: Some(e.class()) };
                    (outcome, Duration::ZERO, Duration::ZERO, None, None)
                }
            };
            let run = Finished {
                loaded: &shadow,
                role: Role::Shadow { of, comparison },
                request_id,
                arrived,
                total,
                queue,
                compute,
                input_sha256,
                upstream_version,
                slice: None,
                outcome,
            };
            // A shadow's record is not waited for: no answer depends on it.
            drop(record::record(sink.as_ref(), run).await);
        });
    }
}

/// Compares outputs with the same name and shape; others are skipped.
pub fn compare(primary: &[Tensor], shadow: &[Tensor]) -> Comparison {
    let mut c = Comparison { max_abs_diff: 0.0, argmax_agree: 0, argmax_rows: 0 };
    for p in primary {
        let Some(s) = shadow.iter().find(|s| s.name == p.name && s.shape == p.shape) else { continue };
        let (Some(a), Some(b)) = (p.data.to_f64(), s.data.to_f64()) else { continue };
        for (x, y) in a.iter().zip(&b) {
            c.max_abs_diff = c.max_abs_diff.max((x - y).abs());
        }
        if let [rows, cols] = p.shape[..]
            && cols > 1
            && rows > 0
        {
            let cols = cols as usize;
            for (ra, rb) in a.chunks(cols).zip(b.chunks(cols)) {
                c.argmax_rows += 1;
                c.argmax_agree += u64::from(argmax(ra) == argmax(rb));
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::tensor::TensorData;

    fn t(data: Vec<f32>, shape: Vec<i64>) -> Tensor {
        Tensor { name: "y".into(), shape, data: TensorData::Fp32(data) }
    }

    #[test]
    fn compares_difference_and_argmax() {
        let a = [t(vec![0.1, 0.9, 0.7, 0.2], vec![2, 2])];
        let b = [t(vec![0.2, 0.8, 0.1, 0.9], vec![2, 2])];
        let c = compare(&a, &b);
        assert!((c.max_abs_diff - 0.7).abs() < 1e-6);
        assert_eq!((c.argmax_agree, c.argmax_rows), (1, 2));
        let mismatched = [t(vec![0.0; 2], vec![1, 2])];
        assert_eq!(compare(&a, &mismatched).argmax_rows, 0);
    }
}
