//! The offline analysis engine on a long transcript: seconds per report.
//!
//! Builds a Russian transcript of at least `VOX_BENCH_CHARS` characters (default 60,000) from
//! the festival texts (`infra/local/speech/texts/ru_*.txt`) and the interview dialogue
//! (`infra/local/speech/interview_ru.txt`): their sentences are taken pass after pass in a
//! different fixed order each pass (stride 7) and grouped two or three to a segment, with
//! synthetic times. Then runs every report type for a hotel (`non-building` for the types that
//! do not depend on the venue) with the real embedder (`$VOX_MODELS_DIR`, threads from
//! `VOX_EMBED_THREADS`, default 1) and prints the engine's start-up time (parsing and
//! embedding every section query) and the wall time of each report. Each report embeds the
//! whole transcript itself, as a job does. With `VOX_BENCH_DUMP=<dir>` every pass is also
//! written there (`<report type>.<building>.<pass>.md` / `.json`) for reading.
//!
//! Run: `cargo bench -p vox-tests --bench offline`
//! (model: `infra/local/models/prepare_embedding.sh`; runtime: `infra/local/models/prepare.sh`)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use common::analysis::offline::OfflineEngine;
use common::analysis::{JobInput, PassKind, quotes};
use common::db::transcription::{Segment, text_of};
use common::embed::{EmbedConfig, UseEmbedder};

const REPORTS: &[(&str, &str, &str)] = &[
    ("interview", "interview-methodology", "non-building"),
    ("interview", "links", "non-building"),
    ("interview", "common-factors", "hotel"),
    ("interview", "venue-factors", "hotel"),
    ("design", "audit-methodology", "non-building"),
    ("design", "audit-compliance", "hotel"),
    ("design", "structured-audit", "hotel"),
];

fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace()) {
            out.push(current.trim().to_owned());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

fn source_sentences() -> Result<Vec<String>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/local/speech");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("texts"))
        .context("infra/local/speech/texts")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ru_") && n.ends_with(".txt"))
        })
        .collect();
    files.sort();
    files.push(dir.join("interview_ru.txt"));
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| f.display().to_string())?;
        out.extend(sentences(&text));
    }
    Ok(out)
}

/// Segments of two or three sentences until the text reaches `min_chars`.
fn transcript(pool: &[String], min_chars: usize) -> Vec<Segment> {
    let n = pool.len();
    let mut segments = Vec::new();
    let (mut chars, mut at, mut pass) = (0usize, 0i64, 0usize);
    while chars < min_chars {
        let order: Vec<&String> = (0..n).map(|i| &pool[(pass + i * 7) % n]).collect();
        for (k, group) in order.chunks(2 + pass % 2).enumerate() {
            let text = group
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let len = 4_000 * (text.chars().count() as i64 / 60 + 1);
            chars += text.chars().count() + 1;
            segments.push(Segment {
                start_ms: at,
                end_ms: at + len,
                text,
                speaker: None,
                ..Default::default()
            });
            at += len + 300 + (k as i64 % 5) * 200;
            if chars >= min_chars {
                break;
            }
        }
        pass += 1;
    }
    segments
}

fn main() -> Result<()> {
    let min_chars: usize = match std::env::var("VOX_BENCH_CHARS") {
        Ok(v) => v.parse().context("VOX_BENCH_CHARS")?,
        Err(_) => 60_000,
    };
    let config = EmbedConfig::from_env()?;
    let segments = transcript(&source_sentences()?, min_chars);
    let text = text_of(&segments);
    println!(
        "transcript: {} characters, {} segments; embedder threads: {}",
        text.chars().count(),
        segments.len(),
        config.threads
    );

    let started = Instant::now();
    let embedder = UseEmbedder::load(&config)
        .context("embedding model (infra/local/models/prepare_embedding.sh)")?;
    let loaded = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let engine = OfflineEngine::new(Arc::new(embedder))?;
    println!(
        "model load {loaded:.2} s; engine start-up (sections parsed, queries embedded) {:.2} s; {}",
        started.elapsed().as_secs_f64(),
        engine.engine_id()
    );

    println!(
        "{:<24} {:<13} {:>9} {:>7} {:>7}",
        "report type", "building", "seconds", "passes", "quotes"
    );
    let mut total = 0.0;
    for &(scenario, report_type, building) in REPORTS {
        let job = JobInput {
            scenario: scenario.to_owned(),
            report_type: report_type.to_owned(),
            building: building.to_owned(),
            place_building: Some("hotel".to_owned()),
            client: None,
            employee: None,
            place: Some("Волга".to_owned()),
            city: None,
            zones: Vec::new(),
            date: None,
            segments: segments.clone(),
        };
        let started = Instant::now();
        let out = engine.analyze(&job)?;
        let seconds = started.elapsed().as_secs_f64();
        total += seconds;
        if let Some(dir) = std::env::var_os("VOX_BENCH_DUMP") {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir)?;
            for p in &out.passes {
                let ext = if p.kind == PassKind::Metrics {
                    "json"
                } else {
                    "md"
                };
                let name = format!("{report_type}.{building}.{}.{ext}", p.pass);
                std::fs::write(dir.join(name), &p.text)?;
            }
        }
        let quotes: usize = out
            .passes
            .iter()
            .filter(|p| p.kind == PassKind::Narrative)
            .map(|p| quotes::extract(&p.text).len())
            .sum();
        println!(
            "{report_type:<24} {building:<13} {seconds:>9.2} {:>7} {quotes:>7}",
            out.passes.len()
        );
    }
    println!(
        "mean {:.2} s per report ({} reports)",
        total / REPORTS.len() as f64,
        REPORTS.len()
    );
    Ok(())
}
