//! Provenance manifest of a model version (TOML, or the same shape as JSON): where it came from,
//! how it was trained, on what, and how it scored. Strict at the top level, free-form below.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// Provenance of one model version. Every part is optional; unknown top-level keys are refused
/// so that a typo (`metric` for `metrics`) is caught rather than silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// What the model does, in a sentence or two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the model may and may not be used for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_use: Option<String>,
    /// How the model was trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
    /// Free-form environment fingerprint: hardware, driver, library versions. TOML datetimes
    /// become RFC 3339 strings.
    #[serde(default, deserialize_with = "free_form", skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, serde_json::Value>,
    /// Offline evaluation metrics by name. Invariant: every value is finite.
    #[serde(default, deserialize_with = "finite_metrics", skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Free-form labels. TOML datetimes become RFC 3339 strings.
    #[serde(default, deserialize_with = "free_form", skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, serde_json::Value>,
    /// The training data's profile per input tensor (by input name): what live inputs are
    /// compared with (drift) and checked against (validation). `switchyard models profile`
    /// computes one from data.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data_profile: BTreeMap<String, InputProfile>,
}

/// One input's training profile, per feature (the last dimension of a `[batch, features]`
/// input; a 1-D input is one feature). Every list has one entry per feature.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputProfile {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// The deciles of each feature (9 cut points, ascending): the bins drift is measured over,
    /// each holding a tenth of the training data.
    pub deciles: Vec<Vec<f64>>,
    /// Rows the profile was computed from.
    #[serde(default)]
    pub rows: u64,
}

impl InputProfile {
    /// Features described.
    pub fn features(&self) -> usize {
        self.min.len()
    }

    /// Why the profile is not usable, if it is not: lists of different lengths, bounds that
    /// are not finite or not ordered, deciles that are not 9 ascending values.
    pub fn problem(&self) -> Option<String> {
        let n = self.min.len();
        if n == 0 {
            return Some("no features".to_owned());
        }
        if [self.max.len(), self.mean.len(), self.std.len(), self.deciles.len()].iter().any(|&l| l != n) {
            return Some(format!("min has {n} features; max, mean, std and deciles must have as many"));
        }
        for f in 0..n {
            let (lo, hi) = (self.min[f], self.max[f]);
            if !(lo.is_finite() && hi.is_finite() && lo <= hi && self.std[f].is_finite() && self.std[f] >= 0.0) {
                return Some(format!("feature {f}: min {lo}, max {hi}, std {} are not a valid range", self.std[f]));
            }
            let d = &self.deciles[f];
            if d.len() != 9 || d.iter().any(|x| !x.is_finite()) || d.windows(2).any(|w| w[0] > w[1]) {
                return Some(format!("feature {f}: deciles must be 9 finite values in ascending order"));
            }
        }
        None
    }
}

/// How a model version was trained. Unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Commit of the training code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_commit: Option<String>,
    /// Identifier of the data snapshot trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_snapshot: Option<String>,
    /// Feature definitions (names or references), in model input order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    /// Random seed of the training run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u64>,
    /// Free-form hyperparameters. TOML datetimes become RFC 3339 strings.
    #[serde(default, deserialize_with = "free_form", skip_serializing_if = "BTreeMap::is_empty")]
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
}

/// Why a manifest was refused. Says which file (when there is one) and what is wrong; serde's
/// messages name an unknown key and list the expected ones.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest file could not be read. (Causes are fields named `cause`, not `source`: the
    /// message already holds them, and a chained source would print them twice.)
    #[error("cannot read manifest {}: {cause}", path.display())]
    Read {
        /// The manifest file.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The manifest is not valid TOML, or not the expected shape.
    #[error("invalid TOML manifest{}: {cause}", origin(path.as_deref()))]
    Toml {
        /// The manifest file, if it came from one.
        path: Option<PathBuf>,
        /// Parser message with line, column and the offending key or value.
        cause: toml::de::Error,
    },
    /// The manifest is not valid JSON, or not the expected shape.
    #[error("invalid JSON manifest{}: {cause}", origin(path.as_deref()))]
    Json {
        /// The manifest file, if it came from one.
        path: Option<PathBuf>,
        /// Parser message with line, column and the offending key or value.
        cause: serde_json::Error,
    },
    /// A `data_profile` entry is not usable.
    #[error("data_profile of input '{input}': {reason}")]
    Profile { input: String, reason: String },
    /// A file without a `.toml` or `.json` extension parses as neither.
    #[error(
        "manifest {} is neither valid TOML nor valid JSON (name it .toml or .json to get only \
         that format's errors); as TOML: {}; as JSON: {json}",
        path.display(),
        toml.to_string().trim_end()
    )]
    Unrecognized {
        /// The manifest file.
        path: PathBuf,
        /// Why it is not a TOML manifest.
        toml: toml::de::Error,
        /// Why it is not a JSON manifest.
        json: serde_json::Error,
    },
    /// A metric is NaN or infinite (possible only in a manifest built in code; parsing refuses it).
    #[error("metric `{name}` is {value}: metric values must be finite numbers")]
    NonFiniteMetric {
        /// The metric's name.
        name: String,
        /// The refused value.
        value: f64,
    },
}

impl Manifest {
    /// Reads and parses a manifest file: by extension (`.toml` / `.json`, any case), otherwise
    /// TOML then JSON. Errors name the file and what is wrong with it.
    pub fn from_path(path: &Path) -> Result<Manifest, ManifestError> {
        let text =
            std::fs::read_to_string(path).map_err(|cause| ManifestError::Read { path: path.to_owned(), cause })?;
        let extension = path.extension().and_then(|ext| ext.to_str()).map(str::to_ascii_lowercase);
        let with_path = |err: ManifestError| match err {
            ManifestError::Toml { cause, .. } => ManifestError::Toml { path: Some(path.to_owned()), cause },
            ManifestError::Json { cause, .. } => ManifestError::Json { path: Some(path.to_owned()), cause },
            other => other,
        };
        match extension.as_deref() {
            Some("toml") => Manifest::from_toml_str(&text).map_err(with_path),
            Some("json") => Manifest::from_json_str(&text).map_err(with_path),
            _ => match toml::from_str::<Manifest>(&text) {
                Ok(manifest) => Ok(manifest),
                Err(toml) => match serde_json::from_str::<Manifest>(&text) {
                    Ok(manifest) => Ok(manifest),
                    Err(json) => Err(ManifestError::Unrecognized { path: path.to_owned(), toml, json }),
                },
            },
        }
    }

    /// Parses a TOML manifest.
    pub fn from_toml_str(s: &str) -> Result<Manifest, ManifestError> {
        toml::from_str(s).map_err(|cause| ManifestError::Toml { path: None, cause })
    }

    /// Parses a JSON manifest of the same shape as the TOML one.
    pub fn from_json_str(s: &str) -> Result<Manifest, ManifestError> {
        serde_json::from_str(s).map_err(|cause| ManifestError::Json { path: None, cause })
    }

    /// Checks the invariants that parsing enforces, for manifests built in code: every metric
    /// is finite (JSON cannot carry NaN or infinity, so the registry could not store it).
    pub fn validate(&self) -> Result<(), ManifestError> {
        if let Some((name, &value)) = self.metrics.iter().find(|(_, value)| !value.is_finite()) {
            return Err(ManifestError::NonFiniteMetric { name: name.clone(), value });
        }
        for (input, profile) in &self.data_profile {
            if let Some(reason) = profile.problem() {
                return Err(ManifestError::Profile { input: input.clone(), reason });
            }
        }
        Ok(())
    }
}

fn origin(path: Option<&Path>) -> String {
    path.map(|path| format!(" {}", path.display())).unwrap_or_default()
}

/// The key under which the `toml` crate hands a datetime to a self-describing deserializer
/// (`toml_datetime`'s private `FIELD`). Such one-key maps are turned back into strings.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

/// Deserializes a free-form map, turning TOML datetimes into their RFC 3339 strings so that
/// values survive TOML → JSON → database → JSON unchanged in meaning.
fn free_form<'de, D>(deserializer: D) -> Result<BTreeMap<String, serde_json::Value>, D::Error>
where
    D: Deserializer<'de>,
{
    let mut map = BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?;
    map.values_mut().for_each(normalize_datetimes);
    Ok(map)
}

fn normalize_datetimes(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            if object.len() == 1
                && let Some(serde_json::Value::String(text)) = object.get(TOML_DATETIME_KEY)
            {
                *value = serde_json::Value::String(text.clone());
                return;
            }
            object.values_mut().for_each(normalize_datetimes);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(normalize_datetimes),
        _ => {}
    }
}

/// Deserializes metrics, refusing non-numbers and NaN or infinite values (TOML allows `nan`
/// and `inf`) with the metric's name in the message.
fn finite_metrics<'de, D>(deserializer: D) -> Result<BTreeMap<String, f64>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = BTreeMap::<String, MetricValue>::deserialize(deserializer)?;
    let mut metrics = BTreeMap::new();
    for (name, MetricValue(value)) in raw {
        if !value.is_finite() {
            return Err(de::Error::custom(format!("metric `{name}` is {value}: metric values must be finite numbers")));
        }
        metrics.insert(name, value);
    }
    Ok(metrics)
}

/// A metric value: any number, so the message for a string or table says what was expected.
struct MetricValue(f64);

impl<'de> Deserialize<'de> for MetricValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<MetricValue, D::Error> {
        deserializer.deserialize_f64(MetricVisitor)
    }
}

struct MetricVisitor;

impl Visitor<'_> for MetricVisitor {
    type Value = MetricValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a finite number (metric values are numbers such as 0.93)")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<MetricValue, E> {
        Ok(MetricValue(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<MetricValue, E> {
        Ok(MetricValue(value as f64))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<MetricValue, E> {
        Ok(MetricValue(value as f64))
    }
}

#[cfg(test)]
mod tests;
