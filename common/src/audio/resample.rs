//! Streaming mono resampling to 16 kHz.
//!
//! rubato's synchronous FFT resampler: the ratio is fixed, it is the fastest of rubato's
//! high-quality resamplers (a BlackmanHarris-windowed low-pass well below the new Nyquist
//! frequency), and its delay is known, so the output is trimmed to line up sample for sample
//! with the input and flushed to exactly `round(input * 16000 / rate)` samples at the end.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler as _};

use super::SAMPLE_RATE;

/// Input frames per FFT call (rounded by rubato to fit the ratio): about 85 ms at 48 kHz,
/// small enough to keep memory flat, large enough to amortise the FFTs.
const CHUNK: usize = 4096;

pub(crate) struct Resampler {
    fft: Option<Fft<f32>>,
    rate: u32,
    /// Input waiting for a full chunk.
    pending: Vec<f32>,
    /// Scratch output for one call.
    scratch: Vec<f32>,
    /// Output frames still to drop for the resampler's delay.
    to_trim: usize,
    consumed: u64,
    produced: u64,
}

impl Resampler {
    pub fn new(rate: u32) -> Result<Self, rubato::ResamplerConstructionError> {
        let fft = if rate == SAMPLE_RATE {
            None
        } else {
            Some(Fft::<f32>::new(
                rate as usize,
                SAMPLE_RATE as usize,
                CHUNK,
                1,
                FixedSync::Both,
            )?)
        };
        let (to_trim, scratch) = match &fft {
            Some(fft) => (fft.output_delay(), vec![0.0; fft.output_frames_max()]),
            None => (0, Vec::new()),
        };
        Ok(Self {
            fft,
            rate,
            pending: Vec::new(),
            scratch,
            to_trim,
            consumed: 0,
            produced: 0,
        })
    }

    pub fn input_rate(&self) -> u32 {
        self.rate
    }

    /// Feeds mono input at the source rate; appends whatever 16 kHz output is ready to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.consumed += input.len() as u64;
        let Some(fft) = &mut self.fft else {
            out.extend_from_slice(input);
            self.produced += input.len() as u64;
            return;
        };
        self.pending.extend_from_slice(input);
        let need = fft.input_frames_next();
        let mut offset = 0;
        while self.pending.len() - offset >= need {
            let indexing = Indexing::new().input_offset(offset);
            let written = run(fft, &self.pending, &mut self.scratch, &indexing);
            offset += need;
            emit(
                &self.scratch[..written],
                &mut self.to_trim,
                &mut self.produced,
                u64::MAX,
                out,
            );
        }
        self.pending.drain(..offset);
    }

    /// Flushes the tail: pads with silence until the output has caught up with the input.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        let Some(fft) = &mut self.fft else { return };
        let expected = (self.consumed as u128 * u128::from(SAMPLE_RATE)
            + u128::from(self.rate) / 2)
            / u128::from(self.rate);
        let expected = expected as u64;
        let mut partial = std::mem::take(&mut self.pending);
        while self.produced < expected {
            let indexing = Indexing::new().partial_len(partial.len());
            partial.resize(fft.input_frames_next(), 0.0);
            let written = run(fft, &partial, &mut self.scratch, &indexing);
            partial.clear();
            emit(
                &self.scratch[..written],
                &mut self.to_trim,
                &mut self.produced,
                expected,
                out,
            );
        }
        fft.reset();
        self.to_trim = fft.output_delay();
        self.consumed = 0;
        self.produced = 0;
    }
}

fn run(fft: &mut Fft<f32>, input: &[f32], scratch: &mut [f32], indexing: &Indexing) -> usize {
    let frames = input.len();
    let capacity = scratch.len();
    // The adapters only fail on a channel or size mismatch, which the sizes above rule out.
    let (Ok(input), Ok(mut output)) = (
        InterleavedSlice::new(input, 1, frames),
        InterleavedSlice::new_mut(scratch, 1, capacity),
    ) else {
        unreachable!("mono buffers sized from the resampler's own limits");
    };
    match fft.process_into_buffer(&input, &mut output, Some(indexing)) {
        Ok((_, written)) => written,
        Err(e) => unreachable!("resampler rejected buffers sized from its own limits: {e}"),
    }
}

/// Drops what is left of the resampler's delay, then appends at most `limit - produced`.
fn emit(chunk: &[f32], to_trim: &mut usize, produced: &mut u64, limit: u64, out: &mut Vec<f32>) {
    let skip = (*to_trim).min(chunk.len());
    *to_trim -= skip;
    let rest = &chunk[skip..];
    let take = rest
        .len()
        .min(usize::try_from(limit - *produced).unwrap_or(usize::MAX));
    out.extend_from_slice(&rest[..take]);
    *produced += take as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    fn resample_in_pieces(rate: u32, input: &[f32], piece: usize) -> Vec<f32> {
        let mut resampler = Resampler::new(rate).expect("resampler");
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            resampler.push(chunk, &mut out);
        }
        resampler.finish(&mut out);
        out
    }

    #[test]
    fn output_length_matches_the_ratio_exactly() {
        for (rate, len) in [
            (44_100, 44_100 * 3 + 17),
            (48_000, 1000),
            (22_050, 5),
            (8_000, 8_001),
            (16_000, 777),
        ] {
            let input = vec![0.1; len];
            let out = resample_in_pieces(rate, &input, 1234);
            let expected = ((len as u64 * 16_000 + u64::from(rate) / 2) / u64::from(rate)) as usize;
            assert_eq!(out.len(), expected, "rate {rate}, input {len}");
        }
    }

    #[test]
    fn a_1khz_tone_keeps_its_phase_and_level() {
        for rate in [44_100, 48_000, 22_050, 8_000] {
            let input = sine(rate, 1000.0, 2.0);
            let out = resample_in_pieces(rate, &input, 999);
            let reference = sine(16_000, 1000.0, 2.0);
            // Skip the edges, where the filter sees the silence around the clip.
            let err = out[800..31_000]
                .iter()
                .zip(&reference[800..31_000])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 0.01, "rate {rate}: max error {err}");
        }
    }

    #[test]
    fn content_above_8khz_is_removed() {
        let input = sine(48_000, 12_000.0, 1.0);
        let out = resample_in_pieces(48_000, &input, 4800);
        let rms = (out[1000..15_000].iter().map(|s| s * s).sum::<f32>() / 14_000.0).sqrt();
        assert!(rms < 0.001, "aliased energy {rms}");
    }
}
