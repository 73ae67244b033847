//! Speech recognition: Silero VAD and Whisper on ONNX Runtime. The transcribe stage reaches it
//! through its one engine trait, [`crate::transcribe::SpeechEngine`] (`crate::speech`).
//!
//! A [`Transcriber`] owns the ONNX sessions (built once per process, reused for every
//! recording). Audio goes in as 16 kHz mono samples, all at once or chunk by chunk through a
//! [`TranscriptionStream`]; VAD cuts it into windows of at most 30 s, Whisper decodes each
//! window on its own (no previous window's text as context, so one bad window cannot poison
//! the next; only the configured prompt goes before each), in passes until the window's speech
//! is covered ([`window`]), and the caller hears about every window as soon as it is done: that
//! is where it saves progress and decides whether there is time for another one. Each window
//! reports its VAD speech and the stretches of it no text covers, so a transcript that lost
//! speech says so. Memory stays bounded by one window of audio, whatever the recording's
//! length.
//!
//! The models come from `infra/local/models/prepare.sh`; [`AsrConfig::new`] expects its layout
//! (`onnxruntime/`, `vad/`, `whisper-base/` under one directory).

mod error;
pub mod guard;
pub mod mel;
pub mod runtime;
pub mod speaker;
pub mod vad;
pub mod whisper;
pub mod window;

use std::fmt;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use error::AsrError;
pub use guard::{GuardParams, Rejection};
pub use vad::{SpeechWindow, VadParams};
pub use whisper::DecodeOptions;
pub use window::WindowParams;

use mel::SAMPLE_RATE;
use speaker::SpeakerEncoder;
use vad::{FRAME, Segmenter, SileroVad};
use whisper::Whisper;

use crate::speakers::Voiceprint;

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
    /// The speaker encoder's embedding of the segment's audio (when the encoder runs and the
    /// segment is long enough to carry a voice).
    pub voice: Option<Voiceprint>,
}

/// Speech VAD heard that no transcribed text covers, in milliseconds from the start of the
/// recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uncovered {
    pub start_ms: u64,
    pub end_ms: u64,
}

impl Uncovered {
    pub fn ms(&self) -> u64 {
        self.end_ms - self.start_ms
    }
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
    /// VAD speech in the window.
    pub speech_ms: u64,
    /// Speech in the window that no segment covers, after decoding it again on its own.
    pub uncovered: Vec<Uncovered>,
    /// Set when the first pass's text was dropped as a hallucination.
    pub rejected: Option<Rejection>,
    /// Of the first pass.
    pub no_speech_prob: f32,
    pub avg_logprob: f32,
    /// A repetition loop was cut out of the text.
    pub loop_cut: bool,
    pub tokens: usize,
    /// Decodes of the window: passes after an early end, and stretches decoded again.
    pub passes: usize,
    pub redecoded: usize,
    /// Decodes at a temperature above 0 (the fallback).
    pub fallbacks: usize,
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
    pub passes: usize,
    pub redecoded: usize,
    pub fallbacks: usize,
    /// The speaker encoder.
    pub speaker_ms: f32,
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
    /// VAD speech in the windows decoded.
    pub speech_ms: u64,
    /// Speech no text covers.
    pub uncovered: Vec<Uncovered>,
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

    /// The share of the speech the text covers.
    pub fn coverage(&self) -> f64 {
        let lost: u64 = self.uncovered.iter().map(Uncovered::ms).sum();
        crate::db::transcription::covered_share(self.speech_ms as i64, lost as i64)
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
    pub window: WindowParams,
    /// Previous text before every window: the register and kind of recording, in the
    /// recordings' language (`VOX_ASR_PROMPT`).
    pub prompt: Option<String>,
    /// Words and names Whisper should know, before the prompt (`VOX_ASR_VOCABULARY`).
    pub vocabulary: Vec<String>,
    /// Give every segment a voiceprint for telling speakers apart (`VOX_ASR_SPEAKERS`,
    /// default on; needs `speaker/resemblyzer.onnx` under `models_dir`).
    pub speakers: bool,
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
            window: WindowParams::default(),
            prompt: None,
            vocabulary: Vec::new(),
            speakers: true,
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
    speaker: Option<SpeakerEncoder>,
    config: AsrConfig,
    model_id: String,
    /// The vocabulary and the prompt as tokens, built once.
    prompt: Vec<u32>,
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
        let speaker = if config.speakers {
            Some(SpeakerEncoder::open(
                &env,
                &config.models_dir.join(speaker::MODEL_FILE),
            )?)
        } else {
            None
        };
        let whisper_dir = config.models_dir.join(&config.whisper_model);
        let whisper = Whisper::open(&env, &whisper_dir, config.threads, config.decode.clone())?;
        let model_id = format!("whisper-{}-int8-onnx", whisper.info().name);
        let mut prompt = if config.vocabulary.is_empty() {
            Vec::new()
        } else {
            whisper.prompt_tokens(&format!("{}.", config.vocabulary.join(", ")))?
        };
        if let Some(text) = &config.prompt {
            prompt.extend(whisper.prompt_tokens(text)?);
        }
        if prompt.len() > whisper.max_prompt_tokens() {
            tracing::warn!(
                tokens = prompt.len(),
                kept = whisper.max_prompt_tokens(),
                "the speech prompt and vocabulary are longer than Whisper reads: only their end is used"
            );
        }
        Ok(Self {
            whisper,
            vad,
            speaker,
            config,
            model_id,
            prompt,
        })
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Tokens of the vocabulary and the prompt given before every window.
    pub fn prompt_len(&self) -> usize {
        self.prompt.len()
    }

    /// What the Whisper model's `model.json` says of it (dimensions, token ids).
    pub fn model_info(&self) -> &whisper::ModelInfo {
        self.whisper.info()
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
        let regions: Vec<std::ops::Range<usize>> = w
            .regions
            .iter()
            .map(|r| {
                (r.start.clamp(start, end) - start) as usize
                    ..(r.end.clamp(start, end) - start) as usize
            })
            .filter(|r| r.end > r.start)
            .collect();
        let t = &mut *self.transcriber;
        let mut language = self.language;
        let mut stats = PassStats::default();
        let text = window::decode_window(audio.len(), &regions, &t.config.window, |range| {
            let seed = start ^ ((range.start as u64) << 32);
            let d = t
                .whisper
                .transcribe_piece(&audio[range], language, &t.prompt, seed)?;
            stats.add(&d);
            let mut verdict = guard::judge(
                &t.config.guard,
                d.no_speech_prob,
                d.avg_logprob,
                d.compression_ratio,
            );
            let keep = |s: &whisper::RawSegment| !guard::is_known_hallucination(&s.text);
            let segments: Vec<whisper::RawSegment> =
                d.segments.iter().filter(|s| keep(s)).cloned().collect();
            let tail = d.tail.clone().filter(keep);
            let had_text = !d.segments.is_empty() || d.tail.is_some();
            if verdict.is_ok() && segments.is_empty() && tail.is_none() && had_text {
                verdict = Err(Rejection::KnownHallucination);
            }
            if language.is_none() && verdict.is_ok() && had_text {
                // Detected on the first window with speech; later windows keep it.
                language = Some(d.language);
            }
            stats.language.get_or_insert(d.language);
            Ok::<_, AsrError>(window::Piece {
                segments: if verdict.is_ok() {
                    segments
                } else {
                    Vec::new()
                },
                tail: if verdict.is_ok() { tail } else { None },
                last_timestamp: d.last_timestamp,
                ending: d.ending,
                rejected: verdict.err(),
            })
        })?;
        if self.language.is_none() && language.is_some() {
            self.language = language;
            self.transcript.language = language;
        }
        let start_ms = self.offset_ms + samples_to_ms(start);
        let end_ms = self.offset_ms + samples_to_ms(end);
        let at_ms = |x: usize| self.offset_ms + samples_to_ms(start + x as u64);
        let mut segments = Vec::new();
        let mut floor = start_ms;
        let speaker_started = std::time::Instant::now();
        for s in &text.segments {
            let s_ms = at_ms(s.start).clamp(floor, end_ms);
            let e_ms = at_ms(s.end).clamp(s_ms, end_ms);
            floor = e_ms;
            let voice = match t.speaker.as_mut() {
                Some(encoder) => {
                    let piece = &audio[s.start.min(audio.len())..s.end.clamp(s.start, audio.len())];
                    encoder.voiceprint(piece)?
                }
                None => None,
            };
            segments.push(Segment {
                start_ms: s_ms,
                end_ms: e_ms,
                text: s.text.clone(),
                voice,
            });
        }
        let speaker_ms = speaker_started.elapsed().as_secs_f32() * 1000.0;
        let uncovered: Vec<Uncovered> = text
            .uncovered
            .iter()
            .map(|r| Uncovered {
                start_ms: at_ms(r.start),
                end_ms: at_ms(r.end),
            })
            .collect();
        let speech_ms = samples_to_ms(text.speech as u64);
        let timings = &mut self.transcript.timings;
        let index = timings.windows;
        timings.windows += 1;
        timings.encoder_ms += stats.encoder_ms;
        timings.decoder_ms += stats.decoder_ms;
        timings.decoder_steps += stats.decoder_steps;
        timings.tokens += stats.tokens;
        timings.passes += text.passes;
        timings.redecoded += text.redecoded;
        timings.fallbacks += stats.fallbacks;
        timings.speaker_ms += speaker_ms;
        self.transcript.speech_ms += speech_ms;
        self.transcript.uncovered.extend(&uncovered);
        tracing::debug!(
            window = index,
            start_ms,
            end_ms,
            speech_ms,
            passes = text.passes,
            redecoded = text.redecoded,
            fallbacks = stats.fallbacks,
            tokens = stats.tokens,
            no_speech_prob = stats.no_speech_prob,
            avg_logprob = stats.avg_logprob,
            rejected = ?text.rejected,
            loop_cut = stats.loop_cut,
            encoder_ms = stats.encoder_ms,
            decoder_ms = stats.decoder_ms,
            speaker_ms,
            "speech window decoded"
        );
        if !uncovered.is_empty() {
            tracing::warn!(
                window = index,
                uncovered_ms = uncovered.iter().map(Uncovered::ms).sum::<u64>(),
                regions = ?uncovered.iter().map(|u| (u.start_ms, u.end_ms)).collect::<Vec<_>>(),
                "speech that no decode could transcribe"
            );
        }
        Ok(WindowResult {
            index,
            start_ms,
            end_ms,
            segments,
            language: language.or(stats.language).unwrap_or(Lang::Ru),
            speech_ms,
            uncovered,
            rejected: text.rejected,
            no_speech_prob: stats.no_speech_prob,
            avg_logprob: stats.avg_logprob,
            loop_cut: stats.loop_cut,
            tokens: stats.tokens,
            passes: text.passes,
            redecoded: text.redecoded,
            fallbacks: stats.fallbacks,
            encoder_ms: stats.encoder_ms,
            decoder_ms: stats.decoder_ms,
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

/// What the decodes of one window add up to.
#[derive(Debug, Default)]
struct PassStats {
    passes: usize,
    /// Of the first pass.
    no_speech_prob: f32,
    avg_logprob: f32,
    language: Option<Lang>,
    loop_cut: bool,
    tokens: usize,
    fallbacks: usize,
    encoder_ms: f32,
    decoder_ms: f32,
    decoder_steps: usize,
}

impl PassStats {
    fn add(&mut self, d: &whisper::WindowDecode) {
        if self.passes == 0 {
            self.no_speech_prob = d.no_speech_prob;
            self.avg_logprob = d.avg_logprob;
        }
        self.passes += 1;
        self.loop_cut |= d.loop_cut;
        self.tokens += d.tokens;
        self.fallbacks += d.attempts.saturating_sub(1);
        self.encoder_ms += d.encoder_ms;
        self.decoder_ms += d.decoder_ms;
        self.decoder_steps += d.decoder_steps;
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
