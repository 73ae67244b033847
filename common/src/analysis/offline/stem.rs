//! Russian morphology for matching: the Snowball Russian stemmer (`rust-stemmers`) over the
//! engine's tokens, so «парковка», «парковки» and «парковкой» are one word for keywords,
//! anchors and the fact matching of the report-quality benchmark.
//!
//! A stem is the Snowball stem of the normalized token (lower case, `ё` → `е`); tokens with
//! no Cyrillic letter (numbers, Latin words such as `wi-fi`) are kept as they are.

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

use super::text::{normalize, tokens};

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::Russian))
}

fn is_cyrillic(c: char) -> bool {
    matches!(c, 'а'..='я' | 'ё')
}

/// The stem of one normalized token.
pub(crate) fn stem_token(token: &str) -> String {
    if token.chars().any(is_cyrillic) {
        // Hyphenated words (`рум-сервис`, `спа-зона`) are stemmed on their last part.
        match token.rsplit_once('-') {
            Some((head, tail)) if !tail.is_empty() => {
                format!("{head}-{}", stemmer().stem(tail))
            }
            _ => stemmer().stem(token).into_owned(),
        }
    } else {
        token.to_owned()
    }
}

/// The stem of one word as written (any letter case, `ё` allowed).
pub fn stem(word: &str) -> String {
    stem_token(&normalize(word.trim()))
}

/// Whether a token's stem matches a keyword's stem: the token's stem starts with it, so a
/// keyword written as a word («парковка») matches every inflection, and one written as a
/// hand-cut stem («улыб») every word that begins with it. A keyword stem shorter than three
/// letters («еда» → «ед») matches only itself, not every word that starts with those letters.
pub(crate) fn keyword_matches(keyword: &str, token: &str) -> bool {
    if keyword.chars().count() < 3 {
        token == keyword
    } else {
        token.starts_with(keyword)
    }
}

/// The stems of every token of `text`, in order.
pub fn stems(text: &str) -> Vec<String> {
    tokens(text).iter().map(|t| stem_token(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflected_forms_share_one_stem() {
        for (a, b) in [
            ("парковка", "парковкой"),
            ("отзывы", "отзывов"),
            ("завтраки", "завтраков"),
            ("шумоизоляция", "шумоизоляцией"),
            ("Кремль", "Кремлём"),
            ("улыбается", "улыбались"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} / {b}");
        }
        assert_ne!(stem("парк"), stem("парковка"));
    }

    #[test]
    fn non_cyrillic_tokens_and_hyphenated_words_keep_their_shape() {
        assert_eq!(
            stems("Wi-Fi 24 рум-сервисом"),
            ["wi-fi", "24", "рум-сервис"]
        );
    }
}
