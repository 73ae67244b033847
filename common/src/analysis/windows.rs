//! Transcript windows: consecutive segments grouped into pieces of about half a minute to a
//! minute, the chunks that make what was said searchable beside the reports.
//!
//! A window never cuts a segment: it takes whole segments until it spans at least
//! [`WindowParams::min_ms`], and stops before a segment that would take it past
//! [`WindowParams::max_ms`] (a single longer segment is a window of its own). The next window
//! starts at the first segment that begins within the last [`WindowParams::overlap_ms`] of the
//! previous one, so a sentence near a boundary is whole in one window or the other; it always
//! moves on by at least one segment. Every window carries its segments' range, times and
//! character offsets into the stored transcript text (segments joined by single spaces, as
//! [`crate::db::transcription::text_of`] stores them), and its speaker when one role speaks
//! throughout. Windows are a pure function of the segments, so the same transcript always
//! gives the same windows (storing them again changes nothing).

use crate::db::transcription::Segment;

/// Window sizes, in milliseconds of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowParams {
    pub min_ms: i64,
    pub max_ms: i64,
    pub overlap_ms: i64,
}

impl Default for WindowParams {
    fn default() -> Self {
        Self {
            min_ms: 30_000,
            max_ms: 60_000,
            overlap_ms: 10_000,
        }
    }
}

/// One window of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub seq: i32,
    /// Indices of its first and last segment (inclusive) in the transcript's segments.
    pub first_segment: usize,
    pub last_segment: usize,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Character offsets into the stored transcript text.
    pub start_char: usize,
    pub end_char: usize,
    /// Its segments' texts joined by spaces: `transcript[start_char..end_char]`.
    pub text: String,
    /// The role speaking in all its segments, when they agree and are labelled.
    pub speaker: Option<String>,
}

/// The windows of a transcript's segments (segments with no text are skipped, as the stored
/// text skips them).
pub fn split(segments: &[Segment], params: WindowParams) -> Vec<Window> {
    // Character offsets of each non-empty segment in the stored text.
    let mut spans: Vec<(usize, usize, usize)> = Vec::new(); // (segment index, start, end)
    let mut at = 0usize;
    for (i, s) in segments.iter().enumerate() {
        let t = s.text.trim();
        if t.is_empty() {
            continue;
        }
        if !spans.is_empty() {
            at += 1;
        }
        let len = t.chars().count();
        spans.push((i, at, at + len));
        at += len;
    }
    let mut out = Vec::new();
    let mut first = 0usize;
    while first < spans.len() {
        let start_ms = segments[spans[first].0].start_ms;
        let mut last = first;
        while last + 1 < spans.len() {
            let span = segments[spans[last].0].end_ms - start_ms;
            if span >= params.min_ms {
                break;
            }
            let next_end = segments[spans[last + 1].0].end_ms;
            if next_end - start_ms > params.max_ms {
                break;
            }
            last += 1;
        }
        let members = &spans[first..=last];
        let end_ms = members
            .iter()
            .map(|&(i, _, _)| segments[i].end_ms)
            .max()
            .unwrap_or(start_ms)
            .max(start_ms);
        let text = members
            .iter()
            .map(|&(i, _, _)| segments[i].text.trim())
            .collect::<Vec<_>>()
            .join(" ");
        let mut roles = members
            .iter()
            .map(|&(i, _, _)| segments[i].speaker.as_deref());
        let first_role = roles.next().flatten();
        let speaker = first_role
            .filter(|r| roles.all(|o| o == Some(*r)))
            .map(str::to_owned);
        out.push(Window {
            seq: i32::try_from(out.len()).unwrap_or(i32::MAX),
            first_segment: spans[first].0,
            last_segment: spans[last].0,
            start_ms,
            end_ms,
            start_char: spans[first].1,
            end_char: spans[last].2,
            text,
            speaker,
        });
        if last + 1 >= spans.len() {
            break;
        }
        // Overlap: start again at the first segment beginning in the window's last stretch.
        let from = end_ms - params.overlap_ms;
        let next = (first + 1..=last)
            .find(|&k| segments[spans[k].0].start_ms >= from)
            .unwrap_or(last + 1);
        first = next.max(first + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::transcription::text_of;

    fn seg(start_s: i64, end_s: i64, text: &str, speaker: Option<&str>) -> Segment {
        Segment {
            start_ms: start_s * 1000,
            end_ms: end_s * 1000,
            text: text.into(),
            speaker: speaker.map(Into::into),
            speaker_id: None,
            voice: None,
        }
    }

    /// Segments of `len_s` seconds back to back, alternating roles.
    fn talk(n: i64, len_s: i64) -> Vec<Segment> {
        (0..n)
            .map(|i| {
                let role = if i % 2 == 0 {
                    "Сотрудник"
                } else {
                    "Клиент"
                };
                seg(
                    i * len_s,
                    (i + 1) * len_s,
                    &format!("фраза номер {i}"),
                    Some(role),
                )
            })
            .collect()
    }

    #[test]
    fn windows_cover_every_segment_whole_and_overlap() {
        let segments = talk(40, 7); // 280 s
        let text = text_of(&segments);
        let chars: Vec<char> = text.chars().collect();
        let windows = split(&segments, WindowParams::default());
        assert!(windows.len() >= 6, "{}", windows.len());
        let mut covered = vec![false; segments.len()];
        for (k, w) in windows.iter().enumerate() {
            assert_eq!(w.seq as usize, k);
            let span = w.end_ms - w.start_ms;
            let last = k + 1 == windows.len();
            assert!(span <= 60_000, "window {k} spans {span} ms");
            assert!(last || span >= 30_000, "window {k} spans {span} ms");
            assert_eq!(w.start_ms, segments[w.first_segment].start_ms);
            assert_eq!(w.end_ms, segments[w.last_segment].end_ms);
            let slice: String = chars[w.start_char..w.end_char].iter().collect();
            assert_eq!(slice, w.text, "window {k} is the transcript's text");
            for c in &mut covered[w.first_segment..=w.last_segment] {
                *c = true;
            }
            if k > 0 {
                let prev = &windows[k - 1];
                assert!(w.first_segment > prev.first_segment, "moves on");
                assert!(w.first_segment <= prev.last_segment, "overlaps");
            }
            // Two roles speak in every window of this talk.
            assert_eq!(w.speaker, None);
        }
        assert!(covered.iter().all(|c| *c));
    }

    #[test]
    fn one_speaker_long_segments_and_empty_ones() {
        let segments = vec![
            seg(0, 5, "Начинаю осмотр.", Some("Сотрудник")),
            seg(5, 6, "  ", Some("Сотрудник")),
            seg(6, 80, "Очень длинный монолог без пауз.", Some("Сотрудник")),
            seg(80, 90, "Итог.", Some("Сотрудник")),
        ];
        let text = text_of(&segments);
        let windows = split(&segments, WindowParams::default());
        let chars: Vec<char> = text.chars().collect();
        for w in &windows {
            let slice: String = chars[w.start_char..w.end_char].iter().collect();
            assert_eq!(slice, w.text);
            assert_eq!(w.speaker.as_deref(), Some("Сотрудник"));
        }
        // The 74 s segment is never cut, and is a window of its own past 60 s.
        assert!(
            windows
                .iter()
                .any(|w| w.text == "Очень длинный монолог без пауз.")
        );
        assert!(windows.last().unwrap().text.ends_with("Итог."));
        assert_eq!(split(&[], WindowParams::default()), Vec::new());
        assert_eq!(
            split(&segments, WindowParams::default()),
            windows,
            "deterministic"
        );
    }
}
