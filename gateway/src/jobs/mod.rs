//! Prediction jobs: a version run over a data set, recorded like a request is (which version
//! and artifact turned which input into which output, with what settings, chained to the
//! training provenance: `lineage show JOB_ID`), batched through the same engine code as online
//! serving, resumable after an interruption, with a failing row reported by its index without
//! failing the job (unless `fail_fast`).
//!
//! Run by `switchyard predict` (the CLI, with a progress line), which a serving gateway starts as
//! a child process at the lowest CPU priority for `POST /admin/jobs` (see `http::jobs`).
//! `prepare` checks everything and records the job; `Prepared::run` runs it.
//!
//! Input: a NumPy `.npy` file, `[rows, features]` (float32 or float64), an `.npz` archive of one
//! (or of several, one named after the model's input), or a Parquet file of numeric columns (one
//! feature each), for a model with one `[batch, features]` input. Output: `.npy` (the first
//! output, float32, `[rows, n]`; a failed row is NaN), `.npz` (that array as `OUTPUT.npy`, staged
//! like Parquet), `.parquet` (the first
//! output, a FLOAT column per element; a failed row is null; written from a resumable `.npy`
//! staging file, `OUTPUT.partial.npy`, once every row is done) or `.jsonl` (one line per row:
//! every output, or the row's error).

pub mod npy;
pub mod parquet;

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use model_store::{Job, ModelStore, NewJob, Stage};
use protocol::tensor::{Tensor, TensorData};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::engine::{EngineSettings, Execution, Loader, ModelInstance, runtime::ONNXRUNTIME_VERSION};

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// NAME or NAME:VERSION (a number or an alias); NAME alone runs the `champion` alias, else
    /// the latest version that is not archived.
    pub model: String,
    /// The data: a NumPy .npy file, [rows, features], float32 or float64.
    pub input: PathBuf,
    /// Where the predictions go: FILE.npy (the first output) or FILE.jsonl (every output).
    pub output: PathBuf,
    /// Rows per engine call (1–65536).
    pub batch: usize,
    /// The pipeline's manifest (preprocessing commit, feature definitions), recorded with the job.
    pub pipeline: Option<Value>,
    /// Continue this interrupted job (same input and output) instead of starting one.
    pub resume: Option<String>,
    /// Stop at the first row the model fails on.
    pub fail_fast: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Npy,
    Jsonl,
    /// Written through a `.npy` staging file (see `staging`).
    Parquet,
    /// Likewise: the staged `.npy`, then archived as `{output}.npy`.
    Npz,
}

/// Where a Parquet output's rows go until the job ends: `.npy` rows can be checkpointed and
/// resumed; a Parquet file is only readable once closed.
fn staging(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".partial.npy");
    PathBuf::from(name)
}

/// A checked job, recorded in the registry, ready to run.
#[derive(Debug)]
pub struct Prepared {
    pub job: Job,
    spec: Spec,
    format: Format,
    instance: ModelInstance,
    input_name: String,
    values: Vec<f64>,
    features: usize,
    out_width: usize,
    failed: Vec<Value>,
}

/// What a finished job did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub job: String,
    pub model: String,
    pub version: u32,
    pub rows: usize,
    pub failed_rows: usize,
    pub output: String,
    pub output_sha256: String,
}

/// How long a remote version's upstream gets for one call of a job.
const ROW_DEADLINE: Duration = Duration::from_secs(60);

/// Checks `spec` (input readable and fitting the version's signature, output writable, a job to
/// resume that matches) and records the job, before any output is written. `loader` builds the
/// version (one inline session on the caller's thread); a remote version is called through
/// `upstreams`.
pub async fn prepare(
    store: &ModelStore,
    spec: Spec,
    loader: Loader,
    upstreams: &settings::UpstreamConfig,
) -> anyhow::Result<Prepared> {
    let format = match spec.output.extension().and_then(|e| e.to_str()) {
        Some("npy") => Format::Npy,
        Some("jsonl") => Format::Jsonl,
        Some("parquet") => Format::Parquet,
        Some("npz") => Format::Npz,
        _ => bail!("the output must end in .npy, .npz, .parquet or .jsonl, not {}", spec.output.display()),
    };
    if spec.batch == 0 || spec.batch > 65_536 {
        bail!("the batch must be between 1 and 65536 rows");
    }
    let input_bytes = std::fs::read(&spec.input).with_context(|| format!("cannot read {}", spec.input.display()))?;
    let input_sha256 = hex::encode(Sha256::digest(&input_bytes));
    drop(input_bytes);
    let registry = store.registry();
    let (name, selector) = match spec.model.split_once(':') {
        Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
        None => (spec.model.clone(), None),
    };
    let record = match &selector {
        Some(v) => registry.resolve(&name, v).await?,
        None => match registry.resolve(&name, model_store::CHAMPION_ALIAS).await {
            Ok(r) => r,
            Err(_) => registry
                .versions(&name)
                .await?
                .into_iter()
                .filter(|v| v.stage != Stage::Archived)
                .max_by_key(|v| v.version)
                .ok_or_else(|| anyhow!("model '{name}' has no version that is not archived"))?,
        },
    };
    let settings = EngineSettings { execution: Execution::Inline, ..EngineSettings::default() };
    let (version, sha) = (record.version, record.sha256.clone());
    let instance = match &record.upstream {
        // A remote version: its upstream runs the job's rows, as it answers requests.
        Some(upstream) => {
            let remote = crate::upstream::Remote::connect(upstream, &record.signature, upstreams).await?;
            ModelInstance::remote(&name, version, &sha, record.signature.clone(), settings, remote)
        }
        None => {
            let bytes = store.load_artifact(&record).await?;
            let model = name.clone();
            tokio::task::spawn_blocking(move || loader.load(&model, version, &sha, &bytes, settings)).await??
        }
    };
    let [input] = instance.signature.inputs.as_slice() else {
        bail!("a prediction job runs models of one input; {name}:{version} has {}", instance.signature.inputs.len());
    };
    let (values, features) = match spec.input.extension().and_then(|e| e.to_str()) {
        Some("parquet") => parquet::read(&spec.input)?,
        Some("npz") => npy::read_npz(&spec.input, &input.name)?,
        _ => npy::read_npy(&spec.input)?,
    };
    let rows = values.len() / features;
    let fits = match input.shape.as_slice() {
        [_, f] => *f == -1 || usize::try_from(*f) == Ok(features),
        _ => false,
    };
    if !fits || input.datatype != "FP32" {
        bail!(
            "{name}:{version} takes input '{}' {} {:?}; {} holds {features} features per row (numbers, [rows, features])",
            input.name,
            input.datatype,
            input.shape,
            spec.input.display()
        );
    }
    let input_name = input.name.clone();
    let out_width = match (format, instance.signature.outputs.first().map(|o| o.shape.as_slice())) {
        (Format::Npy | Format::Npz | Format::Parquet, Some([_, n])) if *n > 0 => usize::try_from(*n).unwrap_or(0),
        (Format::Npy | Format::Npz | Format::Parquet, _) => {
            bail!("a .npy, .npz or .parquet output needs a first output of shape [rows, n] with n fixed; use .jsonl")
        }
        (Format::Jsonl, _) => 0,
    };
    let parent = spec.output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let output_uri = std::fs::canonicalize(parent)
        .with_context(|| format!("the output's directory {} does not exist", parent.display()))?
        .join(spec.output.file_name().ok_or_else(|| anyhow!("the output names no file"))?)
        .display()
        .to_string();

    // The job: a new one, or the interrupted one to continue.
    let (job, failed) = match &spec.resume {
        Some(id) => {
            let job = registry.job(id).await?.ok_or_else(|| anyhow!("no prediction job '{id}'"))?;
            if job.status != "running" {
                bail!("job {id} is {}, not an interrupted one", job.status);
            }
            if job.input_sha256 != input_sha256 || job.output_uri != output_uri || job.version != record.version {
                bail!(
                    "job {id} ran {}:{} over another input or into another output; resume it with the same model, input and output",
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
                "device": "cpu", "execution": "inline", "intra_op_threads": 1, "batch": spec.batch,
                "onnxruntime": ONNXRUNTIME_VERSION, "host": host,
            });
            let new = NewJob {
                id: &id,
                model: &name,
                version: record.version,
                input_uri: &std::fs::canonicalize(&spec.input)?.display().to_string(),
                input_sha256: &input_sha256,
                input_rows: rows as u64,
                pipeline: spec.pipeline.clone(),
                runtime: runtime_json,
                output_uri: &output_uri,
            };
            (registry.create_job(&new).await?, Vec::new())
        }
    };
    Ok(Prepared { job, spec, format, instance, input_name, values, features, out_width, failed })
}

impl Prepared {
    /// Rows in the input.
    pub fn rows(&self) -> usize {
        self.values.len() / self.features
    }

    /// Runs the job to its end, from where it stopped if resumed, checkpointing after every
    /// batch (output synced first, so a resumed job never repeats or skips a row); `progress`
    /// is told (rows done, rows) after each. The job is marked failed if it stops on an error.
    pub async fn run(self, store: &ModelStore, mut progress: impl FnMut(usize, usize)) -> anyhow::Result<Summary> {
        let registry = store.registry();
        let id = self.job.id.clone();
        let result = self.run_rows(store, &mut progress).await;
        if let Err(e) = &result
            && registry.job(&id).await.ok().flatten().is_some_and(|j| j.status == "running")
        {
            let _ = registry.finish_job(&id, None, Some(&format!("{e:#}"))).await;
        }
        result
    }

    async fn run_rows(self, store: &ModelStore, progress: &mut impl FnMut(usize, usize)) -> anyhow::Result<Summary> {
        let registry = store.registry();
        let Prepared { job, spec, format, instance, input_name, values, features, out_width, mut failed } = self;
        let rows = values.len() / features;
        let start_row = usize::try_from(job.rows_done).unwrap_or(0).min(rows);
        // Parquet rows are staged as .npy rows, written the same way.
        let (rows_path, row_format) = match format {
            Format::Parquet | Format::Npz => (staging(&spec.output), Format::Npy),
            other => (spec.output.clone(), other),
        };
        let mut out = open_output(&rows_path, row_format, rows, out_width, start_row)?;
        let mut done = start_row;
        while done < rows {
            let end = (done + spec.batch).min(rows);
            let answers = run_batch(&instance, &input_name, &values[done * features..end * features], features).await;
            for (offset, answer) in answers.into_iter().enumerate() {
                let row = done + offset;
                match answer {
                    Ok(outputs) => write_row(&mut out, row_format, row, &outputs, out_width)?,
                    Err(error) => {
                        if spec.fail_fast {
                            bail!("the job stopped at row {row}: {error}");
                        }
                        write_failed(&mut out, row_format, row, &error, out_width)?;
                        failed.push(json!({ "row": row, "error": error }));
                    }
                }
            }
            out.flush()?;
            out.sync_data()?;
            done = end;
            registry.checkpoint_job(&job.id, done as u64, &Value::Array(failed.clone())).await?;
            progress(done, rows);
        }
        drop(out);
        let output_name = instance.signature.outputs.first().map_or("output", |o| o.name.as_str());
        if format == Format::Npz {
            let staged = std::fs::read(&rows_path).with_context(|| format!("cannot read {}", rows_path.display()))?;
            npy::write_npz(&spec.output, output_name, &staged)?;
            std::fs::remove_file(&rows_path).with_context(|| format!("cannot remove {}", rows_path.display()))?;
        }
        if format == Format::Parquet {
            let (staged, width) = npy::read_npy(&rows_path)?;
            let mut failed_rows = vec![false; rows];
            for f in &failed {
                if let Some(r) = f["row"].as_u64().and_then(|r| usize::try_from(r).ok()).filter(|r| *r < rows) {
                    failed_rows[r] = true;
                }
            }
            let staged: Vec<f32> = staged.into_iter().map(|x| x as f32).collect();
            parquet::write(&spec.output, output_name, &staged, width, &failed_rows)?;
            std::fs::remove_file(&rows_path).with_context(|| format!("cannot remove {}", rows_path.display()))?;
        }
        let sha256 = hex::encode(Sha256::digest(std::fs::read(&spec.output)?));
        registry.finish_job(&job.id, Some(&sha256), None).await?;
        Ok(Summary {
            job: job.id,
            model: job.model,
            version: job.version,
            rows,
            failed_rows: failed.len(),
            output: job.output_uri,
            output_sha256: sha256,
        })
    }
}

/// The model's outputs for each row of `data` (`features` per row): one engine call for the
/// batch, and when it fails, one per row, so a bad row fails alone.
async fn run_batch(
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
        if format != Format::Jsonl {
            f.write_all(&npy::header(rows, width))?;
        }
        return Ok(f);
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot reopen {}", path.display()))?;
    let keep = match format {
        Format::Npy | Format::Npz | Format::Parquet => (npy::header(rows, width).len() + start_row * width * 4) as u64,
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

fn write_row(out: &mut File, format: Format, row: usize, outputs: &[Tensor], width: usize) -> anyhow::Result<()> {
    match format {
        Format::Npy | Format::Npz | Format::Parquet => {
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
        Format::Npy | Format::Npz | Format::Parquet => out.write_all(&f32::NAN.to_le_bytes().repeat(width))?,
        Format::Jsonl => writeln!(out, "{}", json!({ "row": row, "error": error }))?,
    }
    Ok(())
}
