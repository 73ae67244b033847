//! `vox maintain`: the retention policy and routine maintenance (see `common::maintain`),
//! against DATABASE_URL, the recordings' S3 objects, and the index under VOX_INDEX_BUCKET when
//! it is set. Stuck work goes back to VOX_TRANSCRIBE_QUEUE_URL and VOX_ANALYZE_QUEUE_URL (a URL
//! or a queue name) when they are set.

use clap::Args;
use common::db::{DbConfig, PgPool};
use common::index::publish;
use common::maintain::{self, MaintainSettings};
use common::queue::SqsQueue;
use common::storage::S3Store;
use common::sweep::{SweepQueues, SweepSettings};

#[derive(Debug, Args)]
pub struct MaintainArgs {
    /// Delete the audio of recordings finished more than N days ago (transcripts and reports
    /// are kept); default VOX_AUDIO_RETENTION_DAYS, or keep audio.
    #[arg(long = "audio-retention-days", env = "VOX_AUDIO_RETENTION_DAYS")]
    pub audio_retention_days: Option<u32>,
    /// Delete deep questions finished more than N days ago.
    #[arg(long = "question-retention-days", default_value_t = 90)]
    pub question_retention_days: u32,
    /// Report what would be deleted, delete nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &MaintainArgs) -> anyhow::Result<()> {
    let pool = PgPool::new(&DbConfig::from_env()?)?;
    let aws = common::aws::AwsSettings::from_env()?;
    let sdk = common::aws::load().await;
    let s3 = S3Store::new(&sdk, aws.s3_path_style);
    let index = match std::env::var_os("VOX_INDEX_BUCKET") {
        Some(_) => Some(publish::Settings::from_env()?),
        None => None,
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let transcribe = crate::queues::url_from_env(&sqs, "VOX_TRANSCRIBE_QUEUE_URL")
        .await?
        .map(|url| SqsQueue::new(&sdk, url));
    let analyze = crate::queues::url_from_env(&sqs, "VOX_ANALYZE_QUEUE_URL")
        .await?
        .map(|url| SqsQueue::new(&sdk, url));
    let settings = MaintainSettings {
        audio_retention_days: args.audio_retention_days,
        question_retention_days: args.question_retention_days,
        dry_run: args.dry_run,
        sweep: SweepSettings::from_env()?,
        ..MaintainSettings::default()
    };
    let queues = SweepQueues {
        transcribe: transcribe.as_ref(),
        analyze: analyze.as_ref(),
    };
    let report = maintain::run(&pool, &s3, index.as_ref(), queues, &settings).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let stuck = &report.stuck;
    let (requeue_verb, fail_verb) = if report.dry_run {
        ("would re-queue", "would fail")
    } else {
        ("re-queued", "failed")
    };
    println!(
        "stuck work (no live lease, untouched for {} s): {} found",
        settings.sweep.idle.as_secs(),
        stuck.stuck()
    );
    for (verb, rows) in [
        (requeue_verb, &stuck.requeued),
        (fail_verb, &stuck.failed),
        ("left (its queue is not set)", &stuck.left),
    ] {
        for r in rows {
            println!(
                "  {verb} {} {}: {}",
                r.kind.replace('_', " "),
                r.id,
                r.found
            );
        }
    }
    if !stuck.settled.is_empty() {
        println!(
            "  settled recordings whose jobs had all finished: {:?}",
            stuck.settled
        );
    }
    if report.dry_run {
        println!("temporary files: not swept in a dry run");
    } else {
        println!(
            "temporary files of processes that are gone: scratch directories removed: {} ({} bytes)",
            report.temp_files.removed.len(),
            report.temp_files.bytes
        );
    }
    match args.audio_retention_days {
        Some(days) => println!(
            "audio older than {days} days: {verb} {} object(s)",
            report.audio_deleted.len()
        ),
        None => println!("audio: kept (no retention set)"),
    }
    for a in &report.audio_deleted {
        println!(
            "  recording {}: s3://{}/{}",
            a.recording_id, a.bucket, a.object_key
        );
    }
    println!(
        "deep questions older than {} days: {verb} {}",
        args.question_retention_days, report.questions_deleted
    );
    match &report.index {
        Some(i) => {
            match i.generation {
                Some(g) => println!(
                    "index: generation {g}, high-water mark chunk {}, {} chunk(s) not indexed yet",
                    i.high_water_mark, i.chunks_not_indexed
                ),
                None => println!(
                    "index: nothing published yet; {} chunk(s) to index",
                    i.chunks_not_indexed
                ),
            }
            println!("  orphan snapshots: {verb} {}", i.orphan_snapshots.len());
        }
        None => println!("index: VOX_INDEX_BUCKET is not set; not checked"),
    }
    println!("statistics: ANALYZE done");
    Ok(())
}
