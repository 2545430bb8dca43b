//! `switchyard predict`: a version run over a data set — a prediction job, recorded like a
//! request is (which version and artifact turned which input into which output, with what
//! settings, chained to the training provenance: `lineage show JOB_ID`), batched through the same
//! engine code as online serving, resumable after an interruption (`--resume JOB_ID`), with a
//! failing row reported by its index without failing the job (unless `--fail-fast`).
//!
//! Input and output formats: see `gateway::jobs` (NumPy, Parquet, JSON lines).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::anyhow;
use clap::Args;
use model_store::Job;
use serde_json::Value;

use crate::engine::{Loader, Runtime};
use crate::jobs;

/// `switchyard predict …`
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The store directory (artifacts and registry.db), as `models register` made it.
    #[arg(long, env = "SWITCHYARD_STORE")]
    store: PathBuf,
    /// NAME or NAME:VERSION (a number or an alias); NAME alone runs the `champion` alias, else
    /// the latest version that is not archived.
    #[arg(long)]
    model: String,
    /// The data: a NumPy .npy file, [rows, features], float32 or float64 (or an .npz archive of
    /// one); or a Parquet file of numeric columns, one feature each.
    #[arg(long, value_name = "FILE.npy|FILE.npz|FILE.parquet")]
    input: PathBuf,
    /// Where the predictions go: FILE.npy, FILE.npz or FILE.parquet (the first output) or
    /// FILE.jsonl (every output).
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Rows per engine call.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// The pipeline's manifest (TOML or JSON: preprocessing commit, feature definitions),
    /// recorded with the job.
    #[arg(long, value_name = "FILE")]
    pipeline: Option<PathBuf>,
    /// Continue an interrupted job from where its output ends (same input and output).
    #[arg(long, value_name = "JOB_ID")]
    resume: Option<String>,
    /// Stop the job at the first row the model fails on (by default the row is reported and
    /// the job goes on).
    #[arg(long)]
    fail_fast: bool,
    /// ONNX Runtime library.
    #[arg(long, env = "SWITCHYARD_ONNXRUNTIME")]
    onnxruntime: Option<PathBuf>,
    /// Print the job's summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PredictArgs) -> anyhow::Result<i32> {
    // Everything that can refuse the job is checked before any output is written.
    let pipeline = args
        .pipeline
        .as_deref()
        .map(|p| -> anyhow::Result<Value> { Ok(serde_json::to_value(model_store::Manifest::from_path(p)?)?) })
        .transpose()?;
    let runtime = Runtime::load(args.onnxruntime.as_deref())?;
    let spec = jobs::Spec {
        model: args.model,
        input: args.input,
        output: args.output.clone(),
        batch: args.batch,
        pipeline,
        resume: args.resume,
        fail_fast: args.fail_fast,
    };
    super::block_on(async {
        let store = super::models::open_existing(&args.store).await?;
        let prepared = jobs::prepare(&store, spec, Loader::Onnx(runtime), &settings::UpstreamConfig::default()).await?;
        let (job, rows) = (prepared.job.clone(), prepared.rows());
        // The first line on stderr names the job: a gateway running this command reads it.
        eprintln!("prediction job {} — {}:{} over {rows} rows", job.id, job.model, job.version);
        let terminal = std::io::stderr().is_terminal();
        let started = Instant::now();
        let start_row = usize::try_from(job.rows_done).unwrap_or(0);
        let summary = prepared
            .run(&store, |done, rows| {
                if terminal {
                    let rate = (done - start_row) as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    let eta = (rows - done) as f64 / rate.max(1e-9);
                    eprint!("\r{done}/{rows} rows, {rate:.0} rows/s, ETA {eta:.0} s   ");
                }
            })
            .await;
        if terminal {
            eprintln!();
        }
        let summary = summary.map_err(|e| anyhow!("prediction job {} failed: {e:#}", job.id))?;
        if args.json {
            out!("{}", serde_json::to_value(&summary)?);
        } else {
            out!(
                "job {} done: {} rows by {}:{} → {} (sha256 {}); {} failed rows",
                summary.job,
                summary.rows,
                summary.model,
                summary.version,
                args.output.display(),
                summary.output_sha256,
                summary.failed_rows
            );
        }
        anyhow::Ok(0)
    })?
}

/// A job for people: what ran on what, how far, and where it came from.
pub fn print_job(job: &Job) {
    out!("job:        {} ({})", job.id, job.status);
    out!("version:    {}:{} (sha256 {})", job.model, job.version, job.sha256);
    out!("input:      {} ({} rows, sha256 {})", job.input_uri, job.input_rows, job.input_sha256);
    out!("output:     {} ({})", job.output_uri, job.output_sha256.as_deref().unwrap_or("not finished"));
    out!(
        "progress:   {} of {} rows; {} failed",
        job.rows_done,
        job.input_rows,
        job.failed_rows.as_array().map_or(0, Vec::len)
    );
    out!("runtime:    {}", job.runtime);
    if let Some(p) = &job.pipeline {
        out!("pipeline:   {p}");
    }
    out!("started:    {}; finished: {}", job.started_at, job.finished_at.as_deref().unwrap_or("-"));
    if let Some(e) = &job.error {
        out!("error:      {e}");
    }
}
