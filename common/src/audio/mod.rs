//! Audio files to 16 kHz mono f32 PCM, streaming.
//!
//! A recording (1-3 hours, up to 2 GB) is decoded packet by packet, mixed down to mono and
//! resampled to 16 kHz in chunks, so memory stays flat whatever its length.
//!
//! - **Format by content**: [`sniff`] reads magic bytes; the file name is ignored (a `.wav`
//!   that holds MP3 decodes as MP3 and [`AudioInfo::container`] says so).
//! - **Decoding**: Symphonia for the containers and for MP3, AAC-LC, FLAC, Vorbis, ALAC,
//!   PCM and ADPCM; `opus-pure` (pure Rust) for Opus, decoded natively at 16 kHz.
//! - **Resampling**: rubato's FFT resampler, delay-compensated, so sample `n` of the output
//!   is at `start_seconds + n / 16000` in the recording.
//! - **Resuming**: [`DecodeOptions::start_seconds`] seeks where the container allows it
//!   (with half a second of pre-roll for the decoder), else decodes and discards; the first
//!   delivered sample is at the requested position either way.
//!
//! # Damaged input
//!
//! A packet that fails to decode is replaced by silence of the same duration, and a hole in
//! the timestamps (a damaged Ogg page, a FLAC frame the demuxer skipped) of up to 30 s is
//! filled with silence, so later audio keeps its true position; both are counted in
//! [`AudioInfo::bad_packets`] and [`AudioInfo::concealed_seconds`]. The file is
//! [`AudioError::Corrupt`] when more than 20 packets in a row fail, when more than 20 and
//! more than 1 % of all packets fail, when the inserted silence exceeds 2 s and 1 % of the
//! audio, or when no packet decodes at all.
//!
//! A file that ends more than 0.5 s and 2 % before what its header announces is
//! [`AudioError::Truncated`]: checked before decoding from the byte length a WAV (RIFF
//! size), MP3 (Xing/Info), MP4 (top-level boxes) or WebM/Matroska (segment size) header
//! declares, and after decoding against the duration any container declares. Ogg and
//! live-recorded WebM declare neither, so a cut one delivers the audio it holds, with
//! [`AudioInfo::ended_abruptly`] set. [`DecodeOptions::accept_truncated`] turns the error
//! off for callers that want whatever is there.
//!
//! A header is believed only within what a recording can have: a sample rate of 1-384 kHz,
//! 1-32 channels, 1-64 bits per sample, and (unless truncation is accepted) at least 8 bytes
//! of file per declared second. Anything else is [`AudioError::ImplausibleHeader`], before a
//! decoder, resampler or buffer is sized by it (a WAV declaring 2^31-1 Hz once made the
//! resampler allocate 8.6 GB; one declaring 0 Hz decoded to nothing without an error).
//!
//! Symphonia and `opus-pure` are safe Rust but may panic on hostile input: a decoder panic
//! is caught and counted as a bad packet (the decoder is reset), a demuxer panic ends
//! decoding with [`AudioError::Corrupt`].

mod decode;
mod error;
mod opus;
mod resample;
mod sniff;

#[cfg(test)]
mod tests;

pub use decode::{
    AudioInfo, AudioStream, DecodeOptions, StartMethod, decode_file, decode_file_with, probe_file,
};
pub use error::{AudioError, HeaderField};
pub use sniff::{Codec, Container, Content, Format, SNIFF_LEN, sniff};

/// The sample rate of everything this module delivers.
pub const SAMPLE_RATE: u32 = 16_000;
