//! Tests that need no fixtures: sniffing synthetic headers, and decoding WAV files written
//! here. The speech clips are exercised by the fixture tests (`tests/audio_clips.rs`).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A file in the system temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("vox-audio-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("write temp file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn wav_bytes(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// A stereo tone, 440 Hz left and right in phase, at half scale.
fn stereo_tone(rate: u32, seconds: f64) -> Vec<i16> {
    let frames = (f64::from(rate) * seconds) as usize;
    (0..frames)
        .flat_map(|i| {
            let v = ((std::f64::consts::TAU * 440.0 * i as f64 / f64::from(rate)).sin() * 16384.0)
                as i16;
            [v, v]
        })
        .collect()
}

fn decode_all(
    path: &std::path::Path,
    options: &DecodeOptions,
) -> Result<(Vec<f32>, AudioInfo), AudioError> {
    let mut out = Vec::new();
    let info = decode_file_with(path, options, |s: &[f32]| {
        out.extend_from_slice(s);
        Ok::<_, AudioError>(ControlFlow::Continue(()))
    })?;
    Ok((out, info))
}

#[test]
fn sniff_finds_ogg_opus_and_vorbis_in_the_first_page() {
    let page = |payload: &[u8]| {
        let mut p = b"OggS\0\x02".to_vec();
        p.extend([0u8; 20]);
        p.push(1);
        p.push(payload.len() as u8);
        p.extend_from_slice(payload);
        p
    };
    let opus = sniff(&page(b"OpusHead\x01\x01\x38\x01")).expect("ogg");
    assert_eq!(
        (opus.container, opus.codec),
        (Container::Ogg, Some(Codec::Opus))
    );
    let vorbis = sniff(&page(b"\x01vorbis\0\0\0\0")).expect("ogg");
    assert_eq!(vorbis.codec, Some(Codec::Vorbis));
    let speex = sniff(&page(b"Speex   1.2")).expect("ogg");
    assert_eq!(speex.codec, Some(Codec::Speex));
}

#[test]
fn sniff_tells_webm_from_matroska_and_finds_the_codec_id() {
    let mut webm = vec![0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x82, 0x84];
    webm.extend_from_slice(b"webm");
    webm.extend([0u8; 100]);
    webm.extend_from_slice(b"\x86\x86A_OPUS");
    let format = sniff(&webm).expect("webm");
    assert_eq!(
        (format.container, format.codec),
        (Container::WebM, Some(Codec::Opus))
    );

    let mut mkv = vec![0x1A, 0x45, 0xDF, 0xA3, 0xA3, 0x42, 0x82, 0x88];
    mkv.extend_from_slice(b"matroska");
    mkv.extend_from_slice(b"\x86\x85A_AAC");
    let format = sniff(&mkv).expect("mkv");
    assert_eq!(
        (format.container, format.codec),
        (Container::Matroska, Some(Codec::Aac))
    );
}

#[test]
fn sniff_recognises_mp3_by_id3_tag_or_two_frame_headers() {
    assert_eq!(
        sniff(b"ID3\x04\0\0\0\0\0\x0a").map(|f| f.container),
        Some(Container::Mp3)
    );

    // MPEG-1 layer III, 128 kbit/s, 44.1 kHz: 417-byte frames.
    let mut frames = vec![0xFF, 0xFB, 0x90, 0x64];
    frames.resize(417, 0);
    frames.extend([0xFF, 0xFB, 0x90, 0x64]);
    let format = sniff(&frames).expect("mp3");
    assert_eq!(
        (format.container, format.codec),
        (Container::Mp3, Some(Codec::Mp3))
    );

    // A sync word followed by garbage where the next frame should be is not MP3.
    let mut lone = vec![0xFF, 0xFB, 0x90, 0x64];
    lone.resize(417, 0);
    lone.extend([1, 2, 3, 4]);
    assert_eq!(sniff(&lone), None);
}

#[test]
fn sniff_recognises_mp4_wav_flac_and_refuses_heic() {
    let mut m4a = b"\0\0\0\x1cftypM4A \0\0\x02\0".to_vec();
    m4a.extend_from_slice(b"\0\0\0\x20stsd\0\0\0\0\0\0\0\x01\0\0\0\x10mp4a");
    let format = sniff(&m4a).expect("m4a");
    assert_eq!(
        (format.container, format.codec),
        (Container::Mp4, Some(Codec::Aac))
    );

    let wav = wav_bytes(16_000, 1, &[0; 4]);
    let format = sniff(&wav).expect("wav");
    assert_eq!(
        (format.container, format.codec),
        (Container::Wav, Some(Codec::Pcm))
    );

    assert_eq!(
        sniff(b"fLaC\0\0\0\x22").map(|f| f.container),
        Some(Container::Flac)
    );
    assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), None);
    assert_eq!(
        Content::guess(b"\0\0\0\x18ftypheic\0\0\0\0"),
        Content::Image("HEIC")
    );
}

#[test]
fn content_guess_names_common_non_audio_files() {
    assert_eq!(
        Content::guess("Привет, это текст.\n".as_bytes()),
        Content::Text
    );
    assert_eq!(Content::guess(b"<!DOCTYPE html><html>"), Content::Html);
    assert_eq!(Content::guess(b"  {\"a\": 1}"), Content::Json);
    assert_eq!(
        Content::guess(b"\x89PNG\r\n\x1a\n\0\0"),
        Content::Image("PNG")
    );
    assert_eq!(
        Content::guess(b"\xFF\xD8\xFF\xE0\0\x10JFIF"),
        Content::Image("JPEG")
    );
    assert_eq!(Content::guess(b"%PDF-1.7"), Content::Pdf);
    assert_eq!(Content::guess(b"PK\x03\x04\x14\0"), Content::Archive("ZIP"));
    assert_eq!(
        Content::guess(&[0x00, 0x9C, 0x11, 0xE3, 0x05, 0x00, 0xC8]),
        Content::Unknown
    );
    assert_eq!(Content::Image("PNG").to_string(), "a PNG image");
}

#[test]
fn stereo_44k_wav_becomes_16k_mono_of_the_same_length_and_level() {
    let file = TempFile::new("tone.wav", &wav_bytes(44_100, 2, &stereo_tone(44_100, 3.0)));
    let (samples, info) = decode_all(&file.0, &DecodeOptions::default()).expect("decodes");
    assert_eq!(samples.len(), 48_000);
    assert_eq!(
        (
            info.container,
            info.codec,
            info.source_sample_rate,
            info.channels
        ),
        (Container::Wav, Codec::Pcm, 44_100, 2)
    );
    assert!((info.decoded_seconds - 3.0).abs() < 1e-9);
    let rms = (samples[1000..47_000].iter().map(|s| s * s).sum::<f32>() / 46_000.0).sqrt();
    assert!((rms - 0.5 / 2f32.sqrt()).abs() < 0.005, "rms {rms}");
    // 440 Hz: 880 zero crossings per second.
    let crossings = samples[16_000..32_000]
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    assert!((878..=882).contains(&crossings), "{crossings} crossings");
}

#[test]
fn a_resumed_decode_continues_exactly_where_the_full_decode_is() {
    let file = TempFile::new(
        "resume.wav",
        &wav_bytes(44_100, 2, &stereo_tone(44_100, 4.0)),
    );
    let (full, _) = decode_all(&file.0, &DecodeOptions::default()).expect("decodes");
    for start in [0.2, 1.5, 2.25] {
        let options = DecodeOptions {
            start_seconds: start,
            ..DecodeOptions::default()
        };
        let (tail, info) = decode_all(&file.0, &options).expect("decodes");
        let offset = (start * 16_000.0) as usize;
        assert_eq!(tail.len(), full.len() - offset, "start {start}");
        let expected_method = if start > 0.5 {
            StartMethod::Seek
        } else {
            StartMethod::DecodeAndSkip
        };
        assert_eq!(info.start_method, expected_method);
        let err = tail[400..16_000]
            .iter()
            .zip(&full[offset + 400..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-3, "start {start}: max difference {err}");
        assert!((info.end_seconds() - 4.0).abs() < 1e-9);
    }
}

#[test]
fn max_seconds_and_break_stop_early() {
    let file = TempFile::new("stop.wav", &wav_bytes(16_000, 1, &vec![1000; 16_000 * 5]));
    let (samples, info) = decode_all(
        &file.0,
        &DecodeOptions {
            max_seconds: Some(1.25),
            ..Default::default()
        },
    )
    .expect("decodes");
    assert_eq!(samples.len(), 20_000);
    assert!((info.decoded_seconds - 1.25).abs() < 1e-9);

    let mut seen = 0;
    let info = decode_file(&file.0, None, |s: &[f32]| {
        seen += s.len();
        Ok::<_, AudioError>(if seen >= 8000 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })
    .expect("decodes");
    assert!((8000..80_000).contains(&seen));
    assert_eq!(info.decoded_seconds * 16_000.0, seen as f64);
}

#[test]
fn callback_errors_come_back_unchanged() {
    #[derive(Debug, PartialEq)]
    enum Mine {
        Stop,
        Audio(String),
    }
    impl From<AudioError> for Mine {
        fn from(e: AudioError) -> Self {
            Mine::Audio(e.to_string())
        }
    }
    let file = TempFile::new("cb.wav", &wav_bytes(16_000, 1, &vec![0; 16_000]));
    let result = decode_file(&file.0, None, |_: &[f32]| {
        Err::<ControlFlow<()>, _>(Mine::Stop)
    });
    assert_eq!(result.unwrap_err(), Mine::Stop);
    let missing = decode_file(
        std::path::Path::new("/nonexistent/x.wav"),
        None,
        |_: &[f32]| Ok::<_, Mine>(ControlFlow::Continue(())),
    );
    assert!(matches!(missing, Err(Mine::Audio(m)) if m.contains("cannot read the audio file")));
}

#[test]
fn bad_input_gets_an_error_that_says_what_is_wrong() {
    let empty = TempFile::new("empty.wav", b"");
    let err = probe_file(&empty.0).unwrap_err();
    assert!(matches!(err, AudioError::Empty));
    assert_eq!(err.to_string(), "the file is empty (0 bytes)");
    assert!(err.is_bad_input());

    let text = TempFile::new("notes.ogg", "Это не аудио, а заметки.\n".as_bytes());
    let err = probe_file(&text.0).unwrap_err();
    assert!(matches!(
        err,
        AudioError::NotAudio {
            looks_like: Content::Text
        }
    ));
    assert_eq!(err.to_string(), "the file is not audio: it looks like text");

    let png = TempFile::new("photo.mp3", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    assert_eq!(
        probe_file(&png.0).unwrap_err().to_string(),
        "the file is not audio: it looks like a PNG image"
    );

    let aiff = TempFile::new("a.aiff", b"FORM\0\0\0\x20AIFFCOMM");
    assert_eq!(
        probe_file(&aiff.0).unwrap_err().to_string(),
        "AIFF files are not supported (supported: Ogg, WebM, Matroska, MP3, M4A/MP4, AAC, WAV, FLAC)"
    );

    // A WAV whose header announces 10 s, cut after 2 s.
    let mut cut = wav_bytes(16_000, 1, &vec![100; 160_000]);
    cut.truncate(44 + 64_000);
    let cut = TempFile::new("cut.wav", &cut);
    let err = probe_file(&cut.0).unwrap_err();
    let AudioError::Truncated {
        present_seconds: Some(present),
        expected_seconds: Some(expected),
        ..
    } = err
    else {
        panic!("expected Truncated, got {err:?}");
    };
    assert!(
        (present - 2.0).abs() < 0.01 && (expected - 10.0).abs() < 1e-9,
        "{present} {expected}"
    );
    assert_eq!(
        err_text(&cut.0),
        "the WAV file is truncated: it holds about 2.0 s of the 10.0 s its header announces"
    );

    // The same file is usable when the caller accepts partial audio.
    let options = DecodeOptions {
        accept_truncated: true,
        ..Default::default()
    };
    let (samples, _) = decode_all(&cut.0, &options).expect("decodes what is there");
    assert_eq!(samples.len(), 32_000);
}

fn err_text(path: &std::path::Path) -> String {
    probe_file(path)
        .map(|i| format!("{i:?}"))
        .unwrap_or_else(|e| e.to_string())
}

#[test]
fn a_wav_holding_no_samples_contains_no_audio() {
    let file = TempFile::new("header-only.wav", &wav_bytes(16_000, 1, &[]));
    let err = decode_all(&file.0, &DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            AudioError::NoAudio {
                container: Container::Wav
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "the WAV file contains no audio");
}

#[test]
fn decode_and_skip_delivers_the_same_samples_as_a_seek() {
    let file = TempFile::new("skip.wav", &wav_bytes(44_100, 2, &stereo_tone(44_100, 3.0)));
    let options = DecodeOptions {
        start_seconds: 1.7,
        ..DecodeOptions::default()
    };
    let collect = |mut stream: AudioStream| {
        let mut out = Vec::new();
        while let Some(chunk) = stream.next_chunk().expect("decodes") {
            out.extend_from_slice(chunk);
        }
        (out, stream.info().start_method)
    };
    let (seeked, method) = collect(AudioStream::open(&file.0, &options).expect("opens"));
    assert_eq!(method, StartMethod::Seek);
    let (skipped, method) = collect(AudioStream::open_at(&file.0, &options, false).expect("opens"));
    assert_eq!(method, StartMethod::DecodeAndSkip);
    assert_eq!(seeked.len(), skipped.len());
    let err = seeked
        .iter()
        .zip(&skipped)
        .skip(400)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 1e-3, "max difference {err}");
}

#[test]
fn resuming_past_the_end_delivers_nothing() {
    let file = TempFile::new("end.wav", &wav_bytes(16_000, 1, &vec![0; 16_000]));
    let options = DecodeOptions {
        start_seconds: 5.0,
        ..DecodeOptions::default()
    };
    let (samples, info) = decode_all(&file.0, &options).expect("not an error");
    assert!(samples.is_empty());
    assert_eq!(info.end_seconds(), 5.0);
}

#[test]
fn an_audio_stream_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<AudioStream>();
    assert_send::<AudioError>();
}

/// A PCM WAV with whatever its header should declare, however absurd: the 44 bytes a hostile
/// upload can write by hand, and `data` as its audio.
fn wav_declaring(rate: u32, channels: u16, bits: u16, data: &[u8]) -> Vec<u8> {
    let block_align = channels.wrapping_mul(bits / 8);
    let byte_rate = rate.wrapping_mul(u32::from(block_align));
    let mut b = Vec::with_capacity(44 + data.len());
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&byte_rate.to_le_bytes());
    b.extend_from_slice(&block_align.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// Issue 14, item 4: a 327 KB WAV declaring 2,147,483,647 Hz made the resampler allocate
/// 8.6 GB and aborted the worker; one declaring 0 Hz ended `done` with an empty transcript.
/// Every such header is refused before anything is sized by it, quickly, naming the field.
#[test]
fn a_wav_header_declaring_impossible_parameters_is_refused_before_any_allocation() {
    let pcm: Vec<u8> = (0..32_000u32).map(|i| (i * 37 % 251) as u8).collect();
    let cases = [
        (
            "max-rate.wav",
            wav_declaring(2_147_483_647, 1, 16, &pcm),
            "the WAV header declares a sample rate of 2147483647 Hz; expected 1000-384000 Hz",
        ),
        (
            "zero-rate.wav",
            wav_declaring(0, 1, 16, &pcm),
            "the WAV header declares a sample rate of 0 Hz; expected 1000-384000 Hz",
        ),
        (
            "low-rate.wav",
            wav_declaring(1, 1, 16, &pcm),
            "the WAV header declares a sample rate of 1 Hz; expected 1000-384000 Hz",
        ),
        (
            "no-channels.wav",
            wav_declaring(16_000, 0, 16, &pcm),
            "the WAV header declares 0 channels; expected 1-32",
        ),
        (
            "many-channels.wav",
            wav_declaring(16_000, 65_535, 16, &pcm),
            "the WAV header declares 65535 channels; expected 1-32",
        ),
        (
            "wide-samples.wav",
            wav_declaring(16_000, 1, 4_096, &pcm),
            "the WAV header declares 4096 bits per sample; expected 1-64",
        ),
    ];
    for (name, bytes, expected) in cases {
        let file = TempFile::new(name, &bytes);
        let started = std::time::Instant::now();
        let err = match decode_all(&file.0, &DecodeOptions::default()) {
            Ok((samples, info)) => format!("decoded {} samples: {info:?}", samples.len()),
            Err(e) => {
                assert!(e.is_bad_input(), "{name}: {e:?}");
                e.to_string()
            }
        };
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{name} took {:?}",
            started.elapsed()
        );
        assert_eq!(err, expected, "{name}");
    }

    // The highest rate allowed, on a rate prime to 16 kHz (the resampler's worst case), and
    // an ordinary file still decode.
    let tone = stereo_tone(383_999, 0.2);
    let file = TempFile::new("fast.wav", &wav_bytes(383_999, 2, &tone));
    let (samples, info) = decode_all(&file.0, &DecodeOptions::default()).expect("decodes");
    assert_eq!((info.source_sample_rate, samples.len()), (383_999, 3_200));
    let file = TempFile::new("plain.wav", &wav_bytes(8_000, 1, &vec![1_000; 8_000]));
    let (samples, _) = decode_all(&file.0, &DecodeOptions::default()).expect("decodes");
    assert_eq!(samples.len(), 16_000);
}
