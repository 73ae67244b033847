//! `vox`: the command line for local work and operations.
//!
//! Every subcommand prints its result on stdout; logs go to stderr. A failure exits non-zero
//! with one line naming the problem (and its causes).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use common::db::{DbConfig, migrate};

#[derive(Debug, Parser)]
#[command(name = "vox", version, about = "VoxPersona: local runs and operations")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations to DATABASE_URL, creating the database if missing.
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    common::telemetry::init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vox: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => cmd_migrate().await,
    }
}

async fn cmd_migrate() -> anyhow::Result<()> {
    let cfg = DbConfig::from_env()?;
    let created = migrate::ensure_database(&cfg).await?;
    if created {
        println!("created database {}", cfg.dbname());
    }
    let mut client = cfg.connect().await?;
    let report = migrate::run(&mut client).await?;
    if report.applied.is_empty() {
        println!("database {} is up to date", cfg.dbname());
    } else {
        for name in &report.applied {
            println!("applied {name}");
        }
    }
    if let Some(version) = report.version {
        println!("schema version {version}");
    }
    Ok(())
}

/// The error and its causes on one line: `a: b: c`.
fn chain(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
