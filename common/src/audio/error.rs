use std::path::PathBuf;

use super::sniff::{Codec, Container, Content};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a file could not be turned into 16 kHz PCM.
///
/// Every variant but [`AudioError::Io`] is a property of the file itself: retrying will not
/// help, and the message is written for the person who uploaded it. Callers classify with
/// [`AudioError::is_bad_input`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// The file could not be opened or read (a local I/O problem, not a property of the
    /// audio).
    #[error("cannot read the audio file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the file is empty (0 bytes)")]
    Empty,

    #[error("the file is not audio: it looks like {looks_like}")]
    NotAudio { looks_like: Content },

    #[error(
        "{container} files are not supported (supported: Ogg, WebM, Matroska, MP3, M4A/MP4, AAC, WAV, FLAC)"
    )]
    UnsupportedFormat { container: Container },

    #[error("{codec} audio in {container} is not supported")]
    UnsupportedCodec {
        container: Container,
        /// Our name for the codec, or [`Codec::Other`] with the container's own identifier in
        /// `detail`.
        codec: Codec,
        detail: Option<String>,
    },

    /// No audio track, or a track without a single sample.
    #[error("the {container} file contains no audio")]
    NoAudio { container: Container },

    /// The file ends before the audio its header announces.
    #[error("the {container} file is truncated: {}", truncated_detail(*.present_seconds, *.expected_seconds, *.bytes))]
    Truncated {
        container: Container,
        /// Audio the file really holds (decoded, or estimated from its size).
        present_seconds: Option<f64>,
        /// Audio the header announces.
        expected_seconds: Option<f64>,
        /// (bytes in the file, bytes its header announces), when the header says.
        bytes: Option<(u64, u64)>,
    },

    /// The header declares what no recording has (a sample rate of 2^31-1 Hz, no channels):
    /// refused before a decoder, resampler or buffer is sized by it.
    #[error("the {container} header declares {}", field.describe(*value))]
    ImplausibleHeader {
        container: Container,
        field: HeaderField,
        value: u64,
    },

    /// The audio data is damaged beyond what decoding can skip over (see the module docs for
    /// the rule).
    #[error("the {container} file is corrupt{}: {detail}", at_detail(*.at_seconds))]
    Corrupt {
        container: Container,
        /// Position of the damage in the recording, when known.
        at_seconds: Option<f64>,
        /// Packets that failed to decode so far.
        bad_packets: u64,
        detail: String,
        #[source]
        source: Option<BoxError>,
    },
}

/// A header value checked against what a real recording can have, before anything is sized
/// by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderField {
    SampleRate,
    Channels,
    BitsPerSample,
    /// Seconds of audio, for a file of `bytes`.
    Duration {
        bytes: u64,
    },
}

impl HeaderField {
    fn describe(self, value: u64) -> String {
        use super::decode::{BITS_PER_SAMPLE, CHANNELS, MIN_BYTES_PER_SECOND, SAMPLE_RATES};
        match self {
            Self::SampleRate => format!(
                "a sample rate of {value} Hz; expected {}-{} Hz",
                SAMPLE_RATES.start(),
                SAMPLE_RATES.end()
            ),
            Self::Channels => format!(
                "{value} channels; expected {}-{}",
                CHANNELS.start(),
                CHANNELS.end()
            ),
            Self::BitsPerSample => format!(
                "{value} bits per sample; expected {}-{}",
                BITS_PER_SAMPLE.start(),
                BITS_PER_SAMPLE.end()
            ),
            Self::Duration { bytes } => format!(
                "{value} s of audio in {bytes} bytes; expected at most {} s",
                bytes / MIN_BYTES_PER_SECOND
            ),
        }
    }
}

impl AudioError {
    /// True when the file itself is the problem (empty, not audio, unsupported, truncated,
    /// corrupt): mark the recording failed instead of retrying.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

fn truncated_detail(
    present: Option<f64>,
    expected: Option<f64>,
    bytes: Option<(u64, u64)>,
) -> String {
    match (present, expected, bytes) {
        (Some(p), Some(e), _) => {
            format!("it holds about {p:.1} s of the {e:.1} s its header announces")
        }
        (_, _, Some((have, want))) => {
            format!("it has {have} of the {want} bytes its header announces")
        }
        (None, Some(e), None) => format!("its header announces {e:.1} s that are not all there"),
        (Some(p), None, None) => format!("it stops abruptly after {p:.1} s"),
        (None, None, None) => "it stops in the middle of the audio data".to_owned(),
    }
}

fn at_detail(at: Option<f64>) -> String {
    at.map(|s| format!(" at {s:.1} s")).unwrap_or_default()
}
