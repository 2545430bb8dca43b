//! Shadow traffic: a mirrored copy of a request runs on a shadow version after the primary has
//! answered, off the client's path. Its output is compared with the primary's and the
//! comparison is exported as metrics. A full shadow queue drops the copy (counted), never waits.

use std::sync::Arc;

use crate::engine::InferError;
use crate::serving::LoadedVersion;
use crate::tensor::{Tensor, TensorData};

/// How a shadow's outputs compare with the primary's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Largest absolute difference over every floating-point output element (0 when none).
    pub max_abs_diff: f64,
    /// Rows whose argmax agrees / rows compared, over outputs shaped [batch, n > 1].
    pub argmax_agree: u64,
    pub argmax_rows: u64,
}

/// Spawns one background run per shadow. Returns at once.
pub fn mirror(
    model: &str,
    primary_version: u32,
    primary: &[Tensor],
    inputs: Vec<Tensor>,
    shadows: Vec<Arc<LoadedVersion>>,
) {
    let primary = Arc::new(primary.to_vec());
    let last = shadows.len().saturating_sub(1);
    let mut owned = Some(inputs);
    for (i, shadow) in shadows.into_iter().enumerate() {
        // Every shadow but the last gets a copy; the last takes the caller's.
        let inputs = if i == last { owned.take() } else { owned.clone() }.expect("inputs are taken only by the last");
        let (model, primary) = (model.to_owned(), Arc::clone(&primary));
        tokio::spawn(async move {
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
            let Ok(out) = result else { return };
            let c = compare(&primary, &out.outputs);
            metrics::histogram!("switchyard_shadow_max_abs_diff", "model" => model.clone(), "version" => version.clone())
                .record(c.max_abs_diff);
            metrics::counter!("switchyard_shadow_argmax_rows_total", "model" => model.clone(), "version" => version.clone(), "agree" => "true")
                .increment(c.argmax_agree);
            metrics::counter!("switchyard_shadow_argmax_rows_total", "model" => model, "version" => version, "agree" => "false")
                .increment(c.argmax_rows - c.argmax_agree);
            tracing::trace!(primary_version, ?c, "shadow compared");
        });
    }
}

fn as_f64(data: &TensorData) -> Option<Vec<f64>> {
    Some(match data {
        TensorData::Fp16(v) => v.iter().map(|x| f64::from(x.to_f32())).collect(),
        TensorData::Fp32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Fp64(v) => v.clone(),
        _ => return None,
    })
}

fn argmax(row: &[f64]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &x)| if x > row[best] { i } else { best })
}

/// Compares outputs with the same name and shape; others are skipped.
pub fn compare(primary: &[Tensor], shadow: &[Tensor]) -> Comparison {
    let mut c = Comparison { max_abs_diff: 0.0, argmax_agree: 0, argmax_rows: 0 };
    for p in primary {
        let Some(s) = shadow.iter().find(|s| s.name == p.name && s.shape == p.shape) else { continue };
        let (Some(a), Some(b)) = (as_f64(&p.data), as_f64(&s.data)) else { continue };
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
