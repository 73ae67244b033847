//! Where in a transcript a quote comes from: the segments it spans.
//!
//! Matching follows quote verification's rules (letter case, `ё`/`е` and white space aside,
//! punctuation at the ends of a quote ignored, ellipsis parts in order), over the segments'
//! texts joined by spaces, so a quote that runs across a segment boundary is found too.

use std::ops::RangeInclusive;

/// A transcript's segments prepared for quote lookups.
#[derive(Debug, Clone)]
pub struct SegmentLocator {
    haystack: String,
    /// Byte offset in `haystack` where each segment starts.
    starts: Vec<usize>,
}

impl SegmentLocator {
    pub fn new<'a>(segments: impl IntoIterator<Item = &'a str>) -> Self {
        let mut haystack = String::new();
        let mut starts = Vec::new();
        for text in segments {
            if !haystack.is_empty() && !haystack.ends_with(' ') {
                haystack.push(' ');
            }
            starts.push(haystack.len());
            push_normalized(&mut haystack, text);
        }
        Self { haystack, starts }
    }

    /// The segments (by position) the quote spans, first to last; `None` if it is not in the
    /// transcript.
    pub fn locate(&self, quote: &str) -> Option<RangeInclusive<usize>> {
        let unified = quote.replace("...", "…");
        let parts: Vec<String> = unified
            .split('…')
            .map(|p| {
                let mut n = String::new();
                push_normalized(&mut n, p);
                n.trim_matches(|c: char| !c.is_alphanumeric()).to_owned()
            })
            .filter(|p| p.chars().any(char::is_alphanumeric))
            .collect();
        let mut from = 0;
        let mut first = None;
        let mut last = 0;
        for part in &parts {
            let at = from + self.haystack[from..].find(part.as_str())?;
            first.get_or_insert(at);
            last = at + part.len() - 1;
            from = at + part.len();
        }
        let first = first?;
        Some(self.segment_at(first)..=self.segment_at(last))
    }

    fn segment_at(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }
}

/// Appends `text` lower-cased, with `ё` as `е` and runs of white space as one space.
fn push_normalized(out: &mut String, text: &str) {
    let mut space = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            space = !out.is_empty() && !out.ends_with(' ');
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        for lower in ch.to_lowercase() {
            out.push(if lower == 'ё' { 'е' } else { lower });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locator() -> SegmentLocator {
        SegmentLocator::new([
            "Добрый день, мы в лобби.",
            "Освещение  слишком ХОЛОДНОЕ,",
            "и стойка ресепшн тёмная.",
            "Лобби большое.",
        ])
    }

    #[test]
    fn finds_the_segment_of_a_quote() {
        assert_eq!(locator().locate("освещение слишком холодное"), Some(1..=1));
        assert_eq!(locator().locate("«Лобби большое.»"), Some(3..=3));
        assert_eq!(locator().locate("Лобби большое."), Some(3..=3));
    }

    #[test]
    fn a_quote_may_span_segments_and_skip_with_an_ellipsis() {
        assert_eq!(locator().locate("холодное, и стойка"), Some(1..=2));
        assert_eq!(
            locator().locate("Добрый день… стойка ресепшн темная"),
            Some(0..=2)
        );
    }

    #[test]
    fn missing_quotes_and_parts_out_of_order_are_not_found() {
        assert_eq!(locator().locate("бассейн с подогревом"), None);
        assert_eq!(locator().locate("стойка… добрый день"), None);
        assert_eq!(locator().locate("..."), None);
        assert_eq!(SegmentLocator::new([]).locate("лобби"), None);
    }
}
