//! Splitting a narrative report into overlapping chunks for search.
//!
//! As the old system did (its users' search quality depends on it): pieces of about 800
//! characters with 100 of overlap, cut at a paragraph break if one is in the second half of
//! the piece, else at a line break, else between words, and only as a last resort inside a
//! word. Offsets are in characters (not bytes) of the report text, and every chunk's text is
//! exactly `report[start..end]`. Metadata stays out of the text: it lives in the audit the
//! chunk belongs to.

/// Chunk sizes, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    pub size: usize,
    pub overlap: usize,
}

impl Default for ChunkParams {
    fn default() -> Self {
        Self {
            size: 800,
            overlap: 100,
        }
    }
}

/// One piece of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChunk {
    pub seq: i32,
    pub text: String,
    /// Character offsets into the report: `text == report.chars()[start_char..end_char]`.
    pub start_char: usize,
    pub end_char: usize,
}

/// Splits `text` into chunks; white space at either end of a chunk is left out, and a text
/// with nothing but white space gives no chunks.
pub fn split(text: &str, params: ChunkParams) -> Vec<TextChunk> {
    let size = params.size.max(2);
    let overlap = params.overlap.min(size / 2);
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let mut start = skip_space(&chars, 0);
    while start < n {
        let end = if n - start <= size {
            n
        } else {
            cut_point(&chars, start, start + size)
        };
        let (s, e) = trim(&chars, start, end);
        if s < e {
            out.push(TextChunk {
                seq: i32::try_from(out.len()).unwrap_or(i32::MAX),
                text: chars[s..e].iter().collect(),
                start_char: s,
                end_char: e,
            });
        }
        if end >= n {
            break;
        }
        // Step back by the overlap, then forward to the start of a word, never behind the
        // last start (so every step makes progress).
        let mut next = end.saturating_sub(overlap).max(start + 1);
        if next < end && !chars[next - 1].is_whitespace() {
            while next < end && !chars[next].is_whitespace() {
                next += 1;
            }
        }
        start = skip_space(&chars, next);
    }
    out
}

/// Where to end a piece that starts at `start` and may not go past `limit`: the last paragraph
/// break, line break or space in the second half of the window (in that order of preference),
/// or `limit` itself.
fn cut_point(chars: &[char], start: usize, limit: usize) -> usize {
    let floor = start + (limit - start) / 2;
    let window = &chars[floor..limit];
    let last = |pred: &dyn Fn(usize) -> bool| {
        (0..window.len())
            .rev()
            .find(|&i| pred(i))
            .map(|i| floor + i + 1)
    };
    let paragraph = last(&|i| window[i] == '\n' && i > 0 && window[i - 1] == '\n');
    let line = || last(&|i| window[i] == '\n');
    let word = || last(&|i| window[i].is_whitespace());
    paragraph.or_else(line).or_else(word).unwrap_or(limit)
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

fn trim(chars: &[char], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && chars[s].is_whitespace() {
        s += 1;
    }
    while e > s && chars[e - 1].is_whitespace() {
        e -= 1;
    }
    (s, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(text: &str, c: &TextChunk) -> String {
        text.chars()
            .skip(c.start_char)
            .take(c.end_char - c.start_char)
            .collect()
    }

    #[test]
    fn short_text_is_one_chunk_and_blank_is_none() {
        let chunks = split("  Фасад в хорошем состоянии.  ", ChunkParams::default());
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "Фасад в хорошем состоянии.");
        assert_eq!((chunks[0].start_char, chunks[0].end_char), (2, 28));
        assert!(split(" \n\n \t", ChunkParams::default()).is_empty());
        assert!(split("", ChunkParams::default()).is_empty());
    }

    #[test]
    fn chunks_are_exact_slices_within_size_and_overlap() {
        let para = "Лобби просторное, свет тёплый, но навигация к лифтам неочевидна. ";
        let text = format!(
            "# Отчёт\n\n{}\n\n{}\n{}",
            para.repeat(14),
            para.repeat(9),
            para.repeat(20)
        );
        let params = ChunkParams::default();
        let chunks = split(&text, params);
        assert!(chunks.len() > 3);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.seq, i as i32);
            assert_eq!(slice(&text, c), c.text);
            assert!(c.text.chars().count() <= params.size, "chunk {i} too long");
            assert!(!c.text.starts_with(char::is_whitespace));
            assert!(!c.text.ends_with(char::is_whitespace));
        }
        for pair in chunks.windows(2) {
            // Consecutive chunks overlap (by at most the overlap) and move forward.
            assert!(pair[1].start_char > pair[0].start_char);
            assert!(pair[1].start_char <= pair[0].end_char);
            assert!(pair[0].end_char - pair[1].start_char <= params.overlap);
        }
        assert_eq!(
            chunks.last().map(|c| c.end_char),
            Some(text.trim_end().chars().count())
        );
    }

    #[test]
    fn prefers_paragraph_then_line_then_word_boundaries() {
        let params = ChunkParams {
            size: 40,
            overlap: 0,
        };
        let text = "aaaa bbbb cccc dddd eeee\n\nffff gggg hhhh iiii jjjj kkkk";
        let chunks = split(text, params);
        assert_eq!(chunks[0].text, "aaaa bbbb cccc dddd eeee");
        let text = "aaaa bbbb cccc dddd eeee\nffff gggg hhhh iiii jjjj kkkk";
        assert_eq!(split(text, params)[0].text, "aaaa bbbb cccc dddd eeee");
        let text = "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk";
        let chunks = split(text, params);
        // The space right after `hhhh` is the 40th character: the piece may end there.
        assert_eq!(chunks[0].text, "aaaa bbbb cccc dddd eeee ffff gggg hhhh");
        assert_eq!(chunks[1].text, "iiii jjjj kkkk");
    }

    #[test]
    fn never_starts_mid_word_after_overlap_and_cuts_unbroken_text() {
        let params = ChunkParams {
            size: 30,
            overlap: 8,
        };
        let text = "один два три четыре пять шесть семь восемь девять десять одиннадцать";
        let words: Vec<&str> = text.split(' ').collect();
        for c in split(text, params) {
            assert!(words.iter().any(|w| c.text.starts_with(w)), "{:?}", c.text);
        }
        let blob = "ж".repeat(95);
        let chunks = split(&blob, params);
        assert_eq!(
            chunks.iter().map(|c| c.text.chars().count()).max(),
            Some(30)
        );
        assert_eq!(chunks.last().map(|c| c.end_char), Some(95));
    }
}
