//! `OpenAiSpeech` against a server speaking `POST /v1/audio/transcriptions` (multipart in,
//! `verbose_json` out), on real WAV files.

use std::collections::HashMap;
use std::io::Cursor;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::llm::ApiKey;
use common::speech_api::{OpenAiSpeech, SpeechApiSettings};
use common::transcribe::{RunSummary, SpeechEngine, WindowDone};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{KEY, assert_no_key, header, provider_failure, quick_retries, requests};

const PATH: &str = "/v1/audio/transcriptions";
const RATE: u32 = 16_000;

/// A 16 kHz mono WAV: a 440 Hz tone, with silence where `silent` says (in seconds).
fn write_wav(dir: &Path, seconds: f64, silent: &[(f64, f64)]) -> PathBuf {
    let path = dir.join("recording.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    let total = (seconds * f64::from(RATE)) as usize;
    for i in 0..total {
        let t = i as f64 / f64::from(RATE);
        let quiet = silent.iter().any(|&(from, to)| from <= t && t < to);
        let value = if quiet {
            0.0
        } else {
            0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
        };
        writer.write_sample((value * 32767.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
    path
}

/// The parts of a multipart body: name -> (filename, content type, bytes).
type Parts = HashMap<String, (Option<String>, Option<String>, Vec<u8>)>;

fn multipart(request: &Request) -> Parts {
    let content_type = header(request, "content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {content_type}"));
    let delimiter = format!("--{boundary}");
    let body = &request.body;
    let mut parts = HashMap::new();
    let positions: Vec<usize> = body
        .windows(delimiter.len())
        .enumerate()
        .filter(|(_, w)| *w == delimiter.as_bytes())
        .map(|(i, _)| i)
        .collect();
    for pair in positions.windows(2) {
        let part = &body[pair[0] + delimiter.len() + 2..pair[1] - 2]; // after CRLF, before CRLF
        let split = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&part[..split]).unwrap();
        let content = part[split + 4..].to_vec();
        let name = quoted(head, "name").unwrap();
        let filename = quoted(head, "filename");
        let part_type = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .map(str::to_owned);
        parts.insert(name, (filename, part_type, content));
    }
    let last = *positions.last().unwrap();
    assert_eq!(
        &body[last + delimiter.len()..],
        b"--\r\n",
        "the body is not closed"
    );
    parts
}

/// The value of `key="..."` in a part's headers.
fn quoted(head: &str, key: &str) -> Option<String> {
    let start = head.find(&format!(" {key}=\""))? + key.len() + 3;
    let end = head[start..].find('"')? + start;
    Some(head[start..end].to_owned())
}

fn text(parts: &Parts, name: &str) -> Option<String> {
    parts
        .get(name)
        .map(|(_, _, bytes)| String::from_utf8(bytes.clone()).unwrap())
}

/// The uploaded WAV's duration in seconds, checking its format on the way.
fn wav_seconds(parts: &Parts) -> f64 {
    let (filename, content_type, bytes) = parts.get("file").unwrap();
    assert!(filename.as_deref().unwrap().ends_with(".wav"));
    assert_eq!(content_type.as_deref(), Some("audio/wav"));
    let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, RATE, 16)
    );
    f64::from(reader.duration()) / f64::from(RATE)
}

/// Answers like OpenAI: two segments per piece, the second running past the piece's end.
fn whisper_like(request: &Request) -> ResponseTemplate {
    let parts = multipart(request);
    let seconds = wav_seconds(&parts);
    ResponseTemplate::new(200).set_body_json(json!({
        "task": "transcribe",
        "language": "russian",
        "duration": seconds,
        "text": "Добрый день. Чем могу помочь?",
        "segments": [
            {"id": 0, "seek": 0, "start": 0.5, "end": 1.0, "text": " Добрый день."},
            {"id": 1, "seek": 0, "start": seconds - 0.5, "end": seconds + 3.0, "text": " Чем могу помочь?"},
        ],
    }))
}

fn engine(
    server: &MockServer,
    piece: Duration,
    max_attempts: u32,
    timeout: Duration,
) -> Arc<OpenAiSpeech> {
    let mut settings = SpeechApiSettings::new("whisper-1", format!("{}/v1", server.uri()));
    settings.api_key = Some(ApiKey::new(KEY));
    settings.piece = piece;
    settings.timeout = timeout;
    settings.retry = quick_retries(max_attempts);
    Arc::new(OpenAiSpeech::new(settings).unwrap())
}

/// Runs the engine on a blocking thread, as the transcribe stage does; `stop_after` windows
/// it asks to stop.
async fn run(
    engine: &Arc<OpenAiSpeech>,
    path: &Path,
    start_ms: i64,
    stop_after: Option<usize>,
) -> (common::Result<RunSummary>, Vec<WindowDone>) {
    let engine = Arc::clone(engine);
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut windows = Vec::new();
        let summary = engine.transcribe_file(&path, Some("ru"), start_ms, &mut |w| {
            windows.push(w);
            if stop_after == Some(windows.len()) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        (summary, windows)
    })
    .await
    .unwrap()
}

async fn mount_whisper(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(whisper_like)
        .with_priority(5)
        .mount(server)
        .await;
}

async fn mount_once(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(response)
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
}

/// 13.5 s: tone to 3.5 s, a pause to 3.7 s, tone to 7 s, silence to 12.5 s, tone to the end.
/// With 4 s pieces: [0, ~3.65) cut in the pause, [~3.65, ~7.6) cut in the silence, a silent
/// piece that is not sent, and the rest.
fn recording(dir: &Path) -> PathBuf {
    write_wav(dir, 13.5, &[(3.5, 3.7), (7.0, 12.5)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pieces_are_cut_in_pauses_sent_as_wav_and_their_segments_moved_to_the_recording() {
    let server = MockServer::start().await;
    mount_whisper(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let wav = recording(dir.path());
    let engine = engine(&server, Duration::from_secs(4), 3, Duration::from_secs(10));

    let (summary, windows) = run(&engine, &wav, 0, None).await;

    let summary = summary.unwrap();
    assert!(!summary.stopped);
    assert!((summary.audio_seconds - 13.5).abs() < 0.01, "{summary:?}");
    assert_eq!(engine.model_id(), "openai:whisper-1");
    let spans: Vec<(i64, i64)> = windows.iter().map(|w| (w.start_ms, w.end_ms)).collect();
    assert_eq!(windows.len(), 4, "{spans:?}");
    assert_eq!(windows[0].start_ms, 0);
    assert!((13_490..=13_500).contains(&windows[3].end_ms), "{spans:?}");
    for pair in windows.windows(2) {
        assert_eq!(pair[0].end_ms, pair[1].start_ms, "{spans:?}");
    }
    assert!(
        (3_500..=3_700).contains(&windows[0].end_ms),
        "first cut {spans:?}"
    );
    assert!(
        (7_000..=7_650).contains(&windows[1].end_ms),
        "second cut {spans:?}"
    );
    for w in &windows {
        assert!(w.end_ms - w.start_ms <= 4_000, "{spans:?}");
    }
    // The silent piece was not sent and has no text.
    assert!(windows[2].segments.is_empty());
    let sent = requests(&server).await;
    assert_eq!(sent.len(), 3);
    let sent_windows = [&windows[0], &windows[1], &windows[3]];
    for (request, window) in sent.iter().zip(sent_windows) {
        assert_eq!(
            header(request, "authorization"),
            Some(&*format!("Bearer {KEY}"))
        );
        let parts = multipart(request);
        assert_eq!(text(&parts, "model").as_deref(), Some("whisper-1"));
        assert_eq!(text(&parts, "language").as_deref(), Some("ru"));
        assert_eq!(
            text(&parts, "response_format").as_deref(),
            Some("verbose_json")
        );
        let seconds = wav_seconds(&parts);
        let window_seconds = (window.end_ms - window.start_ms) as f64 / 1000.0;
        assert!(
            (seconds - window_seconds).abs() < 0.002,
            "{seconds} vs {window_seconds}"
        );
        // Segments on the recording's time line, the overlong one cut at the piece's end.
        let segments: Vec<(i64, i64, &str)> = window
            .segments
            .iter()
            .map(|s| (s.start_ms, s.end_ms, s.text.as_str()))
            .collect();
        let start = window.start_ms;
        assert_eq!(segments[0], (start + 500, start + 1000, "Добрый день."));
        assert_eq!(segments[1].1, window.end_ms);
        assert_eq!(segments[1].2, "Чем могу помочь?");
        assert!(
            (segments[1].0 - (window.end_ms - 500)).abs() <= 1,
            "{segments:?}"
        );
        assert_eq!(window.language.as_deref(), Some("ru"));
        assert!(window.progress.is_some());
    }
    assert_eq!(windows[3].progress, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_starts_at_start_ms_and_a_stop_is_honoured() {
    let server = MockServer::start().await;
    mount_whisper(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let wav = recording(dir.path());
    let engine = engine(&server, Duration::from_secs(4), 3, Duration::from_secs(10));

    let (summary, windows) = run(&engine, &wav, 12_000, None).await;

    assert!(!summary.unwrap().stopped);
    assert_eq!(windows.len(), 1);
    assert_eq!((windows[0].start_ms, windows[0].end_ms), (12_000, 13_500));
    assert_eq!(windows[0].segments[0].start_ms, 12_500);
    assert_eq!(requests(&server).await.len(), 1);

    let (summary, windows) = run(&engine, &wav, 0, Some(1)).await;

    let summary = summary.unwrap();
    assert!(summary.stopped);
    assert_eq!(windows.len(), 1);
    assert!((summary.audio_seconds - windows[0].end_ms as f64 / 1000.0).abs() < 1e-9);
    assert_eq!(
        requests(&server).await.len(),
        2,
        "nothing sent after the stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_waits_for_retry_after_and_a_server_error_is_retried() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests"}})),
    )
    .await;
    mount_once(&server, ResponseTemplate::new(500).set_body_string("boom")).await;
    mount_whisper(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let wav = write_wav(dir.path(), 2.0, &[]);
    let engine = engine(&server, Duration::from_secs(60), 4, Duration::from_secs(10));

    let started = Instant::now();
    let (summary, windows) = run(&engine, &wav, 0, None).await;
    let waited = started.elapsed();

    summary.unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].segments.len(), 2);
    assert_eq!(requests(&server).await.len(), 3);
    assert!(waited >= Duration::from_secs(1), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_is_permanent_and_never_shows_the_key() {
    let server = MockServer::start().await;
    mount_once(
        &server,
        ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": format!("Incorrect API key provided: {KEY}."),
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }})),
    )
    .await;
    mount_whisper(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let wav = write_wav(dir.path(), 2.0, &[]);
    let engine = engine(&server, Duration::from_secs(60), 4, Duration::from_secs(10));

    let (summary, windows) = run(&engine, &wav, 0, None).await;

    let error = summary.unwrap_err();
    let (reason, retryable) = provider_failure(&error);
    assert!(!retryable);
    assert!(
        reason.contains("401 Unauthorized: Incorrect API key provided"),
        "{reason}"
    );
    assert_no_key(&reason);
    assert_no_key(&format!("{error:?} {engine:?}"));
    assert!(windows.is_empty());
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_timeouts_fail_after_their_retries() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(200).set_body_raw("Bad Gateway", "text/plain"))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let wav = write_wav(dir.path(), 2.0, &[]);
    let engine_ = engine(&server, Duration::from_secs(60), 4, Duration::from_secs(10));

    let (summary, _) = run(&engine_, &wav, 0, None).await;

    let (reason, retryable) = provider_failure(&summary.unwrap_err());
    assert!(!retryable);
    assert!(reason.contains("malformed response"), "{reason}");
    assert!(reason.contains("verbose_json"), "{reason}");
    assert_eq!(requests(&server).await.len(), 2);

    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"text": "поздно", "segments": []}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&slow)
        .await;
    let engine_ = engine(
        &slow,
        Duration::from_secs(60),
        2,
        Duration::from_millis(400),
    );

    let (summary, windows) = run(&engine_, &wav, 0, None).await;

    let (reason, retryable) = provider_failure(&summary.unwrap_err());
    assert!(retryable);
    assert!(reason.contains("timeout"), "{reason}");
    assert!(windows.is_empty());
    assert_eq!(requests(&slow).await.len(), 2);
}
