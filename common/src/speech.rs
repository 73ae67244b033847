//! The local speech engine: recordings decoded by [`crate::audio`] and transcribed by
//! [`crate::asr`] (Silero VAD + Whisper on ONNX Runtime), behind the transcribe stage's
//! [`SpeechEngine`] trait.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::asr::{AsrConfig, AsrError, Lang, TranscribeOptions, Transcriber, WindowResult};
use crate::audio::{self, AudioError, DecodeOptions};
use crate::config::{self, ConfigError};
use crate::db::transcription::{Segment, UncoveredSpeech};
use crate::transcribe::{RunSummary, SpeechEngine, WindowDone};
use crate::{Error, Result};

/// Where the models are and how many threads Whisper may use.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// `VOX_MODELS_DIR`, default `~/.cache/voxpersona/models` (what the models script fills).
    pub models_dir: PathBuf,
    /// `VOX_WHISPER_MODEL`, default `whisper-base` (a directory under the models dir).
    pub whisper_model: String,
    /// `VOX_ASR_THREADS`, default: the cores available.
    pub threads: usize,
    /// `VOX_ASR_PROMPT`: previous text given before every window (default none: the
    /// prompts measured did not lower the word error rate; see the README).
    pub prompt: Option<String>,
    /// `VOX_ASR_VOCABULARY`: a UTF-8 file of terms and names, one per line (`#` starts a
    /// comment), given before the prompt in every window.
    pub vocabulary: Vec<String>,
    /// `VOX_ASR_BEST_OF`, default 5: hypotheses sampled at each fallback temperature.
    pub best_of: usize,
    /// `VOX_ASR_SPEAKERS`, default `on`: give every segment a voiceprint so that speakers can
    /// be told apart (`off` skips the speaker encoder).
    pub speakers: bool,
}

impl EngineSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let default_dir = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/voxpersona/models"))
            .unwrap_or_else(|| PathBuf::from("/opt/voxpersona/models"));
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Self {
            models_dir: config::optional("VOX_MODELS_DIR")?.map_or(default_dir, PathBuf::from),
            whisper_model: config::or_default("VOX_WHISPER_MODEL", "whisper-base")?,
            threads: config::parsed_or("VOX_ASR_THREADS", cores)?,
            prompt: config::optional("VOX_ASR_PROMPT")?,
            vocabulary: match config::optional("VOX_ASR_VOCABULARY")? {
                None => Vec::new(),
                Some(path) => {
                    read_vocabulary(Path::new(&path)).map_err(|e| ConfigError::Invalid {
                        var: "VOX_ASR_VOCABULARY",
                        reason: format!("{path}: {e}"),
                    })?
                }
            },
            best_of: config::parsed_or("VOX_ASR_BEST_OF", 5usize)?,
            speakers: match config::or_default("VOX_ASR_SPEAKERS", "on")?.as_str() {
                "on" | "1" | "true" => true,
                "off" | "0" | "false" => false,
                other => {
                    return Err(ConfigError::Invalid {
                        var: "VOX_ASR_SPEAKERS",
                        reason: format!("{other:?} is not on or off"),
                    });
                }
            },
        })
    }
}

/// The terms of a vocabulary file: one per line, trimmed, blank lines and `#` comments
/// skipped.
pub fn read_vocabulary(path: &Path) -> std::io::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Whisper with VAD on ONNX Runtime; the sessions are built once and shared (one run at a
/// time: each run uses every thread it was given).
#[derive(Debug)]
pub struct WhisperEngine {
    transcriber: Mutex<Transcriber>,
    model_id: String,
}

impl WhisperEngine {
    pub fn load(settings: &EngineSettings) -> Result<Self> {
        let mut config = AsrConfig::new(&settings.models_dir);
        config.whisper_model = settings.whisper_model.clone();
        config.threads = settings.threads.max(1);
        config.vocabulary = settings.vocabulary.clone();
        config.prompt = settings.prompt.clone();
        config.decode.best_of = settings.best_of;
        config.speakers = settings.speakers;
        Self::from_config(config)
    }

    /// The engine with every setting of the recognizer given (tests, tools).
    pub fn from_config(config: AsrConfig) -> Result<Self> {
        let transcriber = Transcriber::from_config(config).map_err(engine_error)?;
        let model_id = transcriber.model_id().to_owned();
        Ok(Self {
            transcriber: Mutex::new(transcriber),
            model_id,
        })
    }
}

/// Why a run stopped: the audio's fault, the engine's, or the caller asked.
enum RunError {
    Audio(AudioError),
    Asr(AsrError),
}

impl From<AudioError> for RunError {
    fn from(e: AudioError) -> Self {
        RunError::Audio(e)
    }
}

impl SpeechEngine for WhisperEngine {
    fn model_id(&self) -> String {
        self.model_id.clone()
    }

    fn transcribe_file(
        &self,
        path: &Path,
        language: Option<&str>,
        start_ms: i64,
        on_window: &mut dyn FnMut(WindowDone) -> ControlFlow<()>,
    ) -> Result<RunSummary> {
        let language = match language {
            None => None,
            Some(code) => Some(code.parse::<Lang>().map_err(|_| Error::InvalidInput {
                field: "language",
                reason: format!("{code:?} is not ru or en"),
            })?),
        };
        // The header's length (when it declares one) gives progress; decoding tells the rest.
        let total_ms = audio::probe_file(path)
            .map_err(audio_error)?
            .header_seconds
            .map(|s| s * 1000.0);
        let start_ms = u64::try_from(start_ms).unwrap_or(0);
        let options = DecodeOptions {
            start_seconds: start_ms as f64 / 1000.0,
            ..DecodeOptions::default()
        };
        let mut transcriber = self.transcriber.lock().map_err(|_| Error::Engine {
            reason: "an earlier run panicked".into(),
        })?;
        let mut forward = |w: &WindowResult| {
            on_window(WindowDone {
                start_ms: w.start_ms as i64,
                end_ms: w.end_ms as i64,
                segments: w
                    .segments
                    .iter()
                    .map(|s| Segment {
                        start_ms: s.start_ms as i64,
                        end_ms: s.end_ms as i64,
                        text: s.text.clone(),
                        voice: s.voice.clone(),
                        ..Segment::default()
                    })
                    .collect(),
                language: Some(w.language.code().to_owned()),
                progress: total_ms.map(|t| ((w.end_ms as f64 / t).min(1.0)) as f32),
                speech_ms: Some(w.speech_ms as i64),
                uncovered: w
                    .uncovered
                    .iter()
                    .map(|u| UncoveredSpeech {
                        start_ms: u.start_ms as i64,
                        end_ms: u.end_ms as i64,
                    })
                    .collect(),
            })
        };
        let mut stream = transcriber.stream(
            TranscribeOptions {
                language,
                offset_ms: start_ms,
            },
            &mut forward,
        );
        let decoded = audio::decode_file_with(path, &options, |chunk: &[f32]| {
            stream.push(chunk).map_err(RunError::Asr)
        });
        match decoded {
            Ok(_) => {}
            Err(RunError::Audio(e)) => return Err(audio_error(e)),
            Err(RunError::Asr(e)) => return Err(engine_error(e)),
        }
        let transcript = stream.finish().map_err(engine_error)?;
        Ok(RunSummary {
            audio_seconds: transcript.audio_ms as f64 / 1000.0,
            stopped: !transcript.complete,
        })
    }
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

fn engine_error(e: AsrError) -> Error {
    Error::Engine {
        reason: crate::error::chain(&e),
    }
}
