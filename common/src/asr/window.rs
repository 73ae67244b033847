//! One VAD window to text, with every second of its speech accounted for.
//!
//! Whisper decides by itself where a window's text ends, and Whisper base is borderline at
//! speaker changes: it may write end of text after the first sentence of a 25 s window, or end
//! with a closing and an opening timestamp (its way of saying "go on in the next window"). A
//! window is therefore decoded in passes, as openai-whisper and faster-whisper do: after each
//! pass, when the window's speech goes on after the last timestamp, decoding seeks to that
//! timestamp and goes on from there. Then every VAD speech region is checked against the
//! decoded segments; a stretch of speech longer than [`WindowParams::min_uncovered`] that no
//! segment covers is decoded again on its own, and what still yields nothing is reported as
//! uncovered, never dropped in silence.
//!
//! The driver is written over a `decode` closure (audio range in, [`Piece`] out), so its rules
//! are tested here without a model; `asr::TranscriptionStream` runs it with Whisper.

use std::ops::Range;

use super::guard::Rejection;
use super::mel::SAMPLE_RATE;
use super::whisper::{Ending, RawSegment};

/// What one decode of a piece of the window gave; times in seconds from the piece's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Segments closed by a timestamp, hallucinations already removed.
    pub segments: Vec<RawSegment>,
    /// Text after the last timestamp that no timestamp closed.
    pub tail: Option<RawSegment>,
    pub last_timestamp: Option<f32>,
    pub ending: Ending,
    /// Set when the piece's text was dropped (then `segments` and `tail` are empty).
    pub rejected: Option<Rejection>,
}

/// A decoded segment, in samples from the window's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// How hard to look. Durations in samples (16 kHz).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowParams {
    /// Uncovered speech shorter than this is timestamp imprecision, not lost words.
    pub min_uncovered: usize,
    /// A segment covers speech this close to its ends (Whisper's timestamps are 20 ms steps
    /// and often end before the last syllable does).
    pub slack: usize,
    /// Decoding goes on after a pass only when at least this much speech follows the last
    /// timestamp (beyond the slack).
    pub min_remaining: usize,
    /// A pass must move at least this far for another one to start at its last timestamp.
    pub min_progress: usize,
    /// Passes per span at most (each costs an encoder run).
    pub max_passes: usize,
    /// Audio kept around an uncovered stretch when it is decoded on its own.
    pub redecode_pad: usize,
}

impl Default for WindowParams {
    fn default() -> Self {
        let ms = |ms: usize| ms * SAMPLE_RATE / 1000;
        Self {
            min_uncovered: ms(1000),
            slack: ms(400),
            min_remaining: ms(500),
            min_progress: ms(1000),
            max_passes: 8,
            redecode_pad: ms(250),
        }
    }
}

/// The window's text and what of its speech none of it covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowText {
    /// In time order.
    pub segments: Vec<Span>,
    /// Speech no segment covers, each at least `min_uncovered` long.
    pub uncovered: Vec<Range<usize>>,
    /// VAD speech in the window, in samples.
    pub speech: usize,
    /// Decodes run (passes of the window and of the stretches decoded again).
    pub passes: usize,
    /// Uncovered stretches decoded on their own.
    pub redecoded: usize,
    /// Why the first pass's text was dropped, if it was.
    pub rejected: Option<Rejection>,
}

/// Decodes the window `0..len` whose speech is `regions` (sorted, inside the window).
pub fn decode_window<E>(
    len: usize,
    regions: &[Range<usize>],
    params: &WindowParams,
    mut decode: impl FnMut(Range<usize>) -> Result<Piece, E>,
) -> Result<WindowText, E> {
    let mut out = WindowText {
        speech: regions.iter().map(|r| r.end - r.start).sum(),
        ..WindowText::default()
    };
    let first = decode_span(0..len, regions, params, &mut decode, &mut out)?;
    out.segments = first;

    let gaps = uncovered(regions, &out.segments, params);
    for gap in gaps {
        let span =
            gap.start.saturating_sub(params.redecode_pad)..(gap.end + params.redecode_pad).min(len);
        out.redecoded += 1;
        let found = decode_span(span, regions, params, &mut decode, &mut out)?;
        if found.is_empty() {
            out.uncovered.push(gap);
            continue;
        }
        if repeats_neighbours(&found, &out.segments, &gap) {
            // The words were there: the first pass's timestamps skipped over them.
            continue;
        }
        let residual = uncovered(std::slice::from_ref(&gap), &found, params);
        out.segments.extend(found);
        out.uncovered.extend(residual);
    }
    out.segments.sort_by_key(|s| (s.start, s.end));
    out.uncovered.sort_by_key(|r| r.start);
    Ok(out)
}

/// Decodes `span` in passes, seeking to the last timestamp while speech remains after it.
fn decode_span<E>(
    span: Range<usize>,
    regions: &[Range<usize>],
    params: &WindowParams,
    decode: &mut impl FnMut(Range<usize>) -> Result<Piece, E>,
    out: &mut WindowText,
) -> Result<Vec<Span>, E> {
    let at = |seek: usize, t: f32| seek + (t.max(0.0) * SAMPLE_RATE as f32).round() as usize;
    let mut segments = Vec::new();
    let mut seek = span.start;
    for _ in 0..params.max_passes {
        if span.end.saturating_sub(seek) < params.min_remaining {
            break;
        }
        let piece = decode(seek..span.end)?;
        out.passes += 1;
        if out.passes == 1 {
            out.rejected = piece.rejected;
        }
        if piece.rejected.is_some() {
            break;
        }
        let clamp = |x: usize| x.clamp(seek, span.end);
        for s in &piece.segments {
            segments.push(Span {
                start: clamp(at(seek, s.start)),
                end: clamp(at(seek, s.end)),
                text: s.text.clone(),
            });
        }
        let next = piece.last_timestamp.map(|t| clamp(at(seek, t)));
        let moves_on = next.filter(|&n| {
            n >= seek + params.min_progress
                && speech_after(regions, n + params.slack, span.end) >= params.min_remaining
        });
        match (piece.ending, moves_on) {
            (Ending::Plain, _) => {
                segments.extend(piece.tail.map(|s| Span {
                    start: clamp(at(seek, s.start)),
                    end: span.end,
                    text: s.text,
                }));
                break;
            }
            // Speech goes on after the last timestamp: decode on from there (an unfinished
            // segment's text is decoded again whole).
            (_, Some(next)) => seek = next,
            (_, None) => {
                segments.extend(piece.tail.map(|s| Span {
                    start: clamp(at(seek, s.start)),
                    end: span.end,
                    text: s.text,
                }));
                break;
            }
        }
    }
    Ok(segments)
}

/// Speech in `regions` between `from` and `to`, in samples.
fn speech_after(regions: &[Range<usize>], from: usize, to: usize) -> usize {
    regions
        .iter()
        .map(|r| r.end.min(to).saturating_sub(r.start.max(from)))
        .sum()
}

/// The parts of `regions` that no segment covers (each segment widened by the slack), at
/// least `min_uncovered` long.
pub fn uncovered(
    regions: &[Range<usize>],
    segments: &[Span],
    params: &WindowParams,
) -> Vec<Range<usize>> {
    let mut covered: Vec<Range<usize>> = segments
        .iter()
        .map(|s| s.start.saturating_sub(params.slack)..s.end + params.slack)
        .collect();
    covered.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    for region in regions {
        let mut from = region.start;
        for c in &covered {
            if c.end <= from || c.start >= region.end {
                continue;
            }
            if c.start > from {
                out.push(from..c.start);
            }
            from = from.max(c.end);
            if from >= region.end {
                break;
            }
        }
        if from < region.end {
            out.push(from..region.end);
        }
    }
    out.retain(|r| r.end - r.start >= params.min_uncovered);
    out
}

/// Whether the text found in a gap is mostly words the segments around the gap already hold
/// (at least 60 % of its words, counted with multiplicity).
fn repeats_neighbours(found: &[Span], segments: &[Span], gap: &Range<usize>) -> bool {
    let words = |spans: &mut dyn Iterator<Item = &Span>| -> Vec<String> {
        spans
            .flat_map(|s| s.text.split_whitespace())
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .map(|c| if c == 'ё' { 'е' } else { c })
                    .collect::<String>()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let new = words(&mut found.iter());
    if new.is_empty() {
        return true;
    }
    let before = segments.iter().filter(|s| s.end <= gap.start).rev().take(2);
    let after = segments.iter().filter(|s| s.start >= gap.end).take(2);
    let mut pool = words(&mut before.chain(after));
    let mut hits = 0;
    for w in &new {
        if let Some(i) = pool.iter().position(|p| p == w) {
            pool.swap_remove(i);
            hits += 1;
        }
    }
    hits * 5 >= new.len() * 3
}

#[cfg(test)]
// Speech regions are lists of ranges; many test windows hold one region.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    const S: usize = SAMPLE_RATE;

    fn seg(start: f32, end: f32, text: &str) -> RawSegment {
        RawSegment {
            start,
            end,
            text: text.into(),
        }
    }

    fn piece(segments: Vec<RawSegment>, ending: Ending) -> Piece {
        Piece {
            last_timestamp: segments.last().map(|s| s.end),
            segments,
            tail: None,
            ending,
            rejected: None,
        }
    }

    fn secs(r: &Range<usize>) -> (f32, f32) {
        (r.start as f32 / S as f32, r.end as f32 / S as f32)
    }

    #[test]
    fn a_window_whose_text_ends_early_is_decoded_on_from_the_last_timestamp() {
        // 22 s of speech in two turns; the first decode stops after the first sentence.
        let regions = [0..6 * S, 7 * S..22 * S];
        let mut calls = Vec::new();
        let text = decode_window(22 * S, &regions, &WindowParams::default(), |r| {
            calls.push(r.clone());
            Ok::<_, ()>(if r.start == 0 {
                piece(vec![seg(0.0, 6.4, "Первая фраза.")], Ending::Closed)
            } else {
                piece(vec![seg(0.6, 15.0, "Вторая реплика.")], Ending::Closed)
            })
        })
        .unwrap();
        assert_eq!(calls, vec![0..22 * S, (6.4 * S as f32) as usize..22 * S]);
        assert_eq!(text.segments.len(), 2);
        assert_eq!(text.segments[1].text, "Вторая реплика.");
        assert!(text.uncovered.is_empty(), "{:?}", text.uncovered);
        assert_eq!(text.passes, 2);
    }

    #[test]
    fn a_continued_ending_seeks_and_an_unfinished_segment_is_decoded_again() {
        let regions = [0..20 * S];
        let mut calls = 0;
        let text = decode_window(20 * S, &regions, &WindowParams::default(), |r| {
            calls += 1;
            Ok::<_, ()>(match calls {
                // "... <|8.00|><|8.00|> EOT": go on in the next window.
                1 => piece(vec![seg(0.0, 8.0, "один")], Ending::Continued),
                // A segment the token limit cut: its text is decoded again from 4 s on.
                2 => Piece {
                    tail: Some(seg(4.0, 12.0, "обрезано")),
                    ..piece(vec![seg(0.0, 4.0, "два")], Ending::Unfinished)
                },
                _ => {
                    assert_eq!(r.start, 12 * S);
                    piece(vec![seg(0.0, 8.0, "три")], Ending::Closed)
                }
            })
        })
        .unwrap();
        let words: Vec<&str> = text.segments.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(words, ["один", "два", "три"]);
        assert!(text.uncovered.is_empty());
    }

    #[test]
    fn silence_after_the_last_timestamp_ends_the_window() {
        let regions = [0..5 * S];
        let mut calls = 0;
        let text = decode_window(9 * S, &regions, &WindowParams::default(), |_| {
            calls += 1;
            Ok::<_, ()>(piece(vec![seg(0.0, 5.0, "всё")], Ending::Continued))
        })
        .unwrap();
        assert_eq!(calls, 1);
        assert_eq!(text.segments.len(), 1);
    }

    #[test]
    fn speech_the_passes_skip_is_decoded_on_its_own() {
        // The text jumps from 8 s to 14 s, skipping the speech between.
        let regions = [0..20 * S];
        let text = decode_window(20 * S, &regions, &WindowParams::default(), |r| {
            Ok::<_, ()>(if r.start == 0 {
                piece(
                    vec![seg(0.0, 8.0, "начало"), seg(14.0, 20.0, "конец")],
                    Ending::Closed,
                )
            } else {
                piece(vec![seg(0.2, 6.2, "середина")], Ending::Closed)
            })
        })
        .unwrap();
        let words: Vec<&str> = text.segments.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(words, ["начало", "середина", "конец"]);
        assert_eq!(text.redecoded, 1);
        assert!(text.uncovered.is_empty());
    }

    #[test]
    fn speech_that_yields_nothing_is_reported_uncovered() {
        let regions = [0..4 * S, 10 * S..18 * S];
        let text = decode_window(20 * S, &regions, &WindowParams::default(), |r| {
            Ok::<_, ()>(if r.start == 0 {
                piece(vec![seg(0.0, 4.0, "слышно")], Ending::Closed)
            } else {
                Piece {
                    rejected: Some(Rejection::NoSpeech),
                    ..piece(Vec::new(), Ending::Closed)
                }
            })
        })
        .unwrap();
        assert_eq!(text.segments.len(), 1);
        assert_eq!(text.uncovered.len(), 1);
        assert_eq!(secs(&text.uncovered[0]), (10.0, 18.0));
        assert_eq!(text.speech, 12 * S);
    }

    #[test]
    fn text_found_again_next_to_a_gap_is_not_added_twice() {
        let regions = [0..20 * S];
        let text = decode_window(20 * S, &regions, &WindowParams::default(), |r| {
            Ok::<_, ()>(if r.start == 0 {
                piece(
                    vec![
                        seg(0.0, 6.0, "Номер был чистым и тихим."),
                        seg(12.0, 20.0, "Завтрак понравился."),
                    ],
                    Ending::Closed,
                )
            } else {
                piece(vec![seg(0.0, 5.0, "номер был чистым")], Ending::Closed)
            })
        })
        .unwrap();
        assert_eq!(text.segments.len(), 2);
        assert!(text.uncovered.is_empty());
    }

    #[test]
    fn uncovered_ignores_short_gaps_and_widens_segments_by_the_slack() {
        let p = WindowParams::default();
        let regions = [0..10 * S];
        let spans = [
            Span {
                start: 0,
                end: 3 * S,
                text: String::new(),
            },
            Span {
                start: 4 * S,
                end: 6 * S,
                text: String::new(),
            },
        ];
        // 3-4 s is under a second once widened; 6.4-10 s is left.
        let gaps = uncovered(&regions, &spans, &p);
        assert_eq!(gaps.len(), 1);
        assert_eq!(secs(&gaps[0]), (6.4, 10.0));
    }
}
