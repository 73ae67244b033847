//! Fact recall of the offline report engine, from the reference text and from our own speech
//! engine's transcript.
//!
//! The evaluation set: every script in `infra/local/speech/dialogues/` that has a facts file
//! `tests/eval/facts/<id>.toml` (format in `tests/eval/README.md`): two-voice interviews and
//! one-voice design audits of hotels, restaurants, spas and no particular venue, in several
//! Russian cities, 20 s to about 3 min.
//!
//! For each transcript two paths go through `common::analysis::offline::OfflineEngine` with the
//! real sentence encoder (`$VOX_MODELS_DIR`, `VOX_EMBED_THREADS`):
//!
//! - **text**: the script's turns as segments (times from `<id>.turns.tsv` when the dialogue
//!   was synthesized, else about 70 ms a character), roles from the script (interviews: S1
//!   `Сотрудник`, S2 `Клиент`);
//! - **audio**: the synthesized clip (`make_dialogues.py`, run by this bench for the missing
//!   ones) through `common::speech::WhisperEngine`, the call the transcribe bench makes, then
//!   `speakers::label_segments` as the transcribe stage runs it (speakers from the voices,
//!   roles from their turns for interviews). `VOX_BENCH_AUDIO=0` skips it. The anchor for the
//!   roles: the same ASR segments without them (the offline engine's text heuristic decides,
//!   as it did before speakers were told apart), pooled on the last line.
//!
//! Each path runs every report type that fits the transcript (interviews: interview
//! methodology, links, and common and venue factors of its building; audits: audit
//! methodology, and compliance and structured audit of its building). Per transcript and
//! pooled it prints:
//!
//! - `recall`: facts found in some quote of some report / facts;
//! - `sect.prec`: facts found in one of their expected sections / facts found;
//! - `metric`: facts with a metric key whose key counts at least one / such facts found in
//!   their section;
//! - `quotes ok`: quotes that are exact substrings of a segment / quotes;
//! - audio only: `DER` (diarization error rate against the synthesized turns, 0.25 s collar,
//!   `vox_tests::der`) and `roles` (turns whose role the segments give for most of the turn).
//!
//! A fact is found in a quote when every word of one of its alternative sets occurs in the
//! quote, compared as Snowball Russian stems (`common::analysis::offline::stems`), so
//! inflections count. `VOX_BENCH_CLIPS=a,b` keeps the transcripts whose ids contain one of
//! those strings; `VOX_BENCH_VERBOSE=1` lists the facts that were missed (or found only
//! outside their sections); `VOX_BENCH_DUMP=<dir>` writes every report there.
//!
//! Run: `cargo bench -p vox-tests --bench report_quality`
//! (models: `infra/local/models/prepare.sh`, `infra/local/models/prepare_embedding.sh`;
//! speech: `infra/local/speech/make_dialogues.py`, which needs festival and sox)

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use common::analysis::offline::OfflineEngine;
use common::db::transcription::Segment;
use common::embed::{EmbedConfig, UseEmbedder};
use common::speakers::{self, DiarizeParams};
use common::speech::{EngineSettings, WhisperEngine};
use common::transcribe::SpeechEngine;
use vox_tests::der::{DerCounts, der, role_accuracy};

#[path = "../eval/facts.rs"]
mod facts;

use facts::{Tally, evaluate, load_set, reference_segments};

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let filter = std::env::var("VOX_BENCH_CLIPS").ok();
    let wanted: Option<Vec<&str>> = filter
        .as_deref()
        .map(|f| f.split(',').map(str::trim).collect());
    let set = load_set(&root, wanted.as_deref())?;
    if set.is_empty() {
        bail!("no transcripts (VOX_BENCH_CLIPS filters them all out?)");
    }
    let verbose = std::env::var("VOX_BENCH_VERBOSE").is_ok_and(|v| v != "0");
    let audio = std::env::var("VOX_BENCH_AUDIO").map_or(true, |v| v != "0");

    let cache = vox_cache()?;
    let dialogues = cache.join("speech/dialogues");
    if audio {
        let ids: Vec<&str> = set.iter().map(|t| t.id.as_str()).collect();
        let status = Command::new("python3")
            .arg(root.join("infra/local/speech/make_dialogues.py"))
            .args(&ids)
            .status()
            .context("running make_dialogues.py")?;
        if !status.success() {
            bail!("make_dialogues.py failed (festival and sox installed? or VOX_BENCH_AUDIO=0)");
        }
    }

    let config = EmbedConfig::from_env()?;
    let embedder = UseEmbedder::load(&config)
        .context("embedding model (infra/local/models/prepare_embedding.sh)")?;
    let engine = OfflineEngine::new(Arc::new(embedder))?;
    let speech = if audio {
        let settings = EngineSettings::from_env()?;
        Some(
            WhisperEngine::load(&settings)
                .context("speech models (infra/local/models/prepare.sh)")?,
        )
    } else {
        None
    };
    println!("{}", engine.engine_id());
    let head = format!(
        "{:>5} {:>6} {:>9} {:>6} {:>9}",
        "found", "recall", "sect.prec", "metric", "quotes ok"
    );
    println!(
        "{:<46} | {:<39} | {:<39}",
        "", "text (script turns)", "audio (our ASR)"
    );
    println!(
        "{:<32} {:<7} {:>5} | {head} | {head}",
        "transcript", "kind", "facts"
    );
    let (mut text_total, mut audio_total) = (Tally::default(), Tally::default());
    let mut heuristic_total = Tally::default();
    let (mut stated_total, mut facts_total) = (0usize, 0usize);
    let (mut der_total, mut roles_total) = (DerCounts::default(), (0usize, 0usize));
    let diarize = DiarizeParams::from_env()?;
    let mut misses = Vec::new();
    for t in &set {
        let reference = reference_segments(t, &dialogues)?;
        let (text_tally, text_missed) = evaluate(&engine, t, reference, "text")?;
        text_total.add(&text_tally);
        let audio_tally = match &speech {
            Some(speech) => {
                let mut segments = transcribe(speech, &dialogues.join(format!("{}.wav", t.id)))?;
                let stated = stated_in_asr(t, &segments);
                stated_total += stated;
                facts_total += t.facts.len();
                let mut unlabelled = segments.clone();
                unlabelled.iter_mut().for_each(|s| s.voice = None);
                let (heuristic, _) = evaluate(&engine, t, unlabelled, "audio")?;
                heuristic_total.add(&heuristic);
                let interview = t.kind == "interview";
                speakers::label_segments(&mut segments, &diarize, interview);
                let turns = true_turns(&dialogues, &t.id)?;
                let reference: Vec<(i64, i64, String)> =
                    turns.iter().map(|x| (x.0, x.1, x.2.clone())).collect();
                let hypothesis: Vec<(i64, i64, i16)> = segments
                    .iter()
                    .filter_map(|s| s.speaker_id.map(|id| (s.start_ms, s.end_ms, id)))
                    .collect();
                let d = der(&reference, &hypothesis, 250);
                if interview {
                    der_total.add(&d);
                }
                let roles = interview.then(|| {
                    let reference: Vec<(i64, i64, String)> =
                        turns.iter().map(|x| (x.0, x.1, x.3.clone())).collect();
                    let ours: Vec<(i64, i64, Option<String>)> = segments
                        .iter()
                        .map(|s| (s.start_ms, s.end_ms, s.speaker.clone()))
                        .collect();
                    role_accuracy(&reference, &ours)
                });
                if let Some(r) = roles {
                    roles_total = (roles_total.0 + r.0, roles_total.1 + r.1);
                }
                let (tally, missed) = evaluate(&engine, t, segments, "audio")?;
                misses.extend(missed.into_iter().map(|m| format!("{} audio: {m}", t.id)));
                audio_total.add(&tally);
                Some((tally, d, roles, stated))
            }
            None => None,
        };
        misses.extend(
            text_missed
                .into_iter()
                .map(|m| format!("{} text: {m}", t.id)),
        );
        print_row(
            &t.id,
            &t.kind,
            &text_tally,
            audio_tally.as_ref().map(|a| &a.0),
        );
        if let Some((_, d, roles, stated)) = &audio_tally {
            println!(
                "{:<32}   facts whose words the ASR text keeps {stated}/{}; speakers: DER {:.1} %{}",
                "",
                t.facts.len(),
                d.der() * 100.0,
                roles.map_or(String::new(), |(r, n)| format!(", roles {r}/{n}"))
            );
        }
    }
    println!("{}", "-".repeat(130));
    print_row(
        "pooled",
        "",
        &text_total,
        speech.is_some().then_some(&audio_total),
    );
    if speech.is_some() {
        print_row(
            "pooled, audio roles by text",
            "anchor",
            &text_total,
            Some(&heuristic_total),
        );
        println!(
            "facts whose words the ASR text keeps at all (two neighbouring segments): {stated_total}/{facts_total} = {:.2}: the audio path's ceiling",
            stated_total as f64 / facts_total.max(1) as f64
        );
        println!(
            "speakers on the interviews' audio: DER {:.1} % (confusion {:.1} %), roles right on {}/{} turns",
            der_total.der() * 100.0,
            der_total.confusion_rate() * 100.0,
            roles_total.0,
            roles_total.1
        );
    }
    println!(
        "targets: recall >= 0.85 pooled and >= 0.67 per transcript; section precision >= 0.8; quotes 100 %; DER <= 10 %; roles >= 95 %"
    );
    if verbose {
        for m in misses {
            println!("missed {m}");
        }
    }
    Ok(())
}

fn ratio(num: usize, den: usize) -> String {
    if den == 0 {
        "-".to_owned()
    } else {
        format!("{:.2}", num as f64 / den as f64)
    }
}

fn cells(t: &Tally) -> String {
    format!(
        "{:>5} {:>6} {:>9} {:>6} {:>9}",
        t.found,
        ratio(t.found, t.facts),
        ratio(t.placed, t.found),
        ratio(t.metric_ok, t.metric_facts),
        if t.quotes == 0 {
            "-".to_owned()
        } else {
            format!("{:.0} %", 100.0 * t.verified as f64 / t.quotes as f64)
        }
    )
}

fn print_row(id: &str, kind: &str, text: &Tally, audio: Option<&Tally>) {
    println!(
        "{:<32} {:<7} {:>5} | {} | {}",
        id,
        kind,
        text.facts,
        cells(text),
        audio.map_or_else(|| "-".to_owned(), cells)
    );
}

fn transcribe(engine: &WhisperEngine, audio: &Path) -> Result<Vec<Segment>> {
    let mut segments = Vec::new();
    engine
        .transcribe_file(audio, Some("ru"), 0, &mut |window| {
            segments.extend(window.segments);
            ControlFlow::Continue(())
        })
        .with_context(|| format!("transcribing {}", audio.display()))?;
    Ok(segments)
}

/// Facts one of whose word sets occurs within two neighbouring ASR segments: what the speech
/// engine left for the report engine to find.
fn stated_in_asr(t: &facts::Transcript, segments: &[Segment]) -> usize {
    let stems: Vec<BTreeSet<String>> = segments
        .iter()
        .map(|s| {
            common::analysis::offline::stems(&s.text)
                .into_iter()
                .collect()
        })
        .collect();
    let windows: Vec<BTreeSet<String>> = (0..stems.len())
        .map(|i| {
            stems[i..(i + 2).min(stems.len())]
                .iter()
                .flatten()
                .cloned()
                .collect()
        })
        .collect();
    t.facts
        .iter()
        .filter(|f| windows.iter().any(|w| f.stated_in(w)))
        .count()
}

/// Where each turn really is: (start ms, end ms, S1/S2, role).
fn true_turns(dialogues: &Path, id: &str) -> Result<Vec<(i64, i64, String, String)>> {
    let path = dialogues.join(format!("{id}.turns.tsv"));
    let tsv =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for line in tsv.lines().skip(1) {
        let f: Vec<&str> = line.splitn(5, '\t').collect();
        if f.len() < 4 {
            bail!("{}: malformed line {line:?}", path.display());
        }
        let role = if f[3] == "employee" {
            "Сотрудник"
        } else {
            "Клиент"
        };
        out.push((
            f[0].parse()?,
            f[1].parse()?,
            f[2].to_owned(),
            role.to_owned(),
        ));
    }
    Ok(out)
}

fn vox_cache() -> Result<PathBuf> {
    if let Some(c) = std::env::var_os("VOX_CACHE") {
        return Ok(PathBuf::from(c));
    }
    let home = std::env::var_os("HOME").context("set VOX_CACHE or HOME")?;
    Ok(PathBuf::from(home).join(".cache/voxpersona"))
}
