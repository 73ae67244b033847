//! Domain vocabulary: scenarios, buildings, report types and recording metadata.
//!
//! Which (building, report type) pairs are valid is data in PostgreSQL
//! (`buildings_report_type`), not code; this module only knows the stable ids users type and
//! how free-form names captured at upload are normalised.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Metadata that describes where and by whom a recording was made.
///
/// Names are stored exactly as given: normalisation ([`normalize_name`]) happens when the
/// metadata is captured, before the user confirms it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditMeta {
    /// Date of the audit or interview.
    pub date: NaiveDate,
    pub employee: Option<String>,
    /// Venue name; its building type is the audit's building.
    pub place: Option<String>,
    /// Zones of the place the recording covers (lobby, rooms, spa area...).
    #[serde(default)]
    pub zones: Vec<String>,
    /// City (design audits).
    pub city: Option<String>,
    /// The interviewee (interviews).
    pub client: Option<String>,
}

/// Trims, collapses inner white space and puts every word (and every part of a hyphenated
/// word) in Title Case: `"  санкт-петербург "` becomes `"Санкт-Петербург"`.
/// Returns `None` when nothing is left.
pub fn normalize_name(raw: &str) -> Option<String> {
    let words: Vec<String> = raw.split_whitespace().map(title_case_word).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

fn title_case_word(word: &str) -> String {
    word.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The canonical building id (`hotel`, `restaurant`, `spa`, `non-building`) for the words a
/// user may type or say: stored names, English ids, and common Russian synonyms.
pub fn canonical_building(raw: &str) -> Option<&'static str> {
    let lower = raw.trim().to_lowercase().replace('ё', "е");
    let stem_matches = |stems: &[&str]| stems.iter().any(|s| lower.starts_with(s));
    if lower == "non-building" || lower == "без здания" {
        Some("non-building")
    } else if stem_matches(&[
        "отел",
        "гостиниц",
        "hotel",
        "хостел",
        "апарт-отел",
        "мини-отел",
    ]) {
        Some("hotel")
    } else if lower == "бар"
        || stem_matches(&["ресторан", "restaurant", "кафе", "кофейн", "бистро"])
    {
        Some("restaurant")
    } else if stem_matches(&[
        "центр здоровья",
        "spa",
        "спа",
        "wellness",
        "велнес",
        "оздоров",
    ]) {
        Some("spa")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_collapsed_and_title_cased() {
        assert_eq!(
            normalize_name("  иван   петров "),
            Some("Иван Петров".into())
        );
        assert_eq!(
            normalize_name("санкт-петербург"),
            Some("Санкт-Петербург".into())
        );
        assert_eq!(normalize_name("ЁЛКИ палки"), Some("Ёлки Палки".into()));
        assert_eq!(normalize_name(" \t\n"), None);
    }

    #[test]
    fn building_words_map_to_the_canonical_building() {
        assert_eq!(canonical_building("Гостиница"), Some("hotel"));
        assert_eq!(canonical_building("Отель"), Some("hotel"));
        assert_eq!(canonical_building("ресторан"), Some("restaurant"));
        assert_eq!(canonical_building("Центр Здоровья"), Some("spa"));
        assert_eq!(canonical_building("СПА-комплекс"), Some("spa"));
        assert_eq!(canonical_building("non-building"), Some("non-building"));
        assert_eq!(canonical_building("склад"), None);
    }
}
