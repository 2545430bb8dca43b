//! In-process ONNX Runtime: the compute limit of the side-by-side bench.
//!
//! Loads one ONNX model, starts N threads, each with its own `Session` built the way Switchyard
//! builds its sessions (graph optimisation level 3, `--intra-op` intra-op threads, 1 inter-op
//! thread), warms up, then calls `Session::run` in a loop at batch B for D seconds and reports
//! throughput and latency percentiles of the calls: one JSON line on stdout, a summary on stderr.
//!
//! Inputs are built from the model's own signature: the first dynamic dimension is the batch,
//! other dynamic dimensions are 1; FP32/FP64 inputs hold `(i % 64) / 64`, integer inputs
//! `i % --int-max` (so token ids stay inside a vocabulary), BOOL inputs `false`.
//!
//! ```text
//! inproc --model F.onnx [--ort libonnxruntime.so] [--threads 1] [--batch 1] [--duration 5]
//!        [--warmup 1] [--intra-op 1] [--int-max 1000] [--label NAME] [--device cpu|cuda:N]
//! ```
//! `--device cuda:N` runs on a GPU through the CUDA execution provider, like Switchyard's
//! `device = "cuda:N"`: it needs this tool built with `--features cuda` and the onnxruntime-gpu
//! library; a CUDA provider that fails to register is an error, never a silent CPU fallback.
//! The library is `--ort`, else `ORT_DYLIB_PATH`; a missing one is a clear error, not a panic.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

struct Args {
    model: PathBuf,
    ort: Option<PathBuf>,
    threads: usize,
    batch: i64,
    duration: f64,
    warmup: f64,
    intra_op: usize,
    int_max: i64,
    label: String,
    /// `None` for the CPU, else the CUDA device ordinal.
    cuda: Option<i32>,
}

const USAGE: &str = "usage: inproc --model F.onnx [--ort LIB] [--threads N] [--batch B] [--duration S] \
                     [--warmup S] [--intra-op N] [--int-max N] [--label NAME] [--device cpu|cuda:N]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        model: PathBuf::new(),
        ort: None,
        threads: 1,
        batch: 1,
        duration: 5.0,
        warmup: 1.0,
        intra_op: 1,
        int_max: 1000,
        label: String::new(),
        cuda: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_owned());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--model" => a.model = PathBuf::from(&value),
            "--ort" => a.ort = Some(PathBuf::from(&value)),
            "--threads" => a.threads = value.parse().map_err(|e| bad(&e))?,
            "--batch" => a.batch = value.parse().map_err(|e| bad(&e))?,
            "--duration" => a.duration = value.parse().map_err(|e| bad(&e))?,
            "--warmup" => a.warmup = value.parse().map_err(|e| bad(&e))?,
            "--intra-op" => a.intra_op = value.parse().map_err(|e| bad(&e))?,
            "--int-max" => a.int_max = value.parse().map_err(|e| bad(&e))?,
            "--label" => a.label = value,
            "--device" if value == "cpu" => a.cuda = None,
            "--device" => {
                let n = value.strip_prefix("cuda:").and_then(|n| n.parse::<i32>().ok()).filter(|n| *n >= 0);
                a.cuda = Some(n.ok_or_else(|| format!("--device {value}: must be cpu or cuda:N"))?);
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if a.model.as_os_str().is_empty() {
        return Err(format!("--model is required\n{USAGE}"));
    }
    if a.threads == 0 || a.batch < 1 || a.intra_op == 0 || a.int_max < 1 || a.duration <= 0.0 {
        return Err("--threads, --batch, --intra-op, --int-max and --duration must be positive".to_owned());
    }
    Ok(a)
}

fn library(a: &Args) -> Result<PathBuf, String> {
    let path = a
        .ort
        .clone()
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()).map(PathBuf::from))
        .ok_or("no ONNX Runtime library: pass --ort or set ORT_DYLIB_PATH (scripts/fetch-onnxruntime.sh prints it)")?;
    if !path.is_file() {
        return Err(format!(
            "ONNX Runtime library {} does not exist (run scripts/fetch-onnxruntime.sh)",
            path.display()
        ));
    }
    Ok(path)
}

fn session(
    env: &ort::environment::Environment,
    model: &Path,
    intra_op: usize,
    cuda: Option<i32>,
) -> Result<Session, String> {
    let e = |e: ort::Error<ort::session::builder::SessionBuilder>| e.to_string();
    let builder = Session::builder(env)
        .map_err(|e| e.to_string())?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(e)?
        .with_intra_threads(intra_op)
        .map_err(e)?
        .with_inter_threads(1)
        .map_err(e)?;
    on_device(builder, cuda)?.commit_from_file(model).map_err(|e| format!("cannot load {}: {e}", model.display()))
}

#[cfg(feature = "cuda")]
fn on_device(
    builder: ort::session::builder::SessionBuilder,
    cuda: Option<i32>,
) -> Result<ort::session::builder::SessionBuilder, String> {
    match cuda {
        None => Ok(builder),
        Some(id) => builder
            .with_execution_providers([ort::ep::CUDA::default().with_device_id(id).build().error_on_failure()])
            .map_err(|e| format!("cannot use cuda:{id}: {e}")),
    }
}

#[cfg(not(feature = "cuda"))]
fn on_device(
    builder: ort::session::builder::SessionBuilder,
    cuda: Option<i32>,
) -> Result<ort::session::builder::SessionBuilder, String> {
    match cuda {
        None => Ok(builder),
        Some(id) => Err(format!("--device cuda:{id} needs inproc built with `--features cuda`")),
    }
}

/// One value per model input, from the session's signature.
fn make_inputs(s: &Session, batch: i64, int_max: i64) -> Result<Vec<(String, DynValue)>, String> {
    let mut out = Vec::new();
    for outlet in s.inputs() {
        let ValueType::Tensor { ty, shape, .. } = outlet.dtype() else {
            return Err(format!("input '{}' is not a tensor", outlet.name()));
        };
        let mut first = true;
        let shape: Vec<i64> = shape
            .iter()
            .map(|&d| {
                let v = if d < 0 && first {
                    batch
                } else if d < 0 {
                    1
                } else {
                    d
                };
                if d < 0 {
                    first = false;
                }
                v
            })
            .collect();
        let n = shape.iter().product::<i64>() as usize;
        let err = |e: ort::Error| e.to_string();
        let value = match ty {
            TensorElementType::Float32 => {
                let v: Vec<f32> = (0..n).map(|i| (i % 64) as f32 / 64.0).collect();
                Tensor::from_array((shape, v)).map_err(err)?.into_dyn()
            }
            TensorElementType::Float64 => {
                let v: Vec<f64> = (0..n).map(|i| (i % 64) as f64 / 64.0).collect();
                Tensor::from_array((shape, v)).map_err(err)?.into_dyn()
            }
            TensorElementType::Int64 => {
                let v: Vec<i64> = (0..n).map(|i| i as i64 % int_max).collect();
                Tensor::from_array((shape, v)).map_err(err)?.into_dyn()
            }
            TensorElementType::Int32 => {
                let v: Vec<i32> = (0..n).map(|i| (i as i64 % int_max) as i32).collect();
                Tensor::from_array((shape, v)).map_err(err)?.into_dyn()
            }
            TensorElementType::Bool => Tensor::from_array((shape, vec![false; n])).map_err(err)?.into_dyn(),
            other => return Err(format!("input '{}' has type {other:?}, which inproc does not fill", outlet.name())),
        };
        out.push((outlet.name().to_owned(), value));
    }
    Ok(out)
}

/// One call: run, and read the outputs' element counts (what a server must at least touch).
fn call(s: &mut Session, inputs: &[(String, DynValue)]) -> Result<usize, String> {
    let outputs = s.run(inputs.iter().map(|(n, v)| (n.as_str(), v)).collect::<Vec<_>>()).map_err(|e| e.to_string())?;
    let mut elements = 0;
    for (_, value) in outputs.iter() {
        if let Ok((shape, _)) = value.try_extract_tensor::<f32>() {
            elements += shape.iter().product::<i64>() as usize;
        }
    }
    Ok(elements)
}

struct ThreadResult {
    latencies_ns: Vec<u64>,
    elapsed: Duration,
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64
}

fn process_cpu_seconds() -> f64 {
    // utime + stime of this process, from /proc/self/stat (fields 14 and 15), in clock ticks.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return f64::NAN };
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(f64::NAN)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
    ticks / 100.0 // USER_HZ is 100 on Linux
}

fn run(a: Args) -> Result<(), String> {
    let lib = library(&a)?;
    let env = ort::init_from(&lib)
        .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", lib.display()))?
        .with_name("inproc")
        .build()
        .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", lib.display()))?;
    let env = Arc::new(env);
    let ready = Arc::new(Barrier::new(a.threads + 1));
    let go = Arc::new(Barrier::new(a.threads + 1));
    let (warmup, duration) = (Duration::from_secs_f64(a.warmup), Duration::from_secs_f64(a.duration));
    let mut handles = Vec::new();
    for t in 0..a.threads {
        let (env, ready, go) = (Arc::clone(&env), Arc::clone(&ready), Arc::clone(&go));
        let (model, intra, batch, int_max, cuda) = (a.model.clone(), a.intra_op, a.batch, a.int_max, a.cuda);
        handles.push(
            std::thread::Builder::new()
                .name(format!("inproc-{t}"))
                .spawn(move || -> Result<ThreadResult, String> {
                    let prepared = session(&env, &model, intra, cuda).and_then(|mut s| {
                        let inputs = make_inputs(&s, batch, int_max)?;
                        let t0 = Instant::now();
                        call(&mut s, &inputs)?;
                        while t0.elapsed() < warmup {
                            call(&mut s, &inputs)?;
                        }
                        Ok((s, inputs))
                    });
                    ready.wait();
                    go.wait();
                    let (mut s, inputs) = prepared?;
                    let mut latencies_ns = Vec::with_capacity(1 << 16);
                    let start = Instant::now();
                    loop {
                        let t0 = Instant::now();
                        call(&mut s, &inputs)?;
                        let now = Instant::now();
                        latencies_ns.push((now - t0).as_nanos() as u64);
                        if now - start >= duration {
                            return Ok(ThreadResult { latencies_ns, elapsed: now - start });
                        }
                    }
                })
                .map_err(|e| e.to_string())?,
        );
    }
    ready.wait();
    let cpu0 = process_cpu_seconds();
    let wall0 = Instant::now();
    go.wait();
    let mut all = Vec::new();
    let mut elapsed = Duration::ZERO;
    for h in handles {
        let r = h.join().map_err(|_| "a benchmark thread panicked".to_owned())??;
        elapsed = elapsed.max(r.elapsed);
        all.extend(r.latencies_ns);
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu0;
    all.sort_unstable();
    let calls = all.len();
    let secs = elapsed.as_secs_f64();
    let mean = all.iter().sum::<u64>() as f64 / calls.max(1) as f64;
    let us = |ns: f64| ns / 1000.0;
    let label = if a.label.is_empty() {
        a.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    } else {
        a.label.clone()
    };
    eprintln!(
        "inproc {label}: threads {} batch {} intra-op {}: {calls} calls in {secs:.2} s = {:.0} calls/s ({:.0} rows/s); \
         p50 {:.1} us p90 {:.1} us p99 {:.1} us max {:.1} us; CPU {:.2} cores",
        a.threads,
        a.batch,
        a.intra_op,
        calls as f64 / secs,
        calls as f64 * a.batch as f64 / secs,
        us(percentile(&all, 0.50)),
        us(percentile(&all, 0.90)),
        us(percentile(&all, 0.99)),
        us(*all.last().unwrap_or(&0) as f64),
        cpu / wall,
    );
    println!(
        "{{\"label\":\"{}\",\"model\":\"{}\",\"threads\":{},\"batch\":{},\"intra_op\":{},\"calls\":{calls},\"seconds\":{secs:.4},\
         \"calls_per_s\":{:.2},\"rows_per_s\":{:.2},\"mean_us\":{:.2},\"p50_us\":{:.2},\"p90_us\":{:.2},\"p99_us\":{:.2},\
         \"max_us\":{:.2},\"cpu_cores\":{:.3}}}",
        label.replace('"', "'"),
        a.model.display().to_string().replace('"', "'"),
        a.threads,
        a.batch,
        a.intra_op,
        calls as f64 / secs,
        calls as f64 * a.batch as f64 / secs,
        us(mean),
        us(percentile(&all, 0.50)),
        us(percentile(&all, 0.90)),
        us(percentile(&all, 0.99)),
        us(*all.last().unwrap_or(&0) as f64),
        cpu / wall,
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inproc: error: {e}");
            ExitCode::FAILURE
        }
    }
}
