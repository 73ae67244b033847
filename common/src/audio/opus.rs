//! Opus packets (from Ogg, WebM/Matroska or MP4) decoded straight to 16 kHz mono.
//!
//! Symphonia demuxes Opus but has no decoder for it; `opus-pure` is a pure-Rust Opus codec
//! checked against libopus (its float output matches the reference decoder's). Opus decodes
//! natively at 16 kHz (the codec carries no content above 8 kHz at that rate), and a mono
//! decoder downmixes a stereo stream itself, so Opus input needs neither a resampler nor a
//! mixdown.
//!
//! `opus-decoder` 0.1 was used before: its CELT path runs a naive DFT with a sine and cosine
//! per term, so music-mode and high-bitrate Opus (what most recorders write) decoded at about
//! 0.13 s per second of audio, more than Whisper itself; SILK-only streams were fast.

use opus_pure::{OpusDecoder, OpusMSDecoder};

/// Output rate: Opus decodes natively at 16 kHz.
pub(crate) const OPUS_RATE: u32 = 16_000;
/// Opus timestamps (granule positions, pre-skip) always count 48 kHz samples.
const TICKS_PER_SAMPLE: u64 = 48_000 / OPUS_RATE as u64;
/// 120 ms, the longest Opus packet, at 16 kHz.
const MAX_FRAMES: usize = 1920;

/// The identification header ("OpusHead" in Ogg and Matroska, `dOps` in MP4).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpusHead {
    pub channels: u8,
    /// 48 kHz samples to drop at the start of the stream.
    pub pre_skip: u16,
    pub input_rate: u32,
    /// Q7.8 dB, to be applied to the output.
    pub output_gain: i16,
    pub mapping_family: u8,
    /// (streams, coupled streams, channel mapping) for mapping families other than 0.
    pub mapping: Option<(u8, u8, Vec<u8>)>,
}

impl OpusHead {
    /// Parses an OpusHead. Ogg and Matroska store it little-endian with version 1; MP4's
    /// `dOps` (which Symphonia hands over with the magic prepended) is big-endian, version 0.
    pub fn parse(data: &[u8]) -> Option<Self> {
        let body = data.strip_prefix(b"OpusHead")?;
        let &[version, channels, ..] = body else {
            return None;
        };
        let big_endian = version == 0;
        if !big_endian && version >> 4 != 0 {
            return None;
        }
        let u16_at = |i: usize| -> Option<u16> {
            let b: [u8; 2] = body.get(i..i + 2)?.try_into().ok()?;
            Some(if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            })
        };
        let pre_skip = u16_at(2)?;
        let rate: [u8; 4] = body.get(4..8)?.try_into().ok()?;
        let input_rate = if big_endian {
            u32::from_be_bytes(rate)
        } else {
            u32::from_le_bytes(rate)
        };
        let output_gain = u16_at(8)? as i16;
        let mapping_family = *body.get(10)?;
        let mapping = if mapping_family == 0 {
            None
        } else {
            let streams = *body.get(11)?;
            let coupled = *body.get(12)?;
            let table = body.get(13..13 + usize::from(channels))?.to_vec();
            Some((streams, coupled, table))
        };
        if channels == 0 || (mapping_family == 0 && channels > 2) {
            return None;
        }
        Some(Self {
            channels,
            pre_skip,
            input_rate,
            output_gain,
            mapping_family,
            mapping,
        })
    }
}

enum Inner {
    /// Mono and stereo streams, downmixed by the decoder.
    Single(Box<OpusDecoder>),
    /// Surround (mapping family 1, Vorbis channel order), downmixed here.
    Multi {
        decoder: OpusMSDecoder,
        channels: usize,
        interleaved: Vec<f32>,
    },
}

pub(crate) struct OpusStream {
    inner: Inner,
    gain: f32,
    pub head: OpusHead,
}

impl OpusStream {
    pub fn new(head: OpusHead) -> Result<Self, String> {
        let inner = match &head.mapping {
            None => Inner::Single(Box::new(
                OpusDecoder::new(OPUS_RATE as i32, 1)
                    .map_err(|e| format!("cannot set up the Opus decoder: {e}"))?,
            )),
            Some((streams, coupled, table)) => {
                let channels = usize::from(head.channels);
                let decoder = OpusMSDecoder::new(OPUS_RATE as i32, channels, head.mapping_family)
                    .map_err(|e| {
                    format!(
                        "unsupported Opus channel mapping (family {}, {channels} channels): {e}",
                        head.mapping_family
                    )
                })?;
                // Only the standard layouts are decoded; a stream that declares another
                // (family 255, or a family-1 table of its own) would be mixed wrongly.
                let layout = decoder.layout();
                if layout.nb_streams != usize::from(*streams)
                    || layout.nb_coupled_streams != usize::from(*coupled)
                    || layout.mapping != *table
                {
                    return Err(format!(
                        "unsupported Opus channel mapping: family {}, {streams} streams, \
                         {coupled} coupled, table {table:?} is not the standard layout of \
                         {channels} channels",
                        head.mapping_family
                    ));
                }
                Inner::Multi {
                    decoder,
                    channels,
                    interleaved: vec![0.0; MAX_FRAMES * channels],
                }
            }
        };
        let gain = 10f32.powf(f32::from(head.output_gain) / (20.0 * 256.0));
        Ok(Self { inner, gain, head })
    }

    /// Decodes one packet, appending mono 16 kHz samples to `out`; returns how many.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<f32>) -> Result<usize, opus_pure::Error> {
        let start = out.len();
        let frames = match &mut self.inner {
            Inner::Single(decoder) => {
                out.resize(start + MAX_FRAMES, 0.0);
                let n = decoder.decode(packet, MAX_FRAMES, &mut out[start..]);
                let n = n.inspect_err(|_| out.truncate(start))?;
                out.truncate(start + n);
                n
            }
            Inner::Multi {
                decoder,
                channels,
                interleaved,
            } => {
                let n = decoder.decode(packet, MAX_FRAMES, interleaved)?;
                let scale = 1.0 / *channels as f32;
                out.extend(
                    interleaved[..n * *channels]
                        .chunks_exact(*channels)
                        .map(|f| f.iter().sum::<f32>() * scale),
                );
                n
            }
        };
        if self.gain != 1.0 {
            out[start..].iter_mut().for_each(|s| *s *= self.gain);
        }
        Ok(frames)
    }

    /// Clears the coding state (after a bad packet). It cannot fail for a decoder that was
    /// built; should it, the next packets decode from the old state, which is logged.
    pub fn reset(&mut self) {
        let result = match &mut self.inner {
            Inner::Single(decoder) => decoder.reset_state(),
            Inner::Multi { decoder, .. } => decoder.reset_state(),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "the Opus decoder could not be reset");
        }
    }

    /// Converts a count of 48 kHz ticks (pre-skip, trims) to output samples.
    pub fn ticks_to_frames(ticks: u64) -> usize {
        (ticks / TICKS_PER_SAMPLE) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ogg_opus_head_is_little_endian() {
        let mut head = b"OpusHead".to_vec();
        head.extend([1, 2, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
        let parsed = OpusHead::parse(&head).expect("valid head");
        assert_eq!(parsed.channels, 2);
        assert_eq!(parsed.pre_skip, 312);
        assert_eq!(parsed.input_rate, 48_000);
        assert_eq!(parsed.mapping, None);
    }

    #[test]
    fn mp4_dops_is_big_endian() {
        let mut head = b"OpusHead".to_vec();
        head.extend([0, 1, 0x01, 0x38, 0, 0, 0xBB, 0x80, 0, 0, 0]);
        let parsed = OpusHead::parse(&head).expect("valid head");
        assert_eq!(parsed.channels, 1);
        assert_eq!(parsed.pre_skip, 312);
        assert_eq!(parsed.input_rate, 48_000);
    }

    #[test]
    fn stereo_stream_decodes_through_a_mono_decoder() {
        // An Opus CELT stereo frame of digital silence: TOC 0xFC (config 31, stereo, 1 frame)
        // followed by the smallest payload; decoding must yield 20 ms at 16 kHz.
        let head = OpusHead {
            channels: 2,
            pre_skip: 312,
            input_rate: 48_000,
            output_gain: 0,
            mapping_family: 0,
            mapping: None,
        };
        let mut stream = OpusStream::new(head).expect("decoder");
        let mut out = Vec::new();
        let n = stream
            .decode(&[0xFC, 0xFF, 0xFE], &mut out)
            .expect("decodes");
        assert_eq!(n, 320);
        assert_eq!(out.len(), 320);
    }
}
