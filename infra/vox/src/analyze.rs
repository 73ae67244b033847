//! `vox analyze`: one report type on a local transcript (or a stored transcription) with the
//! configured engine; Markdown on stdout, or JSON with `--json`. `vox prompts sync`: the
//! prompt catalog into the database.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use common::analysis::catalog::{self, Catalog};
use common::analysis::quotes::Verifier;
use common::analysis::{JobInput, PassKind, engines};
use common::db::transcription::{self, Segment};
use common::db::{DbConfig, PgPool};
use common::embed::{Embedder, UseEmbedder};
use serde::Serialize;
use serde_json::Value;

/// What to analyse.
#[derive(Debug)]
pub enum Source<'a> {
    File(&'a Path),
    Stored(i64),
}

#[derive(Debug, Serialize)]
struct QuoteOut {
    text: String,
    verified: bool,
}

#[derive(Debug, Serialize)]
struct Output {
    markdown: String,
    metrics: Option<Value>,
    quotes: Vec<QuoteOut>,
    engine: String,
    seconds: f64,
}

pub async fn run(
    source: Source<'_>,
    scenario: &str,
    report_type: &str,
    building: &str,
    json: bool,
) -> anyhow::Result<()> {
    let catalog = Catalog::embedded()?;
    let passes = catalog.passes(report_type, building);
    let Some(first) = passes.first() else {
        let known: Vec<String> = catalog
            .prompts
            .iter()
            .filter(|p| p.report_type == report_type)
            .flat_map(|p| p.buildings.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if known.is_empty() {
            bail!(
                "unknown report type {report_type:?} (expected one of domain.md's English ids, e.g. structured-audit)"
            );
        }
        bail!(
            "report type {report_type:?} is not valid for building {building:?} (valid: {})",
            known.join(", ")
        );
    };
    if first.scenario != scenario {
        bail!(
            "report type {report_type:?} belongs to scenario {:?}, not {scenario:?}",
            first.scenario
        );
    }
    let segments = match source {
        Source::File(path) => read_transcript(path)?,
        Source::Stored(id) => {
            let pool = PgPool::new(&DbConfig::from_env()?)?;
            let conn = pool.get().await?;
            transcription::get(&conn, id)
                .await?
                .with_context(|| format!("transcription {id} does not exist"))?
                .segments
        }
    };
    if segments.iter().all(|s| s.text.trim().is_empty()) {
        bail!("the transcript is empty");
    }
    let started = Instant::now();
    eprintln!("loading the sentence encoder and the engine...");
    let embedder: Arc<dyn Embedder> = Arc::new(
        tokio::task::spawn_blocking(UseEmbedder::from_env)
            .await?
            .context("loading the sentence encoder (run `vox models`)")?,
    );
    let engine = engines::from_env(embedder).await?;
    eprintln!("analysing with {}...", engine.engine_id());
    let job = JobInput {
        scenario: scenario.to_owned(),
        report_type: report_type.to_owned(),
        building: building.to_owned(),
        place_building: None,
        client: None,
        employee: None,
        place: None,
        city: None,
        zones: Vec::new(),
        date: None,
        segments,
    };
    let output = engine.analyze(&job).await?;
    let text = common::db::transcription::text_of(&job.segments);
    let verifier = Verifier::new(&text);
    let mut markdown = String::new();
    let mut metrics = None;
    let mut quotes = Vec::new();
    for pass in &output.passes {
        match pass.kind {
            PassKind::Narrative => {
                quotes.extend(verifier.check(&pass.text).into_iter().map(|q| QuoteOut {
                    text: q.text,
                    verified: q.verified,
                }));
                markdown.push_str(pass.text.trim_end());
                markdown.push_str("\n\n");
            }
            PassKind::Metrics => {
                let pretty = serde_json::to_string_pretty(&pass.metrics)?;
                markdown.push_str(&format!("## {}\n\n```json\n{pretty}\n```\n", pass.title));
                metrics = pass.metrics.clone();
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let unverified = quotes.iter().filter(|q| !q.verified).count();
    eprintln!(
        "{} passes, {} quotes ({unverified} not found in the transcript) in {seconds:.1} s",
        output.passes.len(),
        quotes.len()
    );
    if json {
        let out = Output {
            markdown,
            metrics,
            quotes,
            engine: output.engine,
            seconds,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{markdown}");
    }
    Ok(())
}

/// A transcript file: the JSON `vox transcribe` prints (segments with times), or plain text
/// (one segment per non-empty line, without times).
fn read_transcript(path: &Path) -> anyhow::Result<Vec<Segment>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
    if text.trim_start().starts_with('{') {
        #[derive(serde::Deserialize)]
        struct Transcribed {
            segments: Vec<Segment>,
        }
        let parsed: Transcribed = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} looks like JSON but is not `vox transcribe` output (an object with segments)",
                path.display()
            )
        })?;
        return Ok(parsed.segments);
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| Segment {
            start_ms: 0,
            end_ms: 0,
            text: l.to_owned(),
            speaker: None,
            ..Default::default()
        })
        .collect())
}

/// `vox prompts sync`.
pub async fn sync_prompts() -> anyhow::Result<()> {
    let catalog = Catalog::embedded()?;
    let cfg = DbConfig::from_env()?;
    let pool = PgPool::new(&cfg)?;
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    let report = catalog::sync(&tx, catalog).await?;
    tx.commit().await?;
    for name in &report.inserted {
        println!("new version: {name}");
    }
    for name in &report.updated {
        println!("activated: {name}");
    }
    for name in &report.deactivated {
        println!("deactivated (not in the catalog): {name}");
    }
    println!(
        "{} prompts: {} new, {} activated, {} deactivated, {} unchanged",
        catalog.prompts.len(),
        report.inserted.len(),
        report.updated.len(),
        report.deactivated.len(),
        report.unchanged
    );
    Ok(())
}
