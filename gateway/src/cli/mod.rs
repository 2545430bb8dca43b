//! Command-line interface: `serve`, `config check`, `models …`, `lineage …` and `admin …` (the
//! last talks to a running gateway's admin API; the others work on files and stores). Every
//! command that prints takes `--json`, except `lineage query`, which always prints JSON lines.
//! Errors reach `main` as `anyhow` with a one-line cause chain.

/// `println!` that ignores a closed stdout (`switchyard models list | head` must not panic).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod admin;
mod card;
mod import;
mod lineage;
mod models;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Switchyard: an inference gateway for ONNX models with versioning built in.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the models named in a config file (KServe v2 on `listen`, admin on `admin_listen`).
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Register and inspect model versions in a store.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Read per-request lineage records from a store: how a request was answered, or a model's
    /// records over a time range.
    #[command(subcommand)]
    Lineage(lineage::LineageCommand),
    /// Inspect and steer a running gateway through its admin API: promote, roll back, set
    /// challenger weights, reset, reload; show models, status and lineage.
    Admin(admin::AdminArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a config file and list every problem; exits 1 when there are any. Every version
    /// it names is also resolved in its store when the store exists (reading only).
    Check {
        file: PathBuf,
        /// Resolve the named versions even if the store does not exist (that is then a problem).
        #[arg(long, conflicts_with = "no_resolve")]
        resolve: bool,
        /// Check the file alone, without opening the store.
        #[arg(long)]
        no_resolve: bool,
        /// Print `{"file", "ok", "problems"}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a parsed command line. Returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve { config } => serve::serve(&config),
        Command::Config(ConfigCommand::Check { file, resolve, no_resolve, json }) => {
            let mode = match (resolve, no_resolve) {
                (true, _) => serve::Resolve::Always,
                (_, true) => serve::Resolve::Never,
                _ => serve::Resolve::WhenTheStoreExists,
            };
            serve::check(&file, mode, json)
        }
        Command::Models(cmd) => models::run(cmd),
        Command::Lineage(cmd) => lineage::run(cmd),
        Command::Admin(args) => admin::run(args),
    }
}

/// A small current-thread runtime for commands that only talk to the store or the admin API.
fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(f))
}

/// Who is acting, for registry events: `--actor`, else `$USER`, else "cli".
fn actor(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.is_empty())
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|| "cli".to_owned())
}
