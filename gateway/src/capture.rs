//! Payload capture: a sample of answered requests kept whole — inputs, outputs and the lineage
//! key — so the next training run can use what the service saw (`switchyard feedback export`
//! joins them with the truth that arrived later).
//!
//! Off the request path and never blocking: the request thread hands a `Captured` (tensors it
//! already holds, cloned only for sampled requests) to a bounded channel, a full channel drops it
//! (counted); one writer thread appends JSON lines to `<store>/capture/<model>/v<version>/` (so a
//! file names the version it covers), begins a new file past `max_file_bytes` and removes the
//! oldest files of the model past `max_total_bytes`. Counted in
//! `switchyard_capture_total{model, result}` (captured, dropped, write_failed).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use protocol::request_id::RequestId;
use protocol::tensor::Tensor;
use protocol::v2::encode::{EncodedOutput, ResponseHead, encode_response};
use serde_json::{Value, json};
use settings::CaptureConfig;

/// Captures waiting for the writer; past it new ones are dropped (counted).
const QUEUE: usize = 4096;

/// One captured request.
#[derive(Debug)]
pub struct Captured {
    pub request_id: RequestId,
    pub arrived: SystemTime,
    pub model: Arc<str>,
    pub version: u32,
    pub route: &'static str,
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
    /// The model's size limits (`[model.capture]`).
    pub limits: (u64, u64),
}

/// The request side: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct CaptureSink {
    tx: Sender<Captured>,
}

/// Draws whether a request is captured, at `rate`.
pub fn sampled(rate: f64) -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0x0dd5_eed5_0dd5_eed5);
    if rate <= 0.0 {
        return false;
    }
    let mut z = DRAWS.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < rate
}

impl CaptureSink {
    /// Starts the writer thread over `<store_root>/capture/`.
    pub fn start(store_root: &Path) -> std::io::Result<CaptureSink> {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let dir = store_root.join("capture");
        std::fs::create_dir_all(&dir)?;
        spawn_writer(dir, rx)?;
        Ok(CaptureSink { tx })
    }

    /// Hands `c` to the writer, or drops it (counted) when the writer is behind.
    pub fn submit(&self, c: Captured) {
        let model = c.model.to_string();
        match self.tx.try_send(c) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                metrics::counter!("switchyard_capture_total", "model" => model, "result" => "dropped").increment(1);
            }
        }
    }
}

/// The writer: a thread of its own, so file I/O never runs on a request-serving thread.
fn spawn_writer(dir: PathBuf, rx: Receiver<Captured>) -> std::io::Result<()> {
    std::thread::Builder::new().name("switchyard-capture".into()).spawn(move || write_all(&dir, &rx)).map(drop)
}

/// A file being written, per (model, version).
struct Open {
    file: std::fs::File,
    path: PathBuf,
    written: u64,
}

fn write_all(dir: &Path, rx: &Receiver<Captured>) {
    let mut open: BTreeMap<(Arc<str>, u32), Open> = BTreeMap::new();
    let mut seq: u64 = 0;
    while let Ok(c) = rx.recv() {
        let model = c.model.to_string();
        let line = render(&c);
        let key = (Arc::clone(&c.model), c.version);
        let (max_file, max_total) = c.limits;
        if open.get(&key).is_some_and(|o| o.written + line.len() as u64 > max_file) {
            open.remove(&key);
        }
        let result = (|| -> std::io::Result<()> {
            if !open.contains_key(&key) {
                let version_dir = dir.join(&*c.model).join(format!("v{}", c.version));
                std::fs::create_dir_all(&version_dir)?;
                seq += 1;
                let stamp = humantime::format_rfc3339_millis(SystemTime::now()).to_string().replace(':', "-");
                let path = version_dir.join(format!("{stamp}-{seq:06}.jsonl"));
                let file = std::fs::OpenOptions::new().create_new(true).append(true).open(&path)?;
                open.insert(key.clone(), Open { file, path, written: 0 });
                prune(&dir.join(&*c.model), max_total, open.values().map(|o| o.path.as_path()).collect());
            }
            let o = open.get_mut(&key).expect("opened above");
            o.file.write_all(line.as_bytes())?;
            o.written += line.len() as u64;
            Ok(())
        })();
        let outcome = if result.is_ok() { "captured" } else { "write_failed" };
        if let Err(e) = result {
            tracing::warn!(model, error = %e, "cannot write a capture file; this capture is lost");
            open.remove(&key);
        }
        metrics::counter!("switchyard_capture_total", "model" => model, "result" => outcome).increment(1);
    }
}

/// Removes the oldest capture files of a model (by name, which starts with the time) until the
/// model's files fit in `max_total` bytes; the files being written are kept.
fn prune(model_dir: &Path, max_total: u64, keep: Vec<&Path>) {
    let mut files: Vec<(String, PathBuf, u64)> = Vec::new();
    let Ok(versions) = std::fs::read_dir(model_dir) else { return };
    for v in versions.flatten() {
        let Ok(entries) = std::fs::read_dir(v.path()) else { continue };
        for e in entries.flatten() {
            let size = e.metadata().map_or(0, |m| m.len());
            files.push((e.file_name().to_string_lossy().into_owned(), e.path(), size));
        }
    }
    files.sort();
    let mut total: u64 = files.iter().map(|f| f.2).sum();
    for (_, path, size) in files {
        if total <= max_total {
            break;
        }
        if keep.contains(&path.as_path()) {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(size);
        }
    }
}

/// One JSON line: the lineage key, the version and route, and the tensors as v2 JSON.
fn render(c: &Captured) -> String {
    let tensors = |ts: &[Tensor]| -> Value {
        let outs: Vec<EncodedOutput<'_>> = ts.iter().map(|t| EncodedOutput { tensor: t, binary: false }).collect();
        let head = ResponseHead { model_name: "", model_version: 0, id: None, parameters: None };
        let body = encode_response(&head, &outs).body;
        serde_json::from_slice::<Value>(&body).map(|mut v| v["outputs"].take()).unwrap_or(Value::Null)
    };
    let mut line = json!({
        "request_id": c.request_id.as_str(),
        "at": humantime::format_rfc3339_millis(c.arrived).to_string(),
        "model": &*c.model,
        "version": c.version,
        "route": c.route,
        "inputs": tensors(&c.inputs),
        "outputs": tensors(&c.outputs),
    })
    .to_string();
    line.push('\n');
    line
}

/// Every capture of `model` under `store_root`, by request id (a later capture of the same id
/// wins). Lines that do not parse are skipped.
pub fn read_all(store_root: &Path, model: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Ok(versions) = std::fs::read_dir(store_root.join("capture").join(model)) else { return out };
    let mut files: Vec<PathBuf> = versions
        .flatten()
        .flat_map(|v| std::fs::read_dir(v.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    files.sort_by_key(|p| p.file_name().map(|n| n.to_owned()));
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line)
                && let Some(id) = v["request_id"].as_str()
            {
                out.insert(id.to_owned(), v);
            }
        }
    }
    out
}

/// The limits of a model's capture config, as `Captured` carries them.
pub fn limits(c: &CaptureConfig) -> (u64, u64) {
    (c.max_file_bytes, c.max_total_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::tensor::TensorData;

    #[test]
    fn sampling_draws_about_the_rate() {
        let n = 20_000;
        let hits = (0..n).filter(|_| sampled(0.1)).count();
        // Binomial(20000, 0.1): mean 2000, sd 42; six sd either way.
        assert!((1750..=2250).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| sampled(0.0)));
        assert!((0..1000).all(|_| sampled(1.0)));
    }

    #[test]
    #[expect(clippy::disallowed_methods, reason = "a test thread polling files a writer thread fills")]
    fn captures_are_written_per_version_rotated_and_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = CaptureSink::start(dir.path()).expect("start");
        let t = |v: f32| Tensor { name: "x".into(), shape: vec![1, 2], data: TensorData::Fp32(vec![v, v]) };
        for i in 0..50 {
            sink.submit(Captured {
                request_id: RequestId::from_client(format!("r{i}").as_bytes()).expect("id"),
                arrived: SystemTime::now(),
                model: Arc::from("m"),
                version: 1 + (i % 2),
                route: "champion",
                inputs: vec![t(i as f32)],
                outputs: vec![t(0.5)],
                limits: (4096, 12_000),
            });
        }
        drop(sink);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut all = read_all(dir.path(), "m");
        while all.len() < 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            all = read_all(dir.path(), "m");
        }
        let first = all.values().next().expect("some captures");
        assert_eq!(first["inputs"][0]["datatype"], "FP32");
        assert!(dir.path().join("capture/m/v1").is_dir() && dir.path().join("capture/m/v2").is_dir());
        let total: u64 = ["v1", "v2"]
            .iter()
            .flat_map(|v| std::fs::read_dir(dir.path().join("capture/m").join(v)).expect("dir").flatten())
            .map(|e| e.metadata().expect("meta").len())
            .sum();
        assert!(total <= 12_000 + 4096, "bounded: {total} bytes");
    }
}
