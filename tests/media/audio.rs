//! Decoding the speech clips made by `infra/local/speech/make_clips.sh` (festival speech in
//! every ingested format, plus broken files). The test command makes the clips first.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use common::audio::{
    AudioError, AudioInfo, Codec, Container, Content, DecodeOptions, StartMethod, decode_file_with,
};

fn clips_dir() -> Option<PathBuf> {
    let root = std::env::var_os("VOX_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/voxpersona"))
        })?;
    let dir = root.join("speech");
    assert!(
        dir.join("manifest.tsv").is_file(),
        "{} has no clips: run infra/local/speech/make_clips.sh",
        dir.display()
    );
    Some(dir)
}

fn decode(path: &Path, options: &DecodeOptions) -> Result<(Vec<f32>, AudioInfo), AudioError> {
    let mut samples = Vec::new();
    let info = decode_file_with(path, options, |chunk: &[f32]| {
        samples.extend_from_slice(chunk);
        Ok::<_, AudioError>(ControlFlow::Continue(()))
    })?;
    Ok((samples, info))
}

fn decode_ok(path: &Path) -> (Vec<f32>, AudioInfo) {
    decode(path, &DecodeOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Normalised correlation of `a` and `b` with `b` shifted by `lag` samples.
fn correlation(a: &[f32], b: &[f32], lag: isize) -> f64 {
    let (a, b) = if lag >= 0 {
        (a, &b[(lag as usize).min(b.len())..])
    } else {
        (&a[((-lag) as usize).min(a.len())..], b)
    };
    let n = a.len().min(b.len());
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(1e-12)
}

/// The shift of `b` against `a` (within +-150 ms), found on the loudest second of `a`:
/// first on 4x decimated signals, then refined at full rate.
fn best_lag(a: &[f32], b: &[f32]) -> isize {
    const MAX_LAG: isize = 2400;
    const WINDOW: usize = 16_000;
    let start = (0..a.len().saturating_sub(WINDOW))
        .step_by(4000)
        .max_by(|&x, &y| rms(&a[x..x + WINDOW]).total_cmp(&rms(&a[y..y + WINDOW])))
        .unwrap_or(0);
    let score = |a: &[f32], b: &[f32], start: usize, len: usize, lag: isize| -> f64 {
        let from = start as isize + lag;
        if from < 0 {
            return f64::MIN;
        }
        let from = from as usize;
        let window = &a[start..(start + len).min(a.len())];
        let other = &b[from.min(b.len())..(from + window.len()).min(b.len())];
        window
            .iter()
            .zip(other)
            .map(|(&p, &q)| f64::from(p) * f64::from(q))
            .sum()
    };
    let decimate = |x: &[f32]| -> Vec<f32> { x.chunks(4).map(|c| c.iter().sum::<f32>()).collect() };
    let (a4, b4) = (decimate(a), decimate(b));
    let coarse = (-MAX_LAG / 4..=MAX_LAG / 4)
        .max_by(|&x, &y| {
            score(&a4, &b4, start / 4, WINDOW / 4, x).total_cmp(&score(
                &a4,
                &b4,
                start / 4,
                WINDOW / 4,
                y,
            ))
        })
        .unwrap_or(0);
    (coarse * 4 - 8..=coarse * 4 + 8)
        .max_by(|&x, &y| score(a, b, start, WINDOW, x).total_cmp(&score(a, b, start, WINDOW, y)))
        .unwrap_or(0)
}

#[test]
fn every_format_decodes_like_the_wav_reference() {
    let Some(dir) = clips_dir() else { return };
    // (file suffix, container, codec, minimum correlation with the reference, level in dB:
    // ffmpeg's mono-to-stereo upmix put the voice at -3 dB in each channel, and the mixdown
    // averages the channels).
    let variants = [
        (".ogg", Container::Ogg, Codec::Opus, 0.85, 0.0),
        (".webm", Container::WebM, Codec::Opus, 0.85, 0.0),
        (".mp3", Container::Mp3, Codec::Mp3, 0.95, 0.0),
        (".m4a", Container::Mp4, Codec::Aac, 0.95, 0.0),
        (".flac", Container::Flac, Codec::Flac, 0.9999, 0.0),
        ("_44k_stereo.wav", Container::Wav, Codec::Pcm, 0.99, -3.01),
    ];
    for clip in ["ru_01", "ru_07", "en_03"] {
        let (reference, reference_info) = decode_ok(&dir.join(format!("{clip}.wav")));
        assert_eq!(reference_info.source_sample_rate, 16_000);
        for (suffix, container, codec, min_corr, level) in variants {
            let path = dir.join(format!("{clip}{suffix}"));
            let (samples, info) = decode_ok(&path);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert_eq!((info.container, info.codec), (container, codec), "{name}");
            assert_eq!(
                info.decoded_seconds,
                samples.len() as f64 / 16_000.0,
                "{name}"
            );
            assert!(
                (info.decoded_seconds - reference_info.decoded_seconds).abs() < 0.1,
                "{name}: {} s, reference {} s",
                info.decoded_seconds,
                reference_info.decoded_seconds
            );
            let lag = best_lag(&reference, &samples);
            let corr = correlation(&reference, &samples, lag);
            let level_db = 20.0 * (rms(&samples) / rms(&reference)).log10();
            eprintln!(
                "{name:24} {:7.3} s  lag {lag:+5}  corr {corr:.4}  level {level_db:+.2} dB",
                info.decoded_seconds
            );
            assert!(
                corr >= min_corr,
                "{name}: correlation {corr:.4} < {min_corr} (lag {lag})"
            );
            assert!(
                (level_db - level).abs() < 1.0,
                "{name}: level differs by {level_db:.2} dB"
            );
            assert!(lag.abs() <= 1100, "{name}: shifted by {lag} samples");
            assert_eq!(
                (info.bad_packets, info.concealed_seconds),
                (0, 0.0),
                "{name}"
            );
        }
    }
}

#[test]
fn stereo_44k_wav_is_resampled_without_shift() {
    let Some(dir) = clips_dir() else { return };
    let (reference, _) = decode_ok(&dir.join("ru_03.wav"));
    let (samples, info) = decode_ok(&dir.join("ru_03_44k_stereo.wav"));
    assert_eq!((info.source_sample_rate, info.channels), (44_100, 2));
    assert_eq!(samples.len(), reference.len());
    assert_eq!(best_lag(&reference, &samples), 0);
    assert!(correlation(&reference, &samples, 0) > 0.99);
}

#[test]
fn silence_decodes_to_zeros_and_noise_keeps_its_level() {
    let Some(dir) = clips_dir() else { return };
    let (silence, info) = decode_ok(&dir.join("silence_30s.wav"));
    assert_eq!(silence.len(), 480_000);
    assert_eq!(info.decoded_seconds, 30.0);
    assert!(silence.iter().all(|&s| s == 0.0));

    let (noise, _) = decode_ok(&dir.join("noise_20s.wav"));
    let db = 20.0 * rms(&noise).log10();
    assert!((db + 45.0).abs() < 1.5, "noise at {db:.1} dBFS");
}

#[test]
fn broken_clips_fail_with_errors_a_person_understands() {
    let Some(dir) = clips_dir() else { return };

    let err = decode(&dir.join("empty.wav"), &DecodeOptions::default()).unwrap_err();
    assert!(matches!(err, AudioError::Empty), "{err:?}");
    assert_eq!(err.to_string(), "the file is empty (0 bytes)");

    let err = decode(&dir.join("not_audio.ogg"), &DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            AudioError::NotAudio {
                looks_like: Content::Text
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "the file is not audio: it looks like text");

    let err = decode(&dir.join("truncated.mp3"), &DecodeOptions::default()).unwrap_err();
    let AudioError::Truncated {
        container: Container::Mp3,
        present_seconds: Some(present),
        expected_seconds: Some(expected),
        ..
    } = err
    else {
        panic!("expected Truncated, got {err:?}");
    };
    assert!(
        (present - 3.9).abs() < 0.3 && (expected - 13.1).abs() < 0.1,
        "{present} of {expected}"
    );
    assert_eq!(
        err.to_string(),
        "the MP3 file is truncated: it holds about 3.9 s of the 13.1 s its header announces"
    );
    // A caller that wants what is there gets it.
    let options = DecodeOptions {
        accept_truncated: true,
        ..Default::default()
    };
    let (samples, _) = decode(&dir.join("truncated.mp3"), &options).expect("partial decode");
    assert!(
        (samples.len() as f64 / 16_000.0 - 3.9).abs() < 0.3,
        "{} samples",
        samples.len()
    );
}

#[test]
fn cut_files_are_truncated_where_a_header_says_so_and_flagged_otherwise() {
    let Some(dir) = clips_dir() else { return };
    let cut = |name: &str, share: f64| -> Result<(Vec<f32>, AudioInfo), AudioError> {
        let bytes = std::fs::read(dir.join(name)).expect("read clip");
        let keep = (bytes.len() as f64 * share) as usize;
        let path =
            std::env::temp_dir().join(format!("vox-audio-cut-{}-{name}", std::process::id()));
        std::fs::write(&path, &bytes[..keep]).expect("write temp file");
        let result = decode(&path, &DecodeOptions::default());
        let _ = std::fs::remove_file(&path);
        result
    };
    for (name, container) in [
        ("ru_04.webm", Container::WebM),
        ("ru_04.m4a", Container::Mp4),
        ("ru_04.flac", Container::Flac),
        ("ru_04.wav", Container::Wav),
        ("ru_04.mp3", Container::Mp3),
    ] {
        let err = cut(name, 0.5).expect_err(name);
        let message = err.to_string();
        eprintln!("{name:12} {message}");
        assert!(
            matches!(err, AudioError::Truncated { container: c, .. } if c == container),
            "{name}: {err:?}"
        );
        assert!(message.contains("truncated"), "{message}");
    }
    // Ogg announces no length: the audio that is there is delivered, flagged as cut off.
    let (samples, info) = cut("ru_04.ogg", 0.5).expect("ogg decodes what is there");
    assert!(info.ended_abruptly);
    assert!(
        samples.len() > 4 * 16_000 && samples.len() < 8 * 16_000,
        "{}",
        samples.len()
    );
    let (_, whole) = decode_ok(&dir.join("ru_04.ogg"));
    assert!(!whole.ended_abruptly);
}

#[test]
fn lying_header_decodes_by_its_real_format() {
    let Some(dir) = clips_dir() else { return };
    let (samples, info) = decode_ok(&dir.join("lying_header.wav"));
    assert_eq!((info.container, info.codec), (Container::Mp3, Codec::Mp3));
    let (reference, _) = decode_ok(&dir.join("ru_02.wav"));
    assert!((samples.len() as f64 - reference.len() as f64).abs() < 1600.0);
    assert!(correlation(&reference, &samples, best_lag(&reference, &samples)) > 0.95);
}

#[test]
fn slightly_corrupt_flac_decodes_with_the_damage_silenced_in_place() {
    let Some(dir) = clips_dir() else { return };
    let (samples, info) = decode_ok(&dir.join("corrupt.flac"));
    let (reference, _) = decode_ok(&dir.join("ru_03.wav"));
    // The damaged frames are skipped and replaced by silence, so the length and the timing
    // of everything after them are those of the original.
    assert_eq!(samples.len(), reference.len());
    assert!(
        info.concealed_seconds > 0.0 && info.concealed_seconds < 1.0,
        "{info:?}"
    );
    assert!(correlation(&reference, &samples, 0) > 0.9);
    let tail = reference.len() - 3 * 16_000;
    assert!(correlation(&reference[tail..], &samples[tail..], 0) > 0.9999);
}

#[test]
fn badly_damaged_file_is_reported_corrupt_with_its_position() {
    let Some(dir) = clips_dir() else { return };
    let mut bytes = std::fs::read(dir.join("ru_03.flac")).expect("read clip");
    // Overwrite 4 KiB of every 16 KiB after the first 32 KiB.
    let mut seed = 0x2545_F491_u32;
    for block in (32 * 1024..bytes.len()).step_by(16 * 1024) {
        for byte in bytes.iter_mut().skip(block).take(4096) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *byte = seed as u8;
        }
    }
    let path = std::env::temp_dir().join(format!("vox-audio-damaged-{}.flac", std::process::id()));
    std::fs::write(&path, &bytes).expect("write temp file");
    let result = decode(&path, &DecodeOptions::default());
    let _ = std::fs::remove_file(&path);
    let err = result.expect_err("a quarter of the file is garbage");
    let AudioError::Corrupt {
        container: Container::Flac,
        at_seconds: Some(at),
        ..
    } = &err
    else {
        panic!("expected Corrupt, got {err:?}");
    };
    assert!(*at > 0.5 && *at < 14.6, "at {at}");
    assert!(
        err.to_string().starts_with("the FLAC file is corrupt at "),
        "{err}"
    );
}

#[test]
fn resuming_at_an_offset_matches_the_full_decode() {
    let Some(dir) = clips_dir() else { return };
    let start = 5.0;
    let offset = (start * 16_000.0) as usize;
    // Sample-exact everywhere but Matroska, whose timestamps count milliseconds.
    for (name, method, max_lag) in [
        ("ru_01.wav", StartMethod::Seek, 0),
        ("ru_01_44k_stereo.wav", StartMethod::Seek, 0),
        ("ru_01.flac", StartMethod::Seek, 0),
        ("ru_01.mp3", StartMethod::Seek, 0),
        ("ru_01.m4a", StartMethod::Seek, 0),
        ("ru_01.ogg", StartMethod::Seek, 0),
        ("ru_01.webm", StartMethod::Seek, 16),
    ] {
        let path = dir.join(name);
        let (full, _) = decode_ok(&path);
        let options = DecodeOptions {
            start_seconds: start,
            ..Default::default()
        };
        let (tail, info) = decode(&path, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = &full[offset..];
        let lag = best_lag(expected, &tail);
        let corr = correlation(expected, &tail, lag);
        eprintln!(
            "{name:24} {:?}  {} vs {} samples  lag {lag:+}  corr {corr:.5}",
            info.start_method,
            tail.len(),
            expected.len()
        );
        assert_eq!(info.start_method, method, "{name}");
        assert!(
            lag.abs() <= max_lag,
            "{name}: resumed audio shifted by {lag} samples"
        );
        assert!(corr > 0.98, "{name}: correlation {corr:.4}");
        assert!(
            (tail.len() as isize - expected.len() as isize).abs()
                <= 16 + lag.unsigned_abs() as isize,
            "{name}"
        );
        assert!((info.start_seconds - start).abs() < 1e-9);
    }
}
