//! The offline analysis engine with the real multilingual Universal Sentence Encoder, on the
//! festival test texts (`infra/local/speech/texts/ru_*.txt`, design dictation) and the
//! interview dialogue `infra/local/speech/interview_ru.txt`, cut into sentence segments with
//! synthetic times. Every valid (report type, building) of the catalog is analysed.
//!
//! Needs the prepared model (`infra/local/models/prepare_embedding.sh`;
//! `$VOX_MODELS_DIR/use-multilingual`, default `~/.cache/voxpersona/models`) and ONNX Runtime
//! from `infra/local/models/prepare.sh`. One engine is shared by all tests.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use common::analysis::catalog::{Catalog, PromptKind};
use common::analysis::offline::OfflineEngine;
use common::analysis::quotes;
use common::analysis::{JobInput, PassKind, ReportOutput};
use common::db::transcription::{Segment, text_of};
use common::embed::{EmbedConfig, UseEmbedder};

const EMPTY: &str = "Нет данных в записи";
const ALL_COVERED: &str = "Все факторы категории затронуты в интервью";

fn models_dir() -> PathBuf {
    std::env::var_os("VOX_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/voxpersona/models")
        })
}

fn engine() -> &'static OfflineEngine {
    static E: OnceLock<OfflineEngine> = OnceLock::new();
    E.get_or_init(|| {
        let embedder = UseEmbedder::load(&EmbedConfig::new(models_dir()))
            .expect("embedding model is prepared (infra/local/models/prepare_embedding.sh)");
        OfflineEngine::new(Arc::new(embedder)).expect("the offline contract compiles")
    })
}

fn speech_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/local/speech")
}

/// Sentences of a text: split after `.`, `!`, `?` followed by a space.
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

/// One segment per text, 4 s per 60 characters, 0.5 s pauses.
fn segments_of(texts: &[String]) -> Vec<Segment> {
    let mut at = 0i64;
    texts
        .iter()
        .map(|t| {
            let len = 4_000 * (t.chars().count() as i64 / 60 + 1);
            let s = Segment {
                start_ms: at,
                end_ms: at + len,
                text: t.clone(),
                speaker: None,
                ..Default::default()
            };
            at += len + 500;
            s
        })
        .collect()
}

/// The Russian festival texts, sentence by sentence.
fn design_segments() -> Vec<Segment> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(speech_dir().join("texts"))
        .expect("infra/local/speech/texts exists")
        .map(|e| e.expect("readable directory").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ru_") && n.ends_with(".txt"))
        })
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .flat_map(|p| sentences(&std::fs::read_to_string(p).expect("readable text")))
        .collect();
    assert!(texts.len() >= 24, "{} sentences", texts.len());
    segments_of(&texts)
}

/// The interview dialogue, one line (turn) per segment, without speaker labels.
fn interview_segments() -> Vec<Segment> {
    let text = std::fs::read_to_string(speech_dir().join("interview_ru.txt"))
        .expect("infra/local/speech/interview_ru.txt exists");
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    segments_of(&lines)
}

fn job(scenario: &str, report_type: &str, building: &str, segments: Vec<Segment>) -> JobInput {
    JobInput {
        scenario: scenario.to_owned(),
        report_type: report_type.to_owned(),
        building: building.to_owned(),
        place_building: Some("hotel".to_owned()),
        client: Some("Иванов Иван".to_owned()),
        employee: Some("Петрова Ольга".to_owned()),
        place: Some("Волга".to_owned()),
        city: Some("Казань".to_owned()),
        zones: vec!["Лобби".to_owned()],
        date: None,
        segments,
    }
}

/// Every valid (scenario, report type, building) of the catalog.
fn pairs() -> Vec<(String, String, String)> {
    let catalog = Catalog::embedded().expect("the catalog parses");
    let mut pairs = BTreeSet::new();
    for p in &catalog.prompts {
        if p.kind != PromptKind::RoleLabelling {
            for b in &p.buildings {
                pairs.insert((p.scenario.clone(), p.report_type.clone(), b.clone()));
            }
        }
    }
    pairs.into_iter().collect()
}

/// Every heading is followed by a quote or list line, a marker, or (a group) its first
/// subheading: an empty section always says so.
fn assert_sections_say_something(md: &str, at: &str) {
    let lines: Vec<&str> = md.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with("## ") && !line.starts_with("### ") {
            continue;
        }
        let next = lines.get(i + 1).copied().unwrap_or("");
        let ok = next.starts_with("- ")
            || next == EMPTY
            || next == ALL_COVERED
            || (line.starts_with("## ")
                && next.is_empty()
                && lines.get(i + 2).is_some_and(|l| l.starts_with("### ")));
        assert!(ok, "{at}: {line:?} is followed by {next:?}\n{md}");
    }
}

fn quote_count(out: &ReportOutput) -> usize {
    out.passes
        .iter()
        .filter(|p| p.kind == PassKind::Narrative)
        .map(|p| quotes::extract(&p.text).len())
        .sum()
}

#[test]
fn every_pair_quotes_verbatim_validates_its_metrics_and_repeats_byte_for_byte() {
    let engine = engine();
    let catalog = Catalog::embedded().unwrap();
    let pairs = pairs();
    assert_eq!(pairs.len(), 15);
    assert!(
        engine.engine_id().starts_with("offline:use-multilingual"),
        "{}",
        engine.engine_id()
    );
    for (scenario, report_type, building) in pairs {
        let at = format!("{report_type}.{building}");
        let segments = if scenario == "interview" {
            interview_segments()
        } else {
            design_segments()
        };
        let transcript = text_of(&segments);
        let j = job(&scenario, &report_type, &building, segments);
        let out = engine.analyze(&j).unwrap();

        let expected = catalog.passes(&report_type, &building);
        let numbers: Vec<i16> = out.passes.iter().map(|p| p.pass).collect();
        let want: Vec<i16> = expected.iter().map(|p| p.pass).collect();
        assert_eq!(numbers, want, "{at}");
        for (pass, prompt) in out.passes.iter().zip(&expected) {
            assert_eq!(pass.prompt_name, prompt.name, "{at}");
            match pass.kind {
                PassKind::Narrative => {
                    assert_eq!(prompt.kind, PromptKind::Narrative, "{at}");
                    for q in quotes::extract(&pass.text) {
                        assert!(transcript.contains(&q), "{at}: not verbatim: {q:?}");
                    }
                    assert_sections_say_something(&pass.text, &at);
                }
                PassKind::Metrics => {
                    assert_eq!(prompt.kind, PromptKind::Metrics, "{at}");
                    let metrics = pass.metrics.as_ref().expect("metrics pass has metrics");
                    common::metrics::validate(&report_type, &building, metrics)
                        .unwrap_or_else(|e| panic!("{at}: {e}"));
                }
            }
        }
        assert!(quote_count(&out) > 0, "{at}: no evidence found\n{out:#?}");

        let again = engine.analyze(&j).unwrap();
        assert_eq!(out, again, "{at}: a second run differs");
    }
}

#[test]
fn the_interview_is_labelled_heuristically_and_says_so() {
    let engine = engine();
    let out = engine
        .analyze(&job(
            "interview",
            "interview-methodology",
            "non-building",
            interview_segments(),
        ))
        .unwrap();
    let md = &out.passes[0].text;
    assert!(md.contains("эвристически"), "{md}");
    // The introduction is the interviewer's and is found.
    let intro = md.split("## 2.").next().unwrap();
    assert!(intro.contains("«Здравствуйте, меня зовут Ольга"), "{md}");

    // Design reports have no roles and no such note.
    let out = engine
        .analyze(&job(
            "design",
            "structured-audit",
            "hotel",
            design_segments(),
        ))
        .unwrap();
    assert!(!out.passes[0].text.contains("эвристически"));
}

#[test]
fn venue_factors_quote_only_statements_about_this_venue() {
    let engine = engine();
    let segments = interview_segments();
    let out = engine
        .analyze(&job(
            "interview",
            "venue-factors",
            "hotel",
            segments.clone(),
        ))
        .unwrap();
    let quoted = quotes::extract(&out.passes[0].text);
    assert!(!quoted.is_empty(), "{}", out.passes[0].text);
    // Every quote is a client's statement with a venue word in it or in the sentence before.
    let anchors = [
        "здесь",
        "этот",
        "этом",
        "этого",
        "этому",
        "вас",
        "вам",
        "ваш",
        "сюда",
        "тут",
    ];
    let transcript = text_of(&segments).to_lowercase();
    for q in quoted {
        let at = transcript
            .find(&q.to_lowercase())
            .expect("the quote is in the transcript");
        let window_start = transcript[..at]
            .char_indices()
            .rev()
            .nth(200)
            .map_or(0, |(i, _)| i);
        let window = &transcript[window_start..at + q.len()];
        assert!(
            anchors.iter().any(|a| window.contains(a)) || window.contains("волга"),
            "{q:?} has no venue anchor nearby"
        );
    }
}
