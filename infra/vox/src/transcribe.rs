//! `vox transcribe FILE`: the transcribe stage's engine on a local file, progress on stderr,
//! the transcript as JSON on stdout (or, with `--format txt|srt|vtt|docx`, as the API exports
//! it; DOCX only to a file or a pipe).

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use common::db::transcription::{Coverage, Segment, UncoveredSpeech};
use common::export::transcript as export;
use common::speakers::{self, DiarizeParams, SpeakerEvidence};
use common::speech::{EngineSettings, WhisperEngine};
use common::transcribe::SpeechEngine;
use serde::Serialize;

#[derive(Serialize)]
struct Output {
    text: String,
    segments: Vec<Segment>,
    language: Option<String>,
    audio_seconds: f64,
    processing_seconds: f64,
    model: String,
    /// Share of the speech the voice-activity detector heard that the text covers.
    coverage: f64,
    speech_seconds: f64,
    /// Speech no text covers, even after decoding it again on its own.
    uncovered: Vec<UncoveredSpeech>,
    /// The speakers told apart by voice (each segment's `speaker_id`), with what their turns
    /// say of them; with `--interview` also the roles (each segment's `speaker`).
    speakers: Vec<SpeakerEvidence>,
}

pub fn run(
    file: &Path,
    language: Option<&str>,
    interview: bool,
    format: &str,
) -> anyhow::Result<()> {
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    // Checked before the models load: a wrong name fails at once.
    let wanted = match format {
        "json" => None,
        other => Some(other.parse::<export::Format>()?),
    };
    if wanted == Some(export::Format::Docx) && std::io::stdout().is_terminal() {
        bail!("DOCX is a binary file: redirect stdout to a file (`> transcript.docx`)");
    }
    let started = Instant::now();
    let settings = EngineSettings::from_env()?;
    let diarize = DiarizeParams::from_env()?;
    let engine =
        WhisperEngine::load(&settings).context("loading the speech models (run `vox models`)")?;
    let mut segments = Vec::new();
    let mut detected = None;
    let mut speech_ms = 0;
    let mut uncovered = Vec::new();
    let mut stderr = std::io::stderr();
    let summary = engine.transcribe_file(file, language, 0, &mut |window| {
        let _ = match window.progress {
            Some(p) => writeln!(
                stderr,
                "transcribed {:>6.1} s ({:>3.0} %)",
                window.end_ms as f64 / 1000.0,
                p * 100.0
            ),
            None => writeln!(
                stderr,
                "transcribed {:>6.1} s",
                window.end_ms as f64 / 1000.0
            ),
        };
        for u in &window.uncovered {
            let _ = writeln!(
                stderr,
                "warning: speech from {:.1} s to {:.1} s could not be transcribed",
                u.start_ms as f64 / 1000.0,
                u.end_ms as f64 / 1000.0
            );
        }
        detected = detected.take().or(window.language);
        speech_ms += window.speech_ms.unwrap_or(0);
        uncovered.extend(window.uncovered);
        segments.extend(window.segments);
        ControlFlow::Continue(())
    })?;
    let speakers = speakers::label_segments(&mut segments, &diarize, interview);
    let text = common::db::transcription::text_of(&segments);
    let coverage = Coverage::new(speech_ms, uncovered);
    if coverage.uncovered_ms > 0 {
        eprintln!(
            "warning: {:.1} s of {:.1} s of speech could not be transcribed ({:.1} % covered)",
            coverage.uncovered_ms as f64 / 1000.0,
            coverage.speech_ms as f64 / 1000.0,
            coverage.coverage * 100.0
        );
    }
    let output = Output {
        text,
        segments,
        language: language.map(str::to_owned).or(detected),
        audio_seconds: summary.audio_seconds,
        processing_seconds: started.elapsed().as_secs_f64(),
        model: engine.model_id(),
        coverage: coverage.coverage,
        speech_seconds: coverage.speech_ms as f64 / 1000.0,
        uncovered: coverage.uncovered,
        speakers,
    };
    match wanted {
        None => println!("{}", serde_json::to_string_pretty(&output)?),
        Some(format) => {
            let recording = file.file_name().unwrap_or_default().to_string_lossy();
            let transcript = export::Transcript {
                recording: &recording,
                number_audio: None,
                language: output.language.as_deref(),
                audio_seconds: Some(output.audio_seconds),
                text: &output.text,
                segments: &output.segments,
            };
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&export::render(&transcript, format)?)?;
            stdout.flush()?;
        }
    }
    Ok(())
}
