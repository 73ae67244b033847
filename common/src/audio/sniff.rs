//! What a file really is, from its first bytes.
//!
//! Uploads arrive with whatever name the phone or the user gave them, so the extension is
//! never trusted: the container (and, where the first few kilobytes reveal it, the codec) is
//! read from magic numbers. Bytes that are not audio get a short description (text, an
//! image, an archive...) so that an error can tell a person what they uploaded instead.

use std::fmt;

/// How many leading bytes [`sniff`] and [`Content::guess`] want to see. Fewer work too, with
/// less certainty about the codec.
pub const SNIFF_LEN: usize = 64 * 1024;

/// A container (file format), as found in the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Container {
    Ogg,
    WebM,
    Matroska,
    /// MPEG audio frames, optionally behind an ID3 tag (.mp3).
    Mp3,
    /// ISO base media (.mp4, .m4a, .mov, .3gp).
    Mp4,
    /// AAC in ADTS framing (.aac).
    Adts,
    Wav,
    Flac,
    Aiff,
    Caf,
    Amr,
    /// Windows Media (.wma, .asf).
    Asf,
}

impl Container {
    /// Whether this build can demux it.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            Self::Ogg
                | Self::WebM
                | Self::Matroska
                | Self::Mp3
                | Self::Mp4
                | Self::Adts
                | Self::Wav
                | Self::Flac
        )
    }

    /// File name extensions this container usually has, lower case, without the dot.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Ogg => &["ogg", "oga", "opus"],
            Self::WebM => &["webm", "weba"],
            Self::Matroska => &["mkv", "mka"],
            Self::Mp3 => &["mp3"],
            Self::Mp4 => &["m4a", "mp4", "m4b", "mov", "3gp", "3g2"],
            Self::Adts => &["aac"],
            Self::Wav => &["wav", "wave"],
            Self::Flac => &["flac"],
            Self::Aiff => &["aiff", "aif", "aifc"],
            Self::Caf => &["caf"],
            Self::Amr => &["amr"],
            Self::Asf => &["wma", "asf"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Ogg => "Ogg",
            Self::WebM => "WebM",
            Self::Matroska => "Matroska",
            Self::Mp3 => "MP3",
            Self::Mp4 => "MP4/M4A",
            Self::Adts => "AAC (ADTS)",
            Self::Wav => "WAV",
            Self::Flac => "FLAC",
            Self::Aiff => "AIFF",
            Self::Caf => "Core Audio (CAF)",
            Self::Amr => "AMR",
            Self::Asf => "Windows Media (ASF)",
        }
    }
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An audio codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    Opus,
    Vorbis,
    Flac,
    Mp3,
    /// MPEG-1/2 Layer I or II.
    Mp2,
    Aac,
    Alac,
    /// Uncompressed or companded PCM (integer, float, A-law, mu-law).
    Pcm,
    Adpcm,
    Speex,
    Amr,
    Ac3,
    Wma,
    /// Recognised by the container but not one of the above.
    Other,
}

impl Codec {
    /// Whether this build can decode it.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            Self::Opus
                | Self::Vorbis
                | Self::Flac
                | Self::Mp3
                | Self::Mp2
                | Self::Aac
                | Self::Alac
                | Self::Pcm
                | Self::Adpcm
        )
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Opus => "Opus",
            Self::Vorbis => "Vorbis",
            Self::Flac => "FLAC",
            Self::Mp3 => "MP3",
            Self::Mp2 => "MPEG audio layer I/II",
            Self::Aac => "AAC",
            Self::Alac => "Apple Lossless",
            Self::Pcm => "PCM",
            Self::Adpcm => "ADPCM",
            Self::Speex => "Speex",
            Self::Amr => "AMR",
            Self::Ac3 => "AC-3",
            Self::Wma => "WMA",
            Self::Other => "an unknown codec",
        })
    }
}

/// What [`sniff`] found: the container, and the codec when the header shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Format {
    pub container: Container,
    pub codec: Option<Codec>,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.codec {
            Some(codec) => write!(f, "{} ({codec})", self.container),
            None => write!(f, "{}", self.container),
        }
    }
}

/// Detects the real audio format from the first bytes of a file (ideally [`SNIFF_LEN`]).
///
/// Returns `None` when the bytes are not a known audio format; [`Content::guess`] then says
/// what they look like.
pub fn sniff(header: &[u8]) -> Option<Format> {
    let h = header;
    let container = |container| {
        Some(Format {
            container,
            codec: None,
        })
    };

    if h.starts_with(b"OggS") {
        return Some(Format {
            container: Container::Ogg,
            codec: ogg_codec(h),
        });
    }
    if h.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        // The DocType sits in the EBML header, within the first few dozen bytes.
        let head = &h[..h.len().min(64)];
        let container = if contains(head, b"webm") {
            Container::WebM
        } else {
            Container::Matroska
        };
        return Some(Format {
            container,
            codec: matroska_codec(h),
        });
    }
    if h.starts_with(b"fLaC") {
        return Some(Format {
            container: Container::Flac,
            codec: Some(Codec::Flac),
        });
    }
    if h.len() >= 12 && (h.starts_with(b"RIFF") || h.starts_with(b"RF64") || h.starts_with(b"BW64"))
    {
        if &h[8..12] == b"WAVE" {
            return Some(Format {
                container: Container::Wav,
                codec: wav_codec(h),
            });
        }
        return None;
    }
    if h.len() >= 12 && &h[4..8] == b"ftyp" {
        if is_image_brand(&h[8..12]) {
            return None;
        }
        return Some(Format {
            container: Container::Mp4,
            codec: mp4_codec(h),
        });
    }
    if h.len() >= 8
        && matches!(&h[4..8], b"moov" | b"mdat" | b"wide" | b"free" | b"skip")
        && u32::from_be_bytes([h[0], h[1], h[2], h[3]]) >= 8
    {
        // QuickTime files written without an ftyp box.
        return Some(Format {
            container: Container::Mp4,
            codec: mp4_codec(h),
        });
    }
    if h.starts_with(b"ID3") {
        return Some(after_id3(h));
    }
    if h.len() >= 12 && h.starts_with(b"FORM") && matches!(&h[8..12], b"AIFF" | b"AIFC") {
        return container(Container::Aiff);
    }
    if h.starts_with(b"caff") {
        return container(Container::Caf);
    }
    if h.starts_with(b"#!AMR") {
        return Some(Format {
            container: Container::Amr,
            codec: Some(Codec::Amr),
        });
    }
    if h.starts_with(&[0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11]) {
        return Some(Format {
            container: Container::Asf,
            codec: Some(Codec::Wma),
        });
    }
    mpeg_audio(h)
}

/// Looks past an ID3v2 tag; MP3 is by far the most common payload, so a tag bigger than the
/// header still counts as MP3.
fn after_id3(h: &[u8]) -> Format {
    let mp3 = Format {
        container: Container::Mp3,
        codec: Some(Codec::Mp3),
    };
    if h.len() < 10 {
        return mp3;
    }
    let size = h[6..10]
        .iter()
        .fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7F));
    let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
    let end = 10 + size + footer;
    match h.get(end..) {
        Some(rest) if rest.len() >= 4 => match sniff(rest) {
            Some(format) if format.container == Container::Flac => format,
            Some(format) if format.container == Container::Adts => format,
            _ => mp3,
        },
        _ => mp3,
    }
}

fn ogg_codec(h: &[u8]) -> Option<Codec> {
    let segments = usize::from(*h.get(26)?);
    let payload = h.get(27 + segments..)?;
    if payload.starts_with(b"OpusHead") {
        Some(Codec::Opus)
    } else if payload.starts_with(b"\x01vorbis") {
        Some(Codec::Vorbis)
    } else if payload.starts_with(b"\x7fFLAC") {
        Some(Codec::Flac)
    } else if payload.starts_with(b"Speex   ") {
        Some(Codec::Speex)
    } else {
        Some(Codec::Other)
    }
}

fn matroska_codec(h: &[u8]) -> Option<Codec> {
    // CodecID strings are plain ASCII inside the TrackEntry; the order matters where one
    // identifier is a prefix of another.
    const IDS: &[(&[u8], Codec)] = &[
        (b"A_OPUS", Codec::Opus),
        (b"A_VORBIS", Codec::Vorbis),
        (b"A_FLAC", Codec::Flac),
        (b"A_MPEG/L3", Codec::Mp3),
        (b"A_MPEG/L2", Codec::Mp2),
        (b"A_AAC", Codec::Aac),
        (b"A_PCM", Codec::Pcm),
        (b"A_ALAC", Codec::Alac),
        (b"A_EAC3", Codec::Ac3),
        (b"A_AC3", Codec::Ac3),
        (b"A_MS/ACM", Codec::Other),
        (b"A_", Codec::Other),
    ];
    let h = &h[..h.len().min(16 * 1024)];
    IDS.iter()
        .find(|(id, _)| contains(h, id))
        .map(|&(_, codec)| codec)
}

fn wav_codec(h: &[u8]) -> Option<Codec> {
    // Walk the RIFF chunks to "fmt "; it is almost always the first one.
    let mut pos = 12;
    while pos + 8 <= h.len() {
        let id = &h[pos..pos + 8][..4];
        let size = u32::from_le_bytes([h[pos + 4], h[pos + 5], h[pos + 6], h[pos + 7]]) as usize;
        if id == b"fmt " {
            let tag = u16::from_le_bytes([*h.get(pos + 8)?, *h.get(pos + 9)?]);
            let tag = if tag == 0xFFFE {
                // WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID.
                u16::from_le_bytes([*h.get(pos + 32)?, *h.get(pos + 33)?])
            } else {
                tag
            };
            return Some(match tag {
                0x0001 | 0x0003 | 0x0006 | 0x0007 => Codec::Pcm,
                0x0002 | 0x0011 => Codec::Adpcm,
                0x0050 => Codec::Mp2,
                0x0055 => Codec::Mp3,
                0x00FF | 0x1600 | 0x1601 | 0x1602 | 0x1610 => Codec::Aac,
                0x0160..=0x0163 => Codec::Wma,
                0x0057 | 0x0058 => Codec::Amr,
                _ => Codec::Other,
            });
        }
        pos = pos.checked_add(8 + size + (size & 1))?;
    }
    None
}

fn mp4_codec(h: &[u8]) -> Option<Codec> {
    // Sample entry four-character codes in the stsd box; with `moov` at the end of the file
    // (no "faststart") they are not in the header and the codec stays unknown here.
    const CODES: &[(&[u8], Codec)] = &[
        (b"mp4a", Codec::Aac),
        (b"alac", Codec::Alac),
        (b"Opus", Codec::Opus),
        (b"fLaC", Codec::Flac),
        (b".mp3", Codec::Mp3),
        (b"samr", Codec::Amr),
        (b"sawb", Codec::Amr),
        (b"ac-3", Codec::Ac3),
        (b"ec-3", Codec::Ac3),
        (b"lpcm", Codec::Pcm),
        (b"sowt", Codec::Pcm),
        (b"twos", Codec::Pcm),
    ];
    let stsd = find(h, b"stsd")?;
    let h = &h[stsd..h.len().min(stsd + 512)];
    CODES
        .iter()
        .find(|(code, _)| contains(h, code))
        .map(|&(_, codec)| codec)
}

fn is_image_brand(brand: &[u8]) -> bool {
    matches!(
        brand,
        b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1" | b"avif" | b"avis"
    )
}

/// MPEG audio without a tag: a frame header, confirmed by the next one when the header holds
/// it, because a lone 11-bit sync word turns up in random binary data.
fn mpeg_audio(h: &[u8]) -> Option<Format> {
    let first = MpegFrame::parse(h)?;
    if let Some(len) = first.len {
        if let Some(next) = h.get(len..)
            && next.len() >= 4
            && MpegFrame::parse(next).is_none()
        {
            return None;
        }
    } else if first.codec != Codec::Aac {
        // Free-format MP3 is legal but has never been seen in a voice recording.
        return None;
    }
    let container = if first.codec == Codec::Aac {
        Container::Adts
    } else {
        Container::Mp3
    };
    Some(Format {
        container,
        codec: Some(first.codec),
    })
}

struct MpegFrame {
    codec: Codec,
    len: Option<usize>,
}

impl MpegFrame {
    fn parse(h: &[u8]) -> Option<Self> {
        let &[b0, b1, b2, b3, ..] = h else {
            return None;
        };
        if b0 != 0xFF || b1 & 0xE0 != 0xE0 {
            return None;
        }
        let version = (b1 >> 3) & 0b11; // 0: MPEG 2.5, 1: reserved, 2: MPEG 2, 3: MPEG 1
        let layer = (b1 >> 1) & 0b11; // 0: reserved (ADTS), 1: III, 2: II, 3: I
        if layer == 0 {
            // ADTS: 12-bit sync (so MPEG "version" bits 1x), layer 00.
            if b1 & 0xF6 != 0xF0 {
                return None;
            }
            let sr_index = (b2 >> 2) & 0x0F;
            if sr_index > 12 {
                return None;
            }
            let len = (usize::from(b3 & 0x03) << 11)
                | (usize::from(*h.get(4)?) << 3)
                | usize::from(*h.get(5)? >> 5);
            return (len >= 7).then_some(Self {
                codec: Codec::Aac,
                len: Some(len),
            });
        }
        if version == 1 {
            return None;
        }
        let bitrate_index = usize::from(b2 >> 4);
        let sr_index = usize::from((b2 >> 2) & 0b11);
        if bitrate_index == 15 || sr_index == 3 {
            return None;
        }
        let codec = if layer == 1 { Codec::Mp3 } else { Codec::Mp2 };
        if bitrate_index == 0 {
            return Some(Self { codec, len: None });
        }
        const RATES: [u32; 3] = [44_100, 48_000, 32_000];
        let sample_rate = RATES[sr_index]
            >> (if version == 3 {
                0
            } else if version == 2 {
                1
            } else {
                2
            });
        let mpeg1 = version == 3;
        // kbit/s tables, index 1..=14.
        const V1_L1: [u32; 15] = [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ];
        const V1_L2: [u32; 15] = [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ];
        const V1_L3: [u32; 15] = [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ];
        const V2_L1: [u32; 15] = [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ];
        const V2_L23: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
        let kbps = match (mpeg1, layer) {
            (true, 3) => V1_L1[bitrate_index],
            (true, 2) => V1_L2[bitrate_index],
            (true, _) => V1_L3[bitrate_index],
            (false, 3) => V2_L1[bitrate_index],
            (false, _) => V2_L23[bitrate_index],
        };
        let padding = u32::from((b2 >> 1) & 1);
        let bits = kbps * 1000;
        let len = match layer {
            3 => (12 * bits / sample_rate + padding) * 4,
            2 => 144 * bits / sample_rate + padding,
            _ if mpeg1 => 144 * bits / sample_rate + padding,
            _ => 72 * bits / sample_rate + padding,
        };
        Some(Self {
            codec,
            len: Some(len as usize),
        })
    }
}

/// What a WAV file's `fmt ` chunk declares, read from the first bytes before any decoder
/// is built, so that absurd values are refused before anything is sized by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WavFormat {
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
}

/// The `fmt ` chunk of a RIFF/WAVE header, when it lies within `h`.
pub(crate) fn wav_format(h: &[u8]) -> Option<WavFormat> {
    if !(h.starts_with(b"RIFF") && h.get(8..12) == Some(b"WAVE".as_slice())) {
        return None;
    }
    let mut at = 12usize;
    loop {
        let id = h.get(at..at + 4)?;
        let size = u32::from_le_bytes(h.get(at + 4..at + 8)?.try_into().ok()?) as usize;
        let body = at + 8;
        if id == b"fmt " {
            let fmt = h.get(body..body + 16)?;
            return Some(WavFormat {
                channels: u16::from_le_bytes([fmt[2], fmt[3]]),
                sample_rate: u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]),
                bits_per_sample: u16::from_le_bytes([fmt[14], fmt[15]]),
            });
        }
        // Chunks are padded to an even length.
        at = body.checked_add(size)?.checked_add(size & 1)?;
    }
}

/// How many bytes the header says the audio file has, where the format records it and the
/// value is believable: the RIFF size of a WAV file, or the byte count of an MP3's Xing/Info
/// frame. Comparing it with the real size finds truncated uploads before decoding them.
pub(crate) fn declared_file_len(h: &[u8], container: Container) -> Option<u64> {
    match container {
        Container::Wav if h.starts_with(b"RIFF") => {
            let size = u32::from_le_bytes(h.get(4..8)?.try_into().ok()?);
            // Streaming writers leave 0 or 0xFFFFFFFF when they cannot seek back.
            (size > 36 && size != u32::MAX).then(|| u64::from(size) + 8)
        }
        Container::Mp3 => {
            let start = if h.starts_with(b"ID3") && h.len() >= 10 {
                let size = h[6..10]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7F));
                10 + size + if h[5] & 0x10 != 0 { 10 } else { 0 }
            } else {
                0
            };
            let frame = h.get(start..)?;
            let &[_, b1, _, b3, ..] = frame else {
                return None;
            };
            let mpeg1 = (b1 >> 3) & 0b11 == 3;
            let mono = b3 >> 6 == 3;
            let side_info = match (mpeg1, mono) {
                (true, false) => 32,
                (true, true) | (false, false) => 17,
                (false, true) => 9,
            };
            let tag = frame.get(4 + side_info..4 + side_info + 16)?;
            if &tag[..4] != b"Xing" && &tag[..4] != b"Info" {
                return None;
            }
            let flags = u32::from_be_bytes(tag[4..8].try_into().ok()?);
            let bytes_at = if flags & 1 != 0 { 12 } else { 8 };
            if flags & 2 == 0 {
                return None;
            }
            let bytes = u32::from_be_bytes(
                frame
                    .get(4 + side_info + bytes_at..4 + side_info + bytes_at + 4)?
                    .try_into()
                    .ok()?,
            );
            (bytes > 0).then(|| start as u64 + u64::from(bytes))
        }
        Container::WebM | Container::Matroska => {
            // EBML header element, then the Segment element with its size.
            let (header_size, at) = ebml_vint(h.get(4..)?)?;
            let segment = 4 + at + usize::try_from(header_size).ok()?;
            if h.get(segment..segment + 4)? != [0x18, 0x53, 0x80, 0x67] {
                return None;
            }
            let (size, len) = ebml_vint(h.get(segment + 4..)?)?;
            // All ones: "unknown size", which live recorders (browsers) write.
            (size != (1u64 << (7 * len)) - 1).then(|| (segment + 4 + len) as u64 + size)
        }
        _ => None,
    }
}

/// An EBML variable-length integer: (value, length in bytes).
fn ebml_vint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let mut value = u64::from(first) & ((1u64 << (8 - len)) - 1);
    for &byte in b.get(1..len)? {
        value = (value << 8) | u64::from(byte);
    }
    Some((value, len))
}

/// The length an MP4 file must have: the end of its last top-level box. Only box headers
/// are read (the sample data is seeked over).
pub(crate) fn declared_mp4_len<R: std::io::Read + std::io::Seek>(
    file: &mut R,
    file_len: u64,
) -> std::io::Result<Option<u64>> {
    use std::io::SeekFrom;
    let mut offset = 0u64;
    // A real file has a handful of top-level boxes; the bound keeps garbage from looping.
    for _ in 0..1024 {
        if offset + 8 > file_len {
            break;
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut head = [0u8; 16];
        let available = (file_len - offset).min(16) as usize;
        file.read_exact(&mut head[..available])?;
        let size = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        let size = match size {
            0 => return Ok(None), // "to the end of the file"
            1 if available == 16 => u64::from_be_bytes(head[8..16].try_into().unwrap_or_default()),
            1 => return Ok(None),
            _ => size,
        };
        if size < 8
            || !head[4..8]
                .iter()
                .all(|b| b.is_ascii_graphic() || *b == b' ')
        {
            return Ok(None); // not a box: leave the verdict to the demuxer
        }
        offset = offset.saturating_add(size);
    }
    Ok((offset > file_len).then_some(offset))
}

/// What a file that is not audio looks like, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Content {
    Text,
    Html,
    Xml,
    Json,
    Pdf,
    Image(&'static str),
    Video(&'static str),
    Archive(&'static str),
    Executable,
    Unknown,
}

impl Content {
    /// Describes the first bytes of a file that [`sniff`] did not recognise.
    pub fn guess(header: &[u8]) -> Self {
        let h = header;
        let magic: &[(&[u8], Content)] = &[
            (b"\x89PNG\r\n\x1a\n", Content::Image("PNG")),
            (b"\xFF\xD8\xFF", Content::Image("JPEG")),
            (b"GIF87a", Content::Image("GIF")),
            (b"GIF89a", Content::Image("GIF")),
            (b"II*\0", Content::Image("TIFF")),
            (b"MM\0*", Content::Image("TIFF")),
            (b"%PDF", Content::Pdf),
            (b"PK\x03\x04", Content::Archive("ZIP")),
            (b"PK\x05\x06", Content::Archive("ZIP")),
            (b"\x1F\x8B", Content::Archive("gzip")),
            (b"7z\xBC\xAF\x27\x1C", Content::Archive("7-Zip")),
            (b"Rar!\x1A\x07", Content::Archive("RAR")),
            (b"BZh", Content::Archive("bzip2")),
            (b"\xFD7zXZ\0", Content::Archive("xz")),
            (b"\x28\xB5\x2F\xFD", Content::Archive("zstd")),
            (b"\x7FELF", Content::Executable),
            (b"MZ", Content::Executable),
        ];
        if let Some(&(_, content)) = magic.iter().find(|(m, _)| h.starts_with(m)) {
            return content;
        }
        if h.len() >= 12 && h.starts_with(b"RIFF") {
            match &h[8..12] {
                b"WEBP" => return Content::Image("WebP"),
                b"AVI " => return Content::Video("AVI"),
                _ => {}
            }
        }
        if h.len() >= 12 && &h[4..8] == b"ftyp" && is_image_brand(&h[8..12]) {
            let name = if &h[8..12] == b"avif" || &h[8..12] == b"avis" {
                "AVIF"
            } else {
                "HEIC"
            };
            return Content::Image(name);
        }
        if h.starts_with(b"BM") && h.len() >= 14 && h[6..10] == [0, 0, 0, 0] {
            return Content::Image("BMP");
        }
        if let Some(text) = as_text(h) {
            let t = text.trim_start_matches('\u{feff}').trim_start();
            let lower: String = t.chars().take(64).flat_map(char::to_lowercase).collect();
            if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
                return Content::Html;
            }
            if lower.starts_with("<?xml") || lower.starts_with("<svg") {
                return if lower.contains("<svg") {
                    Content::Image("SVG")
                } else {
                    Content::Xml
                };
            }
            if t.starts_with('{') || t.starts_with('[') {
                return Content::Json;
            }
            return Content::Text;
        }
        Content::Unknown
    }
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text => f.write_str("text"),
            Self::Html => f.write_str("an HTML page"),
            Self::Xml => f.write_str("an XML document"),
            Self::Json => f.write_str("JSON"),
            Self::Pdf => f.write_str("a PDF document"),
            Self::Image(kind) => write!(f, "a {kind} image"),
            Self::Video(kind) => write!(f, "a {kind} video"),
            Self::Archive(kind) => write!(f, "a {kind} archive"),
            Self::Executable => f.write_str("a program"),
            Self::Unknown => f.write_str("unrecognised binary data"),
        }
    }
}

/// The header as text, if it is text: UTF-8 (a character cut at the end is fine) or UTF-16
/// with a byte order mark, with almost no control characters.
fn as_text(h: &[u8]) -> Option<String> {
    let text = if h.starts_with(&[0xFF, 0xFE]) || h.starts_with(&[0xFE, 0xFF]) {
        let le = h[0] == 0xFF;
        let units: Vec<u16> = h[2..]
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        match std::str::from_utf8(h) {
            Ok(s) => s.to_owned(),
            // A multi-byte character cut by the end of the header.
            Err(e) if e.error_len().is_none() && h.len() - e.valid_up_to() < 4 => {
                String::from_utf8_lossy(&h[..e.valid_up_to()]).into_owned()
            }
            Err(_) => return None,
        }
    };
    if text.is_empty() {
        return None;
    }
    let total = text.chars().count();
    let control = text
        .chars()
        .filter(|c| {
            (c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}')) || *c == '\u{fffd}'
        })
        .count();
    (control * 100 <= total).then_some(text)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}
