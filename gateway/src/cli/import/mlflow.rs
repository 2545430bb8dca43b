//! Reads an MLflow model directory (an `MLmodel` YAML file with an `onnx` flavor beside its ONNX
//! file) into one import candidate whose manifest carries what MLflow recorded: run id, artifact
//! path, creation time, MLflow and ONNX versions, signature, metadata, and — when the run's
//! files are at hand — its metrics (last value of each) and params. Only reads files.
//!
//! The run's `metrics/`, `params/` and `tags/` are looked for in the model directory itself, and
//! else in the run directory when the model directory sits at `<run>/artifacts/<artifact_path>`
//! (MLflow's file store layout). A metrics file has lines `timestamp value step` (older MLflow:
//! `timestamp value`); the value of the highest step (then latest timestamp) is kept. A params
//! file holds the value itself, as MLflow writes it. The run tag `mlflow.source.git.commit`, if
//! present, becomes `training.code_commit`; otherwise it is left empty.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use model_store::{Manifest, Training};
use serde_json::{Value, json};
use yaml_rust2::{Yaml, YamlLoader};

use super::{Candidate, Plan, Skipped};

/// The MLflow flavor the importer needs.
const ONNX_FLAVOR: &str = "onnx";
/// The run tag MLflow records the training code's commit under.
const GIT_COMMIT_TAG: &str = "mlflow.source.git.commit";

/// What the importer takes from an `MLmodel` file.
#[derive(Debug, Default, PartialEq)]
pub struct MlModel {
    /// The ONNX file, relative to the model directory (`flavors.onnx.data`).
    pub data: String,
    pub onnx_version: Option<String>,
    pub run_id: Option<String>,
    pub artifact_path: Option<String>,
    pub utc_time_created: Option<String>,
    pub mlflow_version: Option<String>,
    pub model_uuid: Option<String>,
    pub python_version: Option<String>,
    /// `signature.inputs` / `outputs` / `params`: JSON text in the file, parsed (kept as text
    /// if it is not JSON).
    pub signature: BTreeMap<String, Value>,
    /// `metadata`, as JSON.
    pub metadata: Option<Value>,
}

impl MlModel {
    /// Parses an `MLmodel` file's text. Errors say what is missing: no mapping, no `flavors`,
    /// no `onnx` flavor (naming the flavors there are), a `data` that is not a relative path
    /// inside the model directory.
    pub fn from_text(text: &str) -> Result<MlModel, String> {
        let docs = YamlLoader::load_from_str(text).map_err(|err| format!("invalid YAML: {err}"))?;
        let Some(doc @ Yaml::Hash(_)) = docs.into_iter().next() else {
            return Err("expected a YAML mapping (an MLmodel file)".to_owned());
        };
        let flavors = match &doc["flavors"] {
            Yaml::Hash(flavors) => flavors,
            Yaml::BadValue => return Err("it has no `flavors`".to_owned()),
            _ => return Err("`flavors` is not a mapping".to_owned()),
        };
        let onnx = match &doc["flavors"][ONNX_FLAVOR] {
            onnx @ Yaml::Hash(_) => onnx,
            Yaml::BadValue => {
                let names: Vec<String> = flavors.keys().filter_map(|key| key.as_str().map(str::to_owned)).collect();
                return Err(format!(
                    "it has no `{ONNX_FLAVOR}` flavor (flavors: {}); only ONNX models can be imported \
                     (save the model with mlflow.onnx)",
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                ));
            }
            _ => return Err(format!("the `{ONNX_FLAVOR}` flavor is not a mapping")),
        };
        let data = match &onnx["data"] {
            Yaml::BadValue | Yaml::Null => "model.onnx".to_owned(),
            value => scalar_text(value).ok_or("the onnx flavor's `data` is not a file name")?,
        };
        let inside = Path::new(&data).components().all(|component| matches!(component, Component::Normal(_)));
        if data.is_empty() || !inside {
            return Err(format!("the onnx flavor's data `{data}` is not a relative path inside the model directory"));
        }
        let mut signature = BTreeMap::new();
        for part in ["inputs", "outputs", "params"] {
            if let Some(text) = scalar_text(&doc["signature"][part]) {
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                signature.insert(part.to_owned(), value);
            }
        }
        let metadata = match &doc["metadata"] {
            Yaml::BadValue | Yaml::Null => None,
            value => Some(to_json(value)),
        };
        Ok(MlModel {
            data,
            onnx_version: scalar_text(&onnx["onnx_version"]),
            run_id: scalar_text(&doc["run_id"]),
            artifact_path: scalar_text(&doc["artifact_path"]),
            utc_time_created: scalar_text(&doc["utc_time_created"]),
            mlflow_version: scalar_text(&doc["mlflow_version"]),
            model_uuid: scalar_text(&doc["model_uuid"]),
            python_version: scalar_text(&doc["flavors"]["python_function"]["python_version"]),
            signature,
            metadata,
        })
    }
}

/// Plans the import of the MLflow model directory `dir` as model `model`.
pub fn plan(dir: &Path, model: &str) -> anyhow::Result<Plan> {
    if !dir.is_dir() {
        bail!("{} is not a directory (expected an MLflow model directory with an MLmodel file)", dir.display());
    }
    let dir = dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))?;
    let mlmodel_path = dir.join("MLmodel");
    if !mlmodel_path.is_file() {
        bail!("{} has no MLmodel file: it is not an MLflow model directory", dir.display());
    }
    let text =
        std::fs::read_to_string(&mlmodel_path).with_context(|| format!("cannot read {}", mlmodel_path.display()))?;
    let mlmodel = MlModel::from_text(&text).map_err(|err| anyhow!("{}: {err}", mlmodel_path.display()))?;
    let file = dir.join(&mlmodel.data);
    if !file.is_file() {
        bail!(
            "{}: the onnx flavor's data file {} does not exist{}",
            mlmodel_path.display(),
            file.display(),
            if file.is_dir() { " as a file (it is a directory)" } else { "" }
        );
    }

    let mut plan = Plan::default();
    let run_dir = run_directory(&dir, mlmodel.artifact_path.as_deref());
    let (metrics, params, code_commit) = match &run_dir {
        Some(run) => (
            read_metrics(&run.join("metrics"), &mut plan.skipped)?,
            read_params(&run.join("params"))?,
            read_tag(&run.join("tags"), GIT_COMMIT_TAG)?,
        ),
        None => (BTreeMap::new(), BTreeMap::new(), None),
    };

    let mut tags = BTreeMap::new();
    let mut tag = |key: &str, value: Value| {
        tags.insert(key.to_owned(), value);
    };
    tag("source", json!("mlflow"));
    tag("source_path", json!(file.display().to_string()));
    tag("mlflow_model_dir", json!(dir.display().to_string()));
    let optional = [
        ("mlflow_run_id", &mlmodel.run_id),
        ("mlflow_artifact_path", &mlmodel.artifact_path),
        ("mlflow_utc_time_created", &mlmodel.utc_time_created),
        ("mlflow_model_uuid", &mlmodel.model_uuid),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            tag(key, json!(value));
        }
    }
    for (part, value) in &mlmodel.signature {
        tag(&format!("mlflow_signature_{part}"), value.clone());
    }
    if let Some(metadata) = &mlmodel.metadata {
        tag("mlflow_metadata", metadata.clone());
    }
    if let Some(run) = &run_dir {
        tag("mlflow_run_dir", json!(run.display().to_string()));
    }

    let mut environment = BTreeMap::new();
    let present = [
        ("mlflow_version", &mlmodel.mlflow_version),
        ("onnx_version", &mlmodel.onnx_version),
        ("python_version", &mlmodel.python_version),
        ("run_id", &mlmodel.run_id),
    ];
    for (key, value) in present {
        if let Some(value) = value {
            environment.insert(key.to_owned(), json!(value));
        }
    }
    let training = (code_commit.is_some() || !params.is_empty()).then(|| Training {
        code_commit,
        hyperparameters: params,
        ..Training::default()
    });
    let manifest = Manifest { training, environment, metrics, tags, ..Manifest::default() };
    plan.candidates.push(Candidate {
        model: model.to_owned(),
        file,
        source: match &mlmodel.run_id {
            Some(run_id) => format!("mlflow run {run_id}"),
            None => "mlflow model".to_owned(),
        },
        source_version: mlmodel.run_id.clone(),
        manifest,
    });
    Ok(plan)
}

/// Where the run's `metrics/`, `params/` and `tags/` are: the model directory if it has any of
/// them, else `<run>` when the model directory is `<run>/artifacts/<artifact_path>`.
fn run_directory(dir: &Path, artifact_path: Option<&str>) -> Option<PathBuf> {
    let has_run_files = |at: &Path| ["metrics", "params", "tags"].iter().any(|name| at.join(name).is_dir());
    if has_run_files(dir) {
        return Some(dir.to_path_buf());
    }
    let depth = Path::new(artifact_path?).components().filter(|c| matches!(c, Component::Normal(_))).count();
    let mut artifacts = dir;
    for _ in 0..depth {
        artifacts = artifacts.parent()?;
    }
    if artifacts.file_name()? != "artifacts" || !dir.ends_with(artifact_path?) {
        return None;
    }
    let run = artifacts.parent()?;
    has_run_files(run).then(|| run.to_path_buf())
}

/// The files under `dir`, recursively, as (name with `/` separators, path), sorted. MLflow
/// stores a metric or param named `a/b` at `<dir>/a/b`.
fn named_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
            if path.is_dir() {
                walk(root, &path, found)?;
            } else if let Ok(relative) = path.strip_prefix(root) {
                let name = relative.to_str().ok_or_else(|| anyhow!("{} is not a UTF-8 name", path.display()))?;
                found.push((name.replace(std::path::MAIN_SEPARATOR, "/"), path.clone()));
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    if dir.is_dir() {
        walk(dir, dir, &mut found)?;
    }
    found.sort();
    Ok(found)
}

/// The last value of every metric under `dir`. NaN and infinite values cannot be stored as
/// metrics: such a metric is left out and noted in `skipped`.
fn read_metrics(dir: &Path, skipped: &mut Vec<Skipped>) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut metrics = BTreeMap::new();
    for (name, path) in named_files(dir)? {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        match last_metric_value(&text).map_err(|err| anyhow!("{}: {err}", path.display()))? {
            Some(value) if value.is_finite() => {
                metrics.insert(name, value);
            }
            Some(value) => skipped.push(Skipped {
                path,
                reason: format!("metric `{name}` is {value}: only finite metric values can be recorded"),
            }),
            None => skipped.push(Skipped { path, reason: format!("metric `{name}` has no values") }),
        }
    }
    Ok(metrics)
}

/// The value of the highest step (then latest timestamp; then the later line) in a metrics
/// file of `timestamp value step` lines (`timestamp value` in MLflow before 1.0).
pub fn last_metric_value(text: &str) -> Result<Option<f64>, String> {
    let mut last: Option<((i64, i64), f64)> = None;
    for (index, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.is_empty() {
            continue;
        }
        let bad = || format!("line {}: expected `timestamp value step`, found {line:?}", index + 1);
        let (timestamp, value, step) = match parts.as_slice() {
            [timestamp, value] => (*timestamp, *value, "0"),
            [timestamp, value, step] => (*timestamp, *value, *step),
            _ => return Err(bad()),
        };
        let timestamp: i64 = timestamp.parse().map_err(|_| bad())?;
        let step: i64 = step.parse().map_err(|_| bad())?;
        let value: f64 = value.parse().map_err(|_| bad())?;
        if last.is_none_or(|(key, _)| (step, timestamp) >= key) {
            last = Some(((step, timestamp), value));
        }
    }
    Ok(last.map(|(_, value)| value))
}

/// Every param under `dir`: a JSON number or boolean when the text is one, else the text.
fn read_params(dir: &Path) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut params = BTreeMap::new();
    for (name, path) in named_files(dir)? {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        params.insert(name, param_value(&text));
    }
    Ok(params)
}

/// A param's value: `0.01` → 0.01, `true` → true, anything else (`adam`, `0001`, `[1, 2]`) as text.
pub fn param_value(text: &str) -> Value {
    let text = text.trim_end_matches(['\n', '\r']);
    match serde_json::from_str::<Value>(text) {
        Ok(value @ (Value::Number(_) | Value::Bool(_))) => value,
        _ => Value::String(text.to_owned()),
    }
}

/// The run tag `name` under `dir`, if present and not empty.
fn read_tag(dir: &Path, name: &str) -> anyhow::Result<Option<String>> {
    let path = dir.join(name);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(text.trim().to_owned()).filter(|value| !value.is_empty()))
}

/// A scalar as text: strings as they are, numbers and booleans as written.
fn scalar_text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(number) => Some(number.to_string()),
        Yaml::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// YAML → JSON, for free-form parts (`metadata`). Keys that are not strings are written as text;
/// aliases, which MLflow never writes, become null.
fn to_json(value: &Yaml) -> Value {
    match value {
        Yaml::String(text) => Value::String(text.clone()),
        Yaml::Integer(number) => json!(number),
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(text.clone()), Value::Number),
        Yaml::Boolean(flag) => Value::Bool(*flag),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (scalar_text(key).unwrap_or_else(|| format!("{key:?}")), to_json(value)))
                .collect(),
        ),
        Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As `mlflow.onnx.save_model` writes it (PyYAML folds long quoted strings over lines).
    const MLMODEL: &str = r#"artifact_path: model
flavors:
  onnx:
    code: null
    data: model.onnx
    onnx_version: 1.16.1
    providers:
    - CPUExecutionProvider
  python_function:
    data: model.onnx
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.onnx
    python_version: 3.11.9
metadata:
  team: ranking
  owners:
  - alice
  threshold: 0.5
mlflow_version: 2.14.1
model_size_bytes: 2345
model_uuid: 4b1c2f3e9d8a4b7c
run_id: 0f9e8d7c6b5a49382716f5e4d3c2b1a0
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1,
    64]}, "name": "input"}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 10]}}]'
  params: null
utc_time_created: '2024-05-02 10:30:00.123456'
"#;

    #[test]
    fn reads_what_mlflow_writes() {
        let mlmodel = MlModel::from_text(MLMODEL).expect("parses");
        assert_eq!(mlmodel.data, "model.onnx");
        assert_eq!(mlmodel.onnx_version.as_deref(), Some("1.16.1"));
        assert_eq!(mlmodel.run_id.as_deref(), Some("0f9e8d7c6b5a49382716f5e4d3c2b1a0"));
        assert_eq!(mlmodel.artifact_path.as_deref(), Some("model"));
        assert_eq!(mlmodel.utc_time_created.as_deref(), Some("2024-05-02 10:30:00.123456"));
        assert_eq!(mlmodel.mlflow_version.as_deref(), Some("2.14.1"));
        assert_eq!(mlmodel.python_version.as_deref(), Some("3.11.9"));
        assert_eq!(mlmodel.signature["inputs"][0]["tensor-spec"]["shape"], json!([-1, 64]), "folded line joined");
        assert_eq!(mlmodel.signature["outputs"][0]["type"], "tensor");
        assert!(!mlmodel.signature.contains_key("params"), "null params are left out");
        assert_eq!(mlmodel.metadata, Some(json!({"team": "ranking", "owners": ["alice"], "threshold": 0.5})));
    }

    #[test]
    fn missing_parts_are_named() {
        let no_onnx = "flavors:\n  sklearn:\n    pickled_model: model.pkl\n  python_function: {}\n";
        let err = MlModel::from_text(no_onnx).expect_err("no onnx flavor");
        assert!(err.contains("no `onnx` flavor (flavors: sklearn, python_function)"), "{err}");
        for (text, needle) in [
            ("run_id: x\n", "no `flavors`"),
            ("- a\n- b\n", "expected a YAML mapping"),
            ("", "expected a YAML mapping"),
            ("flavors: [onnx]\n", "`flavors` is not a mapping"),
            ("flavors:\n  onnx: yes\n", "not a mapping"),
            ("flavors:\n  onnx:\n    data: ../outside.onnx\n", "not a relative path inside"),
            ("flavors:\n  onnx:\n    data: /etc/model.onnx\n", "not a relative path inside"),
            ("flavors:\n  onnx: {data: [1]}\n", "`data` is not a file name"),
            ("flavors: {onnx: {data: x}\n", "invalid YAML"),
        ] {
            let err = MlModel::from_text(text).expect_err(text);
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let minimal = MlModel::from_text("flavors:\n  onnx: {}\n").expect("data defaults");
        assert_eq!(minimal.data, "model.onnx");
        assert_eq!(minimal.run_id, None);
    }

    #[test]
    fn metric_files_give_the_value_of_the_last_step() {
        assert_eq!(last_metric_value("1700000000000 0.5 0\n1700000000100 0.75 1\n"), Ok(Some(0.75)));
        assert_eq!(last_metric_value("10 0.9 5\n20 0.1 2\n"), Ok(Some(0.9)), "highest step wins");
        assert_eq!(last_metric_value("10 0.1 1\n20 0.2 1\n"), Ok(Some(0.2)), "then latest timestamp");
        assert_eq!(last_metric_value("10 0.3\n"), Ok(Some(0.3)), "pre-1.0 lines have no step");
        assert_eq!(last_metric_value("\n"), Ok(None));
        assert!(last_metric_value("10 nan 0\n").is_ok_and(|v| v.is_some_and(f64::is_nan)));
        let err = last_metric_value("10 0.1 0\nnot a metric line\n").expect_err("bad");
        assert!(err.starts_with("line 2: expected `timestamp value step`"), "{err}");
    }

    #[test]
    fn params_become_numbers_or_booleans_only_when_they_are_exactly_that() {
        assert_eq!(param_value("0.01"), json!(0.01));
        assert_eq!(param_value("64\n"), json!(64));
        assert_eq!(param_value("true"), json!(true));
        assert_eq!(param_value("adam"), json!("adam"));
        assert_eq!(param_value("0001"), json!("0001"));
        assert_eq!(param_value("[1, 2]"), json!("[1, 2]"));
    }
}
