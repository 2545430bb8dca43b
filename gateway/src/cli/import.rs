//! `switchyard models import triton|mlflow`: registers the ONNX versions of a Triton model
//! repository or an MLflow model directory, each with a manifest saying where it came from
//! (tags `source`, `source_path` and the source's own identifiers).
//!
//! An import runs in three steps, so that a bad input writes nothing: plan (read the layout and
//! its metadata files; skip what is not importable, with a message), check (open every ONNX file
//! with ONNX Runtime and read its signature, exactly as `models register` does), then register
//! each version in order. Registering the same bytes again finds the existing version, so
//! re-running an import changes nothing and says so.

mod mlflow;
mod pbtxt;
mod triton;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use model_store::{Manifest, ModelStore, NewVersion, Signature, check_model_name};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::engine::Runtime;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a Triton model repository: <REPO>/<MODEL>/<VERSION>/model.onnx, versions in
    /// ascending order, each model under its directory name.
    Triton {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// The model repository.
        repo: PathBuf,
        /// Import only this model (repeatable); default: every model in the repository.
        #[arg(long = "model")]
        models: Vec<String>,
        /// Who imports, recorded in the events (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
        /// ONNX Runtime library used to read each model's signature.
        #[arg(long, env = "SWITCHYARD_ONNXRUNTIME")]
        onnxruntime: Option<PathBuf>,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
    /// Import an MLflow model directory (an MLmodel file with an `onnx` flavor) as a version of
    /// MODEL, with the run's metadata, metrics and params as its provenance.
    Mlflow {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// The MLflow model directory (the one holding MLmodel).
        model_dir: PathBuf,
        /// The model to register it under.
        #[arg(long)]
        model: String,
        /// Who acts, recorded in the event (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
        /// ONNX Runtime library used to read each model's signature.
        #[arg(long, env = "SWITCHYARD_ONNXRUNTIME")]
        onnxruntime: Option<PathBuf>,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
}

/// What an import will register, and what it leaves out.
#[derive(Debug, Default)]
struct Plan {
    /// In registration order.
    candidates: Vec<Candidate>,
    skipped: Vec<Skipped>,
}

/// One version to register.
#[derive(Debug)]
struct Candidate {
    model: String,
    /// The ONNX file, absolute.
    file: PathBuf,
    /// For messages: "triton mlp/3", "mlflow run 0f9e…".
    source: String,
    /// The source's own version: Triton's version number, MLflow's run id.
    source_version: Option<String>,
    manifest: Manifest,
}

/// Something in the source that is not imported, and why.
#[derive(Debug)]
struct Skipped {
    path: PathBuf,
    reason: String,
}

/// A candidate that passed the check: its signature and the digest of the bytes checked.
#[derive(Debug)]
struct Checked {
    candidate: Candidate,
    signature: Signature,
    sha256: String,
}

pub fn run(cmd: ImportCommand) -> anyhow::Result<i32> {
    match cmd {
        ImportCommand::Triton { store, repo, models, actor, onnxruntime, json } => {
            let plan = triton::plan(&repo, &models)?;
            execute("triton", &repo, plan, &store, super::actor(actor), onnxruntime.as_deref(), json)
        }
        ImportCommand::Mlflow { store, model_dir, model, actor, onnxruntime, json } => {
            check_model_name(&model)?;
            let plan = mlflow::plan(&model_dir, &model)?;
            execute("mlflow", &model_dir, plan, &store, super::actor(actor), onnxruntime.as_deref(), json)
        }
    }
}

fn execute(
    kind: &str,
    source: &Path,
    plan: Plan,
    store: &Path,
    actor: String,
    onnxruntime: Option<&Path>,
    json: bool,
) -> anyhow::Result<i32> {
    let Plan { candidates, skipped } = plan;
    if candidates.is_empty() {
        let reasons: Vec<String> =
            skipped.iter().map(|skip| format!("{}: {}", skip.path.display(), skip.reason)).collect();
        bail!("nothing to import from {}: {}", source.display(), reasons.join("; "));
    }
    // Check everything before the store is opened (or created).
    for candidate in &candidates {
        check_model_name(&candidate.model)
            .with_context(|| format!("{} cannot be registered under its name", candidate.source))?;
        candidate.manifest.validate()?;
    }
    let runtime = Runtime::load(onnxruntime)?;
    let mut checked = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let bytes = read(&candidate.file)?;
        let signature = super::models::read_signature(runtime, &bytes, &candidate.file)?;
        checked.push(Checked { sha256: sha256_hex(&bytes), candidate, signature });
    }

    let results = super::block_on(async {
        let store = ModelStore::open(store).await?;
        let mut results = Vec::with_capacity(checked.len());
        for Checked { candidate, signature, sha256 } in checked {
            // Read again rather than hold every model in memory; refuse one that changed since.
            let bytes = read(&candidate.file)?;
            if sha256_hex(&bytes) != sha256 {
                bail!("{} changed while it was being imported; run the import again", candidate.file.display());
            }
            let registered = store
                .register(NewVersion {
                    model: candidate.model.clone(),
                    bytes,
                    upstream: None,
                    signature,
                    manifest: Some(candidate.manifest.clone()),
                    actor: actor.clone(),
                })
                .await
                .with_context(|| format!("registering {}", candidate.source))?;
            results.push((candidate, registered));
        }
        anyhow::Ok(results)
    })??;

    if json {
        let imported: Vec<_> = results
            .iter()
            .map(|(candidate, registered)| {
                let v = &registered.version;
                json!({
                    "model": v.model,
                    "version": v.version,
                    "sha256": v.sha256,
                    "size": v.size,
                    "created": registered.created,
                    "source_version": candidate.source_version,
                    "source_path": candidate.file.display().to_string(),
                })
            })
            .collect();
        let skipped: Vec<_> = skipped
            .iter()
            .map(|skip| json!({ "path": skip.path.display().to_string(), "reason": skip.reason }))
            .collect();
        out!(
            "{}",
            json!({ "source": kind, "path": source.display().to_string(), "imported": imported, "skipped": skipped })
        );
        return Ok(0);
    }
    for (candidate, registered) in &results {
        let v = &registered.version;
        if registered.created {
            out!("imported {} as {} version {} sha256 {}", candidate.source, v.model, v.version, v.sha256);
        } else {
            out!("already registered: {} is {} version {} (same bytes)", candidate.source, v.model, v.version);
        }
    }
    for skip in &skipped {
        out!("skipped {}: {}", skip.path.display(), skip.reason);
    }
    let created = results.iter().filter(|(_, registered)| registered.created).count();
    out!("{created} imported, {} already registered, {} skipped", results.len() - created, skipped.len());
    Ok(0)
}

fn read(file: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
