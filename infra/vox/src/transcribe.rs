//! `vox transcribe FILE`: the transcribe stage's engine on a local file, progress on stderr,
//! the transcript as JSON on stdout.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use common::db::transcription::Segment;
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
}

pub fn run(file: &Path, language: Option<&str>) -> anyhow::Result<()> {
    if !file.is_file() {
        bail!("{} is not a file", file.display());
    }
    let started = Instant::now();
    let settings = EngineSettings::from_env()?;
    let engine =
        WhisperEngine::load(&settings).context("loading the speech models (run `vox models`)")?;
    let mut segments = Vec::new();
    let mut detected = None;
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
        detected = detected.take().or(window.language);
        segments.extend(window.segments);
        ControlFlow::Continue(())
    })?;
    let text = common::db::transcription::text_of(&segments);
    let output = Output {
        text,
        segments,
        language: language.map(str::to_owned).or(detected),
        audio_seconds: summary.audio_seconds,
        processing_seconds: started.elapsed().as_secs_f64(),
        model: engine.model_id(),
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}
