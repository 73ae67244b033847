//! Verification of quotations: every «…» in a report should be a verbatim piece of the
//! transcript. Reports from any engine are checked; quotes not found are flagged and counted.
//!
//! Comparison ignores differences of white space and of letter case, and treats `ё` as `е`
//! (models often normalise both). A quote shortened with an ellipsis (`…` or `...`) is
//! verified when all of its parts occur in the transcript in order.

use crate::db::audit::Quote;

/// `ЧЧ:ММ:СС` of a moment in a recording, as reports and answers cite it (hours grow past 99
/// if they must; negative is 0).
pub fn hms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The quotations of a report: the text between each outermost `«` and its `»`.
pub fn extract(report: &str) -> Vec<String> {
    let mut quotes = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for ch in report.chars() {
        match ch {
            '«' => {
                if depth > 0 {
                    current.push(ch);
                }
                depth += 1;
            }
            '»' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let q = current.trim();
                    if !q.is_empty() {
                        quotes.push(q.to_owned());
                    }
                    current.clear();
                } else {
                    current.push(ch);
                }
            }
            _ if depth > 0 => current.push(ch),
            _ => {}
        }
    }
    quotes
}

/// A transcript prepared for lookups.
#[derive(Debug, Clone)]
pub struct Verifier {
    haystack: String,
}

impl Verifier {
    pub fn new(transcript: &str) -> Self {
        Self {
            haystack: normalize(transcript),
        }
    }

    /// Whether `quote` occurs in the transcript (see the module's rules).
    pub fn contains(&self, quote: &str) -> bool {
        let unified = quote.replace("...", "…");
        let parts: Vec<String> = unified
            .split('…')
            .map(normalize)
            .filter(|p| p.chars().any(char::is_alphanumeric))
            .collect();
        if parts.is_empty() {
            return false;
        }
        let mut from = 0;
        for part in parts {
            match self.haystack[from..].find(&part) {
                Some(at) => from += at + part.len(),
                None => return false,
            }
        }
        true
    }

    /// Every quotation of `report` with whether it was found.
    pub fn check(&self, report: &str) -> Vec<Quote> {
        extract(report)
            .into_iter()
            .map(|text| {
                let verified = self.contains(&text);
                Quote { text, verified }
            })
            .collect()
    }
}

/// Lower case, `ё` as `е`, runs of white space as one space, trimmed; punctuation at the
/// ends of the text dropped (a quote often ends where the sentence's full stop is not).
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        for lower in ch.to_lowercase() {
            out.push(match lower {
                'ё' => 'е',
                other => other,
            });
        }
    }
    let trimmed = out.trim_matches(|c: char| !c.is_alphanumeric());
    trimmed.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_outermost_quotes() {
        let report = "- «Лобби тёмное» (00:01:02)\n- Гость: «он сказал «нет» и ушёл»\n«»";
        assert_eq!(
            extract(report),
            vec!["Лобби тёмное", "он сказал «нет» и ушёл"]
        );
        assert!(extract("нет цитат").is_empty());
        // An unclosed quotation is not a quotation.
        assert!(extract("«обрыв").is_empty());
    }

    #[test]
    fn verifies_modulo_space_case_yo_and_end_punctuation() {
        let v = Verifier::new("Ну, в целом ЛОББИ тёмное,  и\nосвещение слабое. Номера чистые.");
        assert!(v.contains("лобби темное, и освещение слабое"));
        assert!(v.contains("Номера чистые."));
        assert!(v.contains("в целом лобби … освещение слабое"));
        assert!(v.contains("в целом лобби ... номера чистые"));
        assert!(!v.contains("лобби светлое"));
        assert!(!v.contains("освещение слабое … в целом лобби"));
        assert!(!v.contains("…"));
        let quotes = v.check("«Номера чистые» и «персонал грубый»");
        assert_eq!(
            quotes.iter().map(|q| q.verified).collect::<Vec<_>>(),
            vec![true, false]
        );
    }
}
