//! Reads a Triton model repository, `<repo>/<model>/<version>/model.onnx` with an optional
//! `<repo>/<model>/config.pbtxt`, into import candidates. Only reads files; the store is not
//! touched here.
//!
//! As Triton does, version directories are positive integers without leading zeros; anything
//! else in a model directory is skipped (with a message). A model whose config names a
//! `platform` or `backend` other than ONNX Runtime is skipped, as is a version without an ONNX
//! file (`model.plan`, `model.savedmodel`, …). A config that cannot be read, or that names the
//! model differently from its directory (Triton refuses both), stops the import.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use model_store::Manifest;
use serde_json::{Value, json};

use super::pbtxt;
use super::{Candidate, Plan, Skipped};

/// Triton's `platform` for ONNX Runtime models.
const ONNX_PLATFORM: &str = "onnxruntime_onnx";
/// Triton's `backend` for ONNX Runtime models.
const ONNX_BACKEND: &str = "onnxruntime";
/// The model file Triton looks for unless `default_model_filename` says otherwise.
const DEFAULT_FILE: &str = "model.onnx";

/// What the importer takes from a `config.pbtxt`.
#[derive(Debug, Default, PartialEq)]
pub struct TritonConfig {
    pub name: Option<String>,
    pub platform: Option<String>,
    pub backend: Option<String>,
    pub max_batch_size: Option<i64>,
    pub default_model_filename: Option<String>,
}

impl TritonConfig {
    /// Reads the fields the importer uses from a config's text; every other field is ignored.
    pub fn from_text(text: &str) -> Result<TritonConfig, String> {
        let fields = pbtxt::parse(text).map_err(|err| err.to_string())?;
        let text_field = |name: &str| pbtxt::scalar(&fields, name).map(str::to_owned);
        let max_batch_size = match pbtxt::scalar(&fields, "max_batch_size") {
            None => None,
            Some(value) => {
                Some(value.parse::<i64>().map_err(|_| format!("max_batch_size `{value}` is not an integer"))?)
            }
        };
        Ok(TritonConfig {
            name: text_field("name"),
            platform: text_field("platform"),
            backend: text_field("backend"),
            max_batch_size,
            default_model_filename: text_field("default_model_filename"),
        })
    }

    /// Why the model is not one ONNX Runtime serves, if it is not.
    pub fn not_onnx(&self) -> Option<String> {
        let onnx = |value: &str, wanted: &str| value == wanted || value == "onnx";
        match (&self.platform, &self.backend) {
            (Some(platform), _) if !onnx(platform, ONNX_PLATFORM) => Some(format!(
                "config.pbtxt names platform `{platform}`; only ONNX Runtime models (`{ONNX_PLATFORM}`) can be imported"
            )),
            (_, Some(backend)) if !onnx(backend, ONNX_BACKEND) => Some(format!(
                "config.pbtxt names backend `{backend}`; only ONNX Runtime models (`{ONNX_BACKEND}`) can be imported"
            )),
            _ => None,
        }
    }
}

/// Whether a directory name is a Triton version: digits, no leading zero.
pub fn version_number(name: &str) -> Option<u64> {
    if name.is_empty() || name.starts_with('0') || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Plans the import of `repo` (every model, or only those named in `only`).
pub fn plan(repo: &Path, only: &[String]) -> anyhow::Result<Plan> {
    if !repo.is_dir() {
        bail!(
            "{} is not a directory (expected a Triton model repository: <repo>/<model>/<version>/model.onnx)",
            repo.display()
        );
    }
    let repo = repo.canonicalize().with_context(|| format!("cannot resolve {}", repo.display()))?;
    let mut models: Vec<(String, PathBuf)> = subdirectories(&repo)?
        .into_iter()
        .filter(|(name, _)| !name.starts_with('.'))
        .filter(|(name, _)| only.is_empty() || only.contains(name))
        .collect();
    if let Some(missing) = only.iter().find(|name| !models.iter().any(|(model, _)| model == *name)) {
        let present: Vec<String> = subdirectories(&repo)?.into_iter().map(|(name, _)| name).collect();
        bail!(
            "{} has no model directory `{missing}` (models there: {})",
            repo.display(),
            if present.is_empty() { "none".to_owned() } else { present.join(", ") }
        );
    }
    if models.is_empty() {
        bail!("{} holds no model directories (expected <repo>/<model>/<version>/model.onnx)", repo.display());
    }
    models.sort();
    let mut plan = Plan::default();
    for (model, dir) in models {
        plan_model(&model, &dir, &mut plan)?;
    }
    Ok(plan)
}

fn plan_model(model: &str, dir: &Path, plan: &mut Plan) -> anyhow::Result<()> {
    let config_path = dir.join("config.pbtxt");
    let config = if config_path.is_file() {
        let text =
            std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
        TritonConfig::from_text(&text).map_err(|err| anyhow::anyhow!("{}: {err}", config_path.display()))?
    } else {
        TritonConfig::default()
    };
    if let Some(name) = config.name.as_deref().filter(|name| *name != model) {
        bail!(
            "{} names the model `{name}`, but its directory is `{model}` (Triton requires them to match)",
            config_path.display()
        );
    }
    if let Some(reason) = config.not_onnx() {
        plan.skipped.push(Skipped { path: dir.to_path_buf(), reason });
        return Ok(());
    }
    let file_name = config.default_model_filename.clone().unwrap_or_else(|| DEFAULT_FILE.to_owned());
    if file_name.contains('/') || file_name == ".." || file_name.is_empty() {
        bail!("{}: default_model_filename `{file_name}` is not a file name", config_path.display());
    }
    let mut versions = Vec::new();
    for (name, path) in subdirectories(dir)? {
        match version_number(&name) {
            Some(number) => versions.push((number, path)),
            None => plan.skipped.push(Skipped {
                path,
                reason: "not a version directory: Triton versions are positive integers without leading zeros \
                         (Triton ignores it too)"
                    .to_owned(),
            }),
        }
    }
    if versions.is_empty() {
        plan.skipped.push(Skipped { path: dir.to_path_buf(), reason: "no version directories".to_owned() });
    }
    // Ascending numeric order, so the store's numbers keep the repository's relative order.
    versions.sort();
    for (number, version_dir) in versions {
        let file = version_dir.join(&file_name);
        if file.is_dir() {
            plan.skipped.push(Skipped {
                path: file,
                reason: "is a directory (an ONNX model with external data), which the store cannot hold".to_owned(),
            });
            continue;
        }
        if !file.is_file() {
            let found = entries(&version_dir)?;
            let reason = if found.is_empty() {
                format!("no {file_name}: the version directory is empty")
            } else {
                format!("no {file_name} (found {}): not an ONNX model", found.join(", "))
            };
            plan.skipped.push(Skipped { path: version_dir, reason });
            continue;
        }
        let mut tags = vec![
            ("source", json!("triton")),
            ("source_path", json!(file.display().to_string())),
            ("triton_model", json!(model)),
            ("triton_version", json!(number.to_string())),
        ];
        if let Some(size) = config.max_batch_size {
            tags.push(("triton_max_batch_size", json!(size)));
        }
        if let Some(platform) = &config.platform {
            tags.push(("triton_platform", json!(platform)));
        }
        if let Some(backend) = &config.backend {
            tags.push(("triton_backend", json!(backend)));
        }
        let manifest = Manifest {
            tags: tags.into_iter().map(|(key, value): (&str, Value)| (key.to_owned(), value)).collect(),
            ..Manifest::default()
        };
        plan.candidates.push(Candidate {
            model: model.to_owned(),
            file,
            source: format!("triton {model}/{number}"),
            source_version: Some(number.to_string()),
            manifest,
        });
    }
    Ok(())
}

/// The directories directly under `dir`, as (name, path), sorted by name. Names that are not
/// UTF-8 are refused: they could not become model names or tags.
fn subdirectories(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            bail!("{} is not a UTF-8 name", path.display());
        };
        found.push((name, path));
    }
    found.sort();
    Ok(found)
}

/// The names of the entries of `dir`, sorted (for messages).
fn entries(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fields_are_read_and_the_rest_ignored() {
        let config = TritonConfig::from_text(
            "name: \"mlp\"\nbackend: \"onnxruntime\"\nmax_batch_size: 16\ninput [ { name: \"x\" dims: [ 4 ] } ]\n",
        )
        .expect("parses");
        assert_eq!(
            config,
            TritonConfig {
                name: Some("mlp".into()),
                platform: None,
                backend: Some("onnxruntime".into()),
                max_batch_size: Some(16),
                default_model_filename: None,
            }
        );
        assert_eq!(config.not_onnx(), None);
        assert_eq!(TritonConfig::from_text("").expect("empty"), TritonConfig::default());
    }

    #[test]
    fn platforms_other_than_onnxruntime_are_named() {
        for (text, onnx) in [
            ("platform: \"onnxruntime_onnx\"", true),
            ("backend: \"onnxruntime\"", true),
            ("platform: \"onnx\"", true),
            ("platform: \"tensorrt_plan\"", false),
            ("backend: \"python\"", false),
            ("platform: \"onnxruntime_onnx\" backend: \"pytorch\"", false),
        ] {
            let config = TritonConfig::from_text(text).expect("parses");
            assert_eq!(config.not_onnx().is_none(), onnx, "{text}: {:?}", config.not_onnx());
        }
        let reason = TritonConfig::from_text("platform: \"tensorflow_savedmodel\"").expect("parses").not_onnx();
        assert!(reason.is_some_and(|r| r.contains("`tensorflow_savedmodel`")));
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let err = TritonConfig::from_text("max_batch_size: eight").expect_err("not a number");
        assert!(err.contains("max_batch_size `eight` is not an integer"), "{err}");
        let err = TritonConfig::from_text("name: \"mlp\"\ninput [ {").expect_err("unclosed");
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn version_directories_are_positive_integers_without_leading_zeros() {
        assert_eq!(version_number("1"), Some(1));
        assert_eq!(version_number("20"), Some(20));
        for bad in ["", "0", "01", "v1", "1a", "-1", "latest"] {
            assert_eq!(version_number(bad), None, "{bad}");
        }
    }
}
