//! `vox`: the command line for local work and operations.
//!
//! Every subcommand prints its result on stdout; logs go to stderr. A failure exits non-zero
//! with one line naming the problem (and its causes).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod analyze;
mod index;
mod keys;
mod maintain;
mod queues;
mod run;
mod search;
mod serve;
mod transcribe;
mod upload;
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
    /// Prepare the models (ONNX Runtime, Whisper, Silero VAD, the sentence encoder) into the
    /// cache and print where they are. A re-run is a no-op.
    Models,
    /// Transcribe a local audio file with the local engine and print the transcript as JSON.
    Transcribe {
        /// The recording (ogg/opus, webm, mp3, m4a, wav, flac; the format is read from the
        /// file's content, not its name).
        file: std::path::PathBuf,
        /// Language of the speech; detected (Russian or English) when omitted.
        #[arg(long, value_parser = ["ru", "en"])]
        language: Option<String>,
        /// The recording is an interview: name each speaker's role (Сотрудник, the one who
        /// asks; Клиент) from their turns.
        #[arg(long)]
        interview: bool,
        /// Print the transcript as JSON (with speakers and coverage), or as plain text with
        /// times and speakers, SRT, WebVTT or DOCX (what `GET /transcriptions/{id}/export`
        /// gives; DOCX only when stdout is a file or a pipe).
        #[arg(long, value_parser = ["json", "txt", "srt", "vtt", "docx"], default_value = "json")]
        format: String,
    },
    /// Run one report type on a transcript with the configured engine (offline unless
    /// VOX_LLM_PROVIDER names a hosted model) and print the report as Markdown.
    Analyze {
        /// A transcript file: `vox transcribe` JSON output, or plain text (one line per turn).
        #[arg(
            long,
            conflicts_with = "transcription",
            required_unless_present = "transcription"
        )]
        transcript: Option<std::path::PathBuf>,
        /// A stored transcription's id (from DATABASE_URL) instead of a file.
        #[arg(long)]
        transcription: Option<i64>,
        #[arg(long, value_parser = ["design", "interview"])]
        scenario: String,
        /// The report type's English id: interview-methodology, links, common-factors,
        /// venue-factors, audit-methodology, audit-compliance, structured-audit.
        #[arg(long = "report-type")]
        report_type: String,
        #[arg(long, value_parser = ["hotel", "restaurant", "spa", "non-building"])]
        building: String,
        /// Print an object with `markdown`, `metrics` and `quotes` instead of Markdown.
        #[arg(long)]
        json: bool,
    },
    /// Index the chunks not indexed yet (or, with --rebuild, all of them) into a new
    /// snapshot generation on S3 (VOX_INDEX_BUCKET) and publish its manifest.
    Index {
        /// Start from an empty index and every chunk.
        #[arg(long)]
        rebuild: bool,
    },
    /// Put a recording into the recordings bucket with its metadata (`x-amz-meta-*`), as a
    /// user's S3 client would; the metadata is checked first. Prints bucket, key and ETag.
    Upload(upload::UploadArgs),
    /// The local SQS event source mapping: poll the transcribe, analyze and index queues and
    /// invoke the functions in process, deleting only what succeeded.
    Run(run::RunArgs),
    /// Search the stored reports; each hit cites its report, recording and segment times.
    Search {
        query: String,
        /// Results wanted (1-200).
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Fuse with PostgreSQL full-text search (reciprocal rank fusion).
        #[arg(long)]
        hybrid: bool,
        /// reports, transcripts or both (default: both without --config, else what the
        /// configuration holds).
        #[arg(long, value_parser = ["reports", "transcripts", "both"])]
        corpus: Option<String>,
        #[command(flatten)]
        filters: search::FilterArgs,
    },
    /// Answer a question from the stored reports, with citations; --deep reads every
    /// recording in scope (slow, shows progress).
    Ask {
        question: String,
        #[arg(long)]
        deep: bool,
        #[command(flatten)]
        filters: search::FilterArgs,
    },
    /// API keys (the first admin key: `vox keys create --name NAME --role admin`).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Serve the HTTP API locally on 127.0.0.1.
    Serve {
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Retention and maintenance: delete expired audio (--audio-retention-days) and old deep
    /// questions, check the index (lag, orphan snapshots), refresh planner statistics.
    Maintain(maintain::MaintainArgs),
    /// The prompt catalog.
    Prompts {
        #[command(subcommand)]
        command: PromptsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PromptsCommand {
    /// Load the built-in prompt catalog into `prompts` / `prompts_buildings` (idempotent).
    Sync,
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
        Command::Models => cmd_models(),
        Command::Transcribe {
            file,
            language,
            interview,
            format,
        } => transcribe::run(&file, language.as_deref(), interview, &format),
        Command::Analyze {
            transcript,
            transcription,
            scenario,
            report_type,
            building,
            json,
        } => {
            let source = match (&transcript, transcription) {
                (Some(path), _) => analyze::Source::File(path),
                (None, Some(id)) => analyze::Source::Stored(id),
                (None, None) => anyhow::bail!("give --transcript FILE or --transcription ID"),
            };
            analyze::run(source, &scenario, &report_type, &building, json).await
        }
        Command::Index { rebuild } => index::run(rebuild).await,
        Command::Keys { command } => keys::run(command).await,
        Command::Serve { port } => serve::run(port).await,
        Command::Upload(args) => upload::run(&args).await,
        Command::Run(args) => run::run(&args).await,
        Command::Search {
            query,
            limit,
            hybrid,
            corpus,
            filters,
        } => search::search(&query, limit, hybrid, corpus.as_deref(), &filters).await,
        Command::Ask {
            question,
            deep,
            filters,
        } => search::ask(&question, deep, &filters).await,
        Command::Maintain(args) => maintain::run(&args).await,
        Command::Prompts {
            command: PromptsCommand::Sync,
        } => analyze::sync_prompts().await,
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

fn cmd_models() -> anyhow::Result<()> {
    // The scripts live in the repository this binary was built from.
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../local/models");
    for script in ["prepare.sh", "prepare_embedding.sh"] {
        let path = scripts.join(script);
        let status = std::process::Command::new("bash")
            .arg(&path)
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", path.display()))?;
        if !status.success() {
            anyhow::bail!("{} failed ({status})", path.display());
        }
    }
    let settings = common::speech::EngineSettings::from_env()?;
    println!("models are in {}", settings.models_dir.display());
    Ok(())
}

/// The error and its causes on one line: `a: b: c`.
fn chain(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
