//! `switchyard jobs list|show`: prediction jobs recorded in a store (`switchyard predict`).

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List prediction jobs, newest first.
    List {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// Only this model's jobs.
        #[arg(long)]
        model: Option<String>,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
    /// Show one job: version, input and output with their sha256, settings, progress, failed rows.
    Show {
        /// The store directory (artifacts and registry.db), as `models register` made it.
        #[arg(long, env = "SWITCHYARD_STORE")]
        store: PathBuf,
        /// The job's id.
        id: String,
        /// Print the result as JSON, for machines.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: JobsCommand) -> anyhow::Result<i32> {
    super::block_on(async move {
        match cmd {
            JobsCommand::List { store, model, json } => {
                let store = super::models::open_existing(&store).await?;
                let jobs = store.registry().jobs(model.as_deref()).await?;
                if json {
                    out!("{}", serde_json::to_string(&jobs)?);
                } else {
                    out!("{:<38} {:<10} {:<16} {:>10}  STARTED", "JOB", "STATUS", "VERSION", "ROWS");
                    for j in jobs {
                        out!(
                            "{:<38} {:<10} {:<16} {:>10}  {}",
                            j.id,
                            j.status,
                            format!("{}:{}", j.model, j.version),
                            j.rows_done,
                            j.started_at
                        );
                    }
                }
                Ok(0)
            }
            JobsCommand::Show { store, id, json } => {
                let store = super::models::open_existing(&store).await?;
                let job = store.registry().job(&id).await?.ok_or_else(|| anyhow!("no prediction job '{id}'"))?;
                if json {
                    out!("{}", serde_json::to_string(&job)?);
                } else {
                    super::predict::print_job(&job);
                }
                Ok(0)
            }
        }
    })?
}
