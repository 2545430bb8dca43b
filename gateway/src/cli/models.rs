//! `switchyard models …`: register versions (ONNX file + provenance manifest), import them from
//! Triton or MLflow layouts, list, show, set stages and aliases, and garbage-collect the
//! artifacts of long-archived versions. Every command works on a store directory and takes
//! `--json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use model_store::{GcOptions, Manifest, ModelStore, NewVersion, Registry, Signature, Stage};
use serde_json::json;

use crate::engine::{EngineSettings, Runtime, convert};

use super::import::ImportCommand;

/// Where a registry verb acts: a store directory, or a running gateway's admin API.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// The store directory (artifacts and registry.db), as `models register` made it.
    #[arg(long, env = "SWITCHYARD_STORE", required_unless_present = "url")]
    store: Option<PathBuf>,
    /// A running gateway's admin URL (http://HOST:PORT): act through its admin API instead of
    /// a store directory, e.g. from a training pipeline on another machine.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Bearer token for the admin API (with --url).
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// A remote version's upstream, as `models register` takes it.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Register a remote version: the base URL of the v2 server that answers it
    /// (http://HOST:PORT; Triton, KServe, MLServer or another Switchyard). Its signature is read
    /// from the server's model metadata.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// The model's name on the upstream (default: --model).
    #[arg(long, value_name = "NAME", requires = "upstream")]
    upstream_model: Option<String>,
    /// The upstream's version of the model (default: the upstream picks).
    #[arg(long, value_name = "VERSION", requires = "upstream")]
    upstream_version: Option<String>,
    /// How to speak to the upstream: `http1` (a pool of keep-alive connections) or `h2c`
    /// (HTTP/2 with prior knowledge, one multiplexed connection).
    #[arg(long, value_name = "PROTOCOL", default_value = "http1", requires = "upstream")]
    upstream_protocol: model_store::UpstreamProtocol,
    /// Send the upstream binary tensors (the v2 binary tensor extension, outputs asked binary
    /// too) instead of JSON: cheaper for large tensors; Triton, KServe and Switchyard take them,
    /// MLServer does not.
    #[arg(long, requires = "upstream")]
    upstream_binary: bool,
}

impl RemoteArgs {
    /// The upstream named, checked; `None` without --upstream.
    fn resolve(&self, model: &str) -> anyhow::Result<Option<model_store::Upstream>> {
        let Some(url) = &self.upstream else { return Ok(None) };
        let name = self.upstream_model.as_deref().unwrap_or(model);
        let upstream = model_store::Upstream::new(url, name, self.upstream_version.as_deref())?;
        Ok(Some(model_store::Upstream { protocol: self.upstream_protocol, binary: self.upstream_binary, ..upstream }))
    }
}

/// `RegistryArgs`, resolved: what a registry verb acts through.
enum Via {
    Store(PathBuf),
    Gateway(crate::client::AdminClient),
}

impl RegistryArgs {
    fn resolve(self) -> anyhow::Result<Via> {
        match (self.url, self.store) {
            (Some(url), _) => Ok(Via::Gateway(crate::client::AdminClient::new(&url, self.token.as_deref())?)),
            (None, Some(store)) => Ok(Via::Store(store)),
            (None, None) => bail!("give --store DIR or --url URL"),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Register an ONNX file as a new version (or find the existing version with the same bytes),
    /// or a remote version answered by another v2 server (--upstream).
    Register {
        #[command(flatten)]
        registry: RegistryArgs,
        /// The model name.
        #[arg(long)]
        model: String,
        /// The ONNX model file to register.
        #[arg(long, required_unless_present = "upstream", conflicts_with = "upstream")]
        file: Option<PathBuf>,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Provenance manifest (TOML or JSON).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Who registers, recorded in the event (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
        /// ONNX Runtime library used to read the model's signature.
        #[arg(long, env = "SWITCHYARD_ONNXRUNTIME")]
        onnxruntime: Option<PathBuf>,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
    /// Import versions from a Triton model repository or an MLflow model directory, keeping
    /// where each came from in its manifest.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Remove the artifact files of versions archived for longer than the retention, when no
    /// alias points at them and no other live version shares the file. Records, provenance,
    /// events and lineage stay.
    Gc {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// How long a version must have been archived first, e.g. 30d, 12h, 0s.
        #[arg(long, default_value = "30d")]
        retention: humantime::Duration,
        /// List what would be collected and removed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Who acts, recorded in the event (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
    /// List models with their version counts and aliases.
    List {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
    /// Show a model's versions (NAME), or one version with its provenance and history (NAME:VERSION).
    Show {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// NAME or NAME:VERSION (VERSION may be a number or an alias).
        target: String,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
    /// Move a version to a stage: staging, production or archived.
    Stage {
        #[command(flatten)]
        registry: RegistryArgs,
        /// NAME:VERSION
        target: String,
        stage: String,
        /// Archive a version although a running gateway serves it (recorded in the event).
        #[arg(long)]
        force: bool,
        /// Who acts, recorded in the event (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
    /// Point an alias at a version (NAME:VERSION ALIAS), or remove it with --remove (NAME ALIAS).
    Alias {
        #[command(flatten)]
        registry: RegistryArgs,
        target: String,
        alias: String,
        /// Remove the alias instead of setting it.
        #[arg(long)]
        remove: bool,
        /// Remove an alias although a running gateway serves its version.
        #[arg(long)]
        force: bool,
        /// Who acts, recorded in the event (default: cli:$USER).
        #[arg(long)]
        actor: Option<String>,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
    /// Compute the training data's profile (per feature: range, mean, std, deciles) from a
    /// NumPy .npy file, as the `[data_profile.INPUT]` table of a manifest: live inputs are then
    /// measured against it (drift) and checked (`[model.validation]`).
    Profile {
        /// The training inputs: float32 or float64, `[rows, features]` or `[rows]`.
        #[arg(long, value_name = "FILE.npy")]
        data: PathBuf,
        /// The model input the profile describes.
        #[arg(long, default_value = "input")]
        input: String,
        /// Print the profile as JSON instead of a TOML table.
        #[arg(long)]
        json: bool,
    },
    /// Compare two versions of a model: provenance with what differs marked, offline metrics
    /// with deltas, live figures from lineage and feedback, whether B can replace A for A's
    /// callers, and the events between them.
    Diff {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// NAME:A (A a number or an alias).
        a: String,
        /// NAME:B, or just B (a number or an alias) for the same model.
        b: String,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
    /// Render a version's model card: intended use, signature, provenance, offline metrics, live
    /// traffic, latency, errors and feedback, guard trips, stage and alias history.
    Card {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// NAME:VERSION (VERSION may be a number or an alias).
        target: String,
        /// `markdown` (for people; the default) or `json` (same as --json).
        #[arg(long, value_enum, default_value_t)]
        format: super::card::CardFormat,
        /// Same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
}

pub fn run(cmd: ModelsCommand) -> anyhow::Result<i32> {
    match cmd {
        ModelsCommand::Register { registry, model, file, remote, manifest, actor, onnxruntime, json } => {
            let actor = super::actor(actor);
            let what = match (remote.resolve(&model)?, file) {
                (Some(upstream), _) => Registration::Remote(upstream),
                (None, Some(file)) => Registration::File(file),
                (None, None) => bail!("give --file FILE, or --upstream URL for a remote version"),
            };
            match registry.resolve()? {
                Via::Gateway(client) => {
                    super::block_on(gateway_register(&client, &model, &what, manifest.as_deref(), &actor, json))?
                }
                Via::Store(store) => {
                    register(&store, &model, &what, manifest.as_deref(), actor, onnxruntime.as_deref(), json)
                }
            }
        }
        ModelsCommand::Import(cmd) => super::import::run(cmd),
        ModelsCommand::Gc { store, retention, dry_run, actor, json } => {
            let options = GcOptions { retention: retention.into(), dry_run, actor: super::actor(actor) };
            super::block_on(gc(&store, &options, json))?
        }
        ModelsCommand::List { store, json } => super::block_on(list(&store, json))?,
        ModelsCommand::Show { store, target, json } => super::block_on(show(&store, &target, json))?,
        ModelsCommand::Stage { registry, target, stage, force, actor, json } => {
            let actor = super::actor(actor);
            match registry.resolve()? {
                Via::Gateway(client) => super::block_on(async {
                    let (name, selector) = parse_version_target(&target)?;
                    let event = client.set_stage(name, selector, &stage, force, &actor).await?;
                    print_event(&event, json, || format!("{name} version {} is now {stage}", text(&event["version"])));
                    anyhow::Ok(0)
                })?,
                Via::Store(store) => super::block_on(set_stage(&store, &target, &stage, force, &actor, json))?,
            }
        }
        ModelsCommand::Alias { registry, target, alias, remove, force, actor, json } => {
            let actor = super::actor(actor);
            match registry.resolve()? {
                Via::Gateway(client) => super::block_on(async {
                    let event = if remove {
                        let (name, extra) = split_target(&target);
                        if extra.is_some() {
                            bail!("--remove takes NAME ALIAS, not NAME:VERSION");
                        }
                        client.remove_alias(name, &alias, force, &actor).await?
                    } else {
                        let (name, selector) = parse_version_target(&target)?;
                        client.set_alias(name, &alias, selector, &actor).await?
                    };
                    print_event(&event, json, || match remove {
                        true => format!("removed alias {alias} of {}", text(&event["model"])),
                        false => format!("{} {alias} → version {}", text(&event["model"]), text(&event["version"])),
                    });
                    anyhow::Ok(0)
                })?,
                Via::Store(store) => super::block_on(set_alias(&store, &target, &alias, remove, force, &actor, json))?,
            }
        }
        ModelsCommand::Profile { data, input, json } => super::profile::run(&data, &input, json),
        ModelsCommand::Diff { store, a, b, json } => super::block_on(diff(&store, &a, &b, json))?,
        ModelsCommand::Card { store, target, format, json } => {
            let format = if json { super::card::CardFormat::Json } else { format };
            super::block_on(super::card::card(&store, &target, format))?
        }
    }
}

/// A registry event as the commands print it: JSON, or `human`.
fn print_event(event: &serde_json::Value, json: bool, human: impl FnOnce() -> String) {
    if json {
        out!("{event}");
    } else {
        out!("{}", human());
    }
}

/// A JSON value as people read it.
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What `models register` registers: a model file, or a remote version's upstream.
enum Registration {
    File(PathBuf),
    Remote(model_store::Upstream),
}

/// `models register --url`: the file (or upstream) and its manifest sent to a running gateway,
/// which reads the signature with its own engine (or from the upstream) and registers them in
/// its store.
async fn gateway_register(
    client: &crate::client::AdminClient,
    model: &str,
    what: &Registration,
    manifest: Option<&Path>,
    actor: &str,
    json: bool,
) -> anyhow::Result<i32> {
    // Checked here first, so a bad manifest is reported with its file name before any upload.
    let manifest = match manifest {
        Some(path) => Some(serde_json::to_value(Manifest::from_path(path)?)?),
        None => None,
    };
    let v = match what {
        Registration::File(file) => {
            let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            client.register(model, &bytes, manifest, actor).await?
        }
        Registration::Remote(upstream) => client.register_remote(model, upstream, manifest, actor).await?,
    };
    if json {
        out!("{v}");
    } else {
        print_registered(&text(&v["model"]), &text(&v["version"]), &text(&v["sha256"]), v["created"] == true, what);
    }
    Ok(0)
}

fn register(
    store: &Path,
    model: &str,
    what: &Registration,
    manifest: Option<&Path>,
    actor: String,
    onnxruntime: Option<&Path>,
    json: bool,
) -> anyhow::Result<i32> {
    // Everything that can refuse the version happens before the store is touched.
    let manifest = manifest.map(Manifest::from_path).transpose()?;
    let new = match what {
        Registration::File(file) => {
            let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let runtime = Runtime::load(onnxruntime)?;
            let signature = read_signature(runtime, &bytes, file)?;
            NewVersion { model: model.to_owned(), bytes, upstream: None, signature, manifest, actor }
        }
        Registration::Remote(upstream) => {
            let config = settings::UpstreamConfig::default();
            let signature = super::block_on(crate::upstream::read_signature(upstream, &config))?
                .map_err(|e| anyhow!("cannot read the remote model's signature: {e}"))?;
            NewVersion::remote(model.to_owned(), upstream.clone(), signature, manifest, actor)
        }
    };
    let registered = super::block_on(async {
        let store = ModelStore::open(store).await?;
        store.register(new).await
    })??;
    let v = &registered.version;
    if json {
        out!(
            "{}",
            json!({ "model": v.model, "version": v.version, "sha256": v.sha256, "size": v.size, "created": registered.created, "upstream": v.upstream })
        );
    } else {
        print_registered(&v.model, &v.version.to_string(), &v.sha256, registered.created, what);
    }
    Ok(0)
}

/// The line `models register` prints.
fn print_registered(model: &str, version: &str, sha256: &str, created: bool, what: &Registration) {
    let (kind, same) = match what {
        Registration::File(_) => (String::new(), "same bytes"),
        Registration::Remote(upstream) => (format!(" (remote: {upstream})"), "same upstream"),
    };
    if created {
        out!("registered {model} version {version} sha256 {sha256}{kind}");
    } else {
        out!("already registered: {model} version {version} sha256 {sha256}{kind} ({same})");
    }
}

/// Opens a model file's bytes with ONNX Runtime and reads its signature: the check every
/// registration (`register`, `import`) passes before the store is touched. `file` names it in
/// errors.
pub(super) fn read_signature(runtime: &Runtime, bytes: &[u8], file: &Path) -> anyhow::Result<Signature> {
    let session = crate::engine::build_session(runtime, bytes, &EngineSettings::default())
        .map_err(|e| anyhow!("{} is not a model ONNX Runtime can load: {e}", file.display()))?;
    convert::signature_of(&session).map_err(|e| anyhow!("{}: {e}", file.display()))
}

async fn diff(store: &Path, a: &str, b: &str, json: bool) -> anyhow::Result<i32> {
    let (model, a) = parse_version_target(a)?;
    let b = match split_target(b) {
        (name, Some(v)) if name == model => v,
        (name, Some(_)) => bail!("both versions must be of one model: {model} and {name}"),
        (v, None) => v,
    };
    let store = open_existing(store).await?;
    let d = store.registry().diff(model, a, b).await?;
    if json {
        out!("{}", serde_json::to_string(&d)?);
        return Ok(0);
    }
    let who = |s: &model_store::DiffSide| {
        format!("version {} ({}, sha256 {}…)", s.version, s.stage, &s.sha256[..12.min(s.sha256.len())])
    };
    out!("{model}: {} → {}", who(&d.a), who(&d.b));
    out!("provenance:");
    for f in &d.provenance {
        out!("  {} {:<36} {} → {}", if f.differs { "≠" } else { " " }, f.field, text(&f.a), text(&f.b));
    }
    out!("offline metrics:");
    for m in &d.metrics {
        let n = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x}"));
        let delta = m.delta.map_or(String::new(), |d| format!("  ({d:+.4})"));
        out!("  {:<38} {} → {}{delta}", m.metric, n(m.a), n(m.b));
    }
    out!("live (lineage and feedback):");
    out!(
        "  {:<8} {:>9} {:>9} {:>9} {:>11} {:>16}",
        "",
        "requests",
        "p50 ms",
        "p99 ms",
        "error rate",
        "online accuracy"
    );
    for (side, s) in [("A", &d.live["a"]), ("B", &d.live["b"])] {
        let ms = |us: Option<u64>| us.map_or("-".to_owned(), |us| format!("{:.3}", us as f64 / 1000.0));
        let pct = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.2}%", r * 100.0));
        out!(
            "  {side:<8} {:>9} {:>9} {:>9} {:>11} {:>16}",
            s.requests,
            ms(s.p50_us),
            ms(s.p99_us),
            pct(s.error_rate),
            pct(s.online_accuracy)
        );
    }
    if d.signature.compatible {
        out!("signature: B can replace A for A's callers");
    } else {
        out!("signature: B cannot replace A for A's callers:");
        for p in &d.signature.problems {
            out!("  - {p}");
        }
    }
    out!("events between them: {}", d.events.len());
    for e in &d.events {
        out!("  {}  {:<16} v{:<4} {}", e.at, e.kind, e.version.map_or("-".to_owned(), |v| v.to_string()), e.actor);
    }
    Ok(0)
}

async fn gc(store: &Path, options: &GcOptions, json: bool) -> anyhow::Result<i32> {
    let store = open_existing(store).await?;
    let report = store.collect_garbage(options).await?;
    if json {
        out!("{}", serde_json::to_string(&report)?);
        return Ok(0);
    }
    let (collect, remove) = if report.dry_run { ("would collect", "would remove") } else { ("collected", "removed") };
    let (collected, removed) =
        if report.dry_run { ("would be collected", "would be removed") } else { ("collected", "removed") };
    for v in &report.collected {
        out!("{collect} {} v{} sha256 {} ({} bytes, archived {})", v.model, v.version, v.sha256, v.size, v.archived_at);
    }
    for v in &report.kept {
        out!("kept {} v{}: {}", v.model, v.version, v.reason);
    }
    for file in &report.removed {
        if file.already_gone {
            out!("{remove} artifact sha256 {} (already gone)", file.sha256);
        } else {
            out!("{remove} artifact sha256 {} ({} bytes)", file.sha256, file.size);
        }
    }
    let freed: u64 = report.removed.iter().map(|file| file.size).sum();
    out!(
        "{}{} version(s) {collected}, {} file(s) {removed}, {freed} bytes {} (retention {})",
        if report.dry_run { "dry run: " } else { "" },
        report.collected.len(),
        report.removed.len(),
        if report.dry_run { "would be freed" } else { "freed" },
        humantime::format_duration(options.retention)
    );
    Ok(0)
}

async fn list(store: &Path, json: bool) -> anyhow::Result<i32> {
    let store = open_existing(store).await?;
    let models = store.registry().models().await?;
    if json {
        // Aliases as a list, the shape `show --json` gives a version's (`[]` when none).
        let listed: Vec<serde_json::Value> = models
            .iter()
            .map(|m| {
                let aliases: Vec<serde_json::Value> =
                    m.aliases.iter().map(|(a, v)| serde_json::json!({ "alias": a, "version": v })).collect();
                serde_json::json!({
                    "name": m.name, "versions": m.versions, "latest": m.latest,
                    "created_at": m.created_at, "aliases": aliases,
                })
            })
            .collect();
        out!("{}", serde_json::to_string(&listed)?);
        return Ok(0);
    }
    out!("{:<24} {:>8} {:>7}  ALIASES", "MODEL", "VERSIONS", "LATEST");
    for m in models {
        let aliases: Vec<String> = m.aliases.iter().map(|(a, v)| format!("{a}→{v}")).collect();
        out!("{:<24} {:>8} {:>7}  {}", m.name, m.versions, m.latest, aliases.join(" "));
    }
    Ok(0)
}

/// Splits `NAME[:VERSION]`.
fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once(':') {
        Some((name, version)) => (name, Some(version)),
        None => (target, None),
    }
}

/// Opens a store that already exists, refusing a directory without `registry.db`: commands
/// that only read or change a registered model must not create an empty store from a typo.
pub(super) async fn open_existing(dir: &Path) -> anyhow::Result<ModelStore> {
    if !dir.join("registry.db").is_file() {
        bail!(
            "{} is not a model store (no registry.db); `switchyard models register --store {}` creates one",
            dir.display(),
            dir.display()
        );
    }
    Ok(ModelStore::open(dir).await?)
}

async fn show(store: &Path, target: &str, json: bool) -> anyhow::Result<i32> {
    let store = open_existing(store).await?;
    let registry = store.registry();
    let (name, version) = split_target(target);
    let Some(selector) = version else {
        let versions = registry.versions(name).await?;
        if json {
            out!("{}", serde_json::to_string(&versions)?);
        } else {
            out!("{:>7}  {:<10} {:<64} {:>9}  {:<24} ALIASES", "VERSION", "STAGE", "SHA256", "SIZE", "CREATED");
            for v in versions {
                out!(
                    "{:>7}  {:<10} {:<64} {:>9}  {:<24} {}",
                    v.version,
                    v.stage.to_string(),
                    v.sha256,
                    v.size,
                    v.created_at,
                    v.aliases.join(",")
                );
            }
        }
        return Ok(0);
    };
    let v = registry.resolve(name, selector).await?;
    let provenance = registry.provenance(name, v.version).await?;
    let events = registry.events(name, Some(v.version)).await?;
    if json {
        out!("{}", json!({ "version": v, "provenance": provenance, "events": events }));
        return Ok(0);
    }
    out!("model:     {}", v.model);
    out!("version:   {}", v.version);
    out!("sha256:    {}", v.sha256);
    out!("size:      {} bytes", v.size);
    if let Some(upstream) = &v.upstream {
        out!("upstream:  {upstream} (remote: answered by that server; sha256 is of this binding)");
    }
    out!("stage:     {}", v.stage);
    out!("aliases:   {}", if v.aliases.is_empty() { "-".to_owned() } else { v.aliases.join(", ") });
    out!("created:   {}", v.created_at);
    if let Some(collected) = &v.collected_at {
        out!("collected: {collected} (artifact removed by `models gc`; this version cannot be loaded)");
    }
    out!("inputs:");
    for t in &v.signature.inputs {
        out!("  {:<16} {:<6} {:?}", t.name, t.datatype, t.shape);
    }
    out!("outputs:");
    for t in &v.signature.outputs {
        out!("  {:<16} {:<6} {:?}", t.name, t.datatype, t.shape);
    }
    match provenance {
        None => out!("provenance: none recorded"),
        Some(m) => {
            out!("provenance:");
            // The manifest's own TOML form is the most readable and round-trips exactly.
            let text = toml::to_string(&m).unwrap_or_else(|_| format!("{m:?}"));
            for line in text.lines() {
                out!("  {line}");
            }
        }
    }
    out!("events:");
    for e in events {
        out!("  {}  {:<14} {:<16} {}", e.at, e.kind, e.actor, e.detail);
    }
    Ok(0)
}

pub(super) fn parse_version_target(target: &str) -> anyhow::Result<(&str, &str)> {
    match split_target(target) {
        (name, Some(v)) if !name.is_empty() && !v.is_empty() => Ok((name, v)),
        _ => bail!("expected NAME:VERSION, got {target:?}"),
    }
}

/// Refuses to retire (`what`) a version a running gateway serves, naming who serves it and how,
/// unless `force`.
async fn refuse_if_served(
    registry: &Registry,
    model: &str,
    version: u32,
    what: &str,
    force: bool,
) -> anyhow::Result<()> {
    let claims = registry.served_by(model, version).await?;
    if claims.is_empty() || force {
        return Ok(());
    }
    let by: Vec<String> = claims.iter().map(|c| format!("{} (as {})", c.replica, c.roles.join(", "))).collect();
    bail!(
        "refusing to {what}: version {version} of '{model}' is being served by {}; change the gateway's \
         config (or its routing) first, or pass --force to do it anyway",
        by.join(", ")
    )
}

async fn set_stage(
    store: &Path,
    target: &str,
    stage: &str,
    force: bool,
    actor: &str,
    json: bool,
) -> anyhow::Result<i32> {
    let (name, selector) = parse_version_target(target)?;
    let stage: Stage = stage.parse().map_err(|e| anyhow!("{e}"))?;
    let store = open_existing(store).await?;
    let v = store.registry().resolve(name, selector).await?;
    if stage == Stage::Archived {
        refuse_if_served(store.registry(), name, v.version, "archive it", force).await?;
    }
    let event = store.registry().set_stage(name, v.version, stage, actor).await?;
    if json {
        out!("{}", serde_json::to_string(&event)?);
    } else {
        out!("{} version {} is now {}", name, v.version, stage);
    }
    Ok(0)
}

async fn set_alias(
    store: &Path,
    target: &str,
    alias: &str,
    remove: bool,
    force: bool,
    actor: &str,
    json: bool,
) -> anyhow::Result<i32> {
    let store = open_existing(store).await?;
    let registry = store.registry();
    let event = if remove {
        let (name, extra) = split_target(target);
        if extra.is_some() {
            bail!("--remove takes NAME ALIAS, not NAME:VERSION");
        }
        let target = registry.resolve(name, alias).await?;
        refuse_if_served(registry, name, target.version, &format!("remove alias '{alias}'"), force).await?;
        registry.remove_alias(name, alias, actor).await?
    } else {
        let (name, selector) = parse_version_target(target)?;
        let v = registry.resolve(name, selector).await?;
        registry.set_alias(name, alias, v.version, actor).await?
    };
    if json {
        out!("{}", serde_json::to_string(&event)?);
    } else if remove {
        out!("removed alias {alias} of {}", event.model);
    } else {
        out!("{} {alias} → version {}", event.model, event.version.map(|v| v.to_string()).unwrap_or_default());
    }
    Ok(0)
}
