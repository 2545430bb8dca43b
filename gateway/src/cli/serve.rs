//! `switchyard serve` and `switchyard config check`: start-up, listeners, signals, shutdown.

use anyhow::Context;
use model_store::ModelStore;
use settings::{Config, LINEAGE_DRAIN_FLOOR};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::App;
use crate::control::{self, Control};
use crate::engine::{Loader, Runtime};
use crate::grpc;
use crate::http::{admin, public, server};
use crate::lineage;
use crate::serving::ServingState;

/// Whether `config check` resolves the versions a config names in its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    Always,
    WhenTheStoreExists,
    Never,
}

/// `switchyard config check FILE`: every problem of the file, then (per `resolve`) every
/// reference its store cannot satisfy, also for a file with other problems (what could be read
/// of it is resolved).
pub fn check(file: &Path, resolve: Resolve, json: bool) -> anyhow::Result<i32> {
    let (config, mut problems) = match Config::load(file) {
        Ok(config) => (Some(config), Vec::new()),
        Err(e) => (e.partial.map(|c| *c), e.problems),
    };
    if let Some(config) = config {
        let store_exists = config.store_path.join("registry.db").is_file();
        if resolve == Resolve::Always || (resolve == Resolve::WhenTheStoreExists && store_exists) {
            problems.extend(super::block_on(resolve_problems(&config))??);
        }
    }
    problems.dedup();
    if json {
        out!(
            "{}",
            serde_json::json!({ "file": file.display().to_string(), "ok": problems.is_empty(), "problems": problems })
        );
    } else if problems.is_empty() {
        out!("{}: OK", file.display());
    } else {
        out!("{} has {} problem(s):", file.display(), problems.len());
        for p in &problems {
            out!("  - {p}");
        }
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// Checks that every version the config names exists in its store (without loading any).
async fn resolve_problems(config: &Config) -> anyhow::Result<Vec<String>> {
    if !config.store_path.join("registry.db").is_file() {
        return Ok(vec![format!(
            "store {} has no registry.db: register a model there first",
            config.store_path.display()
        )]);
    }
    let store = ModelStore::open(&config.store_path).await?;
    let mut problems = Vec::new();
    for model in &config.models {
        for selector in &model.versions {
            match store.registry().resolve(&model.name, &selector.to_string()).await {
                Ok(record) if record.stage == model_store::Stage::Archived => {
                    problems.push(crate::serving::archived_problem(&model.name, selector, &record));
                }
                Ok(_) => {}
                Err(e) => problems.push(format!("model '{}': version {selector}: {e}", model.name)),
            }
        }
    }
    Ok(problems)
}

/// `switchyard serve --config FILE`: exits 0 after a graceful shutdown.
pub fn serve(config_path: &Path) -> anyhow::Result<i32> {
    let (config, digest) = match Config::load_with_digest(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.server.worker_threads {
        builder.worker_threads(n);
    }
    let rt = builder.thread_name("switchyard-io").enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(run(config, config_path, digest))
}

async fn run(config: Config, config_path: &Path, digest: [u8; 32]) -> anyhow::Result<i32> {
    // Before anything records a metric (loading versions sets their info gauges).
    crate::telemetry::metrics_handle();
    let runtime = Runtime::load(config.onnxruntime.as_deref())?;
    tracing::info!(library = %runtime.library().display(), "ONNX Runtime loaded");
    let store = Arc::new(
        ModelStore::open(&config.store_path)
            .await
            .with_context(|| format!("cannot open the model store at {}", config.store_path.display()))?,
    );
    let loader = Loader::Onnx(runtime);
    let serving = match ServingState::build(&config, &store, loader, None).await {
        Ok(staged) => staged.commit(),
        Err(problems) => {
            eprintln!("error: the config names versions the store cannot provide:");
            for p in problems {
                eprintln!("  - {p}");
            }
            return Ok(2);
        }
    };
    let (lineage, writer) = if config.lineage.enabled {
        let (sink, writer) =
            lineage::start(store.registry(), &config.lineage, &crate::control::replica_id(&config.server))?;
        (Some(sink), Some(writer))
    } else {
        (None, None)
    };
    let control = Control::new(loader, store, serving, config.clone(), Some(config_path.to_path_buf()), Some(digest));
    let alerts = crate::alerts::Alerts::start(config.alerts.clone(), control.replica().to_owned());
    let control = Arc::new(control.with_alerts(alerts));
    let capture = if config.models.iter().any(|m| m.capture.is_some()) {
        Some(
            crate::capture::CaptureSink::start(&config.store_path)
                .with_context(|| format!("cannot start payload capture under {}", config.store_path.display()))?,
        )
    } else {
        None
    };
    let mut app = App::new(Arc::clone(&control), &config, lineage);
    app.pipeline = app.pipeline.with_capture(capture);
    let app = Arc::new(app);

    let public_listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let admin_listener = TcpListener::bind(config.server.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", config.server.admin_listen))?;
    let grpc_listener = match config.server.grpc_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} (gRPC)"))?),
        None => None,
    };
    let public_addr = public_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let grpc_addr = grpc_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    // Built before anything is served: a service that cannot be built stops the start.
    let grpc_services = match grpc_addr {
        Some(_) => Some(grpc::Services::new(Arc::clone(&app)).await?),
        None => None,
    };

    // Shutdown has one deadline, set when the signal arrives: the listeners drain until it,
    // shadow runs get what is left, the lineage writer what is left after that.
    let (stop_tx, stop_rx) = watch::channel(false);
    let drain = config.server.drain_timeout;
    let limits = server::Limits {
        max_connections: config.server.max_connections,
        max_header_bytes: config.server.max_header_bytes,
    };
    let public_app = Arc::clone(&app);
    let public = tokio::spawn(server::serve(
        public_listener,
        move |req| public::handle(Arc::clone(&public_app), req),
        stop_rx.clone(),
        drain,
        limits,
    ));
    let admin_app = Arc::clone(&app);
    let admin = tokio::spawn(server::serve(
        admin_listener,
        move |req| admin::handle(Arc::clone(&admin_app), req),
        stop_rx.clone(),
        drain,
        limits,
    ));
    let grpc_limits = grpc::Limits {
        max_connections: config.server.max_connections,
        max_header_bytes: config.server.max_header_bytes,
    };
    let grpc = grpc_listener
        .zip(grpc_services)
        .map(|(listener, services)| tokio::spawn(grpc::serve(listener, services, stop_rx.clone(), drain, grpc_limits)));
    let guard = tokio::spawn(control::guard::run(Arc::clone(&control), stop_rx.clone()));
    let watcher = tokio::spawn(control::watch_config(Arc::clone(&control), stop_rx.clone()));
    let publisher = tokio::spawn(control::publish::run(Arc::clone(&control), stop_rx.clone()));
    // Signal handlers exist before anyone can learn our ports: a SIGTERM sent the moment the
    // line below is read must already mean "drain and exit 0".
    let mut signals = Signals::install()?;
    let mut hangup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let reload_control = Arc::clone(&control);
    let reloader = tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let _ = reload_control.reload("sighup").await;
        }
    });
    // One line on stdout that scripts and tests read to find the ports (useful with port 0).
    // The gRPC address comes last, and only when enabled: scripts that read the first two keep
    // working.
    let grpc_text = grpc_addr.map(|a| format!(" grpc=http://{a}")).unwrap_or_default();
    out!("switchyard listening public=http://{public_addr} admin=http://{admin_addr}{grpc_text}");
    tracing::info!(%public_addr, %admin_addr, grpc_addr = ?grpc_addr, "serving");

    signals.recv().await;
    let deadline = tokio::time::Instant::now() + drain;
    tracing::info!(?drain, "shutting down: no new connections; finishing in-flight requests");
    let _ = stop_tx.send(true);
    // A second signal means "now".
    tokio::spawn(async move {
        signals.recv().await;
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    reloader.abort();
    let grpc = async {
        if let Some(task) = grpc {
            let _ = task.await;
        }
    };
    let _ = tokio::join!(public, admin, grpc, guard, watcher, publisher);
    // Every request has answered, so every primary record is in the channel. Shadow runs still
    // going add theirs; then the writer drains the channel.
    if !app.pipeline.drain_shadows(deadline).await {
        tracing::warn!("shadow runs still going after the drain deadline; their records are dropped");
    }
    if let Some(writer) = writer {
        // What is left of the deadline, and never less than the floor: records of requests
        // that were answered are written even when a stuck request used the whole drain.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        writer.drain(left.max(LINEAGE_DRAIN_FLOOR)).await;
    }
    tracing::info!("stopped");
    Ok(0)
}

/// SIGTERM and SIGINT, listened for from `install` on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
