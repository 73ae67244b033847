use std::fs::File;
use std::io::Read;
use std::ops::{ControlFlow, RangeInclusive};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use symphonia::core::codecs::CodecParameters;
use symphonia::core::codecs::audio::well_known as codecs;
use symphonia::core::codecs::audio::{
    AudioCodecId, AudioCodecParameters, AudioDecoder, AudioDecoderOptions,
};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;
use symphonia::core::units::{TimeBase, Timestamp};

use super::SAMPLE_RATE;
use super::error::{AudioError, HeaderField};
use super::opus::{OPUS_RATE, OpusHead, OpusStream};
use super::resample::Resampler;
use super::sniff::{self, Codec, Container, Content, SNIFF_LEN};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A run of this many undecodable packets means the decoder has lost the stream.
const MAX_CONSECUTIVE_BAD: u64 = 20;
/// Beyond [`MAX_CONSECUTIVE_BAD`] bad packets in total, a file may have at most this share of
/// bad packets (per mille) before it counts as corrupt.
const MAX_BAD_PER_MILLE: u64 = 10;
/// Timestamp jumps shorter than this are rounding in the container, not missing audio.
const GAP_TOLERANCE_SECONDS: f64 = 0.05;
/// Longer jumps are taken as a discontinuity in the timestamps rather than lost audio, and
/// are not filled.
const MAX_GAP_SECONDS: f64 = 30.0;
/// Silence inserted for damage may reach this much...
const MAX_CONCEALED_SECONDS: f64 = 2.0;
/// ...or this share of the audio, whichever is more, before the file counts as corrupt.
const MAX_CONCEALED_SHARE: f64 = 0.01;
/// A file is truncated when it ends this much before its header says...
const TRUNCATION_MIN_SECONDS: f64 = 0.5;
/// ...and this share of the announced duration is missing.
const TRUNCATION_MIN_SHARE: f64 = 0.02;
/// Sample rates a recording can have; the resampler's memory grows with the rate.
pub(crate) const SAMPLE_RATES: RangeInclusive<u32> = 1_000..=384_000;
/// Channel counts a recording can have; decoders size their buffers by it.
pub(crate) const CHANNELS: RangeInclusive<u64> = 1..=32;
/// Bits per sample a codec can declare (4-bit ADPCM to 64-bit float).
pub(crate) const BITS_PER_SAMPLE: RangeInclusive<u64> = 1..=64;
/// No supported codec stores a second of audio in fewer bytes (FLAC of digital silence at
/// 8 kHz takes about 24, Opus in DTX a few more): a header declaring more seconds than the
/// file has bytes for lies.
pub(crate) const MIN_BYTES_PER_SECOND: u64 = 8;
/// Decoded from before a resume point so that decoders with memory (MP3's bit reservoir, AAC
/// and Vorbis overlap, Opus' 80 ms convergence) are settled when the wanted audio starts.
const PREROLL_SECONDS: f64 = 0.5;

/// Where to start and when to stop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodeOptions {
    /// Skip this much audio first (resume after a timeout). Seeks when the container allows
    /// it, else decodes and discards.
    pub start_seconds: f64,
    /// Deliver at most this much audio.
    pub max_seconds: Option<f64>,
    /// Deliver what a truncated file holds instead of failing with
    /// [`AudioError::Truncated`].
    pub accept_truncated: bool,
}

/// How the stream reached [`DecodeOptions::start_seconds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMethod {
    /// Decoding started at the beginning of the file (no offset requested).
    Beginning,
    /// The container seeked close to the offset.
    Seek,
    /// The container could not seek: everything before the offset was decoded and dropped.
    DecodeAndSkip,
}

/// What was found in the file and how much of it was delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// The real container, from the bytes (never from the file name).
    pub container: Container,
    pub codec: Codec,
    /// Rate of the encoded audio (Opus always reports 48 kHz).
    pub source_sample_rate: u32,
    pub channels: u16,
    /// Duration the container announces, if it does. Can be wrong for broken files.
    pub header_seconds: Option<f64>,
    /// Position in the recording of the first delivered sample.
    pub start_seconds: f64,
    /// Audio delivered so far, at 16 kHz.
    pub decoded_seconds: f64,
    /// Packets that failed to decode and were replaced by silence.
    pub bad_packets: u64,
    /// Silence inserted for bad packets and for holes in the timestamps.
    pub concealed_seconds: f64,
    pub start_method: StartMethod,
    /// The data stopped in the middle of a packet or page: the file was cut off (a recorder
    /// that crashed, an interrupted copy). Only an error ([`AudioError::Truncated`]) where a
    /// header announces more audio; Ogg and live-recorded WebM announce none.
    pub ended_abruptly: bool,
}

impl AudioInfo {
    /// Position in the recording just after the last delivered sample.
    pub fn end_seconds(&self) -> f64 {
        self.start_seconds + self.decoded_seconds
    }
}

/// Decodes a file to 16 kHz mono f32 from the beginning, handing the samples to `on_samples`
/// in slices of arbitrary length. See [`decode_file_with`].
pub fn decode_file<E, F>(
    path: &Path,
    max_seconds: Option<f64>,
    on_samples: F,
) -> Result<AudioInfo, E>
where
    E: From<AudioError>,
    F: FnMut(&[f32]) -> Result<ControlFlow<()>, E>,
{
    let options = DecodeOptions {
        max_seconds,
        ..DecodeOptions::default()
    };
    decode_file_with(path, &options, on_samples)
}

/// Decodes a file to 16 kHz mono f32, handing the samples to `on_samples` in slices of
/// arbitrary length (typically 20-300 ms). The callback stops decoding early by returning
/// `ControlFlow::Break(())`; its errors pass through unchanged, which is why the error type
/// is the caller's own (anything an [`AudioError`] converts into).
///
/// Memory stays flat whatever the length of the file.
pub fn decode_file_with<E, F>(
    path: &Path,
    options: &DecodeOptions,
    mut on_samples: F,
) -> Result<AudioInfo, E>
where
    E: From<AudioError>,
    F: FnMut(&[f32]) -> Result<ControlFlow<()>, E>,
{
    let mut stream = AudioStream::open(path, options)?;
    while let Some(samples) = stream.next_chunk()? {
        if on_samples(samples)?.is_break() {
            break;
        }
    }
    Ok(stream.info().clone())
}

/// Checks a file without decoding it: empty, not audio, unsupported, or truncated according
/// to its header. Cheap (reads the headers only).
pub fn probe_file(path: &Path) -> Result<AudioInfo, AudioError> {
    AudioStream::open(path, &DecodeOptions::default()).map(|stream| stream.info().clone())
}

enum Backend {
    Symphonia(Box<dyn AudioDecoder>, Vec<f32>),
    Opus(Box<OpusStream>),
}

/// A pull-based decoder: [`AudioStream::next_chunk`] returns the next slice of 16 kHz mono
/// samples. [`decode_file_with`] is the push-based wrapper.
pub struct AudioStream {
    path: PathBuf,
    options: DecodeOptions,
    info: AudioInfo,
    reader: Box<dyn FormatReader>,
    track_id: u32,
    time_base: Option<TimeBase>,
    backend: Backend,
    resampler: Option<Resampler>,
    /// Track timestamp of the first sample of the recording (after encoder delay).
    origin_ts: i64,
    /// A packet read but not yet decoded (the one read while opening, or one waiting
    /// behind concealment silence).
    held: Option<Packet>,
    /// Silence still to insert before the held packet, in frames at `rate`.
    silence_frames: u64,
    /// Timeline: `base_seconds + frames / rate` is the position of the next decoded frame.
    rate: u32,
    base_seconds: f64,
    frames: u64,
    /// The timeline is taken from the next packet's timestamp (after a seek).
    timeline_from_pts: bool,
    /// Opus pre-skip (output frames) still to drop at the start of the stream.
    opus_skip: usize,
    last_end_ts: Option<i64>,
    good_packets: u64,
    total_packets: u64,
    consecutive_bad: u64,
    /// Largest number of output samples to deliver.
    max_samples: u64,
    delivered: u64,
    ready: Vec<f32>,
    mono: Vec<f32>,
    done: bool,
}

impl std::fmt::Debug for AudioStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioStream")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl AudioStream {
    /// Opens a file, checks what it is, and positions it at `options.start_seconds`.
    pub fn open(path: &Path, options: &DecodeOptions) -> Result<Self, AudioError> {
        Self::open_at(path, options, true)
    }

    /// What the file is, and how much has been delivered so far.
    pub fn info(&self) -> &AudioInfo {
        &self.info
    }

    /// The next samples, or `None` at the end (or once `max_seconds` were delivered).
    pub fn next_chunk(&mut self) -> Result<Option<&[f32]>, AudioError> {
        self.ready.clear();
        while self.ready.is_empty() && !self.done {
            if self.silence_frames > 0 {
                let n = self
                    .silence_frames
                    .min(u64::from(self.rate.max(1)) / 4)
                    .max(1);
                self.silence_frames -= n;
                self.mono.clear();
                self.mono.resize(n as usize, 0.0);
                self.emit(self.rate)?;
                continue;
            }
            let packet = match self.held.take() {
                Some(packet) => packet,
                None => match self.read_packet()? {
                    Some(packet) => packet,
                    None => {
                        self.finish()?;
                        break;
                    }
                },
            };
            if let Some(fallback) = self.handle(packet)? {
                *self = fallback;
            }
        }
        self.info.decoded_seconds = self.delivered as f64 / f64::from(SAMPLE_RATE);
        Ok((!self.ready.is_empty()).then_some(self.ready.as_slice()))
    }

    pub(super) fn open_at(
        path: &Path,
        options: &DecodeOptions,
        allow_seek: bool,
    ) -> Result<Self, AudioError> {
        let io = |source| AudioError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        if file_len == 0 {
            return Err(AudioError::Empty);
        }
        let mut header = Vec::with_capacity(SNIFF_LEN);
        (&mut file)
            .take(SNIFF_LEN as u64)
            .read_to_end(&mut header)
            .map_err(io)?;

        let sniffed = sniff::sniff(&header);
        let container = match sniffed {
            Some(format) => format.container,
            None => {
                // Plain binary might still be audio symphonia can find (MPEG frames after
                // junk); anything recognisable as something else is refused here.
                let looks_like = Content::guess(&header);
                if looks_like != Content::Unknown {
                    return Err(AudioError::NotAudio { looks_like });
                }
                Container::Mp3
            }
        };
        if !container.is_supported() {
            return Err(AudioError::UnsupportedFormat { container });
        }
        if let Some(codec) = sniffed.and_then(|f| f.codec).filter(|c| !c.is_supported()) {
            return Err(AudioError::UnsupportedCodec {
                container,
                codec,
                detail: None,
            });
        }
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            let ext = ext.to_ascii_lowercase();
            if sniffed.is_some() && !container.extensions().contains(&ext.as_str()) {
                tracing::warn!(%container, extension = %ext, "file name does not match its content; decoding by content");
            }
        }

        if container == Container::Wav
            && let Some(fmt) = sniff::wav_format(&header)
        {
            check_rate(container, fmt.sample_rate)?;
            check_field(
                container,
                HeaderField::Channels,
                &CHANNELS,
                fmt.channels.into(),
            )?;
            check_field(
                container,
                HeaderField::BitsPerSample,
                &BITS_PER_SAMPLE,
                fmt.bits_per_sample.into(),
            )?;
        }

        // A file shorter than its header says is refused before any work is spent on it.
        let declared = match container {
            Container::Mp4 => sniff::declared_mp4_len(&mut file, file_len).map_err(io)?,
            _ => sniff::declared_file_len(&header, container),
        };
        let cut = declared
            .filter(|&d| d > file_len && (d - file_len) as f64 > d as f64 * TRUNCATION_MIN_SHARE)
            .filter(|_| !options.accept_truncated)
            .map(|d| (file_len, d));

        let source = File::open(path).map_err(io)?;
        let mss = MediaSourceStream::new(Box::new(source), MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        if sniffed.is_some() {
            hint.with_extension(container.extensions()[0]);
        }
        let probed = catch_unwind(AssertUnwindSafe(|| {
            symphonia::default::get_probe().probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
        }));
        let reader = match probed {
            Ok(Ok(reader)) => reader,
            // A cut file often breaks the container's structure: say why.
            Ok(Err(_)) | Err(_) if cut.is_some() => {
                return Err(AudioError::Truncated {
                    container,
                    present_seconds: None,
                    expected_seconds: None,
                    bytes: cut,
                });
            }
            Ok(Err(e)) => {
                return Err(open_error(
                    e,
                    sniffed.map(|_| container),
                    Content::guess(&header),
                ));
            }
            Err(_) => {
                return Err(AudioError::Corrupt {
                    container,
                    at_seconds: Some(0.0),
                    bad_packets: 0,
                    detail: "the container headers could not be parsed".into(),
                    source: None,
                });
            }
        };
        let container = sniffed
            .map(|f| f.container)
            .unwrap_or_else(|| container_of(reader.format_info().short_name));

        let track = reader
            .default_track(TrackType::Audio)
            .ok_or(AudioError::NoAudio { container })?;
        let track_id = track.id;
        let Some(CodecParameters::Audio(params)) = track.codec_params.clone() else {
            return Err(AudioError::NoAudio { container });
        };
        let codec = codec_of(params.codec);
        let time_base = track.time_base;
        let source_sample_rate = params.sample_rate.unwrap_or(0);
        let channels = params
            .channels
            .as_ref()
            .map(|c| c.count() as u16)
            .unwrap_or(0);
        let header_seconds = match (
            time_base,
            track.duration,
            track.num_frames,
            params.sample_rate,
        ) {
            (Some(tb), Some(dur), _, _) => Some(ticks_to_seconds(tb, dur.get() as i64)),
            (_, _, Some(frames), Some(rate)) if rate > 0 => Some(frames as f64 / f64::from(rate)),
            _ => None,
        }
        .filter(|s| s.is_finite() && *s > 0.0);

        check_params(&params, container)?;
        if let Some(seconds) = header_seconds
            && cut.is_none()
            && !options.accept_truncated
        {
            check_field(
                container,
                HeaderField::Duration { bytes: file_len },
                &(0..=file_len / MIN_BYTES_PER_SECOND),
                seconds.ceil() as u64,
            )?;
        }

        let (backend, opus_skip) = make_backend(&params, container, channels)?;

        let start_seconds = options.start_seconds.max(0.0);
        let max_samples = match options.max_seconds {
            Some(max) => (max.max(0.0) * f64::from(SAMPLE_RATE)).round() as u64,
            None => u64::MAX,
        };
        let mut stream = Self {
            path: path.to_owned(),
            options: options.clone(),
            info: AudioInfo {
                container,
                codec,
                source_sample_rate,
                channels,
                header_seconds,
                start_seconds,
                decoded_seconds: 0.0,
                bad_packets: 0,
                concealed_seconds: 0.0,
                start_method: StartMethod::Beginning,
                ended_abruptly: false,
            },
            reader,
            track_id,
            time_base,
            backend,
            resampler: None,
            origin_ts: 0,
            held: None,
            silence_frames: 0,
            rate: source_sample_rate,
            base_seconds: 0.0,
            frames: 0,
            timeline_from_pts: false,
            opus_skip,
            last_end_ts: None,
            good_packets: 0,
            total_packets: 0,
            consecutive_bad: 0,
            max_samples,
            delivered: 0,
            ready: Vec::new(),
            mono: Vec::new(),
            done: false,
        };
        if let Backend::Opus(_) = stream.backend {
            // Opus always runs at 48 kHz inside, whatever a container says about the input.
            stream.info.source_sample_rate = 48_000;
            stream.rate = OPUS_RATE;
        }

        if let Some((have, want)) = cut {
            let present = header_seconds.map(|h| h * have as f64 / want as f64);
            if header_seconds
                .zip(present)
                .is_none_or(|(h, p)| h - p > TRUNCATION_MIN_SECONDS)
            {
                return Err(AudioError::Truncated {
                    container,
                    present_seconds: present,
                    expected_seconds: header_seconds,
                    bytes: cut,
                });
            }
        }

        // The first packet fixes where the recording starts on the track's timestamps, which
        // a seek needs; it is decoded normally otherwise.
        let first = stream.read_packet()?;
        if let Some(first) = &first {
            let trim = match &stream.backend {
                // Pre-skip counts 48 kHz samples; the track may count milliseconds (Matroska).
                Backend::Opus(s) => stream
                    .time_base
                    .map(|tb| seconds_to_ticks(tb, f64::from(s.head.pre_skip) / 48_000.0))
                    .unwrap_or(0),
                Backend::Symphonia(..) => first.trim_start.get() as i64,
            };
            stream.origin_ts = first.pts.get().saturating_add(trim);
        }
        stream.held = first;

        if header_seconds.is_some_and(|end| start_seconds >= end) {
            // Resuming a recording that was finished: nothing left to deliver.
            stream.done = true;
            return Ok(stream);
        }
        if start_seconds > 0.0 {
            stream.info.start_method = StartMethod::DecodeAndSkip;
            let target = start_seconds - PREROLL_SECONDS;
            if allow_seek && target > 0.0 && stream.seek_to(target) {
                stream.info.start_method = StartMethod::Seek;
            } else if allow_seek && target > 0.0 {
                // A failed seek can leave the demuxer anywhere: start over.
                return Self::open_at(path, options, false);
            }
        }
        Ok(stream)
    }

    /// Seeks the demuxer to `seconds` (timeline) or a little before; false if it cannot.
    fn seek_to(&mut self, seconds: f64) -> bool {
        let Some(tb) = self.time_base else {
            return false;
        };
        let ts = self.origin_ts.saturating_add(seconds_to_ticks(tb, seconds));
        let to = SeekTo::Timestamp {
            ts: Timestamp::new(ts),
            track_id: self.track_id,
        };
        let reader = &mut self.reader;
        match catch_unwind(AssertUnwindSafe(|| reader.seek(SeekMode::Accurate, to))) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "seek failed; decoding from the start instead");
                return false;
            }
            Err(_) => return false,
        }
        self.held = None;
        self.reset_backend();
        self.timeline_from_pts = true;
        self.opus_skip = 0;
        self.last_end_ts = None;
        true
    }

    fn reset_backend(&mut self) {
        match &mut self.backend {
            Backend::Symphonia(decoder, _) => decoder.reset(),
            Backend::Opus(stream) => stream.reset(),
        }
    }

    fn container(&self) -> Container {
        self.info.container
    }

    fn position(&self) -> f64 {
        self.base_seconds + self.frames as f64 / f64::from(self.rate.max(1))
    }

    fn read_packet(&mut self) -> Result<Option<Packet>, AudioError> {
        loop {
            let reader = &mut self.reader;
            let next = catch_unwind(AssertUnwindSafe(|| reader.next_packet()));
            let result = match next {
                Ok(result) => result,
                Err(_) => {
                    return Err(self.corrupt("the demuxer failed on damaged data".into(), None));
                }
            };
            match result {
                Ok(Some(packet)) if packet.track_id == self.track_id => return Ok(Some(packet)),
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(None),
                Err(SymError::ResetRequired) => {
                    // A chained Ogg stream: the next link may have new parameters.
                    self.restart_track()?;
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.info.ended_abruptly = true;
                    return Ok(None);
                }
                Err(SymError::IoError(source)) => {
                    return Err(AudioError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
                Err(e) => {
                    // Demuxers resynchronise on the next call where they can; a demuxer that
                    // cannot fails the same way again and runs into the bad-packet limit.
                    self.count_bad(Some(Box::new(e)))?;
                }
            }
        }
    }

    fn restart_track(&mut self) -> Result<(), AudioError> {
        let container = self.container();
        let track = self
            .reader
            .default_track(TrackType::Audio)
            .ok_or(AudioError::NoAudio { container })?;
        let Some(CodecParameters::Audio(params)) = track.codec_params.clone() else {
            return Err(AudioError::NoAudio { container });
        };
        self.track_id = track.id;
        self.time_base = track.time_base;
        self.last_end_ts = None;
        let channels = params
            .channels
            .as_ref()
            .map(|c| c.count() as u16)
            .unwrap_or(0);
        check_params(&params, container)?;
        let (backend, opus_skip) = make_backend(&params, container, channels)?;
        self.backend = backend;
        self.opus_skip = opus_skip;
        Ok(())
    }

    /// Decodes one packet and queues its samples. Returns a replacement stream when a seek
    /// turned out to land after the wanted position.
    fn handle(&mut self, packet: Packet) -> Result<Option<Self>, AudioError> {
        self.total_packets += 1;
        let pts = packet.pts.get();
        let block_ticks = packet.block_dur().get() as i64;

        // A hole in the timestamps is audio the demuxer skipped (a damaged page or frame):
        // fill it with silence so that everything after keeps its true position.
        if let (Some(tb), Some(last_end)) = (self.time_base, self.last_end_ts) {
            let gap = ticks_to_seconds(tb, pts.saturating_sub(last_end));
            if gap > GAP_TOLERANCE_SECONDS && gap <= MAX_GAP_SECONDS && !self.timeline_from_pts {
                tracing::warn!(
                    at_seconds = self.position(),
                    gap_seconds = gap,
                    "hole in the audio filled with silence"
                );
                self.info.concealed_seconds += gap;
                self.check_concealed()?;
                self.silence_frames = (gap * f64::from(self.rate)).round() as u64;
                self.last_end_ts = None;
                self.held = Some(packet);
                self.total_packets -= 1;
                return Ok(None);
            }
        }
        self.last_end_ts = (block_ticks > 0).then(|| pts.saturating_add(block_ticks));

        self.mono.clear();
        let decoded = self.decode(&packet);
        let rate = match decoded {
            Ok(rate) => rate,
            Err(error) => {
                self.count_bad(error)?;
                if let Some(tb) = self.time_base {
                    let lost = ticks_to_seconds(tb, block_ticks);
                    if lost > 0.0 && lost <= 1.0 {
                        self.info.concealed_seconds += lost;
                        self.silence_frames += (lost * f64::from(self.rate)).round() as u64;
                        self.check_concealed()?;
                    }
                }
                return Ok(None);
            }
        };
        self.good_packets += 1;
        self.consecutive_bad = 0;

        if self.timeline_from_pts {
            self.timeline_from_pts = false;
            let at = self
                .time_base
                .map(|tb| ticks_to_seconds(tb, pts - self.origin_ts))
                .unwrap_or(0.0);
            if at > self.info.start_seconds + GAP_TOLERANCE_SECONDS {
                // The demuxer overshot; only decoding from the start is exact.
                tracing::debug!(
                    at,
                    wanted = self.info.start_seconds,
                    "seek overshot; decoding from the start instead"
                );
                return Self::open_at(&self.path, &self.options, false).map(Some);
            }
            self.rate = rate;
            self.base_seconds = at;
            self.frames = 0;
        }
        self.emit(rate)?;
        Ok(None)
    }

    /// Decodes into `self.mono`; returns the rate of the decoded audio.
    fn decode(&mut self, packet: &Packet) -> Result<u32, Option<BoxError>> {
        let mono = &mut self.mono;
        let outcome = match &mut self.backend {
            Backend::Symphonia(decoder, interleaved) => catch_unwind(AssertUnwindSafe(|| {
                let buffer = decoder
                    .decode(packet)
                    .map_err(|e| Some(Box::new(e) as BoxError))?;
                let rate = buffer.spec().rate();
                let channels = buffer.spec().channels().count().max(1);
                buffer.copy_to_vec_interleaved::<f32>(interleaved);
                if channels == 1 {
                    mono.extend_from_slice(interleaved);
                } else {
                    let scale = 1.0 / channels as f32;
                    mono.extend(
                        interleaved
                            .chunks_exact(channels)
                            .map(|f| f.iter().sum::<f32>() * scale),
                    );
                }
                Ok(rate)
            })),
            Backend::Opus(stream) => {
                let opus_skip = &mut self.opus_skip;
                // End padding, announced by the container in track ticks (Ogg: 48 kHz).
                let trim_end = match self.time_base {
                    Some(tb) => (ticks_to_seconds(tb, packet.trim_end.get() as i64)
                        * f64::from(OPUS_RATE))
                    .round() as usize,
                    None => 0,
                };
                catch_unwind(AssertUnwindSafe(|| {
                    stream
                        .decode(&packet.data, mono)
                        .map_err(|e| Some(Box::new(e) as BoxError))?;
                    // Encoder delay at the start, padding at the end of the last packet.
                    let skip = (*opus_skip).min(mono.len());
                    *opus_skip -= skip;
                    mono.drain(..skip);
                    let trim_end = trim_end.min(mono.len());
                    mono.truncate(mono.len() - trim_end);
                    Ok(OPUS_RATE)
                }))
            }
        };
        match outcome {
            Ok(result) => result,
            Err(_) => {
                self.mono.clear();
                self.reset_backend();
                Err(None)
            }
        }
    }

    /// Moves `self.mono` (at `rate`) through the start offset, the resampler and the
    /// `max_seconds` cap into `self.ready`.
    fn emit(&mut self, rate: u32) -> Result<(), AudioError> {
        if self.mono.is_empty() {
            return Ok(());
        }
        // A decoder reports the rate of each packet, which may differ from the header's.
        check_rate(self.container(), rate)?;
        if rate != self.rate {
            self.base_seconds = self.position();
            self.frames = 0;
            self.rate = rate;
        }
        let position = self.position();
        let n = self.mono.len();
        self.frames += n as u64;
        let skip = if position < self.info.start_seconds {
            (((self.info.start_seconds - position) * f64::from(rate)).round() as usize).min(n)
        } else {
            0
        };
        if skip == n {
            return Ok(());
        }
        if self
            .resampler
            .as_ref()
            .is_some_and(|r| r.input_rate() != rate)
            && let Some(mut old) = self.resampler.take()
        {
            // The rate changed mid-stream (chained Ogg, an MP3 with mixed frames).
            old.finish(&mut self.ready);
        }
        if self.resampler.is_none() {
            let resampler = Resampler::new(rate).map_err(|e| AudioError::UnsupportedCodec {
                container: self.container(),
                codec: self.info.codec,
                detail: Some(format!("cannot resample from {rate} Hz: {e}")),
            })?;
            self.resampler = Some(resampler);
        }
        if let Some(resampler) = &mut self.resampler {
            resampler.push(&self.mono[skip..], &mut self.ready);
        }
        self.cap();
        Ok(())
    }

    /// Enforces `max_seconds`.
    fn cap(&mut self) {
        let room = self.max_samples - self.delivered;
        if self.ready.len() as u64 >= room {
            self.ready.truncate(room as usize);
            self.done = true;
        }
        self.delivered += self.ready.len() as u64;
    }

    fn finish(&mut self) -> Result<(), AudioError> {
        self.done = true;
        if let Some(resampler) = &mut self.resampler {
            resampler.finish(&mut self.ready);
        }
        self.cap();
        if self.delivered >= self.max_samples {
            return Ok(());
        }
        let end = self.position();
        let container = self.container();
        if self.good_packets == 0 {
            if self.info.bad_packets > 0 {
                return Err(self.corrupt("no packet could be decoded".into(), None));
            }
            if self.info.start_seconds == 0.0 {
                return Err(AudioError::NoAudio { container });
            }
        }
        if let Some(expected) = self.info.header_seconds {
            let missing = expected - end;
            if !self.options.accept_truncated
                && missing > TRUNCATION_MIN_SECONDS
                && missing > expected * TRUNCATION_MIN_SHARE
            {
                return Err(AudioError::Truncated {
                    container,
                    present_seconds: Some(end),
                    expected_seconds: Some(expected),
                    bytes: None,
                });
            }
        }
        Ok(())
    }

    /// Counts a bad packet; fails once the file has more than a few.
    fn count_bad(&mut self, error: Option<BoxError>) -> Result<(), AudioError> {
        self.info.bad_packets += 1;
        self.consecutive_bad += 1;
        let bad = self.info.bad_packets;
        if bad <= 5 {
            tracing::warn!(at_seconds = self.position(), bad_packets = bad, error = ?error, "skipping an undecodable packet");
        } else {
            tracing::debug!(at_seconds = self.position(), bad_packets = bad, error = ?error, "skipping an undecodable packet");
        }
        let too_many_in_a_row = self.consecutive_bad > MAX_CONSECUTIVE_BAD;
        let too_many =
            bad > MAX_CONSECUTIVE_BAD && bad * 1000 > self.total_packets.max(1) * MAX_BAD_PER_MILLE;
        if too_many_in_a_row || too_many {
            let detail = if too_many_in_a_row {
                format!(
                    "{} packets in a row could not be decoded",
                    self.consecutive_bad
                )
            } else {
                format!(
                    "{bad} of {} packets could not be decoded",
                    self.total_packets
                )
            };
            return Err(self.corrupt(detail, error));
        }
        Ok(())
    }

    /// Fails once the silence inserted for damage is more than a blemish.
    fn check_concealed(&self) -> Result<(), AudioError> {
        let concealed = self.info.concealed_seconds;
        let limit = MAX_CONCEALED_SECONDS.max(MAX_CONCEALED_SHARE * (self.position() + concealed));
        if concealed > limit {
            return Err(self.corrupt(
                format!("{concealed:.1} s of audio are damaged or missing"),
                None,
            ));
        }
        Ok(())
    }

    fn corrupt(&self, detail: String, source: Option<BoxError>) -> AudioError {
        AudioError::Corrupt {
            container: self.container(),
            at_seconds: Some(self.position()),
            bad_packets: self.info.bad_packets,
            detail,
            source,
        }
    }
}

/// Refuses a value outside what a recording can have (see the module docs).
fn check_field(
    container: Container,
    field: HeaderField,
    allowed: &RangeInclusive<u64>,
    value: u64,
) -> Result<(), AudioError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(AudioError::ImplausibleHeader {
            container,
            field,
            value,
        })
    }
}

fn check_rate(container: Container, rate: u32) -> Result<(), AudioError> {
    let allowed = u64::from(*SAMPLE_RATES.start())..=u64::from(*SAMPLE_RATES.end());
    check_field(container, HeaderField::SampleRate, &allowed, rate.into())
}

/// Checks what the demuxer read from the track's header, before a decoder is built for it.
fn check_params(params: &AudioCodecParameters, container: Container) -> Result<(), AudioError> {
    if let Some(rate) = params.sample_rate {
        check_rate(container, rate)?;
    }
    if let Some(channels) = &params.channels {
        check_field(
            container,
            HeaderField::Channels,
            &CHANNELS,
            channels.count() as u64,
        )?;
    }
    for bits in [params.bits_per_sample, params.bits_per_coded_sample]
        .into_iter()
        .flatten()
    {
        check_field(
            container,
            HeaderField::BitsPerSample,
            &BITS_PER_SAMPLE,
            bits.into(),
        )?;
    }
    Ok(())
}

/// The decoder for a track, and (for Opus) how many output frames of encoder delay to drop.
fn make_backend(
    params: &AudioCodecParameters,
    container: Container,
    channels: u16,
) -> Result<(Backend, usize), AudioError> {
    let codec = codec_of(params.codec);
    if params.codec == codecs::CODEC_ID_OPUS {
        let head = params
            .extra_data
            .as_deref()
            .and_then(OpusHead::parse)
            .or_else(|| default_opus_head(channels))
            .ok_or_else(|| AudioError::UnsupportedCodec {
                container,
                codec,
                detail: Some(format!(
                    "Opus with {channels} channels and no channel mapping"
                )),
            })?;
        let skip = OpusStream::ticks_to_frames(u64::from(head.pre_skip));
        let stream = OpusStream::new(head).map_err(|detail| AudioError::UnsupportedCodec {
            container,
            codec,
            detail: Some(detail),
        })?;
        return Ok((Backend::Opus(Box::new(stream)), skip));
    }
    let decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default().gapless(true))
        .map_err(|e| AudioError::UnsupportedCodec {
            container,
            codec,
            detail: Some(match e {
                SymError::Unsupported(what) => what.to_owned(),
                other => other.to_string(),
            }),
        })?;
    Ok((Backend::Symphonia(decoder, Vec::new()), 0))
}

fn ticks_to_seconds(tb: TimeBase, ticks: i64) -> f64 {
    ticks as f64 * f64::from(tb.numer.get()) / f64::from(tb.denom.get())
}

fn seconds_to_ticks(tb: TimeBase, seconds: f64) -> i64 {
    (seconds * f64::from(tb.denom.get()) / f64::from(tb.numer.get())).round() as i64
}

fn default_opus_head(channels: u16) -> Option<OpusHead> {
    (1..=2).contains(&channels).then_some(OpusHead {
        channels: channels as u8,
        pre_skip: 0,
        input_rate: 48_000,
        output_gain: 0,
        mapping_family: 0,
        mapping: None,
    })
}

/// Maps symphonia's failure to open a container to our errors.
fn open_error(error: SymError, sniffed: Option<Container>, looks_like: Content) -> AudioError {
    let Some(container) = sniffed else {
        return AudioError::NotAudio { looks_like };
    };
    match error {
        SymError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            AudioError::Truncated {
                container,
                present_seconds: None,
                expected_seconds: None,
                bytes: None,
            }
        }
        other => AudioError::Corrupt {
            container,
            at_seconds: Some(0.0),
            bad_packets: 0,
            detail: "its structure is damaged or incomplete".into(),
            source: Some(Box::new(other)),
        },
    }
}

fn container_of(short_name: &str) -> Container {
    match short_name {
        "ogg" => Container::Ogg,
        "matroska" | "mkv" | "webm" => Container::Matroska,
        "isomp4" | "mp4" => Container::Mp4,
        "aac" | "adts" => Container::Adts,
        "wave" | "wav" | "riff" => Container::Wav,
        "flac" => Container::Flac,
        _ => Container::Mp3,
    }
}

fn codec_of(id: AudioCodecId) -> Codec {
    use codecs::*;
    match id {
        CODEC_ID_OPUS => Codec::Opus,
        CODEC_ID_VORBIS => Codec::Vorbis,
        CODEC_ID_FLAC => Codec::Flac,
        CODEC_ID_MP3 => Codec::Mp3,
        CODEC_ID_MP1 | CODEC_ID_MP2 => Codec::Mp2,
        CODEC_ID_AAC => Codec::Aac,
        CODEC_ID_ALAC => Codec::Alac,
        CODEC_ID_SPEEX => Codec::Speex,
        CODEC_ID_AC3 | CODEC_ID_EAC3 => Codec::Ac3,
        CODEC_ID_WMA => Codec::Wma,
        CODEC_ID_ADPCM_G722
        | CODEC_ID_ADPCM_G726
        | CODEC_ID_ADPCM_G726LE
        | CODEC_ID_ADPCM_MS
        | CODEC_ID_ADPCM_IMA_WAV
        | CODEC_ID_ADPCM_IMA_QT => Codec::Adpcm,
        CODEC_ID_PCM_S32LE
        | CODEC_ID_PCM_S32LE_PLANAR
        | CODEC_ID_PCM_S32BE
        | CODEC_ID_PCM_S32BE_PLANAR
        | CODEC_ID_PCM_S24LE
        | CODEC_ID_PCM_S24LE_PLANAR
        | CODEC_ID_PCM_S24BE
        | CODEC_ID_PCM_S24BE_PLANAR
        | CODEC_ID_PCM_S16LE
        | CODEC_ID_PCM_S16LE_PLANAR
        | CODEC_ID_PCM_S16BE
        | CODEC_ID_PCM_S16BE_PLANAR
        | CODEC_ID_PCM_S8
        | CODEC_ID_PCM_S8_PLANAR
        | CODEC_ID_PCM_U32LE
        | CODEC_ID_PCM_U32LE_PLANAR
        | CODEC_ID_PCM_U32BE
        | CODEC_ID_PCM_U32BE_PLANAR
        | CODEC_ID_PCM_U24LE
        | CODEC_ID_PCM_U24LE_PLANAR
        | CODEC_ID_PCM_U24BE
        | CODEC_ID_PCM_U24BE_PLANAR
        | CODEC_ID_PCM_U16LE
        | CODEC_ID_PCM_U16LE_PLANAR
        | CODEC_ID_PCM_U16BE
        | CODEC_ID_PCM_U16BE_PLANAR
        | CODEC_ID_PCM_U8
        | CODEC_ID_PCM_U8_PLANAR
        | CODEC_ID_PCM_F32LE
        | CODEC_ID_PCM_F32LE_PLANAR
        | CODEC_ID_PCM_F32BE
        | CODEC_ID_PCM_F32BE_PLANAR
        | CODEC_ID_PCM_F64LE
        | CODEC_ID_PCM_F64LE_PLANAR
        | CODEC_ID_PCM_F64BE
        | CODEC_ID_PCM_F64BE_PLANAR
        | CODEC_ID_PCM_ALAW
        | CODEC_ID_PCM_MULAW => Codec::Pcm,
        _ => Codec::Other,
    }
}
