//! Speech engine against Python faster-whisper, clip by clip, on the same model in one run.
//!
//! The evaluation set: the synthesized dialogues of `infra/local/speech/make_dialogues.py`
//! (two-voice interviews of hotels, restaurants and spas in several cities, 26 s to 10 min,
//! pauses of 0.2-1.5 s between turns; two one-voice design audits; an English interview),
//! which this bench builds (`--long` included) when missing, and the 10-minute design-audit
//! monologue of `make_clips.sh` as a voice app (SILK Opus) and a browser (48 kHz WebM, CELT)
//! record it. `VOX_BENCH_CLIPS=a,b` keeps the clips whose names contain one of those strings;
//! `VOX_BENCH_FW=0` runs our engine only (settings such as `VOX_ASR_PROMPT` apply to it).
//!
//! Each clip is transcribed in a child process of this bench by `common::speech::WhisperEngine`
//! (so its peak RSS is its own) and by `infra/local/models/faster_whisper_bench.py` with
//! `$VOX_CACHE/venv-fw/bin/python`: the same CTranslate2 Whisper base that prepare.sh converts,
//! int8, beam 1, its default timestamp mode and temperature fallback, VAD on, no conditioning
//! on previous text (ours does not either), the same thread count (`VOX_BENCH_THREADS`, 2).
//! Model load is not timed. For each clip and engine it prints:
//!
//! - WER against the reference (`tests/src/wer.rs`, as the tests score it);
//! - sentences with fewer than half their words recognised ("lost");
//! - coverage: ours as the engine reports it (the share of its VAD speech its segments
//!   cover), and for both the share of the true speech (the dialogue's `turns.tsv`) under
//!   segments;
//! - wall time, real-time factor, peak RSS.
//!
//! Then pooled Russian WER, the time ratio over all clips, and the targets.
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
use vox_tests::wer::{edit_distance, recall_by_part, sentences, words};

/// Set in the child: transcribe this file and print one JSON line.
const CHILD_ENV: &str = "VOX_BENCH_CHILD_AUDIO";
const CHILD_LANGUAGE: &str = "VOX_BENCH_CHILD_LANGUAGE";

struct Clip {
    name: String,
    audio: PathBuf,
    language: String,
    reference: String,
    /// Where the speech really is (dialogues only): (start ms, end ms).
    truth: Vec<(i64, i64)>,
}

/// One engine's result on one clip.
struct Run {
    audio_seconds: f64,
    wall_seconds: f64,
    peak_rss_mb: Option<f64>,
    text: String,
    segments: Vec<(i64, i64)>,
    /// As the engine reports it (ours only).
    coverage: Option<f64>,
    uncovered: usize,
}

fn main() -> Result<()> {
    let threads: usize = match std::env::var("VOX_BENCH_THREADS") {
        Ok(v) => v.parse().context("VOX_BENCH_THREADS")?,
        Err(_) => 2,
    };
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        let language = std::env::var(CHILD_LANGUAGE).unwrap_or_else(|_| "ru".into());
        return child(Path::new(&path), &language, threads);
    }

    let cache = vox_cache()?;
    let clips = clips(&cache)?;
    if clips.is_empty() {
        bail!("no clips (VOX_BENCH_CLIPS filters them all out?)");
    }
    let python = cache.join("venv-fw/bin/python");
    let fw_wanted = std::env::var("VOX_BENCH_FW").map_or(true, |v| v != "0");
    let fw_available = fw_wanted && python.is_file();
    if fw_wanted && !fw_available {
        println!(
            "faster-whisper skipped: no {}; create it with\n  python3 -m venv {} && {} install -r infra/local/models/requirements-fw.txt",
            python.display(),
            cache.join("venv-fw").display(),
            cache.join("venv-fw/bin/pip").display()
        );
    }

    let mut rows = Vec::new();
    for clip in &clips {
        eprintln!("{} ...", clip.name);
        let ours = run_ours(clip, threads)?;
        let fw = if fw_available {
            Some(run_fw(&python, clip, threads)?)
        } else {
            None
        };
        rows.push((clip, ours, fw));
    }
    report(&rows, threads);
    Ok(())
}

/// The evaluation set, in a fixed order.
fn clips(cache: &Path) -> Result<Vec<Clip>> {
    let speech = cache.join("speech");
    let dialogues = speech.join("dialogues");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/local/speech/make_dialogues.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg("--long")
        .status()
        .context("running make_dialogues.py")?;
    if !status.success() {
        bail!("make_dialogues.py failed");
    }
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dialogues)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    names.sort();
    for audio in names {
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(audio.with_extension("json"))?)?;
        let tsv = std::fs::read_to_string(audio.with_extension("turns.tsv"))?;
        let mut truth = Vec::new();
        let mut reference = Vec::new();
        for line in tsv.lines().skip(1) {
            let f: Vec<&str> = line.splitn(5, '\t').collect();
            truth.push((f[0].parse()?, f[1].parse()?));
            reference.push(f[4].to_owned());
        }
        out.push(Clip {
            name: file_name(&audio),
            language: meta["lang"].as_str().unwrap_or("ru").to_owned(),
            reference: reference.join("\n"),
            truth,
            audio,
        });
    }
    for long in ["ru_long_10min.ogg", "ru_long_10min.webm"] {
        let audio = speech.join(long);
        if audio.is_file() {
            out.push(Clip {
                name: long.to_owned(),
                language: "ru".into(),
                reference: std::fs::read_to_string(speech.join("ru_long_10min.txt"))?,
                truth: Vec::new(),
                audio,
            });
        }
    }
    if let Ok(filter) = std::env::var("VOX_BENCH_CLIPS") {
        let wanted: Vec<&str> = filter.split(',').map(str::trim).collect();
        out.retain(|c| wanted.iter().any(|w| c.name.contains(w)));
    }
    Ok(out)
}

/// The child: loads the engine (not timed), transcribes, prints one JSON line.
fn child(path: &Path, language: &str, threads: usize) -> Result<()> {
    let mut settings = EngineSettings::from_env()?;
    settings.threads = threads;
    let engine = WhisperEngine::load(&settings)
        .context("models prepared by infra/local/models/prepare.sh")?;
    let mut segments = Vec::new();
    let (mut speech_ms, mut uncovered) = (0i64, Vec::new());
    let start = Instant::now();
    let summary = engine
        .transcribe_file(path, Some(language), 0, &mut |window| {
            speech_ms += window.speech_ms.unwrap_or(0);
            uncovered.extend(window.uncovered);
            segments.extend(window.segments);
            ControlFlow::Continue(())
        })
        .with_context(|| format!("transcribing {}", path.display()))?;
    let wall = start.elapsed().as_secs_f64();
    let coverage = common::db::transcription::Coverage::new(speech_ms, uncovered);
    let out = json!({
        "audio_seconds": summary.audio_seconds,
        "seconds": wall,
        "peak_rss_mb": peak_rss_mb(),
        "text": common::db::transcription::text_of(&segments),
        "segments": segments,
        "coverage": coverage.coverage,
        "uncovered": coverage.uncovered.len(),
    });
    println!("{out}");
    Ok(())
}

fn run_ours(clip: &Clip, threads: usize) -> Result<Run> {
    let child = Command::new(std::env::current_exe()?)
        .env(CHILD_ENV, &clip.audio)
        .env(CHILD_LANGUAGE, &clip.language)
        .env("VOX_BENCH_THREADS", threads.to_string())
        .output()
        .context("re-running the bench as a child")?;
    if !child.status.success() {
        bail!(
            "child run on {} failed: {}",
            clip.name,
            String::from_utf8_lossy(&child.stderr)
        );
    }
    Ok(from_json(&last_json_line(&child.stdout)?))
}

fn run_fw(python: &Path, clip: &Clip, threads: usize) -> Result<Run> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/local/models/faster_whisper_bench.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(&clip.audio)
        .args([
            "--threads",
            &threads.to_string(),
            "--language",
            &clip.language,
        ])
        .output()
        .context("running faster_whisper_bench.py")?;
    if !out.status.success() {
        bail!(
            "faster_whisper_bench.py on {} failed: {}",
            clip.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(from_json(&last_json_line(&out.stdout)?))
}

fn from_json(v: &Value) -> Run {
    let segments = v["segments"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["start_ms"].as_i64().unwrap_or(0),
                        s["end_ms"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Run {
        audio_seconds: v["audio_seconds"].as_f64().unwrap_or(f64::NAN),
        wall_seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        peak_rss_mb: v["peak_rss_mb"].as_f64(),
        text: v["text"].as_str().unwrap_or_default().to_owned(),
        segments,
        coverage: v["coverage"].as_f64(),
        uncovered: v["uncovered"].as_u64().unwrap_or(0) as usize,
    }
}

/// What the table shows of one run on one clip.
struct Scores {
    errors: usize,
    words: usize,
    lost: usize,
    sentences: usize,
    truth_coverage: Option<f64>,
}

fn score(clip: &Clip, run: &Run) -> Scores {
    let reference = words(&clip.reference);
    let parts = sentences(&clip.reference);
    let recall = recall_by_part(&parts, &run.text);
    Scores {
        errors: edit_distance(&reference, &words(&run.text)),
        words: reference.len(),
        lost: recall.iter().filter(|&&r| r < 0.5).count(),
        sentences: parts.len(),
        truth_coverage: (!clip.truth.is_empty())
            .then(|| truth_coverage(&clip.truth, &run.segments)),
    }
}

/// The share of the true speech under some segment.
fn truth_coverage(truth: &[(i64, i64)], segments: &[(i64, i64)]) -> f64 {
    let mut spans = segments.to_vec();
    spans.sort_unstable();
    let (mut covered, mut total) = (0i64, 0i64);
    for &(a, b) in truth {
        total += b - a;
        let mut at = a;
        for &(s, e) in &spans {
            let (s, e) = (s.max(at), e.min(b));
            if e > s {
                covered += e - s;
                at = e;
            }
        }
    }
    covered as f64 / total.max(1) as f64
}

fn report(rows: &[(&Clip, Run, Option<Run>)], threads: usize) {
    println!();
    println!(
        "whisper-base int8, beam 1, {threads} threads, VAD on; ours = common::speech::WhisperEngine, fw = faster-whisper (requirements-fw.txt); model load not timed"
    );
    println!(
        "{:<30} {:>6} | {:>6} {:>6} {:>6} | {:>5} {:>5} | {:>6} {:>11} | {:>6} {:>6} {:>6} {:>6} | {:>5} {:>5}",
        "clip",
        "audio",
        "WER",
        "fw",
        "diff",
        "lost",
        "fw",
        "cov",
        "truth cov",
        "s",
        "fw s",
        "RTF",
        "ratio",
        "RSS",
        "fw"
    );
    let pct = |x: f64| format!("{:.1}", x * 100.0);
    let (mut ru_e, mut ru_n, mut fw_e, mut fw_n) = (0, 0, 0, 0);
    let (mut ours_s, mut fw_s, mut audio_s) = (0.0, 0.0, 0.0);
    let mut worst_diff = f64::NEG_INFINITY;
    let (mut min_cov, mut lost_total, mut max_rss, mut max_rtf) = (1.0f64, 0, 0.0f64, 0.0f64);
    for (clip, ours, fw) in rows {
        let o = score(clip, ours);
        let f = fw.as_ref().map(|r| score(clip, r));
        let wer = o.errors as f64 / o.words.max(1) as f64;
        let fw_wer = f.as_ref().map(|f| f.errors as f64 / f.words.max(1) as f64);
        if clip.language == "ru" {
            ru_e += o.errors;
            ru_n += o.words;
            if let Some(f) = &f {
                fw_e += f.errors;
                fw_n += f.words;
            }
        }
        if let Some(fw_wer) = fw_wer {
            worst_diff = worst_diff.max(wer - fw_wer);
        }
        ours_s += ours.wall_seconds;
        fw_s += fw.as_ref().map_or(0.0, |r| r.wall_seconds);
        audio_s += ours.audio_seconds;
        let rtf = ours.wall_seconds / ours.audio_seconds.max(1e-9);
        max_rtf = max_rtf.max(rtf);
        max_rss = max_rss.max(ours.peak_rss_mb.unwrap_or(0.0));
        if clip.name.starts_with("ru_int") || clip.name.starts_with("en_int") {
            min_cov = min_cov.min(ours.coverage.unwrap_or(0.0));
            lost_total += o.lost;
        }
        let truth = match (o.truth_coverage, f.as_ref().and_then(|f| f.truth_coverage)) {
            (Some(a), Some(b)) => format!("{}/{}", pct(a), pct(b)),
            (Some(a), None) => pct(a),
            _ => "-".into(),
        };
        println!(
            "{:<30} {:>6.0} | {:>6} {:>6} {:>6} | {:>5} {:>5} | {:>6} {:>11} | {:>6.1} {:>6} {:>6.3} {:>6} | {:>5} {:>5}",
            clip.name,
            ours.audio_seconds,
            pct(wer),
            fw_wer.map_or("-".into(), pct),
            fw_wer.map_or("-".into(), |f| format!("{:+.1}", (wer - f) * 100.0)),
            format!("{}/{}", o.lost, o.sentences),
            f.as_ref().map_or("-".into(), |f| f.lost.to_string()),
            ours.coverage.map_or("-".into(), |c| format!(
                "{}{}",
                pct(c),
                if ours.uncovered > 0 { "*" } else { "" }
            )),
            truth,
            ours.wall_seconds,
            fw.as_ref()
                .map_or("-".into(), |r| format!("{:.1}", r.wall_seconds)),
            rtf,
            fw.as_ref().map_or("-".into(), |r| format!(
                "{:.2}x",
                ours.wall_seconds / r.wall_seconds.max(1e-9)
            )),
            ours.peak_rss_mb.map_or("-".into(), |m| format!("{m:.0}")),
            fw.as_ref()
                .and_then(|r| r.peak_rss_mb)
                .map_or("-".into(), |m| format!("{m:.0}")),
        );
    }
    println!(
        "(WER, coverage in %; lost = sentences with under half their words recognised; cov = share of our VAD speech the text covers, * = uncovered speech reported; truth cov = share of the real speech under segments, ours/fw; ratio = our time / faster-whisper's)"
    );
    println!();
    let ru = ru_e as f64 / ru_n.max(1) as f64;
    println!(
        "pooled Russian WER: ours {} % ({ru_e} word errors over {ru_n} words){}",
        pct(ru),
        if fw_n > 0 {
            format!(
                ", faster-whisper {} % ({fw_e} word errors)",
                pct(fw_e as f64 / fw_n as f64)
            )
        } else {
            String::new()
        }
    );
    println!(
        "time over all clips: ours {ours_s:.1} s for {audio_s:.0} s of audio (RTF {:.3}){}",
        ours_s / audio_s.max(1e-9),
        if fw_s > 0.0 {
            format!(", faster-whisper {fw_s:.1} s, ratio {:.2}x", ours_s / fw_s)
        } else {
            String::new()
        }
    );
    println!("targets:");
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "  coverage 100 % of VAD speech on every interview: lowest {} % ({})",
        pct(min_cov),
        mark(min_cov >= 0.9995)
    );
    println!(
        "  no interview sentence with under half its words: {lost_total} ({})",
        mark(lost_total == 0)
    );
    if fw_n > 0 {
        println!(
            "  every clip at most faster-whisper + 2 points: worst {:+.1} ({})",
            worst_diff * 100.0,
            mark(worst_diff <= 0.02)
        );
        let fw_ru = fw_e as f64 / fw_n as f64;
        println!(
            "  pooled Russian WER at or below faster-whisper's: {} vs {} ({})",
            pct(ru),
            pct(fw_ru),
            mark(ru <= fw_ru)
        );
        println!(
            "  time at most 1.0x faster-whisper's: {:.2}x ({})",
            ours_s / fw_s,
            mark(ours_s <= fw_s)
        );
    }
    println!(
        "  RTF at most 0.10 on every clip: worst {max_rtf:.3} ({})",
        mark(max_rtf <= 0.10)
    );
    println!(
        "  peak RSS at most 1 GB: {max_rss:.0} MB ({})",
        mark(max_rss <= 1024.0)
    );
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

fn vox_cache() -> Result<PathBuf> {
    if let Some(c) = std::env::var_os("VOX_CACHE") {
        return Ok(PathBuf::from(c));
    }
    let home = std::env::var_os("HOME").context("set VOX_CACHE or HOME")?;
    Ok(PathBuf::from(home).join(".cache/voxpersona"))
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
