//! The config file as written: serde structs that refuse unknown keys. Semantics (addresses,
//! ranges, references) are checked afterwards in `validate`, which lists every problem.

use serde::Deserialize;

/// `[server]`: listeners and HTTP limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Public v2 inference address, e.g. `"0.0.0.0:8000"`; port 0 picks a free port.
    pub listen: Option<String>,
    /// Admin address (`/metrics`, `/admin/…`); loopback unless you mean otherwise.
    pub admin_listen: Option<String>,
    /// gRPC inference address (`inference.GRPCInferenceService`, health, reflection), e.g.
    /// `"127.0.0.1:8081"`; port 0 picks a free port. No gRPC listener when absent.
    pub grpc_listen: Option<String>,
    /// Largest request body accepted, in bytes (413 above it; over gRPC, the largest message:
    /// RESOURCE_EXHAUSTED above it).
    pub max_body_bytes: Option<u64>,
    /// Tokio worker threads for HTTP; default: tokio's, one per core.
    pub worker_threads: Option<u64>,
    /// Deadline of an inference request from arrival, e.g. `"30s"`; 504 past it.
    pub request_timeout: Option<String>,
    /// After SIGTERM, how long in-flight requests and shadow runs get to finish, all together,
    /// e.g. `"10s"` (the default); then lineage is flushed and the process exits.
    pub drain_timeout: Option<String>,
    /// Open connections per port; more wait in the kernel's backlog.
    pub max_connections: Option<u64>,
    /// Largest request head (request line and headers) in bytes; 431 above it.
    pub max_header_bytes: Option<u64>,
    /// Bearer token the admin port requires (else `SWITCHYARD_ADMIN_TOKEN`); none = open.
    pub admin_token: Option<String>,
    /// Bearer token feedback on the public port requires (else `SWITCHYARD_FEEDBACK_TOKEN`; the
    /// admin token works too); none = feedback only while the public port is on loopback.
    pub feedback_token: Option<String>,
    /// Feedback requests per second per client address (default 100, bursts of twice that).
    pub feedback_rate: Option<f64>,
    /// This gateway's name in every lineage record and serving claim, e.g. `"gw-2"`; default:
    /// the host name and the process id (`host:pid`).
    pub replica_id: Option<String>,
}

/// `[store]`: where the registry and artifacts live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Store directory (artifacts + `registry.db`), as made by `switchyard models register`.
    pub path: Option<String>,
}

/// `[runtime]`: ONNX Runtime.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    /// Path of `libonnxruntime.so`; default: `SWITCHYARD_ONNXRUNTIME`, `ORT_DYLIB_PATH`, beside the
    /// binary, then the checkout's `.cache/onnxruntime/VERSION/`.
    pub onnxruntime: Option<String>,
}

/// `[lineage]`: the per-request record of which artifact answered.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLineage {
    /// Record lineage at all (default true).
    pub enabled: Option<bool>,
    /// Records waiting to be written before `on_full` applies.
    pub capacity: Option<u64>,
    /// Most records written in one transaction.
    pub batch_max: Option<u64>,
    /// How long the writer waits for more records before committing a batch, e.g. `"100ms"` (the default).
    pub flush_interval: Option<String>,
    /// What a request does when the buffer is full: `"block"` (wait for room; default) or
    /// `"drop"` (drop the record, counted).
    pub on_full: Option<String>,
    /// `"full"` (fsync every batch; default) or `"normal"` (no fsync per batch).
    pub durability: Option<String>,
    /// When a request's answer may leave: `"submit"` (once its record is handed to the writer;
    /// default) or `"after_commit"` (once its record is committed: nothing answered is lost to a
    /// crash).
    pub ack: Option<String>,
    /// With `ack = "after_commit"`, how long an answer waits for its record's commit before the
    /// request fails with 503 instead, e.g. `"5s"` (the default).
    pub ack_timeout: Option<String>,
}

/// `[upstream]`: how the gateway calls the v2 servers that answer remote versions.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Longest wait for a TCP connection to an upstream, e.g. `"1s"` (the default).
    pub connect_timeout: Option<String>,
    /// Requests in flight to one upstream at most (default 256); more wait for a slot until
    /// their deadline.
    pub max_concurrency: Option<u64>,
    /// Retries of requests whose connection failed before they were sent, as a fraction of
    /// requests (default 0.1; 0 turns retries off).
    pub retry_budget: Option<f64>,
    /// How often an upstream's ready endpoint is checked, e.g. `"1s"` (the default).
    pub health_interval: Option<String>,
    /// Consecutive failed checks or connection failures after which an upstream is ejected
    /// (requests to it fail at once, 503) until a check passes again (default 3).
    pub eject_after: Option<u64>,
}

/// `[model.lineage]`: per-model lineage options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelLineage {
    /// Keep a sha256 of each request's input tensors in its record (default false).
    pub input_sha256: Option<bool>,
}

/// One `[[model]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub name: Option<String>,
    /// Versions to load: numbers (`3`) or registry aliases (`"champion"`).
    pub versions: Option<Vec<toml::Value>>,
    /// Which loaded version answers requests that name none; default: the first of `versions`.
    pub default_version: Option<toml::Value>,
    #[serde(default)]
    pub engine: RawEngine,
    /// Traffic split; without it every request goes to `default_version`.
    pub routing: Option<RawRouting>,
    #[serde(default)]
    pub lineage: RawModelLineage,
    /// Latency and error-rate guard; none by default.
    pub guard: Option<RawGuard>,
    /// What a candidate must show before it may be promoted; none = no gates.
    pub promotion: Option<RawPromotion>,
    /// Payload capture (inputs, outputs, lineage key) of a sample of requests; none = off.
    pub capture: Option<RawCapture>,
    /// What to do with inputs outside the training profile (from the version's manifest).
    pub validation: Option<RawValidation>,
    /// Per-slice figures (requests, latency, errors, online accuracy); none = off.
    pub slices: Option<RawSlices>,
}

/// `[model.slices]`: traffic cut by a request header (a market, a device class), each of the
/// busiest slices measured on its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlices {
    /// The request header (gRPC: metadata key) naming a request's slice, e.g. `"x-slice"`.
    pub header: Option<String>,
    /// Slices measured apart, the busiest by traffic (default 5); the rest count as `other`.
    pub top_k: Option<u64>,
}

/// `[model.validation]`: live inputs against the training data's profile.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawValidation {
    /// `"count"` (default: drift and out-of-range shares are measured and exported) or
    /// `"refuse"` (a request with a value outside the training range gets 400).
    pub out_of_range: Option<String>,
    /// How much recent traffic drift is measured over, e.g. `"5m"` (the default).
    pub window: Option<String>,
    /// A feature whose PSI over the window exceeds this is a drift breach: alerted
    /// (`drift_breach`) and logged. None by default.
    pub max_psi: Option<f64>,
    /// Rows the window must hold before its drift is judged (default 100).
    pub min_rows: Option<u64>,
}

/// `[model.capture]`: a sample of requests kept whole for the next training set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    /// Share of answered requests captured, 0–1 (default 0.01).
    pub rate: Option<f64>,
    /// Route → share, overriding `rate` for requests on that route, e.g. `{ challenger = 1.0 }`.
    #[serde(default)]
    pub routes: std::collections::BTreeMap<String, f64>,
    /// A capture file is closed and a new one begun past this size (bytes; default 16 MiB).
    pub max_file_bytes: Option<u64>,
    /// The oldest capture files of the model are removed past this total (bytes; default 1 GiB).
    pub max_total_bytes: Option<u64>,
}

/// `[model.promotion]`: gates a candidate must pass to replace the champion.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPromotion {
    /// Offline metric → least gain over the champion's (from the manifests), e.g. `auc = 0.005`.
    #[serde(default)]
    pub min_gain: std::collections::BTreeMap<String, f64>,
    /// Offline metric → largest difference from the champion's, e.g. `calibration_error = 0.02`.
    #[serde(default)]
    pub max_drift: std::collections::BTreeMap<String, f64>,
    /// Live: p99 latency of the candidate's window at most this (ms).
    pub max_p99_ms: Option<f64>,
    /// Live: share of 5xx in the candidate's window at most this.
    pub max_error_rate: Option<f64>,
    /// Live: share of shadow-compared rows whose argmax agreed, at least this.
    pub min_shadow_agreement: Option<f64>,
    /// Live: accuracy from labelled feedback, at least this.
    pub min_online_accuracy: Option<f64>,
    /// Live: requests the candidate served (or shadowed) in its window, at least this.
    pub min_requests: Option<u64>,
    /// Live, with `[model.slices]`: no top slice's online accuracy may fall below the
    /// champion's on that slice by more than this.
    pub max_slice_regression: Option<f64>,
    /// Live, with `[model.slices]`: the candidate's best and worst top slices' online accuracy
    /// at most this far apart (a fairness check).
    pub max_slice_gap: Option<f64>,
    /// Labelled feedback items a slice needs (candidate and champion alike) to be judged by the
    /// slice gates (default 20).
    pub min_slice_labels: Option<u64>,
    /// Live: the candidate's largest per-feature drift (PSI against its training profile) over
    /// its drift window, at most this.
    pub max_psi: Option<f64>,
}

/// `[model.guard]`: when a version breaches a threshold, traffic moves away from it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    /// How much recent traffic is judged, e.g. `"30s"`.
    pub window: Option<String>,
    /// Largest acceptable p99 latency over the window, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Largest acceptable share of failed (5xx) requests over the window, 0–1.
    pub max_error_rate: Option<f64>,
    /// Requests a version must have in the window before it is judged.
    pub min_requests: Option<u64>,
    /// Time between evaluations, e.g. `"1s"`.
    pub interval: Option<String>,
    /// After a trip, how long before this model can trip again, e.g. `"60s"`.
    pub cooldown: Option<String>,
}

/// `[model.routing]`: champion, weighted challengers, shadows, backups, sticky key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    /// The version (number or alias) that gets the traffic the challengers do not.
    pub champion: Option<toml::Value>,
    /// Version or alias → percent of requests (0–100, two decimals); they sum to ≤ 100.
    #[serde(default)]
    pub challengers: std::collections::BTreeMap<String, f64>,
    /// Version or alias → percent of requests mirrored to it after the answer is sent.
    #[serde(default)]
    pub shadows: std::collections::BTreeMap<String, f64>,
    /// Warm standbys, loaded at start, in order of preference.
    #[serde(default)]
    pub backup: Vec<toml::Value>,
    /// Header whose value keeps a caller on one version while the weights stand.
    pub sticky_header: Option<String>,
}

/// `[model.engine]`: how this model's versions run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    /// `"cpu"` (default) or `"cuda:N"` (needs the `cuda` build feature).
    pub device: Option<String>,
    /// Sessions per version (each on its own worker thread, unless inline).
    pub instances: Option<u64>,
    /// `auto` (default: `inline` for a CPU model whose warm runs take under 100 µs and that does
    /// not batch, else `workers`), `workers` or `inline`: which threads run the sessions.
    pub execution: Option<String>,
    /// ONNX Runtime intra-op threads per session.
    pub intra_op_threads: Option<u64>,
    /// Dynamic batching: most rows in one ORT call; 1 = off.
    pub max_batch: Option<u64>,
    /// Dynamic batching: microseconds to wait for more requests after the first.
    pub batch_delay_us: Option<u64>,
    /// Requests waiting per version before new ones get 503.
    pub queue_capacity: Option<u64>,
}

/// One `[[alert]]` table: where alerts go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlert {
    /// `"webhook"` (a JSON body per alert), `"alertmanager"` (Prometheus Alertmanager's
    /// `/api/v2/alerts`) or `"slack"` (a Slack-compatible incoming webhook).
    pub kind: Option<String>,
    /// The receiver's URL (http://; for Alertmanager its base, e.g. `http://am:9093`).
    pub url: Option<String>,
    /// Only these alert kinds (default: all), e.g. `["guard_trip", "rolled_back"]`.
    pub events: Option<Vec<String>>,
}
