//! `vox run`: the local SQS event source mapping ([`vox::event_source`]) over the
//! transcribe, analyze and index queues, invoking the functions in process.
//!
//! Queues come from the variables the functions themselves read: `VOX_TRANSCRIBE_QUEUE_URL`,
//! `VOX_ANALYZE_QUEUE_URL`, `VOX_INDEX_QUEUE_URL` (a URL, or a queue name looked up with
//! GetQueueUrl); a queue that is not set is not polled. Each function is built as its
//! `main.rs` builds it, once, from the same environment, and gets batches of the size its
//! deployed event source mapping has (`BatchSize` in `infra/aws/template.yaml`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lambda_events::sqs::SqsEvent;
use clap::Args;
use common::analysis::engines;
use common::db::{DbConfig, PgPool, recording};
use common::embed::{Embedder, UseEmbedder};
use common::queue::SqsQueue;
use common::search::Searcher;
use common::search::answer::{AnswerSettings, Answerer};
use common::storage::S3Store;
use common::transcribe::SpeechEngine;
use vox::event_source::{BatchHandler, BatchReport, Binding, DeadLetterDepth, Mapping, Options};

/// The deployed functions' timeout: how long an invocation may run before Lambda stops it.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(900);

// The deployed mappings' `BatchSize` (infra/aws/template.yaml; a test below compares them).
// One recording per transcribe or analyze invocation: a long one uses the whole timeout, and
// a crash spends a receive of that one message only.
const TRANSCRIBE_BATCH_SIZE: i32 = 1;
const ANALYZE_BATCH_SIZE: i32 = 1;
// One index run serves the whole batch (it reads everything above its high-water mark).
const INDEX_BATCH_SIZE: i32 = 10;

/// The arguments of `vox run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Exit once every queue is empty and no batch is being handled; non-zero if any
    /// dead-letter queue then holds messages, whether they landed during this run or before
    /// it. SQS failing meanwhile is retried; the run fails after 5 minutes of failures.
    #[arg(long)]
    pub until_idle: bool,
    /// For queues without a redrive policy: receives after which `vox run` moves a message
    /// to `<queue>-dlq` itself (queues with one are left to SQS).
    #[arg(long)]
    pub max_receives: Option<u32>,
    /// Visibility timeout of received messages in seconds (default: the queue's own): how
    /// long a failed message waits before it is delivered again.
    #[arg(long)]
    pub visibility_timeout: Option<u64>,
    /// Messages per batch (1-10) for every queue [default: each queue's deployed BatchSize:
    /// transcribe 1, analyze 1, index 10].
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=10))]
    pub batch_size: Option<i32>,
}

/// Builds the bindings from the environment and runs the mapping.
pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let sdk = common::aws::load().await;
    let client = aws_sdk_sqs::Client::new(&sdk);
    let transcribe_url = crate::queues::url_from_env(&client, "VOX_TRANSCRIBE_QUEUE_URL").await?;
    let analyze_url = crate::queues::url_from_env(&client, "VOX_ANALYZE_QUEUE_URL").await?;
    let index_url = crate::queues::url_from_env(&client, "VOX_INDEX_QUEUE_URL").await?;
    let notes = Arc::new(Notes::default());
    let mut bindings = Vec::new();
    if let Some(url) = transcribe_url {
        let analyze = analyze_url
            .clone()
            .context("VOX_ANALYZE_QUEUE_URL is required by the transcribe function")?;
        bindings.push(transcribe_binding(&sdk, url, analyze)?);
    }
    if let Some(url) = analyze_url {
        bindings.push(analyze_binding(&sdk, url, index_url.clone(), Arc::clone(&notes)).await?);
    }
    if let Some(url) = index_url {
        bindings.push(index_binding(&sdk, url)?);
    }
    if bindings.is_empty() {
        anyhow::bail!(
            "no queue to poll: set VOX_TRANSCRIBE_QUEUE_URL, VOX_ANALYZE_QUEUE_URL or VOX_INDEX_QUEUE_URL"
        );
    }
    let options = Options {
        batch_size: args.batch_size,
        visibility_timeout: args.visibility_timeout.map(Duration::from_secs),
        max_receives: args.max_receives,
        ..Options::default()
    };
    let mapping = Mapping::new(client, bindings, options).await?;
    for q in mapping.describe() {
        let (name, url) = (&q.name, &q.url);
        let batch = q.batch_size;
        match q.dead_letter {
            Some(d) if d.moved_by_sqs => println!(
                "{name:<10} {url} (batches of {batch}; dead letters to {} after {} receives)",
                d.url, d.max_receives
            ),
            Some(d) => println!(
                "{name:<10} {url} (batches of {batch}; no redrive policy: vox moves messages to {} after {} receives)",
                d.url, d.max_receives
            ),
            None => println!(
                "{name:<10} {url} (batches of {batch}; no dead-letter queue: a poison message is retried forever)"
            ),
        }
    }
    let summary = mapping
        .run(args.until_idle, &|r| print_batch(r, &notes.take(&r.queue)))
        .await?;
    println!(
        "idle: {} batches, {} messages, {} ok, {} failed deliveries",
        summary.batches, summary.messages, summary.succeeded, summary.failed
    );
    if !summary.dead_letter_at_end.is_empty() {
        let which: Vec<String> = summary
            .dead_letter_at_end
            .iter()
            .map(dead_letter_line)
            .collect();
        anyhow::bail!(
            "poison messages in dead-letter queues: {}",
            which.join("; ")
        );
    }
    Ok(())
}

/// `2 message(s) in vox-transcribe-dlq (1 from before this run)`.
fn dead_letter_line(d: &DeadLetterDepth) -> String {
    let name = d
        .dead_letter_queue
        .rsplit('/')
        .next()
        .unwrap_or(&d.dead_letter_queue);
    // A queue drained by hand during the run holds at most what it holds now from before.
    let before = d.before.min(d.count);
    format!(
        "{} message(s) in {name} ({before} from before this run)",
        d.count
    )
}

/// What a function's wrapper learned about its batch (the recordings' status), per queue,
/// for that queue's next console line.
#[derive(Debug, Default)]
struct Notes(Mutex<HashMap<&'static str, Vec<String>>>);

impl Notes {
    fn add(&self, queue: &'static str, note: String) {
        if let Ok(mut notes) = self.0.lock() {
            notes.entry(queue).or_default().push(note);
        }
    }

    fn take(&self, queue: &str) -> Vec<String> {
        self.0
            .lock()
            .ok()
            .and_then(|mut notes| notes.remove(queue))
            .unwrap_or_default()
    }
}

/// One line per batch: queue, messages, ok/failed, time, and what became of the recordings.
fn print_batch(r: &BatchReport, notes: &[String]) {
    let mut line = format!(
        "{:<10} {:>2} message(s)  {:>2} ok  {:>2} failed  {:>7.2} s",
        r.queue,
        r.messages,
        r.succeeded.len(),
        r.failed.len(),
        r.elapsed.as_secs_f64()
    );
    if !r.dead_lettered.is_empty() {
        line.push_str(&format!(
            "  {} moved to the dead-letter queue",
            r.dead_lettered.len()
        ));
    }
    if !notes.is_empty() {
        line.push_str(&format!("  {}", notes.join(", ")));
    }
    println!("{line}");
}

fn transcribe_binding(
    sdk: &aws_config::SdkConfig,
    url: String,
    analyze_url: String,
) -> anyhow::Result<Binding> {
    let aws = common::aws::AwsSettings::from_env()?;
    // VOX_SPEECH_ENGINE=openai selects the hosted API; by default Whisper runs here.
    let engine: Arc<dyn SpeechEngine> = match common::speech_api::OpenAiSpeech::from_env()? {
        Some(hosted) => Arc::new(hosted),
        None => Arc::new(common::speech::WhisperEngine::load(
            &common::speech::EngineSettings::from_env()?,
        )?),
    };
    let stage = Arc::new(common::transcribe::Stage {
        pool: PgPool::new(&DbConfig::from_env()?)?,
        s3: S3Store::new(sdk, aws.s3_path_style),
        analyze: SqsQueue::new(sdk, analyze_url),
        engine,
        settings: common::transcribe::Settings::from_env()?,
        worker: common::config::worker_id(),
    });
    let handler = move |event: SqsEvent| {
        let stage = Arc::clone(&stage);
        async move { transcribe::handle_sqs(&stage, event, Instant::now() + FUNCTION_TIMEOUT).await }
    };
    Ok(binding("transcribe", url, TRANSCRIBE_BATCH_SIZE, handler))
}

async fn analyze_binding(
    sdk: &aws_config::SdkConfig,
    url: String,
    index_url: Option<String>,
    notes: Arc<Notes>,
) -> anyhow::Result<Binding> {
    let embedder: Arc<dyn Embedder> = Arc::new(UseEmbedder::from_env()?);
    // One chat client for the report passes and the answers, as in the deployed function.
    let model = common::llm::chat_model_from_env().await?;
    let stage = Arc::new(common::analysis::stage::Stage {
        pool: PgPool::new(&DbConfig::from_env()?)?,
        engine: engines::for_model(model.clone(), Arc::clone(&embedder))?,
        embedder,
        index: index_url.map(|url| SqsQueue::new(sdk, url)),
        settings: common::analysis::stage::Settings::from_env()?,
        worker: common::config::worker_id(),
    });
    // Deep questions travel on the analyze queue too, as in the deployed function.
    let mut answerer = Answerer::new(
        Searcher::new(stage.pool.clone(), Arc::clone(&stage.embedder)),
        model,
    );
    answerer.settings = AnswerSettings::from_env()?;
    let answerer = Arc::new(answerer);
    let handler = move |event: SqsEvent| {
        let (stage, notes) = (Arc::clone(&stage), Arc::clone(&notes));
        let answerer = Arc::clone(&answerer);
        async move {
            let recordings: BTreeSet<i64> = event
                .records
                .iter()
                .filter_map(|m| analyze::parse_job(m.body.as_deref()?).ok()?.recording_id)
                .collect();
            let response = analyze::handle_sqs_with(&stage, Some(&answerer), event).await;
            // Where each recording stands now, for the console line (display only).
            if let Ok(conn) = stage.pool.get().await {
                for id in recordings {
                    if let Ok(Some(r)) = recording::get(&conn, id).await {
                        let stage = r.stage.map(|s| format!(" ({s})")).unwrap_or_default();
                        notes.add("analyze", format!("recording {id}: {}{stage}", r.status));
                    }
                }
            }
            response
        }
    };
    Ok(binding("analyze", url, ANALYZE_BATCH_SIZE, handler))
}

fn index_binding(sdk: &aws_config::SdkConfig, url: String) -> anyhow::Result<Binding> {
    let aws = common::aws::AwsSettings::from_env()?;
    let indexer = Arc::new(common::index::publish::Indexer::new(
        PgPool::new(&DbConfig::from_env()?)?,
        S3Store::new(sdk, aws.s3_path_style),
        common::index::publish::Settings::from_env()?,
    ));
    let handler = move |event: SqsEvent| {
        let indexer = Arc::clone(&indexer);
        async move { index_fn::handle_sqs(&indexer, event).await }
    };
    Ok(binding("index", url, INDEX_BATCH_SIZE, handler))
}

fn binding(
    name: &str,
    queue_url: String,
    batch_size: i32,
    handler: impl BatchHandler + 'static,
) -> Binding {
    Binding {
        name: name.to_owned(),
        queue_url,
        batch_size,
        handler: Arc::new(handler),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The `BatchSize` of the event source mapping of `queue` (a resource name) in the
    /// deployment template.
    fn deployed_batch_size(template: &str, queue: &str) -> i32 {
        let anchor = format!("Queue: !GetAtt {queue}.Arn");
        let lines: Vec<&str> = template.lines().map(str::trim).collect();
        // The queue is named in other places too (the bucket's notification); its mapping
        // is the one with a BatchSize right below.
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == anchor)
            .find_map(|(i, _)| {
                lines[i + 1..]
                    .iter()
                    .take(3)
                    .find_map(|l| l.strip_prefix("BatchSize:"))
            })
            .unwrap_or_else(|| panic!("no BatchSize for {queue} in the template"))
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn default_batch_sizes_are_the_deployed_ones() {
        let template = include_str!("../../aws/template.yaml");
        assert_eq!(
            [TRANSCRIBE_BATCH_SIZE, ANALYZE_BATCH_SIZE, INDEX_BATCH_SIZE],
            ["TranscribeQueue", "AnalyzeQueue", "IndexQueue"]
                .map(|q| deployed_batch_size(template, q))
        );
    }

    #[test]
    fn a_dead_letter_line_says_how_many_were_there_before_the_run() {
        let d = DeadLetterDepth {
            queue: "transcribe".into(),
            dead_letter_queue: "http://127.0.0.1:5000/123456789012/vox-transcribe-dlq".into(),
            count: 2,
            before: 1,
        };
        assert_eq!(
            dead_letter_line(&d),
            "2 message(s) in vox-transcribe-dlq (1 from before this run)"
        );
    }
}
