//! Two versions of a model side by side (`switchyard models diff`, `GET /admin/models/M/diff`):
//! their provenance field by field with what differs marked, offline metrics with deltas, live
//! figures from lineage and feedback, whether B can replace A for A's callers, and the events
//! between their registrations. The comparison itself (`VersionDiff::of`) is pure.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::registry::{Event, Registry, VersionRecord};
use crate::{FeedbackSummary, LineageStats, Manifest, Signature, StoreError};

/// Everything compared about one version.
#[derive(Debug, Clone)]
pub struct Side {
    pub record: VersionRecord,
    pub manifest: Option<Manifest>,
    pub traffic: LineageStats,
    pub feedback: FeedbackSummary,
}

/// Two versions compared. Stable JSON: the field names below are the contract.
#[derive(Debug, Clone, Serialize)]
pub struct VersionDiff {
    pub model: String,
    pub a: Summary,
    pub b: Summary,
    /// Every provenance field either manifest has, in a fixed order: `training.code_commit`,
    /// `training.data_snapshot`, `training.features`, `training.random_seed`,
    /// `training.hyperparameters.*`, `environment.*`, `tags.*`, `description`, `intended_use`.
    pub provenance: Vec<FieldDiff>,
    /// Every offline metric either manifest has; `delta` = b − a when both have it.
    pub metrics: Vec<MetricDiff>,
    pub live: BTreeMap<&'static str, Live>,
    pub signature: Compatibility,
    /// The model's events after A's registration up to B's (or the reverse, when B is older).
    pub events: Vec<Event>,
}

/// Who a side is.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub version: u32,
    pub sha256: String,
    pub stage: String,
    pub aliases: Vec<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDiff {
    pub field: String,
    pub a: Value,
    pub b: Value,
    pub differs: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDiff {
    pub metric: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub delta: Option<f64>,
}

/// What lineage and feedback say of a side's traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Live {
    pub requests: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub error_rate: Option<f64>,
    pub online_accuracy: Option<f64>,
    pub shadow_runs: u64,
}

/// Whether B can answer A's callers: every input B needs, A's callers send (same name and
/// datatype, a shape B accepts), and every output A's callers read, B produces alike.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compatibility {
    pub compatible: bool,
    pub problems: Vec<String>,
}

impl VersionDiff {
    /// Compares `a` and `b` of `model`; `events` are the model's events, oldest first.
    pub fn of(model: &str, a: &Side, b: &Side, events: &[Event]) -> VersionDiff {
        let (from, to) = if a.record.created_at <= b.record.created_at {
            (&a.record.created_at, &b.record.created_at)
        } else {
            (&b.record.created_at, &a.record.created_at)
        };
        VersionDiff {
            model: model.to_owned(),
            a: summary(&a.record),
            b: summary(&b.record),
            provenance: provenance(a.manifest.as_ref(), b.manifest.as_ref()),
            metrics: metrics(a.manifest.as_ref(), b.manifest.as_ref()),
            live: BTreeMap::from([("a", live(a)), ("b", live(b))]),
            signature: compatibility(&a.record.signature, &b.record.signature),
            events: events.iter().filter(|e| &e.at > from && &e.at <= to).cloned().collect(),
        }
    }
}

fn summary(r: &VersionRecord) -> Summary {
    Summary {
        version: r.version,
        sha256: r.sha256.clone(),
        stage: r.stage.to_string(),
        aliases: r.aliases.clone(),
        created_at: r.created_at.clone(),
    }
}

fn live(side: &Side) -> Live {
    let t = &side.traffic;
    Live {
        requests: t.requests - t.client_errors,
        p50_us: t.p50_us,
        p99_us: t.p99_us,
        error_rate: t.error_rate,
        online_accuracy: side.feedback.accuracy,
        shadow_runs: t.shadow_runs,
    }
}

/// The manifest's provenance as (field path, value), in the documented order.
fn fields(m: Option<&Manifest>) -> Vec<(String, Value)> {
    let Some(m) = m else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(t) = &m.training {
        let mut push = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                out.push((format!("training.{k}"), v));
            }
        };
        push("code_commit", t.code_commit.clone().map(Value::String));
        push("data_snapshot", t.data_snapshot.clone().map(Value::String));
        push("features", (!t.features.is_empty()).then(|| Value::from(t.features.clone())));
        push("random_seed", t.random_seed.map(Value::from));
        for (k, v) in &t.hyperparameters {
            out.push((format!("training.hyperparameters.{k}"), v.clone()));
        }
    }
    for (prefix, map) in [("environment", &m.environment), ("tags", &m.tags)] {
        for (k, v) in map {
            out.push((format!("{prefix}.{k}"), v.clone()));
        }
    }
    for (k, v) in [("description", &m.description), ("intended_use", &m.intended_use)] {
        if let Some(v) = v {
            out.push((k.to_owned(), Value::String(v.clone())));
        }
    }
    out
}

fn provenance(a: Option<&Manifest>, b: Option<&Manifest>) -> Vec<FieldDiff> {
    let (fa, fb) = (fields(a), fields(b));
    let mut order: Vec<&String> = fa.iter().map(|(k, _)| k).collect();
    for (k, _) in &fb {
        if !order.contains(&k) {
            order.push(k);
        }
    }
    let get = |f: &[(String, Value)], k: &str| f.iter().find(|(n, _)| n == k).map_or(Value::Null, |(_, v)| v.clone());
    order
        .into_iter()
        .map(|k| {
            let (va, vb) = (get(&fa, k), get(&fb, k));
            FieldDiff { field: k.clone(), differs: va != vb, a: va, b: vb }
        })
        .collect()
}

fn metrics(a: Option<&Manifest>, b: Option<&Manifest>) -> Vec<MetricDiff> {
    let empty = BTreeMap::new();
    let (ma, mb) = (a.map_or(&empty, |m| &m.metrics), b.map_or(&empty, |m| &m.metrics));
    let mut names: Vec<&String> = ma.keys().chain(mb.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let (x, y) = (ma.get(n).copied(), mb.get(n).copied());
            MetricDiff { metric: n.clone(), a: x, b: y, delta: x.zip(y).map(|(x, y)| y - x) }
        })
        .collect()
}

/// Can B replace A for A's callers?
fn compatibility(a: &Signature, b: &Signature) -> Compatibility {
    let mut problems = Vec::new();
    for need in &b.inputs {
        match a.inputs.iter().find(|s| s.name == need.name) {
            None => problems.push(format!("B needs input '{}', which A's callers do not send", need.name)),
            Some(sent) if sent.datatype != need.datatype => problems
                .push(format!("input '{}': A's callers send {}, B needs {}", need.name, sent.datatype, need.datatype)),
            Some(sent) if !accepts(&need.shape, &sent.shape) => problems.push(format!(
                "input '{}': A's callers send shape {:?}, B accepts {:?}",
                need.name, sent.shape, need.shape
            )),
            Some(_) => {}
        }
    }
    for read in &a.outputs {
        match b.outputs.iter().find(|s| s.name == read.name) {
            None => problems.push(format!("A's callers read output '{}', which B does not produce", read.name)),
            Some(made) if made.datatype != read.datatype => problems.push(format!(
                "output '{}': A's callers read {}, B produces {}",
                read.name, read.datatype, made.datatype
            )),
            Some(made) if !accepts(&read.shape, &made.shape) => problems.push(format!(
                "output '{}': A's callers read shape {:?}, B produces {:?}",
                read.name, read.shape, made.shape
            )),
            Some(_) => {}
        }
    }
    Compatibility { compatible: problems.is_empty(), problems }
}

/// Whether every tensor of shape `given` fits `accepted` (`-1` there takes any size; a `-1` in
/// `given` fits only a `-1`).
fn accepts(accepted: &[i64], given: &[i64]) -> bool {
    accepted.len() == given.len() && accepted.iter().zip(given).all(|(a, g)| *a == -1 || a == g)
}

impl Registry {
    /// `model` versions `a` and `b` (numbers or aliases) compared; see `VersionDiff`.
    pub async fn diff(&self, model: &str, a: &str, b: &str) -> Result<VersionDiff, StoreError> {
        let side = |selector: String| async move {
            let record = self.resolve(model, &selector).await?;
            let manifest = self.provenance(model, record.version).await?;
            let traffic = self.lineage_stats(model, record.version).await?;
            let feedback = self.feedback_summary(model, record.version, None).await?;
            Ok::<_, StoreError>(Side { record, manifest, traffic, feedback })
        };
        let (a, b) = (side(a.to_owned()).await?, side(b.to_owned()).await?);
        let events = self.events(model, None).await?;
        Ok(VersionDiff::of(model, &a, &b, &events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TensorSpec;

    fn spec(name: &str, datatype: &str, shape: &[i64]) -> TensorSpec {
        TensorSpec { name: name.into(), datatype: datatype.into(), shape: shape.to_vec() }
    }

    #[test]
    fn a_replacement_must_take_what_callers_send_and_give_what_they_read() {
        let a = Signature { inputs: vec![spec("x", "FP32", &[-1, 64])], outputs: vec![spec("y", "FP32", &[-1, 10])] };
        assert!(compatibility(&a, &a.clone()).compatible);
        let wider = Signature { inputs: vec![spec("x", "FP32", &[-1, -1])], ..a.clone() };
        assert!(compatibility(&a, &wider).compatible, "B accepting more is fine");
        let other = Signature {
            inputs: vec![spec("x", "FP64", &[-1, 64]), spec("extra", "FP32", &[1])],
            outputs: vec![spec("y", "FP32", &[-1, 3])],
        };
        let c = compatibility(&a, &other);
        assert!(!c.compatible);
        assert_eq!(c.problems.len(), 3, "{:?}", c.problems);
    }

    #[test]
    fn provenance_lists_every_field_once_and_marks_what_differs() {
        let a: Manifest =
            Manifest::from_toml_str("[training]\ncode_commit = 'aaa'\nrandom_seed = 1\n[metrics]\nauc = 0.9\n")
                .unwrap();
        let b: Manifest = Manifest::from_toml_str(
            "[training]\ncode_commit = 'bbb'\nrandom_seed = 1\n[training.hyperparameters]\nlr = 0.1\n[metrics]\nauc = 0.95\nloss = 0.2\n",
        )
        .unwrap();
        let p = provenance(Some(&a), Some(&b));
        let differs: Vec<&str> = p.iter().filter(|f| f.differs).map(|f| f.field.as_str()).collect();
        assert_eq!(differs, ["training.code_commit", "training.hyperparameters.lr"]);
        let m = metrics(Some(&a), Some(&b));
        assert_eq!(m[0].metric, "auc");
        assert!((m[0].delta.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!((m[1].a, m[1].delta), (None, None), "loss only in B");
    }
}
