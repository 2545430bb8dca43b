//! `switchyard feedback export`: what the service saw, joined with the truth that arrived later
//! — the next training run's data set. One JSON line per answered request: its version, route,
//! status and prediction (lineage), the feedback (label, value or outcome, and whether the
//! prediction was right), and the inputs and outputs where the request was captured
//! (`[model.capture]`). With `--output FILE`, the file's sha256 is printed and recorded in the
//! registry (event `feedback_exported`), so the next manifest can cite it as its data snapshot.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Subcommand;
use model_store::{LineageQuery, StoredFeedback};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The most requests one export reads (the lineage query's own limit).
const MAX_ROWS: u32 = 100_000;

#[derive(Debug, Subcommand)]
pub enum FeedbackCommand {
    /// Export answered requests with their feedback and captured payloads as JSON lines, the
    /// oldest first (at most 100000; narrow --since/--until for more).
    Export {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// The model name.
        #[arg(long)]
        model: String,
        /// Only requests this version answered.
        #[arg(long)]
        version: Option<u32>,
        /// Only requests at or after T: RFC 3339, unix milliseconds, or a duration before now (2h).
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only requests at or before T (same formats as --since).
        #[arg(long, value_name = "T")]
        until: Option<String>,
        /// Only requests that got feedback.
        #[arg(long)]
        with_feedback: bool,
        /// Write the rows to FILE (and record its sha256) instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// With --output: print the summary (rows, sha256) as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: FeedbackCommand) -> anyhow::Result<i32> {
    let FeedbackCommand::Export { store, model, version, since, until, with_feedback, output, json } = cmd;
    let now = SystemTime::now();
    let since_ms = since.as_deref().map(|t| super::lineage::parse_time(t, now)).transpose()?;
    let until_ms = until.as_deref().map(|t| super::lineage::parse_time(t, now)).transpose()?;
    let query = LineageQuery { model: Some(model.clone()), version, since_ms, until_ms, limit: Some(MAX_ROWS) };
    super::block_on(export(&store, &model, &query, with_feedback, output.as_deref(), json))?
}

async fn export(
    store_dir: &Path,
    model: &str,
    query: &LineageQuery,
    with_feedback: bool,
    output: Option<&Path>,
    json: bool,
) -> anyhow::Result<i32> {
    let store = super::models::open_existing(store_dir).await?;
    let registry = store.registry();
    match query.version {
        Some(v) => drop(registry.version(model, v).await?),
        None => drop(registry.versions(model).await?),
    }
    let records = registry.query_lineage(query).await?;
    if records.len() as u32 >= MAX_ROWS {
        bail!("more than {MAX_ROWS} requests match; narrow --since/--until and export in parts");
    }
    let feedback: BTreeMap<String, StoredFeedback> =
        registry.feedback_of(model).await?.into_iter().map(|f| (f.request_id.clone(), f)).collect();
    let captures = crate::capture::read_all(store_dir, model);
    let mut body = Vec::new();
    let mut rows = 0u64;
    for r in records.iter().filter(|r| !r.is_shadow()) {
        let truth = feedback.get(&r.request_id);
        if with_feedback && truth.is_none() {
            continue;
        }
        let captured = captures.get(&r.request_id);
        let row = json!({
            "request_id": r.request_id,
            "at": r.at,
            "version": r.version,
            "sha256": r.sha256,
            "route": r.route,
            "status": r.status,
            "prediction": r.prediction,
            "feedback": truth.map(|f| json!({
                "kind": f.kind, "truth": f.truth, "correct": f.correct, "abs_error": f.abs_error, "at": f.at,
            })),
            "inputs": captured.map_or(Value::Null, |c| c["inputs"].clone()),
            "outputs": captured.map_or(Value::Null, |c| c["outputs"].clone()),
        });
        body.extend_from_slice(row.to_string().as_bytes());
        body.push(b'\n');
        rows += 1;
    }
    let Some(path) = output else {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(&body);
        return Ok(0);
    };
    std::fs::write(path, &body).with_context(|| format!("cannot write {}", path.display()))?;
    let sha256 = hex::encode(Sha256::digest(&body));
    let detail = json!({ "file": path.display().to_string(), "rows": rows, "sha256": sha256, "query": {
        "version": query.version, "since_ms": query.since_ms, "until_ms": query.until_ms, "with_feedback": with_feedback,
    }});
    registry
        .record_event(model, None, model_store::Event::FEEDBACK_EXPORTED, detail.clone(), &super::actor(None))
        .await?;
    if json {
        out!("{detail}");
    } else {
        out!("{rows} rows → {} (sha256 {sha256}; cite it as the next manifest's data_snapshot)", path.display());
    }
    Ok(0)
}
