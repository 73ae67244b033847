//! Who speaks when: diarization error rate and role accuracy of the transcribe stage's speaker
//! path on the synthesized dialogues, beside today's text-only role heuristic.
//!
//! The evaluation set is the dialogues of `infra/local/speech/make_dialogues.py` (two-voice
//! interviews of hotels, restaurants, spas and other places in several cities, the second
//! voice pitch-shifted; one-voice design audits; an English interview; with `--long` built by
//! the transcribe bench, a 10-minute run of interviews), which this bench builds when missing.
//! `VOX_BENCH_CLIPS=a,b` keeps the clips whose names contain one of those strings.
//!
//! Each clip goes through the local engine (`WhisperEngine`, voiceprints on) and then
//! `speakers::label_segments` exactly as the stage runs it (roles for interviews). Printed per
//! clip and pooled:
//!
//! - speakers found against the true count;
//! - DER (missed + false alarm + confusion over the reference speech, 0.25 s collar) and its
//!   confusion part: speech given to the wrong speaker. Missed speech and false alarms here
//!   are mostly segment timing (Whisper's segment ends against the true turn ends);
//! - role accuracy: the reference turns whose role the segments give for most of the turn,
//!   ours (voices, then turns) beside the anchor, the offline engine's text heuristic on the
//!   same segments (`analysis::offline::label_turns`, what interviews got before);
//! - the speaker encoder's CPU time per minute of audio (run again on the segments, timed
//!   alone).
//!
//! `VOX_BENCH_SWEEP=1` also prints the pooled DER for other clustering thresholds (cheap:
//! the voiceprints are kept).
//!
//! Run: `cargo bench -p vox-tests --bench speakers` (models: `infra/local/models/prepare.sh`)

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use common::asr::runtime;
use common::asr::speaker::{MODEL_FILE, SpeakerEncoder};
use common::db::transcription::Segment;
use common::speakers::{self, DiarizeParams};
use common::speech::{EngineSettings, WhisperEngine};
use common::transcribe::SpeechEngine;
use serde_json::Value;
use vox_tests::der::{DerCounts, der, role_accuracy};

const COLLAR_MS: i64 = 250;

/// Right out of total.
type Right = (usize, usize);

struct Clip {
    name: String,
    audio: PathBuf,
    language: String,
    interview: bool,
    /// (start ms, end ms, speaker S1/S2, role Сотрудник/Клиент)
    turns: Vec<(i64, i64, String, String)>,
}

struct Row {
    name: String,
    audio_seconds: f64,
    true_speakers: usize,
    found: usize,
    der: DerCounts,
    /// Turns with the right role: ours, the text heuristic's.
    roles: Option<(Right, Right)>,
    encoder_seconds: f64,
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let cache = vox_cache()?;
    let clips = clips(&cache)?;
    let settings = EngineSettings::from_env()?;
    let engine =
        WhisperEngine::load(&settings).context("models (infra/local/models/prepare.sh)")?;
    let env = runtime::environment(&runtime::find_library(
        &settings.models_dir.join("onnxruntime"),
    )?)?;
    let mut encoder = SpeakerEncoder::open(&env, &settings.models_dir.join(MODEL_FILE))?;
    let params = DiarizeParams::from_env()?;
    let sweep = std::env::var("VOX_BENCH_SWEEP").is_ok_and(|v| v == "1");
    let mut rows = Vec::new();
    let mut kept: Vec<(Clip, Vec<Segment>)> = Vec::new();
    for clip in clips {
        eprintln!("{} ...", clip.name);
        let mut segments = Vec::new();
        let summary = engine.transcribe_file(&clip.audio, Some(&clip.language), 0, &mut |w| {
            segments.extend(w.segments);
            ControlFlow::Continue(())
        })?;
        let encoder_seconds = time_encoder(&mut encoder, &clip.audio, &segments)?;
        let raw = segments.clone();
        let row = score(
            &clip,
            segments,
            &params,
            summary.audio_seconds,
            encoder_seconds,
        );
        rows.push(row);
        kept.push((clip, raw));
    }
    report(&rows, &params);
    if sweep {
        println!();
        println!(
            "threshold sweep: pooled DER and confusion over two-voice clips, role accuracy, clips with the right speaker count"
        );
        for t in [0.6f32, 0.7, 0.75, 0.78, 0.8, 0.82, 0.85, 0.88, 0.9, 0.93] {
            let p = DiarizeParams {
                threshold: t,
                ..params.clone()
            };
            let rows: Vec<Row> = kept
                .iter()
                .map(|(c, s)| score(c, s.clone(), &p, 0.0, 0.0))
                .collect();
            let (d, r) = pooled(&rows);
            let right = rows.iter().filter(|r| r.found == r.true_speakers).count();
            println!(
                "  {t:.2}  DER {:>5.1} %  confusion {:>5.1} %  roles {:>5.1} %  count right {right}/{}",
                d.der() * 100.0,
                d.confusion_rate() * 100.0,
                pct(r.0),
                rows.len()
            );
        }
    }
    Ok(())
}

fn score(
    clip: &Clip,
    mut segments: Vec<Segment>,
    params: &DiarizeParams,
    audio_seconds: f64,
    encoder_seconds: f64,
) -> Row {
    let anchor: Vec<(i64, i64, Option<String>)> = segments
        .iter()
        .map(|s| (s.start_ms, s.end_ms, text_role(s)))
        .collect();
    let evidence = speakers::label_segments(&mut segments, params, clip.interview);
    let reference: Vec<(i64, i64, String)> =
        clip.turns.iter().map(|t| (t.0, t.1, t.2.clone())).collect();
    let hypothesis: Vec<(i64, i64, i16)> = segments
        .iter()
        .filter_map(|s| s.speaker_id.map(|id| (s.start_ms, s.end_ms, id)))
        .collect();
    let mut true_speakers: Vec<&str> = clip.turns.iter().map(|t| t.2.as_str()).collect();
    true_speakers.sort_unstable();
    true_speakers.dedup();
    let roles = clip.interview.then(|| {
        let reference: Vec<(i64, i64, String)> =
            clip.turns.iter().map(|t| (t.0, t.1, t.3.clone())).collect();
        let ours: Vec<(i64, i64, Option<String>)> = segments
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.speaker.clone()))
            .collect();
        (
            role_accuracy(&reference, &ours),
            role_accuracy(&reference, &anchor),
        )
    });
    Row {
        name: clip.name.clone(),
        audio_seconds,
        true_speakers: true_speakers.len(),
        found: evidence.len(),
        der: der(&reference, &hypothesis, COLLAR_MS),
        roles,
        encoder_seconds,
    }
}

/// The text heuristic's role of a segment: the role of most of its characters.
fn text_role(s: &Segment) -> Option<String> {
    let turns = common::analysis::offline::label_turns(std::slice::from_ref(s));
    let mut by: Vec<(&str, usize)> = Vec::new();
    for (role, text) in &turns {
        match by.iter_mut().find(|(r, _)| r == role) {
            Some((_, n)) => *n += text.chars().count(),
            None => by.push((role, text.chars().count())),
        }
    }
    by.into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(r, _)| r.to_owned())
}

/// The encoder's CPU time on every segment of the clip, alone.
fn time_encoder(encoder: &mut SpeakerEncoder, audio: &Path, segments: &[Segment]) -> Result<f64> {
    let mut samples = Vec::new();
    common::audio::decode_file::<common::audio::AudioError, _>(audio, None, |chunk| {
        samples.extend_from_slice(chunk);
        Ok(ControlFlow::Continue(()))
    })?;
    let start = Instant::now();
    for s in segments {
        let a = (s.start_ms as usize * 16).min(samples.len());
        let b = (s.end_ms as usize * 16).clamp(a, samples.len());
        encoder.voiceprint(&samples[a..b])?;
    }
    Ok(start.elapsed().as_secs_f64())
}

fn pooled(rows: &[Row]) -> (DerCounts, (Right, Right)) {
    let mut d = DerCounts::default();
    let (mut ours, mut anchor) = ((0, 0), (0, 0));
    for r in rows {
        if r.true_speakers >= 2 {
            d.add(&r.der);
        }
        if let Some((o, a)) = r.roles {
            ours = (ours.0 + o.0, ours.1 + o.1);
            anchor = (anchor.0 + a.0, anchor.1 + a.1);
        }
    }
    (d, (ours, anchor))
}

fn pct((right, total): (usize, usize)) -> f64 {
    right as f64 * 100.0 / total.max(1) as f64
}

fn report(rows: &[Row], params: &DiarizeParams) {
    println!();
    println!(
        "speakers: Resemblyzer GE2E voiceprints per segment, centroid clustering at cosine {:.2}, at most {}; DER with a {} ms collar; roles: ours (voices + turns) vs the text heuristic (anchor)",
        params.threshold, params.max_speakers, COLLAR_MS
    );
    println!(
        "{:<34} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7} {:>11} {:>11} {:>10}",
        "clip",
        "audio s",
        "speakers",
        "DER %",
        "miss %",
        "FA %",
        "conf %",
        "roles ours",
        "roles text",
        "enc s/min"
    );
    for r in rows {
        let reference = r.der.reference.max(1) as f64;
        let roles =
            |x: Option<(usize, usize)>| x.map_or("-".to_owned(), |(a, b)| format!("{a}/{b}"));
        println!(
            "{:<34} {:>7.1} {:>9} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>11} {:>11} {:>10.2}",
            r.name,
            r.audio_seconds,
            format!("{}/{}", r.found, r.true_speakers),
            r.der.der() * 100.0,
            r.der.missed as f64 * 100.0 / reference,
            r.der.false_alarm as f64 * 100.0 / reference,
            r.der.confusion_rate() * 100.0,
            roles(r.roles.map(|x| x.0)),
            roles(r.roles.map(|x| x.1)),
            r.encoder_seconds * 60.0 / r.audio_seconds.max(1e-9),
        );
    }
    let (d, (ours, anchor)) = pooled(rows);
    let audio: f64 = rows.iter().map(|r| r.audio_seconds).sum();
    let enc: f64 = rows.iter().map(|r| r.encoder_seconds).sum();
    let right_count = rows.iter().filter(|r| r.found == r.true_speakers).count();
    println!();
    println!(
        "pooled two-voice clips: DER {:.1} % (missed {:.1} %, false alarm {:.1} %, confusion {:.1} %)",
        d.der() * 100.0,
        d.missed as f64 * 100.0 / d.reference.max(1) as f64,
        d.false_alarm as f64 * 100.0 / d.reference.max(1) as f64,
        d.confusion_rate() * 100.0
    );
    println!(
        "role accuracy over interview turns: ours {:.1} % ({}/{}), text heuristic (anchor) {:.1} % ({}/{})",
        pct(ours),
        ours.0,
        ours.1,
        pct(anchor),
        anchor.0,
        anchor.1
    );
    println!(
        "speaker count right on {right_count}/{} clips; speaker encoder {:.2} s of CPU per audio minute",
        rows.len(),
        enc * 60.0 / audio.max(1e-9)
    );
    println!("targets: DER <= 10 % on two-voice clips; role accuracy >= 95 % of turns");
}

/// The dialogues, in a fixed order.
fn clips(cache: &Path) -> Result<Vec<Clip>> {
    let dialogues = cache.join("speech").join("dialogues");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/local/speech/make_dialogues.py");
    let status = Command::new("python3")
        .arg(&script)
        .status()
        .context("running make_dialogues.py")?;
    if !status.success() {
        bail!("make_dialogues.py failed");
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dialogues)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for audio in names {
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(audio.with_extension("json"))?)?;
        let tsv = std::fs::read_to_string(audio.with_extension("turns.tsv"))?;
        let mut turns = Vec::new();
        for line in tsv.lines().skip(1) {
            let f: Vec<&str> = line.splitn(5, '\t').collect();
            let role = match f[3] {
                "employee" => "Сотрудник",
                _ => "Клиент",
            };
            turns.push((
                f[0].parse()?,
                f[1].parse()?,
                f[2].to_owned(),
                role.to_owned(),
            ));
        }
        out.push(Clip {
            name: audio
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            language: meta["lang"].as_str().unwrap_or("ru").to_owned(),
            interview: meta["kind"].as_str() == Some("interview"),
            turns,
            audio,
        });
    }
    if let Ok(filter) = std::env::var("VOX_BENCH_CLIPS") {
        let wanted: Vec<&str> = filter.split(',').map(str::trim).collect();
        out.retain(|c| wanted.iter().any(|w| c.name.contains(w)));
    }
    Ok(out)
}

fn vox_cache() -> Result<PathBuf> {
    if let Some(c) = std::env::var_os("VOX_CACHE") {
        return Ok(PathBuf::from(c));
    }
    let home = std::env::var_os("HOME").context("HOME or VOX_CACHE must be set")?;
    Ok(PathBuf::from(home).join(".cache/voxpersona"))
}
