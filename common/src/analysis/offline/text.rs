//! Text primitives of the offline engine: sentences inside segments, passages (merged short
//! sentences, cut long ones), tokens for keyword matching and the `ЧЧ:ММ:СС` time stamp.
//!
//! Every span is a byte range of one segment's text, so a passage is always an exact
//! substring of the segment it came from (and of the transcript, which joins the trimmed
//! segment texts).

/// One sentence: a trimmed, non-empty byte range `start..end` of segment `seg`'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub seg: usize,
    pub start: usize,
    pub end: usize,
}

/// Characters that end a sentence when followed by white space or the end of the text.
fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

/// Characters that may close a sentence after its terminal mark (`».` is handled by the
/// hard break on `»`).
fn is_closing(c: char) -> bool {
    matches!(c, ')' | ']' | '"' | '\'' | '”' | '’' | '“')
}

/// Characters that always separate sentences and belong to none: line breaks (a passage is
/// rendered on one line) and guillemets (reports use «…» only around quotes, so a quote must
/// not contain them).
fn is_hard_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{2028}' | '\u{2029}' | '\u{0B}' | '\u{0C}' | '«' | '»'
    )
}

/// The sentences of one segment's text, in order. A sentence ends after a run of `.`, `!`,
/// `?`, `…` (and closing brackets or quotes) that is followed by white space or the end of the
/// text, so `3.5` and `т.е.` inside a sentence do not split it; line breaks and guillemets
/// always split and are dropped. Sentences are trimmed; pieces without a letter or digit are
/// dropped.
pub(crate) fn sentences(seg: usize, text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut push = |start: usize, end: usize| {
        let piece = &text[start..end];
        let lead = piece.len() - piece.trim_start().len();
        let trimmed = piece.trim();
        if trimmed.chars().any(char::is_alphanumeric) {
            out.push(Span {
                seg,
                start: start + lead,
                end: start + lead + trimmed.len(),
            });
        }
    };
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if is_hard_break(c) {
            push(start, at);
            start = at + c.len_utf8();
            i += 1;
            continue;
        }
        if is_terminal(c) && !(c == '.' && after_single_letter(&chars, i)) {
            let mut j = i + 1;
            while j < chars.len() && (is_terminal(chars[j].1) || is_closing(chars[j].1)) {
                j += 1;
            }
            let end = chars.get(j).map_or(text.len(), |&(b, _)| b);
            if j == chars.len() || chars[j].1.is_whitespace() || is_hard_break(chars[j].1) {
                push(start, end);
                start = end;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    if start < text.len() {
        push(start, text.len());
    }
    out
}

/// Whether the character before `chars[i]` is a one-letter word (`т.е.`, `т. е.`, initials),
/// after which a full stop is an abbreviation mark rather than the end of a sentence (`я` is
/// a word of its own and may well end one).
fn after_single_letter(chars: &[(usize, char)], i: usize) -> bool {
    i >= 1
        && chars[i - 1].1.is_alphabetic()
        && !matches!(chars[i - 1].1, 'я' | 'Я')
        && (i < 2 || !chars[i - 2].1.is_alphanumeric())
}

/// Byte offset of the `n`th character of `s` (or `s.len()`).
fn byte_at_char(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(b, _)| b)
}

/// Cuts `start..end` of `text` into pieces of at most `max_chars` characters, at the last
/// white space inside the limit (or at the limit itself when a single word is longer).
/// Pieces are trimmed and non-empty.
pub(crate) fn cut_long(
    text: &str,
    start: usize,
    end: usize,
    max_chars: usize,
) -> Vec<(usize, usize)> {
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    let mut from = start;
    while from < end {
        let rest = &text[from..end];
        let lead = rest.len() - rest.trim_start().len();
        from += lead;
        let rest = &text[from..end];
        if rest.is_empty() {
            break;
        }
        if rest.chars().count() <= max_chars {
            pieces.push((from, from + rest.trim_end().len()));
            break;
        }
        let limit = byte_at_char(rest, max_chars);
        // The last white space at or before the limit, so the piece is at most max_chars
        // characters; `rest` starts with a non-space, so a cut there leaves a non-empty piece.
        let cut = rest
            .char_indices()
            .take_while(|&(b, _)| b <= limit)
            .filter(|&(b, c)| b > 0 && c.is_whitespace())
            .last()
            .map_or(limit, |(b, _)| b);
        let piece = rest[..cut].trim_end();
        pieces.push((from, from + piece.len()));
        from += cut;
    }
    pieces
}

/// Lower case with `ё` → `е`: the form keywords, anchors and place names are compared in.
pub(crate) fn normalize(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ё' { 'е' } else { c })
        .collect()
}

/// The tokens of a text: maximal runs of letters, digits and hyphens, normalized
/// ([`normalize`]), with hyphens at either end dropped (a dash is not a word).
pub(crate) fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut flush = |cur: &mut String| {
        let t = cur.trim_matches('-');
        if !t.is_empty() {
            out.push(t.to_owned());
        }
        cur.clear();
    };
    for c in s.chars() {
        if c.is_alphanumeric() || c == '-' {
            for l in c.to_lowercase() {
                cur.push(if l == 'ё' { 'е' } else { l });
            }
        } else {
            flush(&mut cur);
        }
    }
    flush(&mut cur);
    out
}

/// How many of `keywords` (Snowball stems) match at least one of `stems` (the stems of a
/// passage's tokens), see [`super::stem::keyword_matches`].
pub(crate) fn keyword_hits(keywords: &[String], stems: &[String]) -> usize {
    keywords
        .iter()
        .filter(|k| stems.iter().any(|t| super::stem::keyword_matches(k, t)))
        .count()
}

pub(crate) use crate::quotes::hms;

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(text: &'a str, spans: &[Span]) -> Vec<&'a str> {
        spans.iter().map(|s| &text[s.start..s.end]).collect()
    }

    #[test]
    fn cyrillic_text_splits_into_trimmed_sentences() {
        let text = " Лобби. Освещение слишком холодное и яркое! Почему так? Всё… ясно ";
        assert_eq!(
            texts(text, &sentences(0, text)),
            [
                "Лобби.",
                "Освещение слишком холодное и яркое!",
                "Почему так?",
                "Всё…",
                "ясно"
            ]
        );
    }

    #[test]
    fn numbers_abbreviations_and_repeated_marks_do_not_split() {
        let text = "Потолок 3.5 метра, т.е. высокий?! Да... наверное. Это был я. Т. е. гость.";
        assert_eq!(
            texts(text, &sentences(0, text)),
            [
                "Потолок 3.5 метра, т.е. высокий?!",
                "Да...",
                "наверное.",
                "Это был я.",
                "Т. е. гость."
            ]
        );
    }

    #[test]
    fn closing_brackets_stay_with_their_sentence() {
        let text = "Вход слева (у парковки.) Потом лифт.";
        assert_eq!(
            texts(text, &sentences(0, text)),
            ["Вход слева (у парковки.)", "Потом лифт."]
        );
    }

    #[test]
    fn line_breaks_and_guillemets_always_split_and_are_dropped() {
        let text = "Он сказал «тут уютно» и ушёл\nДалее холл. — …";
        assert_eq!(
            texts(text, &sentences(3, text)),
            ["Он сказал", "тут уютно", "и ушёл", "Далее холл."]
        );
        assert!(sentences(3, text).iter().all(|s| s.seg == 3));
    }

    #[test]
    fn long_text_is_cut_at_word_boundaries_within_the_limit() {
        let text = "Очень длинное предложение про лобби и свет и мебель и акустику";
        let pieces = cut_long(text, 0, text.len(), 20);
        let got: Vec<&str> = pieces.iter().map(|&(a, b)| &text[a..b]).collect();
        assert_eq!(
            got,
            [
                "Очень длинное",
                "предложение про",
                "лобби и свет и",
                "мебель и акустику"
            ]
        );
        assert!(got.iter().all(|p| p.chars().count() <= 20));
        // A word exactly at the limit needs no cut.
        assert_eq!(cut_long("абв где", 0, 13, 7), [(0, 13)]);
    }

    #[test]
    fn a_single_word_longer_than_the_limit_is_cut_at_the_limit() {
        let text = "ааааааааааббббб конец";
        let pieces = cut_long(text, 0, text.len(), 10);
        let got: Vec<&str> = pieces.iter().map(|&(a, b)| &text[a..b]).collect();
        assert_eq!(got, ["аааааааааа", "ббббб", "конец"]);
    }

    #[test]
    fn tokens_are_lowercase_words_with_inner_hyphens_and_yo_as_ye() {
        assert_eq!(
            tokens("Wi-Fi ловит, ЁЛКА-палка — 3D-тур - «Всё»!"),
            ["wi-fi", "ловит", "елка-палка", "3d-тур", "все"]
        );
        assert_eq!(normalize("Тёплый СВЕТ Ёж"), "теплый свет еж");
    }

    #[test]
    fn a_keyword_matches_any_inflection_of_a_token_once() {
        use super::super::stem::{stem, stems};
        let toks = stems("Отзывы читаю всегда, и рейтинги отзывов тоже, а парковку искал долго");
        let kws: Vec<String> = ["отзыв", "рейтинг", "звезд", "читаю", "парковка"]
            .into_iter()
            .map(stem)
            .collect();
        assert_eq!(keyword_hits(&kws, &toks), 4);
        assert_eq!(keyword_hits(&[stem("ейтинг")], &toks), 0);
        // A stem of two letters matches only itself.
        assert_eq!(keyword_hits(&[stem("еда")], &stems("единственный")), 0);
        assert_eq!(keyword_hits(&[stem("еда")], &stems("еду")), 1);
    }

    #[test]
    fn times_print_as_hours_minutes_seconds() {
        assert_eq!(hms(0), "00:00:00");
        assert_eq!(hms(61_999), "00:01:01");
        assert_eq!(hms(3_723_000), "01:02:03");
        assert_eq!(hms(-5), "00:00:00");
    }
}
