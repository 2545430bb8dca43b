//! Command-line interface: `serve`, `config check`, `models …`, `lineage …` and `admin …` (the
//! last talks to a running gateway's admin API; the others work on files and stores). One
//! dialect: every command prints a summary for people by default and takes `--json` for
//! machines (`lineage query` prints JSON lines by default, its export format, or `--format
//! table`); `--store` reads `SWITCHYARD_STORE`; errors reach `main` as `anyhow` and print as one
//! `error: …` line, exit 1. A test walks every command's `--help` and options.

/// `println!` that ignores a closed stdout (`switchyard models list | head` must not panic).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod admin;
mod card;
mod feedback;
mod import;
mod jobs;
mod lineage;
mod models;
mod predict;
mod profile;
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
        /// The config file to serve (TOML; see configs/example.toml).
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
    /// Run a model version over a data set as a recorded, resumable prediction job.
    Predict(predict::PredictArgs),
    /// List and show prediction jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Export what the service saw with the truth that arrived later (the next training set).
    #[command(subcommand)]
    Feedback(feedback::FeedbackCommand),
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
        Command::Feedback(cmd) => feedback::run(cmd),
        Command::Predict(args) => predict::run(args),
        Command::Jobs(cmd) => jobs::run(cmd),
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::Cli;

    /// Every leaf command: its path of names and its clap definition.
    fn leaves(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
        if cmd.get_subcommands().next().is_none() {
            out.push((path, cmd.clone()));
            return;
        }
        // clap's own `help` subcommands are not ours.
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut next = path.clone();
            next.push(sub.get_name().to_owned());
            leaves(sub, next, out);
        }
    }

    /// One dialect: every command and every option is documented in `--help`, every command
    /// that prints something takes `--json`, and `--store` reads SWITCHYARD_STORE.
    #[test]
    fn every_command_documents_its_options_and_speaks_json() {
        let mut root = Cli::command();
        root.build();
        let mut all = Vec::new();
        leaves(&root, Vec::new(), &mut all);
        assert!(all.len() >= 20, "{} commands", all.len());
        let mut problems = Vec::new();
        for (path, cmd) in &all {
            let name = path.join(" ");
            if cmd.get_about().is_none() {
                problems.push(format!("`{name}` has no description"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() && !arg.is_positional() {
                    problems.push(format!("`{name} --{id}` has no help text"));
                }
                if id == "store" && arg.get_env().is_none_or(|e| e != "SWITCHYARD_STORE") {
                    problems.push(format!("`{name} --store` does not read SWITCHYARD_STORE"));
                }
            }
            let speaks_json = cmd.get_arguments().any(|a| a.get_id() == "json");
            if name != "serve" && !speaks_json {
                problems.push(format!("`{name}` has no --json"));
            }
            // `--help` renders for every command.
            let mut words: Vec<String> = vec!["switchyard".to_owned()];
            words.extend(path.iter().cloned());
            words.push("--help".to_owned());
            let err = Cli::try_parse_from(&words).expect_err("--help stops parsing");
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{name}");
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
