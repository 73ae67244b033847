//! Voice activity: Silero VAD on ONNX Runtime, and the windows Whisper decodes.
//!
//! [`SileroVad`] turns each 32 ms frame (512 samples at 16 kHz) into a speech probability,
//! carrying the model's recurrent state and 64 samples of context between calls.
//! [`Segmenter`] turns those probabilities, one at a time, into [`SpeechWindow`]s of at most
//! 30 s: speech regions found with hysteresis, padded, merged with close neighbours while the
//! whole stays within 30 s, and long speech split at its quietest frame. Both work on a stream,
//! so memory does not depend on the recording's length.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::Path;

use ort::session::Session;
use ort::value::{Tensor, TensorRef};

use super::error::AsrError;
use super::mel::SAMPLE_RATE;

/// New samples per Silero call (32 ms).
pub const FRAME: usize = 512;
const CONTEXT: usize = 64;
const STATE: usize = 2 * 128;

/// Silero VAD v5/v6 (16 kHz graph), one stream at a time.
#[derive(Debug)]
pub struct SileroVad {
    session: Session,
    state: Vec<f32>,
    input: Vec<f32>,
    sample_rate: Tensor<i64>,
}

impl SileroVad {
    pub fn new(session: Session) -> Result<Self, AsrError> {
        for name in ["input", "state", "sr"] {
            if !session.inputs().iter().any(|i| i.name() == name) {
                return Err(AsrError::GraphMismatch {
                    model: "vad",
                    tensor: name.into(),
                    reason: "the graph has no such input; is this silero_vad_16k_op15.onnx?".into(),
                });
            }
        }
        let sample_rate = Tensor::from_array(((), vec![SAMPLE_RATE as i64]))
            .map_err(AsrError::inference("vad"))?;
        Ok(Self {
            session,
            state: vec![0.0; STATE],
            input: vec![0.0; CONTEXT + FRAME],
            sample_rate,
        })
    }

    /// Opens the graph at `path` (single-threaded: the model is tiny and called every 32 ms).
    pub fn open(env: &ort::environment::Environment, path: &Path) -> Result<Self, AsrError> {
        Self::new(super::runtime::open_session(env, path, 1)?)
    }

    /// Forgets the previous stream: zero state and context.
    pub fn reset(&mut self) {
        self.state.fill(0.0);
        self.input.fill(0.0);
    }

    /// Speech probability of the next 512 samples of the stream.
    pub fn probability(&mut self, frame: &[f32; FRAME]) -> Result<f32, AsrError> {
        self.input[CONTEXT..].copy_from_slice(frame);
        let input = TensorRef::from_array_view(([1usize, CONTEXT + FRAME], &self.input[..]))
            .map_err(AsrError::inference("vad"))?;
        let state = TensorRef::from_array_view(([2usize, 1, 128], &self.state[..]))
            .map_err(AsrError::inference("vad"))?;
        let outputs = self
            .session
            .run(ort::inputs! {
                "input" => input,
                "state" => state,
                "sr" => &self.sample_rate,
            })
            .map_err(AsrError::inference("vad"))?;
        let p = super::runtime::output_f32(&outputs, "vad", "output")?;
        let p = p.first().copied().unwrap_or(0.0);
        let next = super::runtime::output_f32(&outputs, "vad", "stateN")?;
        if next.len() != STATE {
            return Err(AsrError::GraphMismatch {
                model: "vad",
                tensor: "stateN".into(),
                reason: format!("{} values instead of {STATE}", next.len()),
            });
        }
        self.state.copy_from_slice(next);
        drop(outputs);
        // The next call sees the last 64 samples of this frame as its context.
        self.input.copy_within(FRAME.., 0);
        Ok(p)
    }
}

/// How speech regions are found and grouped into windows. Durations in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct VadParams {
    /// Speech starts when a frame's probability reaches this.
    pub threshold: f32,
    /// Speech ends only after frames below this (hysteresis).
    pub neg_threshold: f32,
    /// Shorter speech regions are dropped (clicks, coughs).
    pub min_speech_ms: u32,
    /// A pause must last this long to end a speech region.
    pub min_silence_ms: u32,
    /// Audio kept before and after each region (faster-whisper's `speech_pad_ms`; 200 ms lost
    /// more words at the edges of turns on the evaluation set: pooled WER 0.264 against 0.258).
    pub pad_ms: u32,
    /// Longest window (Whisper reads 30 s).
    pub max_window_ms: u32,
    /// Regions further apart than this are never merged into one window, so long silences
    /// (where Whisper likes to invent text) stay out of windows.
    pub max_merge_gap_ms: u32,
}

impl Default for VadParams {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 250,
            min_silence_ms: 400,
            pad_ms: 400,
            max_window_ms: 30_000,
            max_merge_gap_ms: 3_000,
        }
    }
}

/// A span of the stream to transcribe, in samples from the stream's start; at most 30 s long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechWindow {
    pub start: u64,
    pub end: u64,
    /// The speech VAD heard inside the window (without the padding), in order: what the
    /// decoded text must cover.
    pub regions: Vec<Range<u64>>,
}

impl SpeechWindow {
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Closed speech regions waiting to be emitted together, in frames.
#[derive(Debug, Clone)]
struct Pending {
    start: u64,
    end: u64,
    /// Each region's frames.
    regions: Vec<Range<u64>>,
}

/// Streaming grouping of per-frame speech probabilities into [`SpeechWindow`]s.
///
/// Frame `i` covers samples `512 i .. 512 (i + 1)`. Windows come out in order, never overlap,
/// and each is at most `max_window_ms` long.
#[derive(Debug)]
pub struct Segmenter {
    params: VadParams,
    min_speech: u64,
    min_silence: u64,
    max_gap: u64,
    pad: u64,
    max_window: u64,
    /// Frames seen so far.
    frames: u64,
    /// Probabilities of the last frames, for choosing split points.
    recent: VecDeque<f32>,
    /// In a speech region since this frame.
    speech_start: Option<u64>,
    /// The current speech region went quiet at this frame (not yet long enough to end it).
    quiet_since: Option<u64>,
    pending: Option<Pending>,
    /// End (in samples) of the last emitted window: the next one starts at or after it.
    emitted_until: u64,
}

impl Segmenter {
    pub fn new(params: VadParams) -> Self {
        let frames = |ms: u32| (u64::from(ms) * SAMPLE_RATE as u64).div_ceil(1000 * FRAME as u64);
        let samples = |ms: u32| u64::from(ms) * SAMPLE_RATE as u64 / 1000;
        Self {
            min_speech: frames(params.min_speech_ms),
            min_silence: frames(params.min_silence_ms).max(1),
            max_gap: frames(params.max_merge_gap_ms),
            pad: samples(params.pad_ms),
            max_window: samples(params.max_window_ms).max(2 * FRAME as u64),
            frames: 0,
            recent: VecDeque::new(),
            speech_start: None,
            quiet_since: None,
            pending: None,
            emitted_until: 0,
            params,
        }
    }

    pub fn params(&self) -> &VadParams {
        &self.params
    }

    /// The earliest sample a future window can start at: audio before it can be dropped.
    pub fn earliest_needed(&self) -> u64 {
        let frame = match (&self.pending, self.speech_start) {
            (Some(p), _) => p.start,
            (None, Some(s)) => s,
            (None, None) => self.frames,
        };
        self.padded_start(frame)
    }

    /// Feeds the next frame's probability; completed windows are appended to `out`.
    pub fn push(&mut self, p: f32, out: &mut Vec<SpeechWindow>) {
        let i = self.frames;
        self.frames += 1;
        self.recent.push_back(p);
        let keep = (self.max_window / FRAME as u64 + 2) as usize;
        while self.recent.len() > keep {
            self.recent.pop_front();
        }

        if p >= self.params.threshold {
            self.quiet_since = None;
            if self.speech_start.is_none() {
                self.speech_start = Some(i);
            }
        } else if let Some(start) = self.speech_start
            && p < self.params.neg_threshold
        {
            let quiet = *self.quiet_since.get_or_insert(i);
            if self.frames - quiet >= self.min_silence {
                self.speech_start = None;
                self.quiet_since = None;
                self.close_region(start, quiet, out);
            }
        }

        if let Some(pending) = &self.pending {
            let next = self.speech_start;
            let gap_from = next.unwrap_or(self.frames);
            // Too far from the next speech (or none yet) to ever merge, or the region in
            // progress no longer fits with the pending ones: emit now.
            let far = gap_from - pending.end > self.max_gap;
            let full = next.is_some() && self.span(pending.start, self.frames) > self.max_window;
            if (far || full)
                && let Some(pending) = self.pending.take()
            {
                self.emit(pending, next, out);
            }
        }

        if let Some(start) = self.speech_start
            && self.pending.is_none()
            && self.span(start, self.frames) > self.max_window
        {
            self.split_long_region(start, out);
        }
    }

    /// Ends the stream of `total_samples` samples: emits what is left.
    pub fn finish(&mut self, total_samples: u64, out: &mut Vec<SpeechWindow>) {
        if let Some(start) = self.speech_start.take() {
            let end = self.quiet_since.take().unwrap_or(self.frames);
            self.close_region(start, end, out);
        }
        if let Some(pending) = self.pending.take() {
            let before = out.len();
            self.emit(pending, None, out);
            for w in &mut out[before..] {
                w.end = w.end.min(total_samples);
                w.start = w.start.min(w.end);
                let end = w.end;
                for r in &mut w.regions {
                    r.end = r.end.min(end);
                }
                w.regions.retain(|r| r.end > r.start);
            }
            out.retain(|w| !w.is_empty());
        }
    }

    /// A speech region `[start, end)` (frames) is over: merge it or start a new window.
    fn close_region(&mut self, start: u64, end: u64, out: &mut Vec<SpeechWindow>) {
        if end - start < self.min_speech {
            return;
        }
        #[allow(clippy::single_range_in_vec_init)] // a list of regions, holding one so far
        let region = Pending {
            start,
            end,
            regions: vec![start..end],
        };
        match self.pending.take() {
            Some(mut p)
                if start - p.end <= self.max_gap && self.span(p.start, end) <= self.max_window =>
            {
                p.end = end;
                p.regions.push(start..end);
                self.pending = Some(p);
            }
            Some(p) => {
                self.emit(p, Some(start), out);
                self.pending = Some(region);
            }
            None => self.pending = Some(region),
        }
    }

    /// Speech that has run since `start` is longer than a window: cut it at its quietest frame
    /// in the second half of the window (the latest of equals, for long windows) and emit the
    /// first part.
    fn split_long_region(&mut self, start: u64, out: &mut Vec<SpeechWindow>) {
        let win_start = self.padded_start(start);
        let last_allowed = (win_start + self.max_window) / FRAME as u64; // cut at a frame start
        let first_allowed = (win_start + self.max_window / 2) / FRAME as u64;
        let oldest = self.frames - self.recent.len() as u64;
        let (mut cut, mut lowest) = (last_allowed.min(self.frames), f32::INFINITY);
        for f in first_allowed.max(oldest).max(start + 1)..last_allowed.min(self.frames) {
            let p = self.recent[(f - oldest) as usize];
            if p <= lowest {
                lowest = p;
                cut = f;
            }
        }
        let cut_sample = cut * FRAME as u64;
        #[allow(clippy::single_range_in_vec_init)] // the window's one speech region
        out.push(SpeechWindow {
            start: win_start,
            end: cut_sample,
            regions: vec![(start * FRAME as u64).max(win_start)..cut_sample],
        });
        self.emitted_until = cut_sample;
        self.speech_start = Some(cut);
    }

    /// Emits the pending regions with their padding; `next` is where the following speech
    /// starts, if known, so the trailing pad never reaches into it.
    fn emit(&mut self, p: Pending, next: Option<u64>, out: &mut Vec<SpeechWindow>) {
        let start = self.padded_start(p.start);
        let speech_end = p.end * FRAME as u64;
        let mut end = speech_end + self.pad;
        if let Some(next) = next {
            let next = next * FRAME as u64;
            end = end.min(speech_end + next.saturating_sub(speech_end) / 2);
        }
        end = end.min(start + self.max_window).max(start);
        let regions = p
            .regions
            .iter()
            .map(|r| (r.start * FRAME as u64).max(start)..(r.end * FRAME as u64).min(end))
            .filter(|r| r.end > r.start)
            .collect();
        out.push(SpeechWindow {
            start,
            end,
            regions,
        });
        self.emitted_until = end;
    }

    fn padded_start(&self, frame: u64) -> u64 {
        (frame * FRAME as u64)
            .saturating_sub(self.pad)
            .max(self.emitted_until)
    }

    /// Length in samples of a window from speech frame `start` to speech frame `end`, pads included.
    fn span(&self, start: u64, end: u64) -> u64 {
        (end * FRAME as u64 + self.pad) - self.padded_start(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAMES_PER_S: f64 = SAMPLE_RATE as f64 / FRAME as f64;

    /// Probabilities for a script of (seconds, speech?) parts.
    fn probs(script: &[(f64, bool)]) -> Vec<f32> {
        script
            .iter()
            .flat_map(|&(s, speech)| {
                std::iter::repeat_n(
                    if speech { 0.9 } else { 0.05 },
                    (s * FRAMES_PER_S).round() as usize,
                )
            })
            .collect()
    }

    fn run(p: &[f32]) -> Vec<SpeechWindow> {
        let mut seg = Segmenter::new(VadParams::default());
        let mut out = Vec::new();
        for &x in p {
            seg.push(x, &mut out);
        }
        seg.finish(p.len() as u64 * FRAME as u64, &mut out);
        out
    }

    fn secs(w: &SpeechWindow) -> (f64, f64) {
        (w.start as f64 / 16_000.0, w.end as f64 / 16_000.0)
    }

    fn assert_well_formed(windows: &[SpeechWindow], total: u64) {
        let max = 30 * SAMPLE_RATE as u64;
        let mut prev = 0;
        for w in windows {
            assert!(w.start >= prev, "{windows:?} overlap");
            assert!(w.end > w.start, "{windows:?} has an empty window");
            assert!(w.end - w.start <= max, "{windows:?} has a window over 30 s");
            assert!(w.end <= total);
            assert!(!w.regions.is_empty(), "{w:?} holds no speech");
            let mut at = w.start;
            for r in &w.regions {
                assert!(r.start >= at && r.end > r.start && r.end <= w.end, "{w:?}");
                at = r.end;
            }
            prev = w.end;
        }
    }

    #[test]
    fn silence_gives_no_window() {
        assert!(run(&probs(&[(60.0, false)])).is_empty());
    }

    #[test]
    fn a_click_shorter_than_min_speech_is_dropped() {
        assert!(run(&probs(&[(2.0, false), (0.1, true), (2.0, false)])).is_empty());
    }

    #[test]
    fn one_utterance_is_one_padded_window() {
        let p = probs(&[(2.0, false), (3.0, true), (2.0, false)]);
        let w = run(&p);
        assert_eq!(w.len(), 1);
        let (s, e) = secs(&w[0]);
        assert!((s - 1.6).abs() < 0.05, "{s}");
        assert!((e - 5.4).abs() < 0.05, "{e}");
    }

    #[test]
    fn close_utterances_merge_up_to_thirty_seconds() {
        let mut script = vec![(1.0, false)];
        for _ in 0..8 {
            script.push((6.0, true));
            script.push((1.0, false));
        }
        let p = probs(&script);
        let w = run(&p);
        assert_well_formed(&w, p.len() as u64 * FRAME as u64);
        // 8 x 7 s of speech and pauses: four per window at most (4 x 7 = 28 s).
        assert!(w.len() >= 2 && w.len() <= 3, "{w:?}");
        assert!(w.iter().all(|w| w.len() > 20 * SAMPLE_RATE), "{w:?}");
    }

    #[test]
    fn a_window_lists_the_speech_regions_it_merged() {
        let p = probs(&[
            (1.0, false),
            (3.0, true),
            (1.0, false),
            (2.0, true),
            (1.0, false),
        ]);
        let w = run(&p);
        assert_well_formed(&w, p.len() as u64 * FRAME as u64);
        assert_eq!(w.len(), 1, "{w:?}");
        let regions: Vec<(f64, f64)> = w[0]
            .regions
            .iter()
            .map(|r| (r.start as f64 / 16_000.0, r.end as f64 / 16_000.0))
            .collect();
        assert_eq!(regions.len(), 2, "{regions:?}");
        // Speech from 1 to 4 s and from 5 to 7 s (to the frame, and the end of a region is
        // where the pause that closed it began).
        assert!((regions[0].0 - 1.0).abs() < 0.05 && (regions[0].1 - 4.0).abs() < 0.05);
        assert!((regions[1].0 - 5.0).abs() < 0.05 && (regions[1].1 - 7.0).abs() < 0.05);
    }

    #[test]
    fn a_long_pause_separates_windows() {
        let p = probs(&[
            (1.0, false),
            (3.0, true),
            (5.0, false),
            (3.0, true),
            (1.0, false),
        ]);
        let w = run(&p);
        assert_eq!(w.len(), 2, "{w:?}");
    }

    #[test]
    fn brief_dips_do_not_end_speech() {
        // 200 ms at 0.4 (between the thresholds) and 250 ms below: shorter than min silence.
        let mut p = probs(&[(1.0, false), (2.0, true)]);
        p.extend(std::iter::repeat_n(0.4, 6));
        p.extend(std::iter::repeat_n(0.05, 8));
        p.extend(probs(&[(2.0, true), (1.0, false)]));
        assert_eq!(run(&p).len(), 1);
    }

    #[test]
    fn endless_speech_is_cut_at_the_quietest_frame() {
        let mut p = probs(&[(0.5, false), (70.0, true)]);
        // A slightly quieter frame at 25 s.
        p[(25.0 * FRAMES_PER_S) as usize] = 0.6;
        let w = run(&p);
        assert_well_formed(&w, p.len() as u64 * FRAME as u64);
        assert_eq!(w.len(), 3, "{w:?}");
        let (_, first_end) = secs(&w[0]);
        assert!((first_end - 25.0).abs() < 0.05, "{first_end}");
        // Cut windows are contiguous: no audio is lost between them.
        assert_eq!(w[0].end, w[1].start);
        assert_eq!(w[1].end, w[2].start);
    }

    #[test]
    fn speech_at_the_end_of_the_stream_is_kept() {
        let p = probs(&[(1.0, false), (2.0, true)]);
        let w = run(&p);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].end, p.len() as u64 * FRAME as u64);
    }

    #[test]
    fn windows_never_need_audio_before_earliest_needed() {
        let mut script = vec![(0.7, false)];
        for i in 0..30 {
            script.push((1.0 + (i % 7) as f64 * 1.3, true));
            script.push((0.3 + (i % 5) as f64 * 0.9, false));
        }
        let p = probs(&script);
        let mut seg = Segmenter::new(VadParams::default());
        let mut out = Vec::new();
        let mut floor = 0;
        for &x in &p {
            let before = out.len();
            seg.push(x, &mut out);
            for w in &out[before..] {
                assert!(w.start >= floor, "window {w:?} starts before {floor}");
            }
            floor = seg.earliest_needed();
        }
        seg.finish(p.len() as u64 * FRAME as u64, &mut out);
        assert_well_formed(&out, p.len() as u64 * FRAME as u64);
    }
}
