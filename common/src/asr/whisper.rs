//! Whisper on ONNX Runtime: one window (at most 30 s) in, timestamped text out.
//!
//! The graphs are the ones `infra/local/models/ct2_whisper_to_onnx.py` writes (its README is
//! the I/O contract): an encoder from log-mel to per-layer cross-attention keys/values, and a
//! one-step decoder with a self-attention KV cache owned here. Every token id comes from the
//! model's `model.json`, so other Whisper sizes (large-v3 has 128 mel bins and one more
//! language) work unchanged.
//!
//! [`Whisper::transcribe_piece`] decodes one piece of audio as faster-whisper does at beam 1:
//! greedy at temperature 0, and when the result looks wrong (compression ratio above 2.4 or
//! average log-probability below -1, unless the model also says there is no speech) again at
//! 0.2, 0.4 ... 1.0, sampling `best_of` hypotheses at each and keeping the likeliest. An
//! optional prompt goes before the start token as "previous text" (`<|startofprev|>`), which
//! is how Whisper is told the register and the vocabulary. The result says how the text ended
//! ([`Ending`]), so the caller can decode on from the last timestamp when speech remains.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorRef};
use serde::Deserialize;
use tokenizers::Tokenizer;

use super::Lang;
use super::error::AsrError;
use super::guard;
use super::mel::{LogMel, N_FRAMES, Padding, SAMPLE_RATE, WINDOW_SAMPLES};
use super::runtime;

/// What `model.json` says about the converted model (only the parts decoding needs).
#[derive(Debug, Clone, Deserialize)]
pub struct ModelInfo {
    pub format_version: u32,
    pub name: String,
    pub dims: Dims,
    pub tokens: SpecialTokens,
    pub suppress_ids: Vec<u32>,
    pub suppress_ids_begin: Vec<u32>,
    pub files: Files,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Dims {
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_text_ctx: usize,
    pub n_heads: usize,
    pub head_dim: usize,
    pub n_decoder_layers: usize,
    pub n_vocab: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SpecialTokens {
    pub eot: u32,
    pub sot: u32,
    pub sot_prev: u32,
    pub transcribe: u32,
    pub no_speech: u32,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
    pub multilingual: bool,
    pub languages: HashMap<String, u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Files {
    pub encoder: String,
    pub decoder: String,
    pub tokenizer: String,
}

impl ModelInfo {
    pub fn load(dir: &Path) -> Result<Self, AsrError> {
        let path = dir.join("model.json");
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AsrError::ModelFileMissing { path: path.clone() },
            _ => AsrError::ModelConfig {
                path: path.clone(),
                reason: e.to_string(),
            },
        })?;
        let info: ModelInfo = serde_json::from_str(&text).map_err(|e| AsrError::ModelConfig {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| AsrError::ModelConfig {
            path: path.clone(),
            reason,
        };
        if info.format_version != 1 {
            return Err(bad(format!(
                "format_version {} (this code reads 1)",
                info.format_version
            )));
        }
        let t = &info.tokens;
        let vocab = info.dims.n_vocab as u32;
        if [
            t.eot,
            t.sot,
            t.sot_prev,
            t.transcribe,
            t.no_speech,
            t.no_timestamps,
            t.timestamp_begin,
        ]
        .iter()
        .any(|&id| id >= vocab)
            || t.timestamp_begin <= t.eot
        {
            return Err(bad("special token ids outside the vocabulary".into()));
        }
        if info.dims.n_text_ctx < 8 || info.dims.n_decoder_layers == 0 {
            return Err(bad("implausible dimensions".into()));
        }
        Ok(info)
    }
}

/// How a window is decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Ask for timestamp tokens, which split a window into sentence-sized segments and tell
    /// where the text ends. Without them a window is one segment.
    pub timestamps: bool,
    /// Most tokens sampled per window (Whisper's own limit is half the text context, 224).
    pub max_new_tokens: usize,
    /// Longest repeated n-gram looked for by the loop guard.
    pub max_loop_ngram: usize,
    /// Temperatures tried in order until a result passes the checks below (faster-whisper's
    /// 0.0, 0.2 ... 1.0). One value, 0.0, means greedy only.
    pub temperatures: Vec<f32>,
    /// Hypotheses sampled at each temperature above 0; the likeliest is kept.
    pub best_of: usize,
    /// A result more compressible than this (zlib, as faster-whisper measures it) is a loop.
    pub compression_ratio_threshold: f32,
    /// A result whose average log-probability is below this is tried again hotter...
    pub logprob_threshold: f32,
    /// ... unless the no-speech probability is above this: then it is silence, not a bad
    /// decode.
    pub no_speech_threshold: f32,
    /// How a piece shorter than 30 s is padded (see [`Padding`]).
    pub padding: Padding,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            timestamps: true,
            max_new_tokens: 224,
            max_loop_ngram: 32,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            best_of: 5,
            compression_ratio_threshold: 2.4,
            logprob_threshold: -1.0,
            no_speech_threshold: 0.6,
            padding: Padding::Features,
        }
    }
}

/// One piece of a window's text, times in seconds from the window's start.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSegment {
    pub start: f32,
    pub end: f32,
    pub text: String,
}

/// How the model ended a decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// End of text after a lone timestamp: the model heard nothing after it.
    Closed,
    /// End of text after a closing and an opening timestamp: the model expects the speech to
    /// go on from there (Whisper's way of saying "continue in the next window").
    Continued,
    /// Text with no closing timestamp: cut by the token limit or the loop guard. That text is
    /// in [`WindowDecode::tail`].
    Unfinished,
    /// Decoded without timestamps.
    Plain,
}

/// The result of decoding one window.
#[derive(Debug, Clone)]
pub struct WindowDecode {
    pub language: Lang,
    /// Probability of `<|nocaptions|>` at the first step.
    pub no_speech_prob: f32,
    /// Mean log-probability of the sampled tokens (end of text included).
    pub avg_logprob: f32,
    /// zlib compression ratio of the text (segments and tail).
    pub compression_ratio: f32,
    /// Segments closed by a timestamp (all of the text without timestamps).
    pub segments: Vec<RawSegment>,
    /// Text after the last timestamp that no timestamp closed, to the window's end.
    pub tail: Option<RawSegment>,
    /// Time of the last timestamp token, in seconds from the window's start.
    pub last_timestamp: Option<f32>,
    pub ending: Ending,
    /// Tokens sampled, timestamps included.
    pub tokens: usize,
    /// A repetition loop was found and cut.
    pub loop_cut: bool,
    pub encoder_ms: f32,
    /// Decoder time: the prompt steps and every sampled token, all attempts.
    pub decoder_ms: f32,
    /// Decoder runs, all attempts.
    pub decoder_steps: usize,
    /// Decodes run: 1, plus every hypothesis of every fallback temperature.
    pub attempts: usize,
}

/// The encoder and decoder sessions, the tokenizer, and the buffers reused across windows.
pub struct Whisper {
    dir: PathBuf,
    info: ModelInfo,
    options: DecodeOptions,
    encoder: Session,
    decoder: Session,
    tokenizer: Tokenizer,
    mel: LogMel,
    mel_buf: Vec<f32>,
    /// Self-attention cache, `[1, H, capacity, Dh]` per layer.
    cache_k: Vec<Vec<f32>>,
    cache_v: Vec<Vec<f32>>,
    capacity: usize,
    logits: Vec<f32>,
    /// Ids never sampled: the model's `suppress_ids` and every special token but end of text.
    suppress: Vec<bool>,
    names: IoNames,
}

impl fmt::Debug for Whisper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Whisper")
            .field("model", &self.info.name)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Input and output names of the graphs, built once.
struct IoNames {
    cross_k: Vec<String>,
    cross_v: Vec<String>,
    cache_k: Vec<String>,
    cache_v: Vec<String>,
    new_k: Vec<String>,
    new_v: Vec<String>,
}

impl IoNames {
    fn new(layers: usize) -> Self {
        let names = |prefix: &str| (0..layers).map(|i| format!("{prefix}_{i}")).collect();
        Self {
            cross_k: names("cross_k"),
            cross_v: names("cross_v"),
            cache_k: names("cache_k"),
            cache_v: names("cache_v"),
            new_k: names("new_k"),
            new_v: names("new_v"),
        }
    }
}

impl Whisper {
    /// Loads the converted model in `dir` (`model.json`, the two graphs, `tokenizer.json`).
    pub fn open(
        env: &Environment,
        dir: &Path,
        threads: usize,
        options: DecodeOptions,
    ) -> Result<Self, AsrError> {
        let info = ModelInfo::load(dir)?;
        let encoder = runtime::open_session(env, &dir.join(&info.files.encoder), threads)?;
        let decoder = runtime::open_session(env, &dir.join(&info.files.decoder), threads)?;
        let tokenizer_path = dir.join(&info.files.tokenizer);
        let tokenizer = load_tokenizer(&tokenizer_path)?;
        let d = &info.dims;
        let names = IoNames::new(d.n_decoder_layers);
        check_io(
            &encoder,
            "encoder",
            &["mel"],
            &[&names.cross_k, &names.cross_v],
        )?;
        check_io(
            &decoder,
            "decoder",
            &["tokens", "offset"],
            &[
                &names.cache_k,
                &names.cache_v,
                &names.cross_k,
                &names.cross_v,
            ],
        )?;
        let capacity = d.n_text_ctx;
        let layer = d.n_heads * capacity * d.head_dim;
        let mut suppress = vec![false; d.n_vocab];
        for &id in &info.suppress_ids {
            if let Some(s) = suppress.get_mut(id as usize) {
                *s = true;
            }
        }
        for s in &mut suppress[info.tokens.eot as usize + 1..] {
            *s = true;
        }
        Ok(Self {
            mel: LogMel::new(d.n_mels).with_padding(options.padding),
            mel_buf: vec![0.0; d.n_mels * N_FRAMES],
            cache_k: vec![vec![0.0; layer]; d.n_decoder_layers],
            cache_v: vec![vec![0.0; layer]; d.n_decoder_layers],
            capacity,
            logits: vec![0.0; d.n_vocab],
            suppress,
            names,
            dir: dir.to_path_buf(),
            info,
            options,
            encoder,
            decoder,
            tokenizer,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The prompt tokens for `text`: a leading space, as Whisper's previous text has one.
    pub fn prompt_tokens(&self, text: &str) -> Result<Vec<u32>, AsrError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = self
            .tokenizer
            .encode(format!(" {text}"), false)
            .map_err(AsrError::Detokenize)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The most prompt tokens a decode keeps (the last ones): half the text context less the
    /// `<|startofprev|>` token, as in openai-whisper.
    pub fn max_prompt_tokens(&self) -> usize {
        self.info.dims.n_text_ctx / 2 - 1
    }

    /// Transcribes one piece of 16 kHz mono audio (at most 30 s) in `language`, or in the most
    /// likely of the supported languages when `None`, after `prompt` (previous-text tokens,
    /// from [`Whisper::prompt_tokens`]), falling back to higher temperatures as the options
    /// say. `seed` makes the sampling at those temperatures repeatable.
    pub fn transcribe_piece(
        &mut self,
        samples: &[f32],
        language: Option<Lang>,
        prompt: &[u32],
        seed: u64,
    ) -> Result<WindowDecode, AsrError> {
        if samples.len() > WINDOW_SAMPLES {
            return Err(AsrError::WindowTooLong {
                samples: samples.len(),
                max: WINDOW_SAMPLES,
            });
        }
        let started = Instant::now();
        self.mel.compute_into(samples, &mut self.mel_buf)?;
        let cross = self.encode()?;
        let encoder_ms = ms_since(started);

        let started = Instant::now();
        let tok = &self.info.tokens;
        let (sot, sot_prev, no_speech) = (tok.sot, tok.sot_prev, tok.no_speech);
        let (multilingual, transcribe, no_timestamps) =
            (tok.multilingual, tok.transcribe, tok.no_timestamps);
        // Step A: the previous text (if any) and the start token, whose logits give the
        // no-speech probability and the language.
        let keep = prompt.len().min(self.max_prompt_tokens());
        let mut first: Vec<i64> = Vec::with_capacity(keep + 2);
        if keep > 0 {
            first.push(i64::from(sot_prev));
            first.extend(prompt[prompt.len() - keep..].iter().map(|&t| i64::from(t)));
        }
        first.push(i64::from(sot));
        self.step(&first, 0, &cross)?;
        let no_speech_prob = softmax_at(&self.logits, no_speech as usize);
        let language = match language {
            Some(l) => l,
            None => self.detect_language(),
        };
        // Step B: the rest of the start sequence.
        let mut rest = Vec::with_capacity(3);
        if multilingual {
            let id = self.language_token(language)?;
            rest.push(i64::from(id));
            rest.push(i64::from(transcribe));
        }
        if !self.options.timestamps {
            rest.push(i64::from(no_timestamps));
        }
        let mut offset = first.len();
        let mut steps = 1;
        if !rest.is_empty() {
            self.step(&rest, offset, &cross)?;
            offset += rest.len();
            steps += 1;
        }
        // The cache rows of the prompt never change: every attempt starts from these logits.
        let start_logits = self.logits.clone();

        let window_s = samples.len() as f32 / SAMPLE_RATE as f32;
        let mut rng = SplitMix64(seed);
        let mut attempts = 0;
        let mut best: Option<Candidate> = None;
        let mut best_passing_cr: Option<Candidate> = None;
        // No temperatures configured means greedy only.
        for i in 0..self.options.temperatures.len().max(1) {
            let temperature = self.options.temperatures.get(i).copied().unwrap_or(0.0);
            let hypotheses = if temperature > 0.0 {
                self.options.best_of.max(1)
            } else {
                1
            };
            let mut chosen: Option<Pass> = None;
            for _ in 0..hypotheses {
                let pass = self.sample(&start_logits, offset, &cross, temperature, &mut rng)?;
                attempts += 1;
                steps += pass.steps;
                if chosen
                    .as_ref()
                    .is_none_or(|c| pass.avg_logprob > c.avg_logprob)
                {
                    chosen = Some(pass);
                }
            }
            let Some(pass) = chosen else { break };
            let candidate = self.candidate(pass, window_s)?;
            let too_repetitive =
                candidate.compression_ratio > self.options.compression_ratio_threshold;
            let too_unlikely = candidate.pass.avg_logprob < self.options.logprob_threshold;
            let silence = no_speech_prob > self.options.no_speech_threshold && too_unlikely;
            let done = silence || (!too_repetitive && !too_unlikely);
            let replace = |slot: &mut Option<Candidate>, c: &Candidate| {
                if slot
                    .as_ref()
                    .is_none_or(|b| c.pass.avg_logprob > b.pass.avg_logprob)
                {
                    *slot = Some(c.clone());
                }
            };
            if done {
                best = Some(candidate);
                best_passing_cr = None;
                break;
            }
            if !too_repetitive {
                replace(&mut best_passing_cr, &candidate);
            }
            replace(&mut best, &candidate);
        }
        // Every temperature failed: the likeliest result that is not a loop, else the likeliest.
        let kept = best_passing_cr
            .or(best)
            .ok_or_else(|| AsrError::GraphMismatch {
                model: "decoder",
                tensor: "logits".into(),
                reason: "no decode was run".into(),
            })?;
        Ok(WindowDecode {
            language,
            no_speech_prob,
            avg_logprob: kept.pass.avg_logprob,
            compression_ratio: kept.compression_ratio,
            segments: kept.segments,
            tail: kept.tail,
            last_timestamp: kept.last_timestamp,
            ending: kept.ending,
            tokens: kept.pass.sampled.len(),
            loop_cut: kept.pass.loop_cut,
            encoder_ms,
            decoder_ms: ms_since(started),
            decoder_steps: steps,
            attempts,
        })
    }

    /// One decode from the prompt's logits: greedy at temperature 0, else sampled.
    fn sample(
        &mut self,
        start_logits: &[f32],
        mut offset: usize,
        cross: &[DynValue],
        temperature: f32,
        rng: &mut SplitMix64,
    ) -> Result<Pass, AsrError> {
        let eot = self.info.tokens.eot;
        let max_new = self
            .options
            .max_new_tokens
            .min(self.info.dims.n_text_ctx / 2);
        self.logits.copy_from_slice(start_logits);
        let mut sampled: Vec<u32> = Vec::new();
        // Text tokens only (no timestamps) and where each sits in `sampled`, for the loop guard.
        let mut text_tokens: Vec<u32> = Vec::new();
        let mut text_at: Vec<usize> = Vec::new();
        let mut logprob_sum = 0.0f64;
        let mut loop_cut = false;
        let mut ended = false;
        let mut steps = 0;
        let mut scores = vec![0.0f32; self.logits.len()];
        loop {
            scores.copy_from_slice(&self.logits);
            self.filter(&mut scores, &sampled);
            let (next, logprob) = pick(&scores, temperature, rng);
            logprob_sum += f64::from(logprob);
            if next == eot {
                ended = true;
                break;
            }
            sampled.push(next);
            if next < eot {
                text_tokens.push(next);
                text_at.push(sampled.len() - 1);
                if let Some(cut) = guard::find_loop(&text_tokens, self.options.max_loop_ngram) {
                    sampled.truncate(text_at[cut]);
                    loop_cut = true;
                    break;
                }
            }
            if sampled.len() >= max_new || offset + 1 > self.info.dims.n_text_ctx.min(self.capacity)
            {
                break;
            }
            self.step(&[i64::from(next)], offset, cross)?;
            offset += 1;
            steps += 1;
        }
        let avg_logprob = (logprob_sum / (sampled.len() + 1) as f64) as f32;
        Ok(Pass {
            sampled,
            avg_logprob,
            loop_cut,
            ended,
            steps,
        })
    }

    /// A pass as text: segments, how it ended, and how compressible it is.
    fn candidate(&self, pass: Pass, window_s: f32) -> Result<Candidate, AsrError> {
        let tb = self.info.tokens.timestamp_begin;
        let (segments, tail) = self.segments(&pass.sampled, window_s)?;
        let last_timestamp = pass
            .sampled
            .iter()
            .rev()
            .find(|&&t| t >= tb)
            .map(|&t| ((t - tb) as f32 * 0.02).min(window_s));
        let is_ts = |t: Option<&u32>| t.is_some_and(|&t| t >= tb);
        let n = pass.sampled.len();
        let ending = if !self.options.timestamps {
            Ending::Plain
        } else if tail.is_some() || !pass.ended {
            Ending::Unfinished
        } else if n >= 2 && is_ts(pass.sampled.get(n - 1)) && is_ts(pass.sampled.get(n - 2)) {
            Ending::Continued
        } else {
            Ending::Closed
        };
        let text = segments
            .iter()
            .chain(&tail)
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Candidate {
            compression_ratio: guard::compression_ratio(&text),
            segments,
            tail,
            last_timestamp,
            ending,
            pass,
        })
    }

    fn encode(&mut self) -> Result<Vec<DynValue>, AsrError> {
        let mel = TensorRef::from_array_view((
            [1usize, self.info.dims.n_mels, N_FRAMES],
            &self.mel_buf[..],
        ))
        .map_err(AsrError::inference("encoder"))?;
        let mut outputs = self
            .encoder
            .run(ort::inputs!["mel" => mel])
            .map_err(AsrError::inference("encoder"))?;
        // Keys and values of every layer, interleaved as the decoder's inputs list them;
        // the values are shared with the encoder's outputs, not copied.
        let mut cross = Vec::with_capacity(2 * self.names.cross_k.len());
        for (k, v) in self.names.cross_k.iter().zip(&self.names.cross_v) {
            for name in [k, v] {
                let value = outputs
                    .remove(name)
                    .ok_or_else(|| AsrError::GraphMismatch {
                        model: "encoder",
                        tensor: name.clone(),
                        reason: "missing".into(),
                    })?;
                cross.push(value);
            }
        }
        Ok(cross)
    }

    /// Runs the decoder on `tokens` at `offset`: the logits land in `self.logits`, the new
    /// keys/values in the cache rows `offset..offset + tokens.len()`.
    fn step(&mut self, tokens: &[i64], offset: usize, cross: &[DynValue]) -> Result<(), AsrError> {
        let d = &self.info.dims;
        let (h, dh, cap, t) = (d.n_heads, d.head_dim, self.capacity, tokens.len());
        let err = || AsrError::inference("decoder");
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(2 + 4 * d.n_decoder_layers);
        inputs.push((
            "tokens".into(),
            Tensor::from_array(([1usize, t], tokens.to_vec()))
                .map_err(err())?
                .into(),
        ));
        inputs.push((
            "offset".into(),
            Tensor::from_array(([1usize], vec![offset as i64]))
                .map_err(err())?
                .into(),
        ));
        let shape = [1usize, h, cap, dh];
        for l in 0..d.n_decoder_layers {
            let k = TensorRef::from_array_view((shape, &self.cache_k[l][..])).map_err(err())?;
            let v = TensorRef::from_array_view((shape, &self.cache_v[l][..])).map_err(err())?;
            inputs.push((self.names.cache_k[l].as_str().into(), k.into()));
            inputs.push((self.names.cache_v[l].as_str().into(), v.into()));
            inputs.push((
                self.names.cross_k[l].as_str().into(),
                (&cross[2 * l]).into(),
            ));
            inputs.push((
                self.names.cross_v[l].as_str().into(),
                (&cross[2 * l + 1]).into(),
            ));
        }
        let outputs = self.decoder.run(inputs).map_err(err())?;
        let logits = runtime::output_f32(&outputs, "decoder", "logits")?;
        if logits.len() != self.logits.len() {
            return Err(AsrError::GraphMismatch {
                model: "decoder",
                tensor: "logits".into(),
                reason: format!("{} values instead of {}", logits.len(), self.logits.len()),
            });
        }
        self.logits.copy_from_slice(logits);
        let row = dh;
        for l in 0..d.n_decoder_layers {
            for (name, cache) in [
                (&self.names.new_k[l], &mut self.cache_k[l]),
                (&self.names.new_v[l], &mut self.cache_v[l]),
            ] {
                let new = runtime::output_f32(&outputs, "decoder", name)?;
                if new.len() != h * t * dh {
                    return Err(AsrError::GraphMismatch {
                        model: "decoder",
                        tensor: name.clone(),
                        reason: format!("{} values instead of {}", new.len(), h * t * dh),
                    });
                }
                for head in 0..h {
                    for i in 0..t {
                        let src = (head * t + i) * row;
                        let dst = (head * cap + offset + i) * row;
                        cache[dst..dst + row].copy_from_slice(&new[src..src + row]);
                    }
                }
            }
        }
        Ok(())
    }

    /// Whisper's logit filters: suppressed ids, the first-step rules and, with timestamps,
    /// the pairing rules (timestamps come in pairs and never go back).
    fn filter(&self, scores: &mut [f32], sampled: &[u32]) {
        let tok = &self.info.tokens;
        let tb = tok.timestamp_begin as usize;
        for (s, &off) in scores.iter_mut().zip(&self.suppress) {
            if off {
                *s = f32::NEG_INFINITY;
            }
        }
        if sampled.is_empty() {
            for &id in &self.info.suppress_ids_begin {
                if let Some(s) = scores.get_mut(id as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        if !self.options.timestamps {
            return;
        }
        // Timestamps were switched off above with every other special token; allow them again.
        for (s, &l) in scores[tb..].iter_mut().zip(&self.logits[tb..]) {
            *s = l;
        }
        let is_ts = |t: &u32| *t as usize >= tb;
        let last_ts = sampled.last().is_some_and(is_ts);
        let penultimate_ts = sampled.len() < 2 || is_ts(&sampled[sampled.len() - 2]);
        if last_ts {
            if penultimate_ts {
                // A closing and an opening timestamp were just written: text (or the end) next.
                scores[tb..].fill(f32::NEG_INFINITY);
            } else {
                // After a lone timestamp comes another timestamp or the end, not text.
                scores[..tok.eot as usize].fill(f32::NEG_INFINITY);
            }
        }
        if let Some(&last) = sampled.iter().rev().find(|t| is_ts(t)) {
            // Never go back in time; a new segment cannot start where the last one ended.
            let floor = if last_ts && !penultimate_ts {
                last
            } else {
                last + 1
            } as usize;
            let floor = floor.min(scores.len());
            scores[tb..floor].fill(f32::NEG_INFINITY);
        }
        if sampled.is_empty() {
            // Start with a timestamp, at most one second in.
            scores[..tb].fill(f32::NEG_INFINITY);
            let last_allowed = tb + 50;
            if last_allowed + 1 < scores.len() {
                scores[last_allowed + 1..].fill(f32::NEG_INFINITY);
            }
        }
        // When all timestamps together are likelier than any single text token, take a timestamp.
        let lse = |xs: &[f32]| {
            let m = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if m == f32::NEG_INFINITY {
                return m;
            }
            m + xs.iter().map(|x| (x - m).exp()).sum::<f32>().ln()
        };
        let ts_mass = lse(&scores[tb..]);
        let text_max = scores[..tb]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        if ts_mass > text_max {
            scores[..tb].fill(f32::NEG_INFINITY);
        }
    }

    fn detect_language(&self) -> Lang {
        let mut best = (Lang::Ru, f32::NEG_INFINITY);
        for lang in Lang::ALL {
            if let Some(&id) = self.info.tokens.languages.get(lang.code())
                && let Some(&score) = self.logits.get(id as usize)
                && score > best.1
            {
                best = (lang, score);
            }
        }
        best.0
    }

    fn language_token(&self, lang: Lang) -> Result<u32, AsrError> {
        self.info
            .tokens
            .languages
            .get(lang.code())
            .copied()
            .ok_or_else(|| AsrError::ModelConfig {
                path: self.dir.join("model.json"),
                reason: format!("the model has no language token for {}", lang.code()),
            })
    }

    /// Splits sampled tokens at timestamps into closed segments (times relative to the window)
    /// and the text after the last timestamp that none closed (to the window's end).
    fn segments(
        &self,
        sampled: &[u32],
        window_s: f32,
    ) -> Result<(Vec<RawSegment>, Option<RawSegment>), AsrError> {
        let tb = self.info.tokens.timestamp_begin;
        let eot = self.info.tokens.eot;
        let time = |t: u32| ((t - tb) as f32 * 0.02).min(window_s);
        let mut segments = Vec::new();
        let mut start: Option<f32> = None;
        let mut last_end = 0.0f32;
        let mut text: Vec<u32> = Vec::new();
        for &t in sampled {
            if t >= tb {
                if text.is_empty() {
                    start = Some(time(t));
                } else {
                    let s = start.unwrap_or(last_end);
                    let e = time(t).max(s);
                    self.push_segment(&mut segments, s, e, &text)?;
                    text.clear();
                    start = None;
                    last_end = e;
                }
            } else if t < eot {
                text.push(t);
            }
        }
        let mut tail = Vec::new();
        if !text.is_empty() {
            let s = start.unwrap_or(last_end).min(window_s);
            self.push_segment(&mut tail, s, window_s, &text)?;
        }
        if !self.options.timestamps {
            // Without timestamps the whole text is one segment over the window.
            segments.append(&mut tail);
        }
        Ok((segments, tail.pop()))
    }

    fn push_segment(
        &self,
        out: &mut Vec<RawSegment>,
        start: f32,
        end: f32,
        ids: &[u32],
    ) -> Result<(), AsrError> {
        let text = self
            .tokenizer
            .decode(ids, true)
            .map_err(AsrError::Detokenize)?
            .trim()
            .to_string();
        if !text.is_empty() {
            out.push(RawSegment { start, end, text });
        }
        Ok(())
    }
}

fn load_tokenizer(path: &Path) -> Result<Tokenizer, AsrError> {
    if !path.is_file() {
        return Err(AsrError::ModelFileMissing {
            path: path.to_path_buf(),
        });
    }
    Tokenizer::from_file(path).map_err(|source| AsrError::Tokenizer {
        path: path.to_path_buf(),
        source,
    })
}

/// Fails early, naming the tensor, when a graph is not the one this code was written for.
fn check_io(
    session: &Session,
    model: &'static str,
    inputs: &[&str],
    lists: &[&Vec<String>],
) -> Result<(), AsrError> {
    let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    let wanted = inputs
        .iter()
        .copied()
        .chain(lists.iter().flat_map(|l| l.iter().map(String::as_str)));
    for name in wanted {
        // The encoder's list lives among its outputs, the decoder's among its inputs.
        if !names.contains(&name) && !outputs.contains(&name) {
            return Err(AsrError::GraphMismatch {
                model,
                tensor: name.to_string(),
                reason: "the graph has no such input or output; convert the model again".into(),
            });
        }
    }
    Ok(())
}

fn softmax_at(logits: &[f32], index: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&x| (x - max).exp()).sum();
    logits.get(index).map_or(0.0, |&x| (x - max).exp() / sum)
}

/// One decode's tokens.
#[derive(Debug, Clone)]
struct Pass {
    sampled: Vec<u32>,
    avg_logprob: f32,
    loop_cut: bool,
    /// The model wrote end of text (not cut by the token limit, the context or the loop guard).
    ended: bool,
    steps: usize,
}

/// A pass turned into text, with what the fallback rules look at.
#[derive(Debug, Clone)]
struct Candidate {
    pass: Pass,
    compression_ratio: f32,
    segments: Vec<RawSegment>,
    tail: Option<RawSegment>,
    last_timestamp: Option<f32>,
    ending: Ending,
}

/// The next token and its log-probability under the filtered scores at temperature 1 (as
/// openai-whisper reports it): the best one at temperature 0, else drawn from the scores
/// divided by the temperature.
fn pick(scores: &[f32], temperature: f32, rng: &mut SplitMix64) -> (u32, f32) {
    let (mut best, mut max) = (0usize, f32::NEG_INFINITY);
    for (i, &s) in scores.iter().enumerate() {
        if s > max {
            max = s;
            best = i;
        }
    }
    let sum: f32 = scores.iter().map(|&x| (x - max).exp()).sum();
    let log_norm = max + sum.ln();
    if temperature <= 0.0 || max == f32::NEG_INFINITY {
        return (best as u32, scores[best] - log_norm);
    }
    let weight = |x: f32| ((x - max) / temperature).exp();
    let total: f64 = scores.iter().map(|&x| f64::from(weight(x))).sum();
    let mut target = rng.next_f64() * total;
    let mut chosen = best;
    for (i, &x) in scores.iter().enumerate() {
        let w = f64::from(weight(x));
        if w == 0.0 {
            continue;
        }
        chosen = i;
        if target < w {
            break;
        }
        target -= w;
    }
    (chosen as u32, scores[chosen] - log_norm)
}

/// A small, seedable generator for the fallback's sampling (splitmix64): the same audio and
/// seed give the same transcript.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn ms_since(t: Instant) -> f32 {
    t.elapsed().as_secs_f32() * 1000.0
}
