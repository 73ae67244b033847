//! Guards against Whisper's two failure modes: looping on one phrase, and inventing text where
//! there is no speech. Pure functions, tested without a model.

/// Where a repetition loop starts in `tokens`, if the sequence ends in one.
///
/// A loop is the same n-gram (1 to `max_n` tokens) repeated back to back at the end: more
/// than three times for n >= 2, more than five times for a single token (a few repeated
/// single tokens occur in real speech: "нет, нет, нет"). Returns the index just after the
/// first copy, where the sequence should be cut.
pub fn find_loop(tokens: &[u32], max_n: usize) -> Option<usize> {
    let len = tokens.len();
    for n in 1..=max_n {
        let copies = if n == 1 { 6 } else { 4 };
        if n * copies > len {
            break;
        }
        let tail = &tokens[len - n * copies..];
        let unit = &tail[..n];
        if tail.chunks_exact(n).all(|c| c == unit) {
            // Walk back over further copies so the cut keeps exactly one.
            let mut first = len - n * copies;
            while first >= n && tokens[first - n..first] == *unit {
                first -= n;
            }
            return Some(first + n);
        }
    }
    None
}

/// How compressible `text` is: its length in bytes over the length of its zlib compression
/// (level 6), Whisper's and faster-whisper's measure for loops. Ordinary sentences score about
/// 1-1.6 (short ones below 1: zlib's header costs more than it saves); loops and near-loops
/// score above 2.4, the threshold both use.
pub fn compression_ratio(text: &str) -> f32 {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(bytes, 6);
    bytes.len() as f32 / compressed.len().max(1) as f32
}

/// Why a decoded window's text is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The model itself says there is no speech and is unsure of its text (Whisper's rule:
    /// no-speech probability above the threshold and average log-probability below -1).
    NoSpeech,
    /// The text is highly repetitive even after cutting exact loops.
    Repetitive,
    /// The model's average confidence is too low for the text to mean anything.
    LowConfidence,
    /// Every segment was a phrase Whisper is known to invent on silence and noise.
    KnownHallucination,
}

/// Phrases Whisper writes on silence, noise and music: subtitle credits and video outros it
/// learned from its training data. On 30 s of digital silence Whisper base writes
/// "Редактор субтитров А.Семкин Корректор А.Егорова" with an average log-probability of
/// -0.5, confident enough to pass Whisper's own no-speech rule, so these are matched by text.
/// Only phrases that do not occur in the meetings and interviews transcribed here.
const HALLUCINATIONS: &[&str] = &[
    "редактор субтитров",
    "корректор а.",
    "субтитры сделал",
    "субтитры создавал",
    "субтитры подготовил",
    "dimatorzok",
    "продолжение следует",
    "подписывайтесь на канал",
    "спасибо за просмотр",
    "thanks for watching",
    "thank you for watching",
    "subtitles by",
    "please subscribe",
];

/// Whether a segment's text is one of Whisper's stock inventions (see [`HALLUCINATIONS`]),
/// or nothing but a bare "you" / "thank you." that it writes on noise.
pub fn is_known_hallucination(text: &str) -> bool {
    let lower = text.to_lowercase();
    let bare: String = lower
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect();
    matches!(bare.trim(), "you" | "thank you") || HALLUCINATIONS.iter().any(|p| lower.contains(p))
}

/// Thresholds for [`judge`].
#[derive(Debug, Clone, PartialEq)]
pub struct GuardParams {
    pub no_speech_threshold: f32,
    pub logprob_threshold: f32,
    pub compression_ratio_threshold: f32,
    /// Below this average log-probability a window is dropped whatever the no-speech
    /// probability says.
    pub min_avg_logprob: f32,
}

impl Default for GuardParams {
    fn default() -> Self {
        Self {
            no_speech_threshold: 0.6,
            logprob_threshold: -1.0,
            compression_ratio_threshold: 2.4,
            min_avg_logprob: -1.6,
        }
    }
}

/// Whether a window's text should be kept, from the decode's no-speech probability, average
/// log-probability and the [`compression_ratio`] of its text.
pub fn judge(
    params: &GuardParams,
    no_speech_prob: f32,
    avg_logprob: f32,
    compression_ratio: f32,
) -> Result<(), Rejection> {
    if no_speech_prob > params.no_speech_threshold && avg_logprob < params.logprob_threshold {
        return Err(Rejection::NoSpeech);
    }
    if avg_logprob < params.min_avg_logprob {
        return Err(Rejection::LowConfidence);
    }
    if compression_ratio > params.compression_ratio_threshold {
        return Err(Rejection::Repetitive);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phrase_repeated_four_times_is_cut_to_one_copy() {
        let mut t = vec![1, 2, 3];
        for _ in 0..5 {
            t.extend([7, 8, 9]);
        }
        assert_eq!(find_loop(&t, 20), Some(6));
    }

    #[test]
    fn three_copies_are_not_a_loop() {
        let t = [1, 7, 8, 7, 8, 7, 8];
        assert_eq!(find_loop(&t, 20), None);
    }

    #[test]
    fn a_single_token_needs_six_copies() {
        assert_eq!(find_loop(&[5, 4, 4, 4, 4, 4], 20), None);
        assert_eq!(find_loop(&[5, 4, 4, 4, 4, 4, 4], 20), Some(2));
    }

    #[test]
    fn ordinary_sentences_compress_little() {
        for s in [
            "Сотрудники были вежливыми и внимательными.",
            "The room on the third floor is clean, the bed is wide, and the windows face the river.",
            "В ресторане было шумно, но еда была вкусной. Кровать была удобной, а подушки мягкими.",
        ] {
            let r = compression_ratio(s);
            assert!(r < 1.8, "{s}: {r}");
        }
    }

    #[test]
    fn near_loops_compress_a_lot() {
        let s = "Спасибо за внимание. Спасибо за внимание! Спасибо за внимание. Спасибо за внимание, \
                 спасибо за внимание. Спасибо за внимание. Спасибо за внимание.";
        assert!(compression_ratio(s) > 2.4, "{}", compression_ratio(s));
    }

    #[test]
    fn subtitle_credits_are_known_hallucinations() {
        assert!(is_known_hallucination(
            "Редактор субтитров А.Семкин Корректор А.Егорова"
        ));
        assert!(is_known_hallucination("Thank you."));
        assert!(!is_known_hallucination(
            "Thank you for the tour, the lobby is lovely."
        ));
        assert!(!is_known_hallucination("Спасибо, номер был чистый."));
    }

    #[test]
    fn whispers_no_speech_rule_drops_unsure_text_on_silence() {
        let p = GuardParams::default();
        assert_eq!(
            judge(&p, 0.93, -1.2, compression_ratio("Редактор субтитров")),
            Err(Rejection::NoSpeech)
        );
        assert_eq!(judge(&p, 0.93, -0.3, compression_ratio("Да.")), Ok(()));
        assert_eq!(judge(&p, 0.1, -0.3, compression_ratio("Да.")), Ok(()));
    }
}
