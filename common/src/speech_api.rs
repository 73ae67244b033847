//! The hosted speech engine: an OpenAI-compatible `POST {base}/audio/transcriptions` client
//! (OpenAI's `whisper-1`, or a self-hosted server speaking the same protocol) behind the
//! transcribe stage's [`SpeechEngine`] trait, chosen by `VOX_SPEECH_ENGINE=openai`.
//!
//! The recording is decoded by [`crate::audio`] (16 kHz mono, from `start_ms` on when
//! resuming) and cut into pieces of at most `VOX_SPEECH_PIECE_MINUTES`, each ended at the
//! quietest 100 ms of its last 10 seconds so that no word is cut in two. Each piece is sent
//! as a 16-bit WAV (32 kB per second: 10 minutes is 19.2 MB, under the API's 25 MB limit)
//! with `response_format=verbose_json`; its `segments` come back relative to the piece and
//! are moved to the recording's time line. One piece is one [`WindowDone`], so a redelivery
//! resumes after the last piece saved. Pieces of digital silence are not sent (Whisper
//! invents text for silence); they still count as windows.
//!
//! # Blocking
//!
//! The trait is synchronous and is called on a blocking thread (`spawn_blocking`). The
//! engine keeps the handle of the runtime it was created in and runs the async client with
//! `Handle::block_on`: one HTTP client and one retry loop (the chat clients' own, see
//! [`crate::llm::http`]) for everything, instead of reqwest's blocking client, which would
//! start a runtime thread of its own and need a second, sleeping retry loop. The catch is
//! the usual one: `transcribe_file` must not be called from an async task (Tokio panics,
//! and the stage reports the panic as an engine error).
//!
//! # Configuration
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `VOX_SPEECH_ENGINE` | `local` (Whisper on ONNX Runtime) or `openai` | `local` |
//! | `VOX_SPEECH_MODEL` | the model name | `whisper-1` |
//! | `VOX_SPEECH_BASE_URL` | the API base, `.../v1` | `https://api.openai.com/v1` |
//! | `VOX_SPEECH_PIECE_MINUTES` | longest piece sent, 1..=12 | 10 |
//! | `VOX_SPEECH_TIMEOUT_SECONDS` | one try (upload, transcription, answer) | 300 |
//! | `VOX_SPEECH_MAX_RETRIES` | retries after the first try of a piece | 4 |
//! | `VOX_SPEECH_RETRY_TOTAL_SECONDS` | no retry wait may end later than this | 300 |
//! | `OPENAI_API_KEY` | required with OpenAI's base URL, optional with another | |

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use tokio::runtime::Handle;
use tracing::info;

use crate::audio::{self, AudioError, AudioStream, DecodeOptions};
use crate::config::{self, ConfigError};
use crate::db::transcription::Segment;
use crate::llm::http::HttpCore;
use crate::llm::settings::{self as llm_settings, Lookup, OPENAI_BASE_URL};
use crate::llm::{ApiKey, RetryPolicy};
use crate::transcribe::{RunSummary, SpeechEngine, WindowDone};
use crate::{Error, Result};

const RATE: usize = audio::SAMPLE_RATE as usize;
/// 12 minutes of 16-bit 16 kHz mono is 23 MB: the most under the API's 25 MB upload limit.
pub const MAX_PIECE_MINUTES: u32 = 12;
/// OpenAI refuses audio under 0.1 s; a shorter last piece is padded with silence to this.
const MIN_UPLOAD_SAMPLES: usize = RATE;
/// Pieces end at the quietest frame of this length...
const QUIET_FRAME: usize = RATE / 10;
/// ...within this much of their end.
const QUIET_SEARCH: usize = 10 * RATE;
/// A piece whose RMS is under this (-80 dBFS) is digital silence and is not sent.
const SILENCE_RMS: f64 = 1e-4;

/// The hosted engine's settings. `Debug` shows no key.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechApiSettings {
    pub model: String,
    /// Without a trailing slash; the engine posts to `{base_url}/audio/transcriptions`.
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    /// The longest piece sent in one request (1 s ..= [`MAX_PIECE_MINUTES`]).
    pub piece: Duration,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl SpeechApiSettings {
    /// The defaults of the table above, for `model` at `base_url`, with no key.
    pub fn new(model: impl Into<String>, base_url: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: None,
            piece: Duration::from_secs(10 * 60),
            timeout: Duration::from_secs(300),
            retry: RetryPolicy::default(),
        }
    }

    /// The hosted engine's settings, or `None` when `VOX_SPEECH_ENGINE` is `local` (the
    /// default).
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(&config::optional)
    }

    pub fn from_lookup(get: Lookup<'_>) -> Result<Option<Self>, ConfigError> {
        match get("VOX_SPEECH_ENGINE")?.as_deref().map(str::trim) {
            None | Some("local") => return Ok(None),
            Some("openai") => {}
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "VOX_SPEECH_ENGINE",
                    reason: format!("{other:?} is not local or openai"),
                });
            }
        }
        let model = get("VOX_SPEECH_MODEL")?.unwrap_or_else(|| "whisper-1".to_owned());
        let base_url = llm_settings::base_url(get, "VOX_SPEECH_BASE_URL", OPENAI_BASE_URL)?;
        let mut settings = Self::new(model.trim(), base_url);
        settings.api_key =
            llm_settings::api_key(get, "OPENAI_API_KEY", settings.base_url == OPENAI_BASE_URL)?;
        let minutes = llm_settings::at_least(get, "VOX_SPEECH_PIECE_MINUTES", 10, 1)?;
        if minutes > MAX_PIECE_MINUTES {
            return Err(ConfigError::Invalid {
                var: "VOX_SPEECH_PIECE_MINUTES",
                reason: format!(
                    "{minutes} minutes of WAV would pass the API's 25 MB upload limit \
                     (at most {MAX_PIECE_MINUTES})"
                ),
            });
        }
        settings.piece = Duration::from_secs(u64::from(minutes) * 60);
        settings.timeout = llm_settings::seconds(get, "VOX_SPEECH_TIMEOUT_SECONDS", 300)?;
        settings.retry = llm_settings::retry_policy(
            get,
            "VOX_SPEECH_MAX_RETRIES",
            4,
            "VOX_SPEECH_RETRY_TOTAL_SECONDS",
            300,
        )?;
        Ok(Some(settings))
    }
}

/// Speech to text through an OpenAI-compatible transcription API.
#[derive(Debug)]
pub struct OpenAiSpeech {
    core: HttpCore,
    url: Url,
    auth: Option<HeaderValue>,
    settings: SpeechApiSettings,
    piece_samples: usize,
    runtime: Handle,
}

impl OpenAiSpeech {
    /// Must be called inside a Tokio runtime: the engine runs its requests there.
    pub fn new(settings: SpeechApiSettings) -> Result<Self> {
        let runtime = Handle::try_current().map_err(|_| Error::Engine {
            reason: "the hosted speech engine must be created inside a Tokio runtime".into(),
        })?;
        let max_piece = Duration::from_secs(u64::from(MAX_PIECE_MINUTES) * 60);
        if settings.piece < Duration::from_secs(1) || settings.piece > max_piece {
            return Err(Error::InvalidInput {
                field: "piece",
                reason: format!(
                    "{:?} is not between 1 s and {MAX_PIECE_MINUTES} minutes",
                    settings.piece
                ),
            });
        }
        let core = HttpCore::new(
            "openai transcription",
            settings.timeout,
            settings.retry.clone(),
            settings.api_key.clone(),
        )?;
        let joined = format!("{}/audio/transcriptions", settings.base_url);
        let url = Url::parse(&joined).map_err(|e| Error::InvalidInput {
            field: "base URL",
            reason: format!("{joined:?} is not a URL: {e}"),
        })?;
        let auth = core.secret_header("Bearer ")?;
        let piece_samples = (settings.piece.as_secs_f64() * RATE as f64) as usize;
        Ok(Self {
            core,
            url,
            auth,
            settings,
            piece_samples,
            runtime,
        })
    }

    /// The engine the environment selects, or `None` for the local one.
    pub fn from_env() -> Result<Option<Self>> {
        SpeechApiSettings::from_env()?.map(Self::new).transpose()
    }

    /// Transcribes one piece, `[start_ms, end_ms)` in the recording.
    fn transcribe_piece(
        &self,
        samples: &[f32],
        (start_ms, end_ms): (i64, i64),
        language: Option<&str>,
        total_ms: Option<f64>,
    ) -> Result<WindowDone> {
        let mut window = WindowDone {
            start_ms,
            end_ms,
            segments: Vec::new(),
            language: language.map(str::to_owned),
            progress: total_ms.map(|t| (end_ms as f64 / t).clamp(0.0, 1.0) as f32),
            speech_ms: None,
            uncovered: Vec::new(),
        };
        if rms(samples) < SILENCE_RMS {
            info!(start_ms, end_ms, "silent piece not sent");
            return Ok(window);
        }
        let boundary = format!("voxpersona-{:016x}", random_u64());
        let mut fields = vec![
            ("model", self.settings.model.as_str()),
            ("response_format", "verbose_json"),
            ("temperature", "0"),
        ];
        if let Some(language) = language {
            fields.push(("language", language));
        }
        let body = multipart_body(&boundary, &fields, &wav_bytes(samples, MIN_UPLOAD_SAMPLES));
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let started = std::time::Instant::now();
        let answer: Verbose = self.runtime.block_on(self.core.post(
            &self.url,
            |builder| {
                let builder = builder
                    .header(CONTENT_TYPE, content_type.as_str())
                    .body(body.clone());
                match &self.auth {
                    Some(auth) => builder.header(AUTHORIZATION, auth.clone()),
                    None => builder,
                }
            },
            parse,
        ))?;
        if let Some(name) = &answer.language {
            window.language = Some(language_code(name));
        }
        window.segments = answer.into_segments(start_ms, end_ms);
        info!(
            start_ms,
            end_ms,
            segments = window.segments.len(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "piece transcribed"
        );
        Ok(window)
    }
}

impl SpeechEngine for OpenAiSpeech {
    fn model_id(&self) -> String {
        format!("openai:{}", self.settings.model)
    }

    fn transcribe_file(
        &self,
        path: &Path,
        language: Option<&str>,
        start_ms: i64,
        on_window: &mut dyn FnMut(WindowDone) -> ControlFlow<()>,
    ) -> Result<RunSummary> {
        if let Some(code) = language
            && !((2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase()))
        {
            return Err(Error::InvalidInput {
                field: "language",
                reason: format!("{code:?} is not an ISO 639-1 code"),
            });
        }
        let options = DecodeOptions {
            start_seconds: start_ms.max(0) as f64 / 1000.0,
            ..DecodeOptions::default()
        };
        let mut stream = AudioStream::open(path, &options).map_err(audio_error)?;
        let total_ms = stream.info().header_seconds.map(|s| s * 1000.0);
        // Where the first delivered sample sits in the recording.
        let origin_ms = (stream.info().start_seconds * 1000.0).round() as i64;
        let mut pending: Vec<f32> = Vec::with_capacity(self.piece_samples + RATE);
        let mut sent = 0usize; // samples already transcribed, from the origin
        while let Some(chunk) = stream.next_chunk().map_err(audio_error)? {
            pending.extend_from_slice(chunk);
            while pending.len() >= self.piece_samples {
                let cut = quiet_cut(&pending[..self.piece_samples]);
                let span = (
                    origin_ms + samples_to_ms(sent),
                    origin_ms + samples_to_ms(sent + cut),
                );
                let window = self.transcribe_piece(&pending[..cut], span, language, total_ms)?;
                pending.drain(..cut);
                sent += cut;
                let end_ms = window.end_ms;
                if on_window(window).is_break() {
                    return Ok(RunSummary {
                        audio_seconds: end_ms as f64 / 1000.0,
                        stopped: true,
                    });
                }
            }
        }
        if !pending.is_empty() {
            let span = (
                origin_ms + samples_to_ms(sent),
                origin_ms + samples_to_ms(sent + pending.len()),
            );
            let window = self.transcribe_piece(&pending, span, language, total_ms)?;
            sent += pending.len();
            // The last piece: there is nothing left to stop before.
            let _ = on_window(window);
        }
        Ok(RunSummary {
            audio_seconds: (origin_ms + samples_to_ms(sent)) as f64 / 1000.0,
            stopped: false,
        })
    }
}

fn samples_to_ms(samples: usize) -> i64 {
    i64::try_from(samples).unwrap_or(i64::MAX) * 1000 / RATE as i64
}

fn audio_error(e: AudioError) -> Error {
    if e.is_bad_input() {
        Error::BadAudio {
            reason: e.to_string(),
        }
    } else {
        Error::Engine {
            reason: format!("reading the recording failed: {e}"),
        }
    }
}

fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (energy / samples.len() as f64).sqrt()
}

/// Where to end a piece of `samples` (a full piece): in the middle of its quietest 100 ms
/// frame among the last 10 seconds (the last fifth, for short pieces), the latest one on a
/// tie. Never 0, never past the end.
fn quiet_cut(samples: &[f32]) -> usize {
    let len = samples.len();
    let search = QUIET_SEARCH.min(len / 5);
    if search < QUIET_FRAME {
        return len;
    }
    let mut best = (f64::INFINITY, len);
    let mut frame_start = len - QUIET_FRAME;
    while frame_start + search >= len {
        let energy: f64 = samples[frame_start..frame_start + QUIET_FRAME]
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum();
        if energy < best.0 {
            best = (energy, frame_start + QUIET_FRAME / 2);
        }
        if frame_start < QUIET_FRAME {
            break;
        }
        frame_start -= QUIET_FRAME;
    }
    best.1
}

/// 16-bit PCM mono WAV at 16 kHz, padded with silence to at least `min_samples`.
fn wav_bytes(samples: &[f32], min_samples: usize) -> Vec<u8> {
    let frames = samples.len().max(min_samples);
    let data_len = u32::try_from(frames * 2).unwrap_or(u32::MAX - 36);
    let rate = audio::SAMPLE_RATE;
    let mut out = Vec::with_capacity(44 + frames * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &sample in samples {
        let value = (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.resize(44 + frames * 2, 0);
    out
}

/// A `multipart/form-data` body: the text fields, then the WAV as `file`.
fn multipart_body(boundary: &str, fields: &[(&str, &str)], wav: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wav.len() + 512);
    for (name, value) in fields {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"piece.wav\"\r\n\
             Content-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(wav);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// `verbose_json`: the text, the detected language (a name: `russian`) and timed segments.
#[derive(Debug, Deserialize)]
struct Verbose {
    text: Option<String>,
    language: Option<String>,
    segments: Option<Vec<ApiSegment>>,
}

#[derive(Debug, Deserialize)]
struct ApiSegment {
    start: f64,
    end: f64,
    text: String,
}

fn parse(body: &[u8]) -> Result<Verbose, String> {
    let answer: Verbose = serde_json::from_slice(body)
        .map_err(|e| format!("not a verbose_json transcription: {e}"))?;
    if answer.segments.is_none() && answer.text.is_none() {
        return Err("the transcription has neither segments nor text".into());
    }
    Ok(answer)
}

impl Verbose {
    /// Segments on the recording's time line, inside the piece `[start_ms, end_ms]`. A server
    /// that ignores `verbose_json` and sends only `text` gives one segment for the piece.
    fn into_segments(self, start_ms: i64, end_ms: i64) -> Vec<Segment> {
        let at =
            |seconds: f64| (start_ms + (seconds * 1000.0).round() as i64).clamp(start_ms, end_ms);
        match self.segments {
            Some(segments) => segments
                .into_iter()
                .filter_map(|s| {
                    let text = s.text.trim();
                    (!text.is_empty()).then(|| {
                        let start = at(s.start);
                        Segment {
                            start_ms: start,
                            end_ms: at(s.end).max(start),
                            text: text.to_owned(),
                            ..Segment::default()
                        }
                    })
                })
                .collect(),
            None => self
                .text
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .map(|text| Segment {
                    start_ms,
                    end_ms,
                    text,
                    ..Segment::default()
                })
                .into_iter()
                .collect(),
        }
    }
}

/// OpenAI names the detected language (`russian`); the stage stores codes (`ru`).
fn language_code(name: &str) -> String {
    let name = name.trim().to_lowercase();
    let code = match name.as_str() {
        "russian" => "ru",
        "english" => "en",
        "ukrainian" => "uk",
        "belarusian" => "be",
        "kazakh" => "kk",
        "german" => "de",
        "french" => "fr",
        "spanish" => "es",
        _ => return name,
    };
    code.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::settings::tests::vars;

    #[test]
    fn local_is_the_default_engine() {
        assert_eq!(SpeechApiSettings::from_lookup(&vars(&[])).unwrap(), None);
        let err =
            SpeechApiSettings::from_lookup(&vars(&[("VOX_SPEECH_ENGINE", "azure")])).unwrap_err();
        assert!(err.to_string().contains("VOX_SPEECH_ENGINE"), "{err}");
    }

    #[test]
    fn openai_reads_its_variables_and_needs_a_key_for_openai_itself() {
        let err =
            SpeechApiSettings::from_lookup(&vars(&[("VOX_SPEECH_ENGINE", "openai")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable OPENAI_API_KEY is required but not set"
        );
        let settings = SpeechApiSettings::from_lookup(&vars(&[
            ("VOX_SPEECH_ENGINE", "openai"),
            ("VOX_SPEECH_BASE_URL", "http://127.0.0.1:8000/v1/"),
            ("VOX_SPEECH_MODEL", "Systran/faster-whisper-small"),
            ("VOX_SPEECH_PIECE_MINUTES", "5"),
            ("VOX_SPEECH_MAX_RETRIES", "1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(settings.base_url, "http://127.0.0.1:8000/v1");
        assert_eq!(settings.model, "Systran/faster-whisper-small");
        assert_eq!(settings.piece, Duration::from_secs(300));
        assert_eq!(settings.retry.max_attempts, 2);
        assert_eq!(settings.api_key, None);
        let err = SpeechApiSettings::from_lookup(&vars(&[
            ("VOX_SPEECH_ENGINE", "openai"),
            ("OPENAI_API_KEY", "k"),
            ("VOX_SPEECH_PIECE_MINUTES", "20"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().contains("VOX_SPEECH_PIECE_MINUTES"),
            "{err}"
        );
    }

    #[test]
    fn the_cut_falls_in_the_quietest_frame_near_the_end() {
        // 10 s of tone with a pause at 8.5-8.8 s: the cut (last fifth = 8-10 s) is in it.
        let mut samples: Vec<f32> = (0..10 * RATE)
            .map(|i| 0.3 * (i as f32 * 0.05).sin())
            .collect();
        for s in &mut samples[(8.5 * RATE as f64) as usize..(8.8 * RATE as f64) as usize] {
            *s = 0.0;
        }
        let cut = quiet_cut(&samples);
        assert!(
            (8.5 * RATE as f64) as usize <= cut && cut <= (8.8 * RATE as f64) as usize,
            "{cut}"
        );
        // Steady tone: the last frame, so the piece stays as long as it may.
        let tone = vec![0.2f32; 10 * RATE];
        assert_eq!(quiet_cut(&tone), 10 * RATE - QUIET_FRAME / 2);
        // Too short to search: the whole piece.
        assert_eq!(quiet_cut(&tone[..1000]), 1000);
    }

    #[test]
    fn wav_pieces_are_16_bit_mono_and_padded() {
        let wav = wav_bytes(&[0.5, -1.5], 4);
        assert_eq!(wav.len(), 44 + 8);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 16_000);
        assert_eq!(i16::from_le_bytes([wav[44], wav[45]]), 16384);
        assert_eq!(i16::from_le_bytes([wav[46], wav[47]]), -32767);
        assert_eq!(&wav[48..], &[0, 0, 0, 0]);
    }

    #[test]
    fn segments_move_to_the_recording_time_line() {
        let answer = parse(
            r#"{"language":"russian","text":"x","segments":[{"start":0.0,"end":1.25,"text":" Добрый день."},{"start":1.3,"end":99.0,"text":"Как дела?"},{"start":2.0,"end":2.0,"text":"  "}]}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(language_code(answer.language.as_deref().unwrap()), "ru");
        let segments = answer.into_segments(600_000, 605_000);
        assert_eq!(
            segments
                .iter()
                .map(|s| (s.start_ms, s.end_ms, s.text.as_str()))
                .collect::<Vec<_>>(),
            [
                (600_000, 601_250, "Добрый день."),
                (601_300, 605_000, "Как дела?")
            ]
        );
        let plain = parse(r#"{"text":" Привет "}"#.as_bytes()).unwrap();
        assert_eq!(plain.into_segments(0, 3000)[0].text, "Привет");
        assert!(parse(br#"{"task":"transcribe"}"#).is_err());
    }
}
