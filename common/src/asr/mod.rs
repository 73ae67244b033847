//! Speech recognition: Silero VAD and Whisper on ONNX Runtime. The transcribe stage reaches it
//! through its one engine trait, [`crate::transcribe::SpeechEngine`] (`crate::speech`).
//!
//! A [`Transcriber`] owns the ONNX sessions (built once per process, reused for every
//! recording). Audio goes in as 16 kHz mono samples, all at once or chunk by chunk through a
//! [`TranscriptionStream`]; VAD cuts it into windows of at most 30 s, Whisper decodes each
//! window on its own (no previous text as context, so one bad window cannot poison the next),
//! and the caller hears about every window as soon as it is done: that is where it saves
//! progress and decides whether there is time for another one. Memory stays bounded by one
//! window of audio, whatever the recording's length.
//!
//! The models come from `infra/local/models/prepare.sh`; [`AsrConfig::new`] expects its layout
//! (`onnxruntime/`, `vad/`, `whisper-base/` under one directory).

mod error;
pub mod guard;
pub mod mel;
pub mod runtime;
pub mod vad;
pub mod whisper;

use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use error::AsrError;
pub use guard::{GuardParams, Rejection};
pub use vad::{SpeechWindow, VadParams};
pub use whisper::DecodeOptions;

use mel::SAMPLE_RATE;
use vad::{FRAME, Segmenter, SileroVad};
use whisper::Whisper;

/// A language the pipeline transcribes. Detection chooses among these only: the recordings
/// are Russian or English, and a wrong guess among 99 languages (Ukrainian for Russian) costs
/// more than it could gain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Ru,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Ru, Lang::En];

    /// The ISO 639-1 code, as Whisper names its language tokens.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The error of parsing an unsupported language code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("language {0:?} is not supported (expected ru or en)")]
pub struct UnknownLanguage(pub String);

impl FromStr for Lang {
    type Err = UnknownLanguage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ru" | "rus" | "russian" => Ok(Lang::Ru),
            "en" | "eng" | "english" => Ok(Lang::En),
            _ => Err(UnknownLanguage(s.to_string())),
        }
    }
}

/// A piece of the transcript, in milliseconds from the start of the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

/// One decoded VAD window, handed to the caller as soon as it is done.
#[derive(Debug, Clone)]
pub struct WindowResult {
    /// 0, 1, 2 ... in this run.
    pub index: usize,
    pub start_ms: u64,
    /// Everything up to here is transcribed: a resumed run can start at this point.
    pub end_ms: u64,
    pub segments: Vec<Segment>,
    pub language: Lang,
    /// Set when the window's text was dropped as a hallucination (then `segments` is empty).
    pub rejected: Option<Rejection>,
    pub no_speech_prob: f32,
    pub avg_logprob: f32,
    /// A repetition loop was cut out of the text.
    pub loop_cut: bool,
    pub tokens: usize,
    pub encoder_ms: f32,
    pub decoder_ms: f32,
}

/// Time spent, for logs and benchmarks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    pub windows: usize,
    pub vad_ms: f32,
    pub encoder_ms: f32,
    pub decoder_ms: f32,
    pub decoder_steps: usize,
    pub tokens: usize,
}

/// The result of a run.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    pub segments: Vec<Segment>,
    /// The requested language, or the detected one (`None` when nothing was heard).
    pub language: Option<Lang>,
    /// Length of the audio received, offset included.
    pub audio_ms: u64,
    /// False when the caller stopped the run early; `processed_ms` says how far it got.
    pub complete: bool,
    pub processed_ms: u64,
    pub timings: Timings,
}

impl Transcript {
    /// All segments' text, one space between segments.
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What to transcribe and how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TranscribeOptions {
    /// `None`: detect (Russian or English) on the first window with speech, then keep it.
    pub language: Option<Lang>,
    /// Where the given audio starts in the recording, for resuming after a stop: the caller
    /// skips the audio before the last saved window end and passes that end here.
    pub offset_ms: u64,
}

/// Where the models are and how to run them.
#[derive(Debug, Clone, PartialEq)]
pub struct AsrConfig {
    /// The models script's output directory (`$VOX_MODELS_DIR`).
    pub models_dir: PathBuf,
    /// The Whisper model's directory under `models_dir`.
    pub whisper_model: String,
    /// The ONNX Runtime library; by default found under `models_dir/onnxruntime`.
    pub ort_library: Option<PathBuf>,
    /// ONNX Runtime intra-op threads for Whisper (the cores the function has).
    pub threads: usize,
    pub vad: VadParams,
    pub decode: DecodeOptions,
    pub guard: GuardParams,
}

impl AsrConfig {
    pub fn new(models_dir: impl Into<PathBuf>) -> Self {
        Self {
            models_dir: models_dir.into(),
            whisper_model: "whisper-base".into(),
            ort_library: None,
            threads: 2,
            vad: VadParams::default(),
            decode: DecodeOptions::default(),
            guard: GuardParams::default(),
        }
    }

    fn library(&self) -> Result<PathBuf, AsrError> {
        if let Some(path) = &self.ort_library {
            return Ok(path.clone());
        }
        // The arm64 library (for Graviton Lambdas) beside the x86 one, or the x86 one.
        Ok(crate::onnx::library_in(&self.models_dir)?)
    }
}

/// The local engine: Silero VAD + Whisper, sessions built once.
#[derive(Debug)]
pub struct Transcriber {
    whisper: Whisper,
    vad: SileroVad,
    config: AsrConfig,
    model_id: String,
}

impl Transcriber {
    /// Loads the models prepared under `models_dir`, Whisper with `threads` intra-op threads.
    pub fn new(models_dir: impl AsRef<Path>, threads: usize) -> Result<Self, AsrError> {
        let mut config = AsrConfig::new(models_dir.as_ref());
        config.threads = threads;
        Self::from_config(config)
    }

    pub fn from_config(config: AsrConfig) -> Result<Self, AsrError> {
        let env = runtime::environment(&config.library()?)?;
        let vad = SileroVad::open(
            &env,
            &config
                .models_dir
                .join("vad")
                .join("silero_vad_16k_op15.onnx"),
        )?;
        let whisper_dir = config.models_dir.join(&config.whisper_model);
        let whisper = Whisper::open(&env, &whisper_dir, config.threads, config.decode.clone())?;
        let model_id = format!("whisper-{}-int8-onnx", whisper.info().name);
        Ok(Self {
            whisper,
            vad,
            config,
            model_id,
        })
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Starts a run fed chunk by chunk with [`TranscriptionStream::push`].
    pub fn stream<F>(
        &mut self,
        options: TranscribeOptions,
        on_window: F,
    ) -> TranscriptionStream<'_, F>
    where
        F: FnMut(&WindowResult) -> ControlFlow<()>,
    {
        self.vad.reset();
        let segmenter = Segmenter::new(self.config.vad.clone());
        TranscriptionStream {
            transcriber: self,
            on_window,
            language: options.language,
            offset_ms: options.offset_ms,
            buffer: Vec::new(),
            buffer_start: 0,
            received: 0,
            vad_pos: 0,
            segmenter,
            windows: Vec::new(),
            transcript: Transcript {
                language: options.language,
                ..Transcript::default()
            },
            stopped: false,
        }
    }

    /// Transcribes a whole recording held in memory (16 kHz mono).
    pub fn transcribe<F>(
        &mut self,
        samples: &[f32],
        language: Option<Lang>,
        on_window: F,
    ) -> Result<Transcript, AsrError>
    where
        F: FnMut(&WindowResult) -> ControlFlow<()>,
    {
        let options = TranscribeOptions {
            language,
            offset_ms: 0,
        };
        let mut stream = self.stream(options, on_window);
        // One second at a time, so that a stop requested by the callback takes effect promptly.
        for chunk in samples.chunks(SAMPLE_RATE) {
            if stream.push(chunk)?.is_break() {
                break;
            }
        }
        stream.finish()
    }
}

/// A run in progress: push samples as they are decoded, then [`finish`](Self::finish).
pub struct TranscriptionStream<'t, F> {
    transcriber: &'t mut Transcriber,
    on_window: F,
    language: Option<Lang>,
    offset_ms: u64,
    /// Audio from `buffer_start` on (samples since the stream's start): what a future window
    /// may still need plus what VAD has not seen.
    buffer: Vec<f32>,
    buffer_start: u64,
    received: u64,
    /// Samples VAD has processed.
    vad_pos: u64,
    segmenter: Segmenter,
    windows: Vec<SpeechWindow>,
    transcript: Transcript,
    stopped: bool,
}

impl<F> fmt::Debug for TranscriptionStream<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TranscriptionStream")
            .field("received", &self.received)
            .field("offset_ms", &self.offset_ms)
            .field("windows", &self.transcript.timings.windows)
            .finish_non_exhaustive()
    }
}

/// Drop consumed audio only in large steps, so pushing small chunks does not move the
/// buffer's contents every time.
const TRIM_STEP: u64 = 10 * SAMPLE_RATE as u64;

impl<F> TranscriptionStream<'_, F>
where
    F: FnMut(&WindowResult) -> ControlFlow<()>,
{
    /// Feeds the next samples (16 kHz mono, in [-1, 1]). Decodes every window they complete;
    /// returns `Break` once the callback asked to stop (further pushes are ignored).
    pub fn push(&mut self, samples: &[f32]) -> Result<ControlFlow<()>, AsrError> {
        if self.stopped {
            return Ok(ControlFlow::Break(()));
        }
        // Non-finite samples would poison the VAD state and the spectrogram.
        self.buffer.extend(samples.iter().map(|&x| {
            if x.is_finite() {
                x.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        }));
        self.received += samples.len() as u64;
        self.run_vad(false)?;
        self.decode_ready()?;
        self.trim();
        Ok(if self.stopped {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    }

    /// Ends the audio: decodes what is left (unless stopped) and returns the transcript.
    pub fn finish(mut self) -> Result<Transcript, AsrError> {
        if !self.stopped {
            self.run_vad(true)?;
            self.segmenter.finish(self.received, &mut self.windows);
            self.decode_ready()?;
        }
        let mut t = std::mem::take(&mut self.transcript);
        t.audio_ms = self.offset_ms + samples_to_ms(self.received);
        t.complete = !self.stopped;
        if t.complete {
            t.processed_ms = t.audio_ms;
        }
        Ok(t)
    }

    fn run_vad(&mut self, last: bool) -> Result<(), AsrError> {
        let started = std::time::Instant::now();
        let mut frame = [0.0f32; FRAME];
        while self.received - self.vad_pos >= FRAME as u64 || (last && self.received > self.vad_pos)
        {
            let from = (self.vad_pos - self.buffer_start) as usize;
            let n = ((self.received - self.vad_pos) as usize).min(FRAME);
            frame[..n].copy_from_slice(&self.buffer[from..from + n]);
            frame[n..].fill(0.0);
            let p = self.transcriber.vad.probability(&frame)?;
            self.segmenter.push(p, &mut self.windows);
            self.vad_pos += n as u64;
        }
        self.transcript.timings.vad_ms += started.elapsed().as_secs_f32() * 1000.0;
        Ok(())
    }

    fn decode_ready(&mut self) -> Result<(), AsrError> {
        let windows = std::mem::take(&mut self.windows);
        for w in windows {
            if self.stopped {
                break;
            }
            let result = self.decode(w)?;
            self.transcript.processed_ms = result.end_ms;
            self.transcript
                .segments
                .extend(result.segments.iter().cloned());
            if (self.on_window)(&result).is_break() {
                self.stopped = true;
            }
        }
        Ok(())
    }

    fn decode(&mut self, w: SpeechWindow) -> Result<WindowResult, AsrError> {
        let start = w.start.max(self.buffer_start);
        let end = w.end.min(self.received).max(start);
        let audio =
            &self.buffer[(start - self.buffer_start) as usize..(end - self.buffer_start) as usize];
        let t = &mut *self.transcriber;
        let decoded = t.whisper.decode_window(audio, self.language)?;
        let mut verdict = guard::judge(
            &t.config.guard,
            decoded.no_speech_prob,
            decoded.avg_logprob,
            &decoded.text,
        );
        let kept: Vec<&whisper::RawSegment> = decoded
            .segments
            .iter()
            .filter(|s| !guard::is_known_hallucination(&s.text))
            .collect();
        if verdict.is_ok() && kept.is_empty() && !decoded.segments.is_empty() {
            verdict = Err(Rejection::KnownHallucination);
        }
        if self.language.is_none() && verdict.is_ok() && !kept.is_empty() {
            // Detected on the first window with speech; later windows keep it.
            self.language = Some(decoded.language);
            self.transcript.language = Some(decoded.language);
        }
        let start_ms = self.offset_ms + samples_to_ms(start);
        let end_ms = self.offset_ms + samples_to_ms(end);
        let mut segments = Vec::new();
        if verdict.is_ok() {
            let mut floor = start_ms;
            for s in &kept {
                let s_ms = (start_ms + (s.start * 1000.0).round() as u64).clamp(floor, end_ms);
                let e_ms = (start_ms + (s.end * 1000.0).round() as u64).clamp(s_ms, end_ms);
                floor = e_ms;
                segments.push(Segment {
                    start_ms: s_ms,
                    end_ms: e_ms,
                    text: s.text.clone(),
                });
            }
        }
        let timings = &mut self.transcript.timings;
        let index = timings.windows;
        timings.windows += 1;
        timings.encoder_ms += decoded.encoder_ms;
        timings.decoder_ms += decoded.decoder_ms;
        timings.decoder_steps += decoded.decoder_steps;
        timings.tokens += decoded.tokens;
        tracing::debug!(
            window = index,
            start_ms,
            end_ms,
            tokens = decoded.tokens,
            no_speech_prob = decoded.no_speech_prob,
            avg_logprob = decoded.avg_logprob,
            rejected = ?verdict.err(),
            loop_cut = decoded.loop_cut,
            encoder_ms = decoded.encoder_ms,
            decoder_ms = decoded.decoder_ms,
            "speech window decoded"
        );
        Ok(WindowResult {
            index,
            start_ms,
            end_ms,
            segments,
            language: decoded.language,
            rejected: verdict.err(),
            no_speech_prob: decoded.no_speech_prob,
            avg_logprob: decoded.avg_logprob,
            loop_cut: decoded.loop_cut,
            tokens: decoded.tokens,
            encoder_ms: decoded.encoder_ms,
            decoder_ms: decoded.decoder_ms,
        })
    }

    fn trim(&mut self) {
        let keep_from = self.segmenter.earliest_needed().min(self.vad_pos);
        if keep_from >= self.buffer_start + TRIM_STEP {
            self.buffer
                .drain(..(keep_from - self.buffer_start) as usize);
            self.buffer_start = keep_from;
        }
    }
}

fn samples_to_ms(samples: u64) -> u64 {
    samples * 1000 / SAMPLE_RATE as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transcriber_can_move_to_a_blocking_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Transcriber>();
    }

    #[test]
    fn languages_parse_from_codes_and_names() {
        assert_eq!("ru".parse(), Ok(Lang::Ru));
        assert_eq!(" EN ".parse(), Ok(Lang::En));
        assert_eq!("russian".parse(), Ok(Lang::Ru));
        assert!("de".parse::<Lang>().is_err());
        assert_eq!(Lang::Ru.to_string(), "ru");
    }

    #[test]
    fn a_missing_runtime_library_names_the_directory_and_the_script() {
        let err = Transcriber::new("/nonexistent/vox-models", 2).expect_err("nothing there");
        assert!(
            matches!(err, AsrError::RuntimeLibraryMissing { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("/nonexistent/vox-models/onnxruntime"),
            "{message}"
        );
        assert!(message.contains("prepare.sh"), "{message}");
    }
}
