//! `vox search QUERY` and `vox ask QUESTION [--deep]`: search and answers over the stored
//! reports and transcripts, served from the published snapshot (VOX_INDEX_BUCKET; chunks newer
//! than it are scanned exactly) or, without a bucket, from PostgreSQL alone. Results carry
//! their citations: report or transcript, recording object, segment times and speakers.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::NaiveDate;
use clap::Args;
use common::db::{DbConfig, PgPool};
use common::embed::{Embedder, UseEmbedder};
use common::index::reader::{ReaderSettings, ServedIndex, Snapshot};
use common::quotes::hms;
use common::search::answer::{Answer, AnswerRequest, AnswerSettings, Answerer};
use common::search::deep::{self, Scope};
use common::search::{Corpus, Filters, Hit, HitKind, SearchRequest, Searcher, Served, Settings};
use common::storage::S3Store;

/// Filters shared by `search` and `ask`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// A configuration: all, interview, design, or a report type's id.
    #[arg(long)]
    pub config: Option<String>,
    #[arg(long, value_parser = ["design", "interview"])]
    pub scenario: Option<String>,
    #[arg(long = "report-type")]
    pub report_type: Option<String>,
    /// hotel, restaurant, spa, non-building (or the building type's name).
    #[arg(long)]
    pub building: Option<String>,
    #[arg(long)]
    pub city: Option<String>,
    /// Earliest audit date (YYYY-MM-DD).
    #[arg(long = "date-from")]
    pub date_from: Option<NaiveDate>,
    /// Latest audit date (YYYY-MM-DD).
    #[arg(long = "date-to")]
    pub date_to: Option<NaiveDate>,
    #[arg(long)]
    pub employee: Option<String>,
    #[arg(long)]
    pub client: Option<String>,
    /// The audited place's name.
    #[arg(long)]
    pub place: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl FilterArgs {
    fn filters(&self) -> Filters {
        Filters {
            scenario: self.scenario.clone(),
            report_type: self.report_type.clone(),
            building: self.building.clone(),
            city: self.city.clone(),
            date_from: self.date_from,
            date_to: self.date_to,
            employee: self.employee.clone(),
            client: self.client.clone(),
            place: self.place.clone(),
        }
    }
}

/// Loads the encoder, the database pool and (with VOX_INDEX_BUCKET) the served snapshot.
async fn open() -> anyhow::Result<(Searcher, Option<Arc<Snapshot>>)> {
    let pool = PgPool::new(&DbConfig::from_env()?)?;
    let embedder: Arc<dyn Embedder> =
        Arc::new(UseEmbedder::from_env().context("loading the sentence encoder")?);
    let mut searcher = Searcher::new(pool, embedder);
    searcher.settings = Settings::from_env()?;
    let snapshot = if std::env::var_os("VOX_INDEX_BUCKET").is_some() {
        let aws = common::aws::AwsSettings::from_env()?;
        let sdk = common::aws::load().await;
        let served = ServedIndex::open(
            S3Store::new(&sdk, aws.s3_path_style),
            ReaderSettings::from_env()?,
        )
        .await
        .context("loading the published index")?;
        if served.current().is_none() {
            eprintln!("no index is published yet: searching stored chunks exactly");
        }
        served.current()
    } else {
        eprintln!("VOX_INDEX_BUCKET is not set: searching stored chunks exactly");
        None
    };
    Ok((searcher, snapshot))
}

pub async fn search(
    query: &str,
    limit: usize,
    hybrid: bool,
    corpus: Option<&str>,
    args: &FilterArgs,
) -> anyhow::Result<()> {
    let (searcher, snapshot) = open().await?;
    let mut request = SearchRequest::new(query);
    request.config = args.config.clone();
    request.corpus = match corpus {
        None => None,
        Some("reports") => Some(Corpus::Reports),
        Some("transcripts") => Some(Corpus::Transcripts),
        Some(_) => Some(Corpus::Both),
    };
    request.filters = args.filters();
    request.limit = limit;
    request.hybrid = hybrid;
    let results = searcher
        .search(snapshot.as_deref().map(Served::from), &request)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    let f = &results.freshness;
    println!(
        "{} result(s) for {:?} in {} (snapshot {}, {} newer chunk(s) scanned{})",
        results.hits.len(),
        results.query,
        results.configs.join(", "),
        f.generation
            .map_or_else(|| "none".to_owned(), |g| format!("generation {g}")),
        f.fresh_scanned,
        if f.fresh_truncated {
            ", more not scanned"
        } else {
            ""
        }
    );
    if let Some(w) = &f.warning {
        println!("warning: {w}");
    }
    for hit in &results.hits {
        println!();
        println!("{}. [{:.3}] {}", hit.rank, hit.score, headline(hit));
        println!("   {}", citation(hit));
        println!("   {}", snippet(&hit.text, 400));
    }
    Ok(())
}

pub async fn ask(question: &str, deep_mode: bool, args: &FilterArgs) -> anyhow::Result<()> {
    let (searcher, snapshot) = open().await?;
    let model = common::llm::chat_model_from_env().await?;
    let mut answerer = Answerer::new(searcher, model);
    answerer.settings = AnswerSettings::from_env()?;
    let answer = if deep_mode {
        let scope = Scope {
            config: args.config.clone(),
            filters: args.filters(),
        };
        let conn = answerer.searcher.pool.get().await?;
        let id = deep::create(&conn, question, &scope).await?;
        drop(conn);
        eprintln!("deep question {id}: reading every recording in scope");
        let progress = |done: usize, total: usize| {
            eprint!("\r  recordings read: {done}/{total}");
            let _ = std::io::stderr().flush();
            if done == total {
                eprintln!();
            }
        };
        answerer
            .run_deep(id, &common::config::worker_id(), &progress)
            .await?
    } else {
        let mut request = AnswerRequest::new(question);
        request.config = args.config.clone();
        request.filters = args.filters();
        answerer
            .answer(snapshot.as_deref().map(Served::from), &request)
            .await?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_answer(&answer);
    }
    Ok(())
}

fn print_answer(answer: &Answer) {
    let route = match (answer.route.chosen_by.as_str(), answer.route.score) {
        ("similarity", Some(score)) => {
            format!("{} (routed, similarity {score:.2})", answer.route.config)
        }
        ("default", _) => "every report type (no configuration's description fits)".to_owned(),
        _ => answer.route.config.clone(),
    };
    println!("Question: {}", answer.question);
    println!("Searched: {route}; engine {}", answer.engine);
    println!();
    println!("{}", answer.text);
    let said: Vec<String> = answer
        .statements
        .iter()
        .filter_map(|s| s.said.as_ref())
        .map(|m| match &m.speaker {
            Some(who) => format!("{} ({who})", hms(m.start_ms)),
            None => hms(m.start_ms),
        })
        .collect();
    if !said.is_empty() {
        println!();
        println!("Said at: {}", said.join(", "));
    }
    if !answer.sources.is_empty() {
        println!();
        println!("Sources:");
        for hit in &answer.sources {
            println!("[{}] {}", hit.rank, headline(hit));
            println!("    {}", citation(hit));
        }
    }
}

/// Report type (or the transcript's moment and speaker), building, place, city, date,
/// employee.
fn headline(hit: &Hit) -> String {
    let what = match hit.kind {
        HitKind::Report => hit.report_type_desc.clone().unwrap_or_default(),
        HitKind::Transcript => {
            let mut w = format!(
                "расшифровка {}–{}",
                hms(hit.start_ms.unwrap_or(0)),
                hms(hit.end_ms.unwrap_or(0))
            );
            if let Some(who) = &hit.speaker {
                w.push_str(&format!(" ({who})"));
            }
            w
        }
    };
    let mut parts = vec![what, hit.building.clone(), hit.audit_date.to_string()];
    parts.extend(hit.place.clone());
    parts.extend(hit.city.clone());
    parts.extend(hit.employee.as_ref().map(|e| format!("сотрудник {e}")));
    parts.join(" · ")
}

/// Where the hit comes from: report, chunk, recording object, segment times.
fn citation(hit: &Hit) -> String {
    let mut out = match hit.audit_id {
        Some(audit) => format!("audit {audit}"),
        None => format!("transcription {}", hit.transcription_id),
    };
    out.push_str(&format!(
        " · chunk {} · {}",
        hit.chunk_id, hit.audio_file_name
    ));
    if let (Some(id), Some(bucket), Some(key)) = (hit.recording_id, &hit.bucket, &hit.object_key) {
        out.push_str(&format!(" · recording {id} (s3://{bucket}/{key})"));
    }
    if hit.kind == HitKind::Report && !hit.segments.is_empty() {
        let times: Vec<String> = hit
            .segments
            .iter()
            .map(|s| format!("{}–{}", hms(s.start_ms), hms(s.end_ms)))
            .collect();
        out.push_str(&format!(" · at {}", times.join(", ")));
    }
    out
}

/// The text on one line, cut at `max` characters.
fn snippet(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}
