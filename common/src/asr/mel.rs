//! Whisper's log-mel front end, the encoder's input.
//!
//! One 30 s window (480 000 samples at 16 kHz) becomes `[n_mels, 3000]` values:
//! reflect-padded STFT (400-point periodic Hann, hop 160), power spectrum, Slaney mel filters,
//! `log10` clamped at 1e-10, floored at the window's maximum minus 8, then `(x + 4) / 4`.
//! This is the recipe in `infra/local/models/README.md`; the spectrum and filter sums are
//! computed in f64 (cheap at this size) so the result does not depend on summation order.
//!
//! A window shorter than 30 s is padded as [`Padding`] says. openai-whisper and faster-whisper
//! pad the *features* with zeros after the audio ends (a value of 0 after the normalisation,
//! louder than silence), and Whisper's no-speech probability and its end-of-text decisions are
//! calibrated on that; padding the *audio* with silence (the floor, about -0.65) is what the
//! README's recipe and `mel.onnx` do. Measured on the same window (`compare_decoders.py`): the
//! no-speech probability of a 25.8 s interview window is 0.158 with feature padding, as in
//! CTranslate2, and 0.004 with audio padding.

use std::fmt;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::error::AsrError;

pub const SAMPLE_RATE: usize = 16_000;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Samples in one Whisper window (30 s).
pub const WINDOW_SAMPLES: usize = 30 * SAMPLE_RATE;
/// Mel frames in one Whisper window.
pub const N_FRAMES: usize = WINDOW_SAMPLES / HOP;

const N_BINS: usize = N_FFT / 2 + 1;
const PAD: usize = N_FFT / 2;

/// One triangular filter: its weights over the FFT bins `first..first + weights.len()`.
struct Filter {
    first: usize,
    weights: Vec<f64>,
}

impl Filter {
    /// The filter's energy in a power spectrum.
    fn energy(&self, power: &[f64]) -> f64 {
        self.weights
            .iter()
            .zip(&power[self.first..])
            .map(|(w, p)| w * p)
            .sum()
    }
}

/// How a window shorter than 30 s is filled up to 3000 frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// Frames after the audio are 0 after normalisation (openai-whisper, faster-whisper).
    #[default]
    Features,
    /// The audio is padded with silence before the spectrum is taken.
    Audio,
}

/// Computes log-mel spectrograms; owns its FFT plan and scratch buffers, so reuse one.
pub struct LogMel {
    n_mels: usize,
    padding: Padding,
    filters: Vec<Filter>,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
    padded: Vec<f64>,
    frame: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    log_mel: Vec<f64>,
}

impl fmt::Debug for LogMel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogMel")
            .field("n_mels", &self.n_mels)
            .field("padding", &self.padding)
            .finish_non_exhaustive()
    }
}

impl LogMel {
    /// A front end with `n_mels` filters (80 for most Whisper models, 128 for large-v3).
    pub fn new(n_mels: usize) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos())
            .collect();
        Self {
            n_mels,
            padding: Padding::default(),
            filters: slaney_filters(n_mels),
            window,
            fft,
            padded: vec![0.0; WINDOW_SAMPLES + 2 * PAD],
            frame: vec![0.0; N_FFT],
            spectrum,
            scratch,
            log_mel: vec![0.0; n_mels * N_FRAMES],
        }
    }

    /// The same front end with another [`Padding`].
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The encoder input for `samples` (16 kHz mono, at most 30 s): `n_mels * 3000` values,
    /// row-major `[n_mels, 3000]`.
    pub fn compute(&mut self, samples: &[f32]) -> Result<Vec<f32>, AsrError> {
        let mut out = vec![0.0; self.n_mels * N_FRAMES];
        self.compute_into(samples, &mut out)?;
        Ok(out)
    }

    /// Like [`LogMel::compute`], into a caller-owned buffer of `n_mels * 3000` values.
    pub fn compute_into(&mut self, samples: &[f32], out: &mut [f32]) -> Result<(), AsrError> {
        if samples.len() > WINDOW_SAMPLES {
            return Err(AsrError::WindowTooLong {
                samples: samples.len(),
                max: WINDOW_SAMPLES,
            });
        }
        assert_eq!(
            out.len(),
            self.n_mels * N_FRAMES,
            "mel output buffer has the wrong size"
        );
        self.fill_padded(samples);
        // With feature padding only the frames holding audio are computed; the rest are 0.
        let frames = match self.padding {
            Padding::Audio => N_FRAMES,
            Padding::Features => samples.len().div_ceil(HOP).min(N_FRAMES),
        };

        let mut max = f64::NEG_INFINITY;
        let mut power = [0.0f64; N_BINS];
        for f in 0..frames {
            let start = f * HOP;
            for ((dst, &x), &w) in self
                .frame
                .iter_mut()
                .zip(&self.padded[start..start + N_FFT])
                .zip(&self.window)
            {
                *dst = x * w;
            }
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("FFT buffers are sized by the plan");
            for (p, c) in power.iter_mut().zip(&self.spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            for (m, filter) in self.filters.iter().enumerate() {
                let l = filter.energy(&power).max(1e-10).log10();
                max = max.max(l);
                self.log_mel[m * N_FRAMES + f] = l;
            }
        }
        let floor = max - 8.0;
        for (m, row) in out.chunks_exact_mut(N_FRAMES).enumerate() {
            let logs = &self.log_mel[m * N_FRAMES..m * N_FRAMES + frames];
            for (o, &l) in row.iter_mut().zip(logs) {
                *o = ((l.max(floor) + 4.0) / 4.0) as f32;
            }
            row[frames..].fill(0.0);
        }
        Ok(())
    }

    /// Zero-pads the window to 30 s, then reflect-pads `N_FFT / 2` on both sides (numpy's
    /// `mode="reflect"`: the edge sample is not repeated).
    fn fill_padded(&mut self, samples: &[f32]) {
        let n = WINDOW_SAMPLES;
        let body = &mut self.padded[PAD..PAD + n];
        for (dst, &x) in body.iter_mut().zip(samples) {
            *dst = f64::from(x);
        }
        body[samples.len()..].fill(0.0);
        for j in 1..=PAD {
            self.padded[PAD - j] = self.padded[PAD + j];
            self.padded[PAD + n - 1 + j] = self.padded[PAD + n - 1 - j];
        }
    }
}

/// Mel power frames as librosa's `feature.melspectrogram(sr=16000, n_fft=400, hop_length=160,
/// n_mels)` computes them (centred frames with reflect padding, periodic Hann, power 2, Slaney
/// filters; no log): the speaker encoder's input. Owns its FFT plan; reuse one.
pub struct MelPower {
    filters: Vec<Filter>,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
    frame: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl fmt::Debug for MelPower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MelPower")
            .field("n_mels", &self.filters.len())
            .finish_non_exhaustive()
    }
}

impl MelPower {
    pub fn new(n_mels: usize) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        Self {
            filters: slaney_filters(n_mels),
            window: (0..N_FFT)
                .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos())
                .collect(),
            frame: vec![0.0; N_FFT],
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
        }
    }

    /// `1 + samples.len() / 160` frames of `n_mels` values each, frame-major. Audio shorter
    /// than one FFT window gives no frames.
    pub fn compute(&mut self, samples: &[f32]) -> Vec<f32> {
        if samples.len() <= PAD {
            return Vec::new();
        }
        let n = samples.len();
        // Reflect padding (the edge sample not repeated), as numpy's mode="reflect".
        let at = |i: isize| -> f64 {
            let j = if i < 0 {
                -i
            } else if i as usize >= n {
                2 * (n as isize - 1) - i
            } else {
                i
            };
            f64::from(samples[j as usize])
        };
        let frames = 1 + n / HOP;
        let mut out = Vec::with_capacity(frames * self.filters.len());
        let mut power = [0.0f64; N_BINS];
        for f in 0..frames {
            let start = (f * HOP) as isize - PAD as isize;
            for (k, (dst, &w)) in self.frame.iter_mut().zip(&self.window).enumerate() {
                *dst = at(start + k as isize) * w;
            }
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("FFT buffers are sized by the plan");
            for (p, c) in power.iter_mut().zip(&self.spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            out.extend(self.filters.iter().map(|f| f.energy(&power) as f32));
        }
        out
    }
}

fn hz_to_mel(f: f64) -> f64 {
    if f < 1000.0 {
        f / (200.0 / 3.0)
    } else {
        15.0 + (f / 1000.0).ln() / (6.4f64.ln() / 27.0)
    }
}

fn mel_to_hz(m: f64) -> f64 {
    if m < 15.0 {
        (200.0 / 3.0) * m
    } else {
        1000.0 * ((6.4f64.ln() / 27.0) * (m - 15.0)).exp()
    }
}

/// librosa's `filters.mel(sr=16000, n_fft=400, n_mels)`: Slaney mel scale and area
/// normalisation, as Whisper was trained with.
fn slaney_filters(n_mels: usize) -> Vec<Filter> {
    let nyquist = SAMPLE_RATE as f64 / 2.0;
    let top = hz_to_mel(nyquist);
    let pts: Vec<f64> = (0..n_mels + 2)
        .map(|j| mel_to_hz(j as f64 * top / (n_mels + 1) as f64))
        .collect();
    (0..n_mels)
        .map(|m| {
            let norm = 2.0 / (pts[m + 2] - pts[m]);
            let weights: Vec<f64> = (0..N_BINS)
                .map(|k| {
                    let freq = k as f64 * nyquist / (N_BINS - 1) as f64;
                    let lower = (freq - pts[m]) / (pts[m + 1] - pts[m]);
                    let upper = (pts[m + 2] - freq) / (pts[m + 2] - pts[m + 1]);
                    lower.min(upper).max(0.0) * norm
                })
                .collect();
            let first = weights.iter().position(|&w| w > 0.0).unwrap_or(0);
            let last = weights
                .iter()
                .rposition(|&w| w > 0.0)
                .map_or(first, |l| l + 1);
            Filter {
                first,
                weights: weights[first..last.max(first)].to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_padding_fills_the_frames_after_the_audio_with_zeros() {
        let mut mel = LogMel::new(80);
        let out = mel.compute(&[0.0; 16_000]).unwrap();
        for row in out.chunks_exact(N_FRAMES) {
            // One second is 100 frames of the floor, then 0 (what faster-whisper feeds).
            assert!(row[..100].iter().all(|&v| (v + 1.5).abs() < 1e-6));
            assert!(row[100..].iter().all(|&v| v == 0.0));
        }
        let full = mel.compute(&vec![0.0; WINDOW_SAMPLES]).unwrap();
        assert!(full.iter().all(|&v| (v + 1.5).abs() < 1e-6));
    }

    #[test]
    fn every_filter_covers_some_bins_and_has_slaney_area() {
        for n_mels in [80, 128] {
            let filters = slaney_filters(n_mels);
            assert_eq!(filters.len(), n_mels);
            for f in &filters {
                assert!(!f.weights.is_empty());
                assert!(f.first + f.weights.len() <= N_BINS);
            }
        }
    }

    #[test]
    fn silence_gives_the_floor_everywhere() {
        let mut mel = LogMel::new(80).with_padding(Padding::Audio);
        let out = mel.compute(&[0.0; 16_000]).unwrap();
        // log10(1e-10) = -10, so (-10 + 4) / 4 = -1.5 everywhere.
        assert!(out.iter().all(|&v| (v + 1.5).abs() < 1e-6));
    }

    #[test]
    fn a_tone_peaks_in_the_filter_holding_its_frequency() {
        let tone: Vec<f32> = (0..SAMPLE_RATE)
            .map(|i| {
                (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / SAMPLE_RATE as f32).sin() * 0.5
            })
            .collect();
        let mut mel = LogMel::new(80).with_padding(Padding::Audio);
        let out = mel.compute(&tone).unwrap();
        let frame = 50;
        let column: Vec<f32> = (0..80).map(|m| out[m * N_FRAMES + frame]).collect();
        let peak = column
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(m, _)| m)
            .unwrap();
        let bin_of_1khz = 1000 / (SAMPLE_RATE / N_FFT);
        let filter = &slaney_filters(80)[peak];
        assert!((filter.first..filter.first + filter.weights.len()).contains(&bin_of_1khz));
        // The frame after the end of the tone is at the floor (max - 8).
        let max = out.iter().copied().fold(f32::MIN, f32::max);
        assert!((out[2 * N_FRAMES - 1] - (max - 2.0)).abs() < 1e-5);
    }

    #[test]
    fn more_than_thirty_seconds_is_refused() {
        let mut mel = LogMel::new(80);
        let err = mel.compute(&vec![0.0; WINDOW_SAMPLES + 1]).unwrap_err();
        assert!(matches!(err, AsrError::WindowTooLong { .. }));
    }

    #[test]
    fn mel_power_has_centred_frames_and_a_tone_in_its_filter() {
        let mut mel = MelPower::new(40);
        assert!(mel.compute(&[0.1; 150]).is_empty());
        let tone: Vec<f32> = (0..16_000)
            .map(|n| (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let out = mel.compute(&tone);
        assert_eq!(out.len(), (1 + 16_000 / HOP) * 40);
        let filters = slaney_filters(40);
        let bin = 1000 * N_FFT / SAMPLE_RATE; // 25
        let mid = &out[50 * 40..51 * 40];
        let peak = (0..40).max_by(|&a, &b| mid[a].total_cmp(&mid[b])).unwrap();
        let f = &filters[peak];
        assert!(
            f.first <= bin && bin < f.first + f.weights.len(),
            "peak in filter {peak}"
        );
        // Power, not log: twice the amplitude is four times the energy.
        let loud: Vec<f32> = tone.iter().map(|x| x * 2.0).collect();
        let louder = mel.compute(&loud);
        let ratio = louder[50 * 40 + peak] / mid[peak];
        assert!((ratio - 4.0).abs() < 1e-3, "{ratio}");
    }
}
