//! `switchyard predict`: a version run over a data set — a prediction job, recorded like a
//! request is (which version and artifact turned which input into which output, with what
//! settings, chained to the training provenance: `lineage show JOB_ID`), batched through the same
//! engine code as online serving, resumable after an interruption (`--resume JOB_ID`), with a
//! failing row reported by its index without failing the job (unless `--fail-fast`).
//!
//! Input: a NumPy `.npy` file, `[rows, features]` (float32 or float64), for a model with one
//! `[batch, features]` input. Output: `.npy` (the first output, float32, `[rows, n]`; a failed
//! row is NaN) or `.jsonl` (one line per row: every output, or the row's error).

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal as _, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use model_store::{Job, NewJob, Stage};
use protocol::tensor::{Tensor, TensorData};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::engine::{EngineSettings, Execution, ModelInstance, Runtime, runtime::ONNXRUNTIME_VERSION};

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
    /// The data: a NumPy .npy file, [rows, features], float32 or float64.
    #[arg(long, value_name = "FILE.npy")]
    input: PathBuf,
    /// Where the predictions go: FILE.npy (the first output) or FILE.jsonl (every output).
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

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Npy,
    Jsonl,
}

pub fn run(args: PredictArgs) -> anyhow::Result<i32> {
    let format = match args.output.extension().and_then(|e| e.to_str()) {
        Some("npy") => Format::Npy,
        Some("jsonl") => Format::Jsonl,
        _ => bail!("--output must end in .npy or .jsonl, not {}", args.output.display()),
    };
    if args.batch == 0 || args.batch > 65_536 {
        bail!("--batch must be between 1 and 65536");
    }
    // Everything that can refuse the job is checked before any output is written.
    let input_bytes = std::fs::read(&args.input).with_context(|| format!("cannot read {}", args.input.display()))?;
    let (values, features) = super::profile::read_npy(&args.input)?;
    let rows = values.len() / features;
    let input_sha256 = hex::encode(Sha256::digest(&input_bytes));
    let pipeline = args
        .pipeline
        .as_deref()
        .map(|p| -> anyhow::Result<Value> { Ok(serde_json::to_value(model_store::Manifest::from_path(p)?)?) })
        .transpose()?;
    let runtime = Runtime::load(args.onnxruntime.as_deref())?;
    super::block_on(predict(args, format, values, features, rows, input_sha256, pipeline, runtime))?
}

#[expect(clippy::too_many_arguments, reason = "the checked inputs of one job, passed once")]
async fn predict(
    args: PredictArgs,
    format: Format,
    values: Vec<f64>,
    features: usize,
    rows: usize,
    input_sha256: String,
    pipeline: Option<Value>,
    runtime: &'static Runtime,
) -> anyhow::Result<i32> {
    let store = super::models::open_existing(&args.store).await?;
    let registry = store.registry();
    let (name, selector) = match args.model.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (args.model.as_str(), None),
    };
    let record = match selector {
        Some(v) => registry.resolve(name, v).await?,
        None => match registry.resolve(name, model_store::CHAMPION_ALIAS).await {
            Ok(r) => r,
            Err(_) => registry
                .versions(name)
                .await?
                .into_iter()
                .filter(|v| v.stage != Stage::Archived)
                .max_by_key(|v| v.version)
                .ok_or_else(|| anyhow!("model '{name}' has no version that is not archived"))?,
        },
    };
    let bytes = store.load_artifact(&record).await?;
    let settings = EngineSettings { execution: Execution::Inline, ..EngineSettings::default() };
    let (model, version, sha) = (name.to_owned(), record.version, record.sha256.clone());
    let instance = match &record.upstream {
        // A remote version: its upstream runs the job's rows, as it answers requests.
        Some(upstream) => {
            let config = settings::UpstreamConfig::default();
            let remote = crate::upstream::Remote::connect(upstream, &record.signature, &config).await?;
            ModelInstance::remote(&model, version, &sha, record.signature.clone(), settings, remote)
        }
        None => {
            tokio::task::spawn_blocking(move || ModelInstance::load(runtime, &model, version, &sha, &bytes, settings))
                .await??
        }
    };
    let [spec] = instance.signature.inputs.as_slice() else {
        bail!("predict runs models of one input; {name}:{version} has {}", instance.signature.inputs.len());
    };
    let fits = match spec.shape.as_slice() {
        [_, f] => *f == -1 || usize::try_from(*f) == Ok(features),
        _ => false,
    };
    if !fits || spec.datatype != "FP32" {
        bail!(
            "{name}:{version} takes input '{}' {} {:?}; {} holds {features} features per row (float data, [rows, features])",
            spec.name,
            spec.datatype,
            spec.shape,
            args.input.display()
        );
    }
    let out_width = match (format, instance.signature.outputs.first().map(|o| o.shape.as_slice())) {
        (Format::Npy, Some([_, n])) if *n > 0 => usize::try_from(*n).unwrap_or(0),
        (Format::Npy, _) => bail!("a .npy output needs a first output of shape [rows, n] with n fixed; use .jsonl"),
        (Format::Jsonl, _) => 0,
    };
    let output_uri =
        std::fs::canonicalize(args.output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))?
            .join(args.output.file_name().ok_or_else(|| anyhow!("--output names no file"))?)
            .display()
            .to_string();

    // The job: a new one, or the interrupted one to continue.
    let (job, mut failed) = match &args.resume {
        Some(id) => {
            let job = registry.job(id).await?.ok_or_else(|| anyhow!("no prediction job '{id}'"))?;
            if job.status != "running" {
                bail!("job {id} is {}, not an interrupted one", job.status);
            }
            if job.input_sha256 != input_sha256 || job.output_uri != output_uri || job.version != record.version {
                bail!(
                    "job {id} ran {}:{} over another input or into another output; resume it with the same --model, --input and --output",
                    job.model,
                    job.version
                );
            }
            let failed = job.failed_rows.as_array().cloned().unwrap_or_default();
            (job, failed)
        }
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            let host =
                std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
            let runtime_json = json!({
                "device": "cpu", "execution": "inline", "intra_op_threads": 1, "batch": args.batch,
                "onnxruntime": ONNXRUNTIME_VERSION, "host": host,
            });
            let new = NewJob {
                id: &id,
                model: name,
                version: record.version,
                input_uri: &std::fs::canonicalize(&args.input)?.display().to_string(),
                input_sha256: &input_sha256,
                input_rows: rows as u64,
                pipeline,
                runtime: runtime_json,
                output_uri: &output_uri,
            };
            (registry.create_job(&new).await?, Vec::new())
        }
    };
    eprintln!("prediction job {} — {name}:{} over {rows} rows", job.id, record.version);
    let start_row = usize::try_from(job.rows_done).unwrap_or(0).min(rows);
    let mut out = open_output(&args.output, format, rows, out_width, start_row)?;

    let progress = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut done = start_row;
    while done < rows {
        let end = (done + args.batch).min(rows);
        let answers = run_rows(&instance, &spec.name, &values[done * features..end * features], features).await;
        for (offset, answer) in answers.into_iter().enumerate() {
            let row = done + offset;
            match answer {
                Ok(outputs) => write_row(&mut out, format, row, &outputs, out_width)?,
                Err(error) => {
                    if args.fail_fast {
                        let message = format!("row {row}: {error}");
                        registry.finish_job(&job.id, None, Some(&message)).await?;
                        bail!("prediction job {} failed at {message}", job.id);
                    }
                    write_failed(&mut out, format, row, &error, out_width)?;
                    failed.push(json!({ "row": row, "error": error }));
                }
            }
        }
        out.flush()?;
        out.sync_data()?;
        done = end;
        registry.checkpoint_job(&job.id, done as u64, &Value::Array(failed.clone())).await?;
        if progress {
            let rate = (done - start_row) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let eta = (rows - done) as f64 / rate.max(1e-9);
            eprint!("\r{done}/{rows} rows, {rate:.0} rows/s, ETA {eta:.0} s   ");
        }
    }
    if progress {
        eprintln!();
    }
    drop(out);
    let sha256 = hex::encode(Sha256::digest(std::fs::read(&args.output)?));
    registry.finish_job(&job.id, Some(&sha256), None).await?;
    let summary = json!({
        "job": job.id, "model": name, "version": record.version, "rows": rows, "failed_rows": failed.len(),
        "output": output_uri, "output_sha256": sha256,
    });
    if args.json {
        out!("{summary}");
    } else {
        out!(
            "job {} done: {rows} rows by {name}:{} → {} (sha256 {sha256}); {} failed rows",
            job.id,
            record.version,
            args.output.display(),
            failed.len()
        );
    }
    Ok(0)
}

/// The model's outputs for each row of `data` (`features` per row): one engine call for the
/// batch, and when it fails, one per row, so a bad row fails alone.
async fn run_rows(
    instance: &ModelInstance,
    input: &str,
    data: &[f64],
    features: usize,
) -> Vec<Result<Vec<Tensor>, String>> {
    let n = data.len() / features;
    let tensor = |rows: &[f64], n: usize| Tensor {
        name: input.to_owned(),
        shape: vec![n as i64, features as i64],
        data: TensorData::Fp32(rows.iter().map(|&x| x as f32).collect()),
    };
    // A remote version's upstream gets this long for each call; a local run is not bounded.
    let deadline = || tokio::time::Instant::now() + ROW_DEADLINE;
    if let Ok(out) = instance.infer(vec![tensor(data, n)], deadline()).await {
        return (0..n).map(|r| Ok(out.outputs.iter().map(|t| row_of(t, r, n)).collect())).collect();
    }
    let mut answers = Vec::with_capacity(n);
    for r in 0..n {
        let one = tensor(&data[r * features..(r + 1) * features], 1);
        answers.push(instance.infer(vec![one], deadline()).await.map(|o| o.outputs).map_err(|e| e.to_string()));
    }
    answers
}

/// How long a remote version's upstream gets for one call of a job.
const ROW_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Row `r` of a batch output of `n` rows.
fn row_of(t: &Tensor, r: usize, n: usize) -> Tensor {
    let per_row = t.data.len() / n.max(1);
    let mut shape = t.shape.clone();
    if let Some(first) = shape.first_mut() {
        *first = 1;
    }
    Tensor { name: t.name.clone(), shape, data: t.data.slice(r * per_row, (r + 1) * per_row) }
}

/// The output file, truncated to `start_row` rows already written (a resumed job) or begun.
fn open_output(path: &Path, format: Format, rows: usize, width: usize, start_row: usize) -> anyhow::Result<File> {
    if start_row == 0 {
        let mut f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        if format == Format::Npy {
            f.write_all(&npy_header(rows, width))?;
        }
        return Ok(f);
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot reopen {}", path.display()))?;
    let keep = match format {
        Format::Npy => (npy_header(rows, width).len() + start_row * width * 4) as u64,
        Format::Jsonl => {
            let mut text = Vec::new();
            f.read_to_end(&mut text)?;
            let mut at = 0usize;
            for _ in 0..start_row {
                let Some(nl) = text[at..].iter().position(|b| *b == b'\n') else {
                    bail!("{} holds fewer rows than the job recorded; start the job again", path.display());
                };
                at += nl + 1;
            }
            at as u64
        }
    };
    if f.metadata()?.len() < keep {
        bail!("{} holds fewer rows than the job recorded; start the job again", path.display());
    }
    f.set_len(keep)?;
    f.seek(SeekFrom::End(0))?;
    Ok(f)
}

/// A version 1.0 `.npy` header for a float32 C-order `[rows, width]` array.
fn npy_header(rows: usize, width: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {width}), }}");
    // Magic (6) + version (2) + length (2) + dict, padded with spaces to a multiple of 64, ending in \n.
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let padded = format!("{dict:<width$}\n", width = total - 10 - 1);
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend(u16::try_from(padded.len()).unwrap_or(u16::MAX).to_le_bytes());
    h.extend(padded.as_bytes());
    h
}

fn write_row(out: &mut File, format: Format, row: usize, outputs: &[Tensor], width: usize) -> anyhow::Result<()> {
    match format {
        Format::Npy => {
            let first = outputs.first().and_then(|t| t.data.to_f64()).unwrap_or_default();
            let mut bytes = Vec::with_capacity(width * 4);
            for i in 0..width {
                bytes.extend((first.get(i).copied().unwrap_or(f64::NAN) as f32).to_le_bytes());
            }
            out.write_all(&bytes)?;
        }
        Format::Jsonl => {
            let outs: serde_json::Map<String, Value> =
                outputs.iter().map(|t| (t.name.clone(), json!(t.data.to_f64().unwrap_or_default()))).collect();
            writeln!(out, "{}", json!({ "row": row, "outputs": outs }))?;
        }
    }
    Ok(())
}

fn write_failed(out: &mut File, format: Format, row: usize, error: &str, width: usize) -> anyhow::Result<()> {
    match format {
        Format::Npy => out.write_all(&f32::NAN.to_le_bytes().repeat(width))?,
        Format::Jsonl => writeln!(out, "{}", json!({ "row": row, "error": error }))?,
    }
    Ok(())
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
