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

/// Metadata of a recording as captured at upload: from the upload intent (confirmed by the
/// user) or from the object's `x-amz-meta-*` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingMetadata {
    /// `design` or `interview` (or the stored names).
    pub scenario: Option<String>,
    /// Building type of the place: `hotel`, `restaurant`, `spa` (or a word for one).
    pub building: Option<String>,
    /// Report type ids to produce; empty means every report type valid for the scenario and
    /// building.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub report_types: Vec<String>,
    pub employee: Option<String>,
    pub place: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    pub city: Option<String>,
    pub client: Option<String>,
    pub date: Option<NaiveDate>,
    /// The auditor's own sequence number of the recording.
    pub number: Option<i32>,
    /// `ru` or `en`; detected when absent.
    pub language: Option<String>,
}

/// A metadata field that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata field {field} is not valid: {reason}")]
pub struct MetadataError {
    pub field: &'static str,
    pub reason: String,
}

impl RecordingMetadata {
    /// Reads S3 user metadata (keys without `x-amz-meta-`, any case). Values may be
    /// percent-encoded UTF-8 (S3 headers are ASCII); lists are comma-separated.
    pub fn from_object_metadata<'a>(
        pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Self, MetadataError> {
        let mut meta = RecordingMetadata::default();
        for (key, raw) in pairs {
            let key = key.to_lowercase().replace('_', "-");
            let value = percent_decode(raw).map_err(|reason| MetadataError {
                field: field_name(&key),
                reason,
            })?;
            let text = normalize_text(&value);
            let list = || {
                value
                    .split(',')
                    .filter_map(normalize_text)
                    .collect::<Vec<_>>()
            };
            match key.as_str() {
                "scenario" => meta.scenario = text,
                "building" => meta.building = text,
                "report-types" | "report-type" => meta.report_types = list(),
                "employee" => meta.employee = text,
                "place" => meta.place = text,
                "zones" | "zone" => meta.zones = list(),
                "city" => meta.city = text,
                "client" => meta.client = text,
                "language" => meta.language = text,
                "date" => {
                    meta.date = text
                        .map(|d| {
                            NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|e| MetadataError {
                                field: "date",
                                reason: format!("{d:?} is not a YYYY-MM-DD date: {e}"),
                            })
                        })
                        .transpose()?;
                }
                "number" => {
                    meta.number = text
                        .map(|n| {
                            n.parse::<i32>().map_err(|_| MetadataError {
                                field: "number",
                                reason: format!("{n:?} is not a whole number"),
                            })
                        })
                        .transpose()?;
                }
                // Headers S3 clients add on their own are not ours to judge.
                _ => {}
            }
        }
        meta.validate()?;
        Ok(meta)
    }

    /// Checks the values whose vocabulary is fixed.
    pub fn validate(&self) -> Result<(), MetadataError> {
        // PostgreSQL text cannot hold U+0000: refused here, naming the field, rather than
        // failing the write with a database error.
        let texts = [
            ("scenario", self.scenario.as_slice()),
            ("building", self.building.as_slice()),
            ("report-types", self.report_types.as_slice()),
            ("employee", self.employee.as_slice()),
            ("place", self.place.as_slice()),
            ("zones", self.zones.as_slice()),
            ("city", self.city.as_slice()),
            ("client", self.client.as_slice()),
            ("language", self.language.as_slice()),
        ];
        for (field, values) in texts {
            if values.iter().any(|v| v.contains('\0')) {
                return Err(MetadataError {
                    field,
                    reason: "contains a NUL character (U+0000), which cannot be stored".into(),
                });
            }
        }
        if let Some(s) = self.scenario.as_deref()
            && canonical_scenario(s).is_none()
        {
            return Err(MetadataError {
                field: "scenario",
                reason: format!("{s:?} is neither design (Дизайн) nor interview (Интервью)"),
            });
        }
        if let Some(b) = self.building.as_deref()
            && canonical_building(b).is_none_or(|c| c == "non-building")
        {
            return Err(MetadataError {
                field: "building",
                reason: format!("{b:?} is not a hotel, restaurant or spa"),
            });
        }
        if let Some(l) = self.language.as_deref()
            && !matches!(l, "ru" | "en")
        {
            return Err(MetadataError {
                field: "language",
                reason: format!("{l:?} is not ru or en"),
            });
        }
        if self.number.is_some_and(|n| n < 0) {
            return Err(MetadataError {
                field: "number",
                reason: "must not be negative".into(),
            });
        }
        Ok(())
    }
}

/// `design` or `interview` for the words users type.
pub fn canonical_scenario(raw: &str) -> Option<&'static str> {
    match raw.trim().to_lowercase().as_str() {
        "design" | "дизайн" | "дизайн-аудит" | "аудит" => Some("design"),
        "interview" | "интервью" => Some("interview"),
        _ => None,
    }
}

fn normalize_text(s: &str) -> Option<String> {
    let t = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!t.is_empty()).then_some(t)
}

fn percent_decode(raw: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "not UTF-8 once percent-decoded".to_owned())
}

fn field_name(key: &str) -> &'static str {
    match key {
        "scenario" => "scenario",
        "building" => "building",
        "report-types" | "report-type" => "report_types",
        "employee" => "employee",
        "place" => "place",
        "zones" | "zone" => "zones",
        "city" => "city",
        "client" => "client",
        "date" => "date",
        "number" => "number",
        "language" => "language",
        _ => "metadata",
    }
}

#[cfg(test)]
mod metadata_tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<RecordingMetadata, MetadataError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RecordingMetadata::from_object_metadata(&map)
    }

    #[test]
    fn object_metadata_is_decoded_and_split() {
        let meta = parse(&[
            ("Scenario", "design"),
            ("building", "%D0%BE%D1%82%D0%B5%D0%BB%D1%8C"),
            ("report-types", "structured-audit, audit-compliance"),
            ("zones", "%D0%9B%D0%BE%D0%B1%D0%B1%D0%B8,spa"),
            ("date", "2026-03-14"),
            ("number", "12"),
            ("x-unrelated", "ignored"),
        ])
        .unwrap();
        assert_eq!(meta.scenario.as_deref(), Some("design"));
        assert_eq!(meta.building.as_deref(), Some("отель"));
        assert_eq!(
            meta.report_types,
            vec!["structured-audit", "audit-compliance"]
        );
        assert_eq!(meta.zones, vec!["Лобби", "spa"]);
        assert_eq!(meta.date, NaiveDate::from_ymd_opt(2026, 3, 14));
        assert_eq!(meta.number, Some(12));
    }

    #[test]
    fn malformed_metadata_names_the_field() {
        assert_eq!(parse(&[("date", "14.03.2026")]).unwrap_err().field, "date");
        assert_eq!(
            parse(&[("number", "двенадцать")]).unwrap_err().field,
            "number"
        );
        assert_eq!(
            parse(&[("scenario", "audit-trail")]).unwrap_err().field,
            "scenario"
        );
        assert_eq!(
            parse(&[("building", "casino")]).unwrap_err().field,
            "building"
        );
        assert_eq!(parse(&[("language", "de")]).unwrap_err().field, "language");
        assert_eq!(parse(&[("city", "%FF%FE")]).unwrap_err().field, "city");
        let err = parse(&[("date", "yesterday")]).unwrap_err().to_string();
        assert!(err.starts_with("metadata field date is not valid"), "{err}");
        // A NUL byte (percent-encoded, or in a list) names its field instead of failing the
        // database write.
        let err = parse(&[("city", "%D0%9A%00")]).unwrap_err();
        assert_eq!(err.field, "city");
        assert!(err.reason.contains("NUL"), "{}", err.reason);
        assert_eq!(
            parse(&[("zones", "lobby,a%00b")]).unwrap_err().field,
            "zones"
        );
    }
}
