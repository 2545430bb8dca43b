//! Shadow traffic: a mirrored copy of a request runs on a shadow version after the primary has
//! answered, off the client's path. Its output is compared with the primary's and the
//! comparison is exported as metrics. A full shadow queue drops the copy (counted), never waits.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::error::ApiError;
use crate::app::App;
use crate::engine::InferError;
use crate::lineage::{Comparison, How, Run};
use crate::serving::LoadedVersion;
use protocol::request_id::RequestId;
use protocol::tensor::{Tensor, argmax};

/// The primary run a shadow copy is compared with.
#[derive(Debug)]
pub struct Primary<'a> {
    pub request_id: RequestId,
    pub model: &'a Arc<str>,
    pub version: u32,
    /// When the request arrived: shadow records carry the request's time.
    pub arrived: SystemTime,
    pub outputs: &'a [Tensor],
    pub input_sha256: Option<[u8; 32]>,
}

/// Spawns one background run per shadow, tracked so that shutdown waits for them. Returns at once.
pub fn mirror(app: &App, primary: &Primary<'_>, inputs: Vec<Tensor>, shadows: Vec<Arc<LoadedVersion>>) {
    let outputs = Arc::new(primary.outputs.to_vec());
    let last = shadows.len().saturating_sub(1);
    let mut owned = Some(inputs);
    for (i, shadow) in shadows.into_iter().enumerate() {
        // Every shadow but the last gets a copy; the last takes the caller's.
        let inputs = if i == last { owned.take() } else { owned.clone() }.expect("inputs are taken only by the last");
        let (model, primary_outputs) = (primary.model.to_string(), Arc::clone(&outputs));
        let record = app.lineage.as_ref().map(|sink| {
            let inst = &shadow.instance;
            let run = Run {
                request_id: primary.request_id,
                arrived: primary.arrived,
                model: Arc::clone(primary.model),
                version: inst.version,
                sha256: Arc::clone(&inst.sha256),
                how: How::Shadow { of: primary.version },
                input_sha256: primary.input_sha256,
                queue: Duration::ZERO,
                compute: Duration::ZERO,
                total: Duration::ZERO,
                status: 200,
                error_class: None,
                prediction: None,
                comparison: None,
            };
            (sink.clone(), run)
        });
        app.shadow_tasks.spawn(async move {
            let started = Instant::now();
            let version = shadow.instance.version.to_string();
            let result = shadow.instance.infer(inputs).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(InferError::QueueFull { .. }) => "dropped",
                Err(_) => "error",
            };
            metrics::counter!("switchyard_shadow_requests_total",
                "model" => model.clone(), "version" => version.clone(), "result" => outcome)
            .increment(1);
            if outcome == "dropped" {
                return; // counted above; a copy that never ran has no lineage
            }
            shadow.window.load().record(Instant::now(), started.elapsed(), result.is_err());
            let comparison = result.as_ref().ok().map(|out| compare(&primary_outputs, &out.outputs));
            if let Some(c) = &comparison {
                shadow.shadow_rows.fetch_add(c.argmax_rows, std::sync::atomic::Ordering::Relaxed);
                shadow.shadow_agree.fetch_add(c.argmax_agree, std::sync::atomic::Ordering::Relaxed);
                metrics::histogram!("switchyard_shadow_max_abs_diff", "model" => model.clone(), "version" => version.clone())
                    .record(c.max_abs_diff);
                metrics::counter!("switchyard_shadow_argmax_rows_total", "model" => model.clone(), "version" => version.clone(), "agree" => "true")
                    .increment(c.argmax_agree);
                metrics::counter!("switchyard_shadow_argmax_rows_total", "model" => model, "version" => version, "agree" => "false")
                    .increment(c.argmax_rows - c.argmax_agree);
            }
            let Some((sink, mut record)) = record else { return };
            record.total = started.elapsed();
            match result {
                Ok(out) => {
                    record.queue = out.queue;
                    record.compute = out.compute;
                }
                Err(e) => {
                    let e = ApiError::from(e);
                    record.status = e.status().as_u16();
                    record.error_class = Some(e.class());
                }
            }
            record.comparison = comparison;
            sink.submit(record).await;
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
