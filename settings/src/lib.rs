//! Switchyard's configuration: one TOML file, overridable by `SWITCHYARD__SECTION__KEY`
//! environment variables, validated into a `Config` that lists every problem rather than the
//! first. A crate of its own, below every layer that reads it: it knows nothing of tokio, ONNX
//! Runtime or the registry, so the config fuzz target links it alone.

pub mod engine;
mod place;
pub mod promotion;
mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::engine::{Device, EngineSettings, Execution};
pub use raw::{
    RawAlert, RawCapture, RawEngine, RawGuard, RawLineage, RawModel, RawModelLineage, RawPromotion, RawRouting,
    RawRuntime, RawServer, RawSlices, RawStore, RawUpstream, RawValidation,
};

/// A validated configuration. Every field is usable as is.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    /// Store directory (artifacts and `registry.db`).
    pub store_path: PathBuf,
    /// Explicit ONNX Runtime library, if configured.
    pub onnxruntime: Option<PathBuf>,
    /// How per-request lineage is recorded.
    pub lineage: LineageConfig,
    /// Served models, names unique, in file order.
    pub models: Vec<ModelConfig>,
    /// Where alerts go (`[[alert]]`), in file order.
    pub alerts: Vec<AlertConfig>,
    /// How remote versions' upstreams are called.
    pub upstream: UpstreamConfig,
}

/// `[upstream]`, validated: the client of the v2 servers that answer remote versions.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    /// Requests in flight to one upstream at most.
    pub max_concurrency: usize,
    /// Retries allowed, as a fraction of requests (connection failures before sending only).
    pub retry_budget: f64,
    pub health_interval: Duration,
    /// Consecutive failures that eject an upstream until a health check passes.
    pub eject_after: u32,
}

impl Default for UpstreamConfig {
    fn default() -> UpstreamConfig {
        UpstreamConfig {
            connect_timeout: Duration::from_secs(1),
            max_concurrency: 256,
            retry_budget: 0.1,
            health_interval: Duration::from_secs(1),
            eject_after: 3,
        }
    }
}

/// The kinds of alert a gateway sends; `[[alert]] events` names some of them.
pub const ALERT_KINDS: [&str; 11] = [
    "guard_trip",
    "guard_no_healthy_backup",
    "guard_shadow_breach",
    "drift_breach",
    "slice_breach",
    "promoted",
    "rolled_back",
    "weights_set",
    "routing_reset",
    "reload_failed",
    "lineage_store_unhealthy",
];

/// One `[[alert]]` sink, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    pub sink: AlertSink,
    /// `http://host:port/path`.
    pub url: String,
    /// The alert kinds sent there (every one of `ALERT_KINDS` by default).
    pub events: Vec<String>,
}

/// What an alert receiver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertSink {
    /// A JSON object per alert (documented in the README).
    Webhook,
    /// Prometheus Alertmanager: a list of alerts posted to `/api/v2/alerts`.
    Alertmanager,
    /// A Slack-compatible incoming webhook: `{"text": …}`.
    Slack,
}

impl Choice for AlertSink {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("webhook", AlertSink::Webhook), ("alertmanager", AlertSink::Alertmanager), ("slack", AlertSink::Slack)];
}

/// `[lineage]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LineageConfig {
    pub enabled: bool,
    /// Records buffered between the request path and the writer.
    pub capacity: usize,
    /// Most records per write transaction.
    pub batch_max: usize,
    /// How long the writer waits for more records before committing a batch that is not full
    /// (default 100 ms: each commit has a fixed cost, an fsync and the partly filled B-tree pages
    /// written again, which a longer wait spreads over more records; see docs/design.md).
    pub flush_interval: Duration,
    pub on_full: OnFull,
    /// `full` (default): every batch is fsynced at commit; `normal`: not, so the last batches
    /// before a power loss may be lost (never to a crash of the process).
    pub durability: LineageDurability,
    /// When an answer may leave relative to its record.
    pub ack: LineageAck,
    /// With `LineageAck::AfterCommit`, the longest an answer waits for its record's commit.
    pub ack_timeout: Duration,
}

/// When a request's answer may leave, relative to its lineage record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineageAck {
    /// Once the record is in the writer's hands: the fastest; up to one flush interval of
    /// records is lost if the process is killed.
    #[default]
    Submit,
    /// Once the record is committed (group commit: the writer commits at once while answers
    /// wait): every answered request has its record, whatever happens to the process after.
    AfterCommit,
}

impl Choice for LineageAck {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("submit", LineageAck::Submit), ("after_commit", LineageAck::AfterCommit)];
}

/// How far a committed lineage batch is guaranteed to survive (the registry maps it onto its
/// database's setting: SQLite's `synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineageDurability {
    /// Every commit is fsynced: a committed batch survives a power loss. The default.
    #[default]
    Full,
    /// Commits are not fsynced: a committed batch survives the process dying, not the machine.
    Normal,
}

/// What a request does when the lineage buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Wait for room: no record is ever lost, at the price of latency under a stalled database.
    Block,
    /// Drop the record and count it: latency never waits on the database.
    Drop,
}

impl Default for LineageConfig {
    fn default() -> LineageConfig {
        LineageConfig {
            enabled: true,
            capacity: 65_536,
            batch_max: 1024,
            flush_interval: Duration::from_millis(100),
            on_full: OnFull::Block,
            durability: LineageDurability::Full,
            ack: LineageAck::Submit,
            ack_timeout: Duration::from_secs(5),
        }
    }
}

/// Listeners and HTTP limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// The gRPC listener (`inference.GRPCInferenceService`, health, reflection); `None` (the
    /// default) serves no gRPC.
    pub grpc_listen: Option<SocketAddr>,
    /// Request bodies larger than this are refused with 413 (gRPC messages with
    /// RESOURCE_EXHAUSTED).
    pub max_body_bytes: usize,
    /// Tokio worker threads; `None` = tokio's default, one per core.
    pub worker_threads: Option<usize>,
    /// Deadline of an inference request from arrival; a request's v2 `timeout` may shorten it.
    pub request_timeout: Duration,
    /// After SIGTERM, how long requests in flight and shadow runs get to finish, all together;
    /// the lineage writer then commits what it holds (within what is left, at least
    /// `LINEAGE_DRAIN_FLOOR`). One deadline for the whole shutdown.
    pub drain_timeout: Duration,
    /// Open connections per port.
    pub max_connections: usize,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Bearer token the admin port requires; `None` leaves it open (it binds loopback by default).
    pub admin_token: Option<String>,
    /// Bearer token `POST /v2/models/{m}/feedback` requires on the public port (the admin token
    /// is accepted too). Without either, feedback is accepted only when the public port listens
    /// on loopback: ground truth decides promotions, so an exposed port must not take it from
    /// anyone.
    pub feedback_token: Option<String>,
    /// Feedback requests per second each client address may send (bursts of twice that); more
    /// get 429.
    pub feedback_rate: f64,
    /// This gateway's name in lineage records and serving claims; `None`: `host:pid`.
    pub replica_id: Option<String>,
}

impl Default for ServerConfig {
    /// The defaults, written once: the validator, the docs and the example config take them
    /// from here (a test checks the example config against them).
    fn default() -> ServerConfig {
        ServerConfig {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            admin_listen: DEFAULT_ADMIN_LISTEN.parse().expect("the default address parses"),
            grpc_listen: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES as usize,
            worker_threads: None,
            request_timeout: Duration::from_secs(30),
            // Inside Kubernetes' default grace period of 30 s, with room for the lineage flush.
            drain_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_header_bytes: 64 << 10,
            admin_token: None,
            feedback_token: None,
            feedback_rate: 100.0,
            replica_id: None,
        }
    }
}

/// The least time the lineage writer gets at shutdown to commit what it holds, even when the
/// drain used all of `drain_timeout` (a stuck request): an exit then takes at most
/// `drain_timeout` plus this.
pub const LINEAGE_DRAIN_FLOOR: Duration = Duration::from_millis(500);

/// Environment variable read for the admin token when the config has none.
pub const ADMIN_TOKEN_ENV: &str = "SWITCHYARD_ADMIN_TOKEN";

/// Environment variable read for the feedback token when the config has none.
pub const FEEDBACK_TOKEN_ENV: &str = "SWITCHYARD_FEEDBACK_TOKEN";

/// One served model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub name: String,
    /// Versions to load, unique, in the order given.
    pub versions: Vec<VersionSelector>,
    /// Where traffic goes; every version it names is also in `versions`.
    pub routing: RoutingConfig,
    pub engine: EngineSettings,
    /// Keep a sha256 of each request's inputs in its lineage record.
    pub lineage_input_sha256: bool,
    /// Latency / error-rate guard, if configured.
    pub guard: Option<GuardConfig>,
    /// Promotion gates, if configured.
    pub promotion: Option<crate::promotion::PromotionPolicy>,
    /// Payload capture, if configured.
    pub capture: Option<CaptureConfig>,
    /// Live inputs against the training profile.
    pub validation: ValidationConfig,
    /// Per-slice figures, if configured.
    pub slices: Option<SliceConfig>,
}

/// `[model.slices]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceConfig {
    /// The header naming a request's slice, lower-case.
    pub header: String,
    /// Slices measured apart (the busiest); the rest are `other`.
    pub top_k: usize,
}

/// Most slices `top_k` may ask for: every one is a set of series per version.
pub const MAX_TOP_K: u64 = 50;

fn validate_slices(raw: &RawSlices, label: &str, problems: &mut Vec<String>) -> Option<SliceConfig> {
    let header = match raw.header.as_deref().map(str::trim) {
        Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) => {
            h.to_ascii_lowercase()
        }
        Some(h) => {
            problems.push(format!("{label}: slices.header = {h:?} is not a header name"));
            return None;
        }
        None => {
            problems.push(format!("{label}: slices needs a header (the request header naming a request's slice)"));
            return None;
        }
    };
    let top_k = bounded(raw.top_k, 5, 1..=MAX_TOP_K, &format!("{label}: slices.top_k"), problems) as usize;
    Some(SliceConfig { header, top_k })
}

/// `[model.validation]`, validated (defaults when the table is absent).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationConfig {
    pub out_of_range: OutOfRange,
    /// The drift window.
    pub window: Duration,
    /// PSI above which a feature's drift is a breach (alerted); none = not judged.
    pub max_psi: Option<f64>,
    /// Rows the window must hold before drift is judged.
    pub min_rows: u64,
}

impl Default for ValidationConfig {
    fn default() -> ValidationConfig {
        ValidationConfig {
            out_of_range: OutOfRange::Count,
            window: Duration::from_secs(300),
            max_psi: None,
            min_rows: 100,
        }
    }
}

/// What a request with a value outside the training range gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfRange {
    /// Served; the value counts in `switchyard_out_of_range_ratio`.
    Count,
    /// Refused with 400 naming the feature and the bound.
    Refuse,
}

impl Choice for OutOfRange {
    const CHOICES: &'static [(&'static str, Self)] = &[("count", OutOfRange::Count), ("refuse", OutOfRange::Refuse)];
}

fn validate_validation(raw: Option<&RawValidation>, label: &str, problems: &mut Vec<String>) -> ValidationConfig {
    let d = ValidationConfig::default();
    let Some(raw) = raw else { return d };
    ValidationConfig {
        out_of_range: one_of(
            raw.out_of_range.as_deref(),
            d.out_of_range,
            &format!("{label}: validation.out_of_range"),
            problems,
        ),
        window: duration(
            raw.window.as_deref(),
            d.window,
            Duration::from_secs(1)..=Duration::from_secs(86_400),
            &format!("{label}: validation.window"),
            problems,
        ),
        max_psi: raw.max_psi.inspect(|&p| {
            if !(p.is_finite() && p > 0.0) {
                problems.push(format!("{label}: validation.max_psi = {p} must be a positive number (0.25 is a shift)"));
            }
        }),
        min_rows: bounded(
            raw.min_rows,
            d.min_rows,
            1..=100_000_000,
            &format!("{label}: validation.min_rows"),
            problems,
        ),
    }
}

/// `[model.capture]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureConfig {
    /// Share of answered requests captured.
    pub rate: f64,
    /// Route label → share, where it differs from `rate`.
    pub routes: BTreeMap<String, f64>,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for CaptureConfig {
    fn default() -> CaptureConfig {
        CaptureConfig { rate: 0.01, routes: BTreeMap::new(), max_file_bytes: 16 << 20, max_total_bytes: 1 << 30 }
    }
}

impl CaptureConfig {
    /// The share captured of requests answered on `route`.
    pub fn rate_for(&self, route: &str) -> f64 {
        self.routes.get(route).copied().unwrap_or(self.rate)
    }
}

fn validate_capture(raw: &RawCapture, label: &str, problems: &mut Vec<String>) -> CaptureConfig {
    let d = CaptureConfig::default();
    let share = |v: f64, what: String, problems: &mut Vec<String>| {
        if !(0.0..=1.0).contains(&v) {
            problems.push(format!("{label}: capture.{what} = {v} must be a share between 0 and 1"));
        }
    };
    let rate = raw.rate.unwrap_or(d.rate);
    share(rate, "rate".to_owned(), problems);
    const ROUTES: [&str; 4] = ["champion", "challenger", "backup", "pinned"];
    for (route, v) in &raw.routes {
        share(*v, format!("routes.{route}"), problems);
        if !ROUTES.contains(&route.as_str()) {
            problems.push(format!("{label}: capture.routes: unknown route {route:?} (routes: {})", ROUTES.join(", ")));
        }
    }
    CaptureConfig {
        rate,
        routes: raw.routes.clone(),
        max_file_bytes: bounded(
            raw.max_file_bytes,
            d.max_file_bytes,
            4096..=(1 << 34),
            &format!("{label}: capture.max_file_bytes"),
            problems,
        ),
        max_total_bytes: bounded(
            raw.max_total_bytes,
            d.max_total_bytes,
            4096..=(1 << 44),
            &format!("{label}: capture.max_total_bytes"),
            problems,
        ),
    }
}

/// `[model.guard]`, validated: at least one threshold is set.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    pub window: Duration,
    pub p99_ms: Option<f64>,
    pub max_error_rate: Option<f64>,
    pub min_requests: u64,
    pub interval: Duration,
    pub cooldown: Duration,
}

impl Default for GuardConfig {
    /// The defaults of the settings a `[model.guard]` table leaves out (it must set a threshold:
    /// none is set here).
    fn default() -> GuardConfig {
        GuardConfig {
            window: Duration::from_secs(30),
            p99_ms: None,
            max_error_rate: None,
            min_requests: 20,
            interval: Duration::from_secs(1),
            cooldown: Duration::from_secs(60),
        }
    }
}

/// A model's traffic split as configured (selectors still unresolved).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    /// Answers requests that name no version, less the challengers' share.
    pub champion: VersionSelector,
    /// (version, weight in basis points of 10,000); their sum is ≤ 10,000.
    pub challengers: Vec<(VersionSelector, u32)>,
    /// (version, share mirrored in basis points).
    pub shadows: Vec<(VersionSelector, u32)>,
    pub backup: Vec<VersionSelector>,
    /// Lower-case header name.
    pub sticky_header: Option<String>,
}

/// A version named in config: a number or a registry alias.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum VersionSelector {
    Number(u32),
    Alias(String),
}

impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSelector::Number(n) => write!(f, "{n}"),
            VersionSelector::Alias(a) => f.write_str(a),
        }
    }
}

/// Everything wrong with a config, one problem per line.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub source: String,
    pub problems: Vec<String>,
    /// What could be read in spite of the problems (models whose own tables were valid), so a
    /// check can still resolve their references; `None` when the file could not be parsed.
    pub partial: Option<Box<Config>>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} has {} problem(s):", self.source, self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Default public address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// Default admin address: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8001";
/// Default body limit: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 << 20;

impl Config {
    /// Reads `path`, applies `SWITCHYARD__…` environment overrides, and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_digest(path).map(|(config, _)| config)
    }

    /// `load`, also returning the sha256 of the bytes it parsed, so a watcher can tell whether
    /// the file still holds what is served.
    pub fn load_with_digest(path: &Path) -> Result<(Config, [u8; 32]), ConfigError> {
        use sha2::Digest as _;
        // Read the bytes ourselves: a clear error for a missing or unreadable file, and the same
        // bytes are parsed whatever happens to the file meanwhile.
        let bytes = std::fs::read(path).map_err(|e| ConfigError {
            source: path.display().to_string(),
            problems: vec![format!("cannot read the file: {e}")],
            partial: None,
        })?;
        let digest = sha2::Sha256::digest(&bytes).into();
        Self::from_file_bytes(path, &bytes).map(|c| (c, digest))
    }

    /// Parses the bytes read from the config file at `path` as `load` does: environment
    /// overrides applied, relative paths resolved against the file's directory. For callers that
    /// have already read the file (the config watcher compares reads before reloading).
    pub fn from_file_bytes(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        let fail = |p: String| ConfigError { source: source.clone(), problems: vec![p], partial: None };
        let text = std::str::from_utf8(bytes).map_err(|e| fail(format!("the file is not valid UTF-8: {e}")))?;
        // Parsed alone first: a syntax error then says where it is.
        text.parse::<toml::Table>().map_err(|e: toml::de::Error| fail(e.to_string()))?;
        let table = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(config::Environment::with_prefix("SWITCHYARD").separator("__").try_parsing(true))
            .build()
            .and_then(|c| c.try_deserialize::<toml::Table>())
            .map_err(|e| fail(e.to_string()))?;
        Self::from_table(&source, table, path.parent(), &place::Places::of(text))
    }

    /// Parses and validates TOML text (no environment overrides); relative paths are kept as is.
    pub fn from_toml_str(source: &str, text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
            source: source.to_owned(),
            problems: vec![e.to_string()],
            partial: None,
        })?;
        Self::from_table(source, table, None, &place::Places::of(text))
    }

    fn from_table(
        source: &str,
        mut table: toml::Table,
        base: Option<&Path>,
        places: &place::Places,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let server: Option<RawServer> = section(&mut table, "server", places, &mut problems);
        let store: Option<RawStore> = section(&mut table, "store", places, &mut problems);
        let runtime: Option<RawRuntime> = section(&mut table, "runtime", places, &mut problems);
        let lineage: Option<RawLineage> = section(&mut table, "lineage", places, &mut problems);
        let upstream: Option<RawUpstream> = section(&mut table, "upstream", places, &mut problems);
        let alerts = match table.remove("alert") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => {
                items.into_iter().enumerate().filter_map(|(i, item)| alert(i, item, places, &mut problems)).collect()
            }
            Some(_) => {
                problems.push("'alert' must be an array of tables: write [[alert]]".to_owned());
                Vec::new()
            }
        };
        let models = match table.remove("model") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => {
                items.into_iter().enumerate().filter_map(|(i, item)| model(i, item, places, &mut problems)).collect()
            }
            Some(_) => {
                problems.push("'model' must be an array of tables: write [[model]]".to_owned());
                Vec::new()
            }
        };
        const TOP: [&str; 7] = ["server", "store", "runtime", "lineage", "upstream", "model", "alert"];
        for key in table.keys() {
            let hint = match place::closest(key, &TOP) {
                Some(near) => format!("did you mean [{near}]?"),
                None => format!("expected {}", TOP.join(", ")),
            };
            problems.push(format!("unknown top-level key '{key}' ({hint})"));
        }
        let mut config = validate(server, store, runtime, models, base, &mut problems);
        config.lineage = validate_lineage(lineage.unwrap_or_default(), &mut problems);
        config.upstream = validate_upstream(upstream.unwrap_or_default(), &mut problems);
        config.alerts = alerts;
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { source: source.to_owned(), problems, partial: Some(Box::new(config)) })
        }
    }
}

/// The `index`-th `[[alert]]` table, validated.
fn alert(index: usize, item: toml::Value, places: &place::Places, problems: &mut Vec<String>) -> Option<AlertConfig> {
    let label = format!("[[alert]] #{}", index + 1);
    let toml::Value::Table(table) = item else {
        problems.push(format!("{label}: expected a table"));
        return None;
    };
    let at = place::Table { path: format!("alert.{index}"), label: label.clone(), places };
    let raw: RawAlert = at.read(table, problems)?;
    let before = problems.len();
    let Some(kind) = raw.kind.as_deref() else {
        problems.push(format!("{label}: kind is required (\"webhook\", \"alertmanager\" or \"slack\")"));
        return None;
    };
    let sink = one_of(Some(kind), AlertSink::Webhook, &format!("{label}: kind"), problems);
    let url = raw.url.unwrap_or_default();
    let valid_url = url.strip_prefix("http://").is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if !valid_url {
        problems.push(format!("{label}: url = {url:?} must be an http:// URL with a host"));
    }
    let events = match raw.events {
        None => ALERT_KINDS.iter().map(|k| (*k).to_owned()).collect(),
        Some(events) => {
            for e in &events {
                if !ALERT_KINDS.contains(&e.as_str()) {
                    problems
                        .push(format!("{label}: events: unknown alert kind {e:?} (known: {})", ALERT_KINDS.join(", ")));
                }
            }
            events
        }
    };
    (problems.len() == before).then_some(AlertConfig { sink, url, events })
}

/// The `index`-th `[[model]]` table, each of its tables checked key by key first so that a bad
/// value deep inside is reported at its place and the rest is still read.
fn model(index: usize, item: toml::Value, places: &place::Places, problems: &mut Vec<String>) -> Option<RawModel> {
    let toml::Value::Table(mut table) = item else {
        problems.push(format!("[[model]] #{}: expected a table", index + 1));
        return None;
    };
    let at = place::Table::model(places, index, &table);
    macro_rules! clean {
        ($key:literal, $raw:ty) => {
            if let Some(inner) = at.take_table(&mut table, $key, problems) {
                let cleaned = at.inner($key).clean::<$raw>(inner, problems);
                table.insert($key.to_owned(), toml::Value::Table(cleaned));
            }
        };
    }
    clean!("engine", RawEngine);
    clean!("routing", RawRouting);
    clean!("lineage", RawModelLineage);
    clean!("guard", RawGuard);
    clean!("promotion", RawPromotion);
    clean!("capture", RawCapture);
    clean!("validation", RawValidation);
    clean!("slices", RawSlices);
    at.read(table, problems)
}

/// The top-level `[key]` table read as a `T`, every problem reported at its place.
fn section<T: DeserializeOwned>(
    table: &mut toml::Table,
    key: &str,
    places: &place::Places,
    problems: &mut Vec<String>,
) -> Option<T> {
    match table.remove(key)? {
        toml::Value::Table(inner) => place::Table::top(places, key).read(inner, problems),
        _ => {
            problems.push(format!("'{key}' must be a table: write [{key}]"));
            None
        }
    }
}

fn resolve_path(base: Option<&Path>, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    match base {
        Some(dir) if path.is_relative() && !dir.as_os_str().is_empty() => dir.join(path),
        _ => path,
    }
}

fn addr(value: Option<&str>, default: &str, key: &str, problems: &mut Vec<String>) -> SocketAddr {
    let text = value.unwrap_or(default);
    text.parse().unwrap_or_else(|_| {
        problems.push(format!("[server] {key} = {text:?} is not an address like \"127.0.0.1:8000\""));
        default.parse().expect("default addresses parse")
    })
}

fn validate(
    server: Option<RawServer>,
    store: Option<RawStore>,
    runtime: Option<RawRuntime>,
    models: Vec<RawModel>,
    base: Option<&Path>,
    problems: &mut Vec<String>,
) -> Config {
    let server = server.unwrap_or_default();
    let d = ServerConfig::default();
    let max_body = server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if !(1024..=(4u64 << 30)).contains(&max_body) {
        problems.push(format!("[server] max_body_bytes = {max_body} must be between 1024 and 4294967296"));
    }
    let worker_threads = server.worker_threads.map(|n| {
        if !(1..=256).contains(&n) {
            problems.push(format!("[server] worker_threads = {n} must be between 1 and 256"));
        }
        n as usize
    });
    let server_config = ServerConfig {
        listen: addr(server.listen.as_deref(), DEFAULT_LISTEN, "listen", problems),
        admin_listen: addr(server.admin_listen.as_deref(), DEFAULT_ADMIN_LISTEN, "admin_listen", problems),
        grpc_listen: match server.grpc_listen.as_deref() {
            None => d.grpc_listen,
            Some(text) => match text.parse() {
                Ok(a) => Some(a),
                Err(_) => {
                    problems.push(format!("[server] grpc_listen = {text:?} is not an address like \"127.0.0.1:8081\""));
                    None
                }
            },
        },
        max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
        worker_threads,
        request_timeout: duration(
            server.request_timeout.as_deref(),
            d.request_timeout,
            Duration::from_millis(1)..=Duration::from_secs(3600),
            "[server] request_timeout",
            problems,
        ),
        drain_timeout: duration(
            server.drain_timeout.as_deref(),
            d.drain_timeout,
            Duration::ZERO..=Duration::from_secs(3600),
            "[server] drain_timeout",
            problems,
        ),
        max_connections: bounded(
            server.max_connections,
            d.max_connections as u64,
            1..=1_000_000,
            "[server] max_connections",
            problems,
        ) as usize,
        max_header_bytes: bounded(
            server.max_header_bytes,
            d.max_header_bytes as u64,
            8192..=(16 << 20),
            "[server] max_header_bytes",
            problems,
        ) as usize,
        admin_token: admin_token(server.admin_token, problems),
        feedback_token: token(server.feedback_token, "[server] feedback_token", FEEDBACK_TOKEN_ENV, problems),
        feedback_rate: match server.feedback_rate {
            None => d.feedback_rate,
            Some(r) if r.is_finite() && (0.1..=1_000_000.0).contains(&r) => r,
            Some(r) => {
                problems.push(format!("[server] feedback_rate = {r} must be between 0.1 and 1000000 per second"));
                d.feedback_rate
            }
        },
        replica_id: match server.replica_id {
            None => None,
            Some(id)
                if (1..=128).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) =>
            {
                Some(id)
            }
            Some(id) => {
                problems.push(format!(
                    "[server] replica_id = {id:?} must be 1–128 characters of letters, digits, '.', '_', ':' and '-'"
                ));
                None
            }
        },
    };
    let store_path = match store.and_then(|s| s.path).filter(|p| !p.is_empty()) {
        Some(p) => resolve_path(base, &p),
        None => {
            problems.push(
                "[store] path is required: the directory made by `switchyard models register --store DIR`".to_owned(),
            );
            PathBuf::new()
        }
    };
    let onnxruntime = runtime.and_then(|r| r.onnxruntime).filter(|p| !p.is_empty()).map(|p| resolve_path(base, &p));
    if models.is_empty() && problems.is_empty() {
        problems.push("no [[model]] tables: name at least one model to serve".to_owned());
    }
    if let Some(grpc) = server_config.grpc_listen
        && grpc.port() != 0
        && (grpc == server_config.listen || grpc == server_config.admin_listen)
    {
        problems.push(format!(
            "[server] grpc_listen = \"{grpc}\" is also the public or admin address: give it its own port"
        ));
    }
    // What tokio's runtime will run with (`cli::serve` builds it from the same setting).
    let server_threads = server_config
        .worker_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
    let mut seen = BTreeSet::new();
    let models = models
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            let label = match &raw.name {
                Some(n) => format!("model '{n}'"),
                None => format!("[[model]] #{}", i + 1),
            };
            let model = validate_model(raw, &label, server_threads, problems)?;
            if !seen.insert(model.name.clone()) {
                problems.push(format!("{label} is defined more than once"));
            }
            Some(model)
        })
        .collect();
    Config {
        server: server_config,
        store_path,
        onnxruntime,
        lineage: LineageConfig::default(),
        models,
        alerts: Vec::new(),
        upstream: UpstreamConfig::default(),
    }
}

/// A duration written as a string such as `"30s"`, `"500ms"`, `"2m"`, within `range`.
fn duration(
    text: Option<&str>,
    default: Duration,
    range: std::ops::RangeInclusive<Duration>,
    what: &str,
    problems: &mut Vec<String>,
) -> Duration {
    let Some(text) = text else { return default };
    match humantime::parse_duration(text) {
        Ok(d) if range.contains(&d) => d,
        Ok(_) => {
            problems.push(format!(
                "{what} = {text:?} must be between {} and {}",
                humantime::format_duration(*range.start()),
                humantime::format_duration(*range.end())
            ));
            default
        }
        Err(e) => {
            problems.push(format!("{what} = {text:?} is not a duration like \"30s\" or \"500ms\": {e}"));
            default
        }
    }
}

fn validate_guard(raw: &RawGuard, label: &str, problems: &mut Vec<String>) -> Option<GuardConfig> {
    let before = problems.len();
    let d = GuardConfig::default();
    let what = |key: &str| format!("{label}: guard.{key}");
    let window = duration(
        raw.window.as_deref(),
        d.window,
        Duration::from_millis(100)..=Duration::from_secs(3600),
        &what("window"),
        problems,
    );
    let interval = duration(
        raw.interval.as_deref(),
        d.interval,
        Duration::from_millis(10)..=Duration::from_secs(600),
        &what("interval"),
        problems,
    );
    let cooldown = duration(
        raw.cooldown.as_deref(),
        d.cooldown,
        Duration::ZERO..=Duration::from_secs(86_400),
        &what("cooldown"),
        problems,
    );
    if let Some(p) = raw.p99_ms
        && !(p.is_finite() && p > 0.0)
    {
        problems.push(format!("{} = {p} must be a positive number of milliseconds", what("p99_ms")));
    }
    if let Some(r) = raw.max_error_rate
        && !(0.0..=1.0).contains(&r)
    {
        problems.push(format!("{} = {r} must be a share between 0 and 1", what("max_error_rate")));
    }
    if raw.p99_ms.is_none() && raw.max_error_rate.is_none() {
        problems.push(format!("{label}: guard needs p99_ms, max_error_rate or both"));
    }
    let min_requests = bounded(raw.min_requests, d.min_requests, 1..=1_000_000, &what("min_requests"), problems);
    if problems.len() > before {
        return None;
    }
    Some(GuardConfig {
        window,
        p99_ms: raw.p99_ms,
        max_error_rate: raw.max_error_rate,
        min_requests,
        interval,
        cooldown,
    })
}

/// The admin token from the config, else from `SWITCHYARD_ADMIN_TOKEN`; at least 16 visible
/// ASCII characters so it is a secret and fits a header.
fn admin_token(configured: Option<String>, problems: &mut Vec<String>) -> Option<String> {
    token(configured, "[server] admin_token", ADMIN_TOKEN_ENV, problems)
}

/// A bearer token from the config key `key`, else from the environment variable `env`; at least
/// 16 visible ASCII characters so it is a secret and fits a header.
fn token(configured: Option<String>, key: &str, env: &str, problems: &mut Vec<String>) -> Option<String> {
    let (token, from) = match configured {
        Some(t) => (t, key),
        None => match std::env::var(env) {
            Ok(t) if !t.is_empty() => (t, env),
            _ => return None,
        },
    };
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        problems.push(format!("{from} must be at least 16 visible ASCII characters (no spaces)"));
        return None;
    }
    Some(token)
}

fn validate_promotion(
    raw: &RawPromotion,
    label: &str,
    problems: &mut Vec<String>,
) -> crate::promotion::PromotionPolicy {
    let what = |key: &str| format!("{label}: promotion.{key}");
    for (key, map) in [("min_gain", &raw.min_gain), ("max_drift", &raw.max_drift)] {
        for (metric, v) in map {
            if !v.is_finite() || (key == "max_drift" && *v < 0.0) {
                problems.push(format!(
                    "{}.{metric} = {v} must be a finite number{}",
                    what(key),
                    if key == "max_drift" { " ≥ 0" } else { "" }
                ));
            }
        }
    }
    for (key, v) in [
        ("max_error_rate", raw.max_error_rate),
        ("min_shadow_agreement", raw.min_shadow_agreement),
        ("min_online_accuracy", raw.min_online_accuracy),
        ("max_slice_regression", raw.max_slice_regression),
        ("max_slice_gap", raw.max_slice_gap),
    ] {
        if let Some(v) = v
            && !(0.0..=1.0).contains(&v)
        {
            problems.push(format!("{} = {v} must be a share between 0 and 1", what(key)));
        }
    }
    if let Some(p) = raw.max_p99_ms
        && !(p.is_finite() && p > 0.0)
    {
        problems.push(format!("{} = {p} must be a positive number of milliseconds", what("max_p99_ms")));
    }
    crate::promotion::PromotionPolicy {
        min_gain: raw.min_gain.clone(),
        max_drift: raw.max_drift.clone(),
        max_p99_ms: raw.max_p99_ms,
        max_error_rate: raw.max_error_rate,
        min_shadow_agreement: raw.min_shadow_agreement,
        min_online_accuracy: raw.min_online_accuracy,
        min_requests: raw.min_requests,
        max_slice_regression: raw.max_slice_regression,
        max_slice_gap: raw.max_slice_gap,
        min_slice_labels: raw.min_slice_labels.unwrap_or(crate::promotion::DEFAULT_MIN_SLICE_LABELS),
        max_psi: raw.max_psi.inspect(|&p| {
            if !(p.is_finite() && p > 0.0) {
                problems.push(format!("{} = {p} must be a positive number (0.25 is a shift)", what("max_psi")));
            }
        }),
    }
}

fn validate_lineage(raw: RawLineage, problems: &mut Vec<String>) -> LineageConfig {
    let d = LineageConfig::default();
    let on_full = one_of(raw.on_full.as_deref(), d.on_full, "[lineage] on_full", problems);
    let durability = one_of(raw.durability.as_deref(), d.durability, "[lineage] durability", problems);
    let ack = one_of(raw.ack.as_deref(), d.ack, "[lineage] ack", problems);
    let ack_timeout = duration(
        raw.ack_timeout.as_deref(),
        d.ack_timeout,
        Duration::from_millis(10)..=Duration::from_secs(600),
        "[lineage] ack_timeout",
        problems,
    );
    LineageConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        capacity: bounded(raw.capacity, d.capacity as u64, 1..=10_000_000, "[lineage] capacity", problems) as usize,
        batch_max: bounded(raw.batch_max, d.batch_max as u64, 1..=100_000, "[lineage] batch_max", problems) as usize,
        flush_interval: duration(
            raw.flush_interval.as_deref(),
            d.flush_interval,
            Duration::ZERO..=Duration::from_secs(10),
            "[lineage] flush_interval",
            problems,
        ),
        on_full,
        durability,
        ack,
        ack_timeout,
    }
}

fn validate_upstream(raw: RawUpstream, problems: &mut Vec<String>) -> UpstreamConfig {
    let d = UpstreamConfig::default();
    let retry_budget = raw.retry_budget.unwrap_or(d.retry_budget);
    if !(0.0..=1.0).contains(&retry_budget) {
        problems.push(format!("[upstream] retry_budget = {retry_budget} must be between 0 and 1"));
    }
    UpstreamConfig {
        connect_timeout: duration(
            raw.connect_timeout.as_deref(),
            d.connect_timeout,
            Duration::from_millis(1)..=Duration::from_secs(60),
            "[upstream] connect_timeout",
            problems,
        ),
        max_concurrency: bounded(
            raw.max_concurrency,
            d.max_concurrency as u64,
            1..=100_000,
            "[upstream] max_concurrency",
            problems,
        ) as usize,
        retry_budget,
        health_interval: duration(
            raw.health_interval.as_deref(),
            d.health_interval,
            Duration::from_millis(10)..=Duration::from_secs(3600),
            "[upstream] health_interval",
            problems,
        ),
        eject_after: bounded(raw.eject_after, u64::from(d.eject_after), 1..=1000, "[upstream] eject_after", problems)
            as u32,
    }
}

fn selector(value: &toml::Value, label: &str, problems: &mut Vec<String>) -> Option<VersionSelector> {
    match value {
        toml::Value::Integer(n) if *n >= 1 && *n <= i64::from(u32::MAX) => Some(VersionSelector::Number(*n as u32)),
        toml::Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => match s.parse() {
            Ok(n) if n >= 1 => Some(VersionSelector::Number(n)),
            _ => {
                problems.push(format!("{label}: version {s:?} is not a version number ≥ 1"));
                None
            }
        },
        toml::Value::String(s)
            if !s.is_empty()
                && s.len() <= 63
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') =>
        {
            Some(VersionSelector::Alias(s.clone()))
        }
        other => {
            problems.push(format!("{label}: {other} is not a version number ≥ 1 or an alias name"));
            None
        }
    }
}

/// The value of a key spelled one of `choices`' ways, the first also the default when the key
/// is absent. Any other spelling is a problem (`{what} = "x" must be "a", "b" or "c"`) and gives
/// the default, so validation goes on.
/// A config value that is one of a closed set of words: the enum names its words once, and
/// parsing, messages and `as_str` all take them from there.
pub trait Choice: Copy + PartialEq + 'static {
    /// Every value with its word in the config file, in the order messages list them.
    const CHOICES: &'static [(&'static str, Self)];

    /// The word for this value in the config file.
    fn as_str(self) -> &'static str {
        Self::CHOICES.iter().find(|(_, v)| *v == self).map_or("", |(name, _)| name)
    }
}

impl Choice for OnFull {
    const CHOICES: &'static [(&'static str, Self)] = &[("block", OnFull::Block), ("drop", OnFull::Drop)];
}

impl Choice for LineageDurability {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("full", LineageDurability::Full), ("normal", LineageDurability::Normal)];
}

/// `value` read as a `T` (`default` when absent); an unknown word is a problem naming the words
/// `T` allows, and `default` stands in so the other problems are still found.
fn one_of<T: Choice>(value: Option<&str>, default: T, what: &str, problems: &mut Vec<String>) -> T {
    let Some(v) = value else { return default };
    if let Some(&(_, choice)) = T::CHOICES.iter().find(|(name, _)| *name == v) {
        return choice;
    }
    let names: Vec<String> = T::CHOICES.iter().map(|(name, _)| format!("{name:?}")).collect();
    let listed = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    };
    problems.push(format!("{what} = {v:?} must be {listed}"));
    default
}

fn bounded(
    value: Option<u64>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    what: &str,
    problems: &mut Vec<String>,
) -> u64 {
    let v = value.unwrap_or(default);
    if !range.contains(&v) {
        problems.push(format!("{what} = {v} must be between {} and {}", range.start(), range.end()));
    }
    v
}

/// `server_threads`: the threads serving requests (`[server] worker_threads`, else the cores),
/// which an inline version gets one session each of unless `instances` says otherwise.
fn validate_model(
    raw: RawModel,
    label: &str,
    server_threads: usize,
    problems: &mut Vec<String>,
) -> Option<ModelConfig> {
    let name = raw.name.clone().unwrap_or_default();
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && !name.contains("..")
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !name_ok {
        problems.push(format!(
            "{label}: name must be 1-128 characters of A-Z a-z 0-9 _ - . starting with a letter or digit"
        ));
    }
    let mut versions: Vec<VersionSelector> = Vec::new();
    match &raw.versions {
        None if raw.routing.is_some() => {}
        None => problems.push(format!(
            "{label}: versions (or a [model.routing] table) is required, e.g. versions = [1, \"champion\"]"
        )),
        Some(list) if list.is_empty() && raw.routing.is_none() => problems.push(format!("{label}: versions is empty")),
        Some(list) => {
            for v in list {
                if let Some(sel) = selector(v, label, problems) {
                    if versions.contains(&sel) {
                        problems.push(format!("{label}: version {sel} is listed twice"));
                    } else {
                        versions.push(sel);
                    }
                }
            }
        }
    }
    let routing = validate_routing(&raw, label, &mut versions, problems);
    let e = &raw.engine;
    let device = match e.device.as_deref().unwrap_or("cpu") {
        "cpu" => Device::Cpu,
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<i32>().ok()).filter(|n| *n >= 0) {
            Some(n) if cfg!(feature = "cuda") => Device::Cuda(n),
            Some(_) => {
                problems.push(format!("{label}: device {other:?} needs a build with `--features cuda`"));
                Device::Cpu
            }
            None => {
                problems.push(format!("{label}: device {other:?} must be \"cpu\" or \"cuda:N\""));
                Device::Cpu
            }
        },
    };
    let execution =
        one_of(e.execution.as_deref(), Execution::default(), &format!("{label}: engine.execution"), problems);
    let d = EngineSettings::default();
    let instances =
        bounded(e.instances, d.instances as u64, 1..=64, &format!("{label}: engine.instances"), problems) as usize;
    let engine = EngineSettings {
        device,
        instances,
        inline_instances: if e.instances.is_some() { instances } else { server_threads.clamp(1, 64) },
        execution,
        intra_op_threads: bounded(
            e.intra_op_threads,
            d.intra_op_threads as u64,
            1..=256,
            &format!("{label}: engine.intra_op_threads"),
            problems,
        ) as usize,
        max_batch: bounded(e.max_batch, d.max_batch as u64, 1..=4096, &format!("{label}: engine.max_batch"), problems)
            as usize,
        batch_delay: Duration::from_micros(bounded(
            e.batch_delay_us,
            d.batch_delay.as_micros() as u64,
            0..=1_000_000,
            &format!("{label}: engine.batch_delay_us"),
            problems,
        )),
        queue_capacity: bounded(
            e.queue_capacity,
            d.queue_capacity as u64,
            1..=1_000_000,
            &format!("{label}: engine.queue_capacity"),
            problems,
        ) as usize,
    };
    if engine.execution == Execution::Inline && engine.max_batch > 1 {
        problems.push(format!(
            "{label}: engine.execution = \"inline\" runs one request per call, so it cannot batch \
             (max_batch = {}); use execution = \"workers\" for dynamic batching",
            engine.max_batch
        ));
    }
    let lineage_input_sha256 = raw.lineage.input_sha256.unwrap_or(false);
    let guard = raw.guard.as_ref().and_then(|g| validate_guard(g, label, problems));
    let promotion = raw.promotion.as_ref().map(|p| validate_promotion(p, label, problems));
    let capture = raw.capture.as_ref().map(|c| validate_capture(c, label, problems));
    let validation = validate_validation(raw.validation.as_ref(), label, problems);
    let slices = raw.slices.as_ref().and_then(|s| validate_slices(s, label, problems));
    if let Some(p) = &promotion
        && (p.max_slice_regression.is_some() || p.max_slice_gap.is_some())
        && slices.is_none()
    {
        problems.push(format!(
            "{label}: promotion.max_slice_regression and max_slice_gap judge slices: add [model.slices] with a header"
        ));
    }
    // With problems the config is refused whole; the model is still returned, so that a check
    // can resolve its versions too (`ConfigError::partial`). A bad name or routing leaves
    // nothing to resolve.
    if !name_ok {
        return None;
    }
    Some(ModelConfig {
        name,
        versions,
        routing: routing?,
        engine,
        lineage_input_sha256,
        guard,
        promotion,
        capture,
        validation,
        slices,
    })
}

/// Most versions one routing list (challengers, shadows, backup) may name.
const MAX_ROUTED: usize = 64;

/// Percent (0–100) → basis points, refusing what is not a finite percentage.
fn basis_points(percent: f64, what: &str, problems: &mut Vec<String>) -> u32 {
    if !(0.0..=100.0).contains(&percent) {
        problems.push(format!("{what} = {percent} must be a percentage between 0 and 100"));
        return 0;
    }
    (percent * 100.0).round() as u32
}

fn key_selector(key: &str, label: &str, problems: &mut Vec<String>) -> Option<VersionSelector> {
    selector(&toml::Value::String(key.to_owned()), label, problems)
}

/// Validates `[model.routing]` (or derives it from `default_version`) and adds every version it
/// names to `versions`, so all of them are loaded and warm.
fn validate_routing(
    raw: &RawModel,
    label: &str,
    versions: &mut Vec<VersionSelector>,
    problems: &mut Vec<String>,
) -> Option<RoutingConfig> {
    let add = |sel: &VersionSelector, versions: &mut Vec<VersionSelector>| {
        if !versions.contains(sel) {
            versions.push(sel.clone());
        }
    };
    let Some(r) = &raw.routing else {
        let champion = match &raw.default_version {
            None => versions.first().cloned(),
            Some(v) => selector(v, label, problems).and_then(|sel| {
                if versions.contains(&sel) {
                    Some(sel)
                } else {
                    problems.push(format!("{label}: default_version {sel} is not one of its versions"));
                    None
                }
            }),
        }?;
        return Some(RoutingConfig {
            champion,
            challengers: vec![],
            shadows: vec![],
            backup: vec![],
            sticky_header: None,
        });
    };
    if raw.default_version.is_some() {
        problems.push(format!("{label}: set routing.champion or default_version, not both"));
    }
    let champion = match &r.champion {
        Some(v) => selector(v, label, problems),
        None => {
            problems.push(format!("{label}: routing.champion is required"));
            None
        }
    };
    let mut challengers = Vec::new();
    for (key, pct) in &r.challengers {
        let bp = basis_points(*pct, &format!("{label}: routing.challengers.{key}"), problems);
        if let Some(sel) = key_selector(key, label, problems) {
            if Some(&sel) == champion.as_ref() {
                problems.push(format!("{label}: version {sel} is both champion and challenger"));
            }
            challengers.push((sel, bp));
        }
    }
    // Summed wide: thousands of 100% entries must be a problem, not an overflow.
    let total: u64 = challengers.iter().map(|(_, bp)| u64::from(*bp)).sum();
    if total > 10_000 {
        problems.push(format!("{label}: challenger weights add up to {}%, more than 100%", total as f64 / 100.0));
    }
    for (what, n) in [("challengers", r.challengers.len()), ("shadows", r.shadows.len()), ("backup", r.backup.len())] {
        if n > MAX_ROUTED {
            problems.push(format!("{label}: routing.{what} names {n} versions; at most {MAX_ROUTED}"));
        }
    }
    let mut shadows = Vec::new();
    for (key, pct) in &r.shadows {
        let bp = basis_points(*pct, &format!("{label}: routing.shadows.{key}"), problems);
        if let Some(sel) = key_selector(key, label, problems) {
            if Some(&sel) == champion.as_ref() || challengers.iter().any(|(c, _)| *c == sel) {
                problems.push(format!("{label}: shadow {sel} already serves live traffic"));
            }
            shadows.push((sel, bp));
        }
    }
    let backup: Vec<VersionSelector> = r.backup.iter().filter_map(|v| selector(v, label, problems)).collect();
    let sticky_header = r.sticky_header.as_ref().and_then(|h| {
        let lower = h.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_ok() && !lower.is_empty() {
            Some(lower)
        } else {
            problems.push(format!("{label}: routing.sticky_header {h:?} is not a valid header name"));
            None
        }
    });
    let champion = champion?;
    add(&champion, versions);
    for sel in challengers.iter().map(|(s, _)| s).chain(shadows.iter().map(|(s, _)| s)).chain(&backup) {
        add(sel, versions);
    }
    Some(RoutingConfig { champion, challengers, shadows, backup, sticky_header })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
