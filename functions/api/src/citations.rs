//! Where a report's quotation sits in its transcript: the segments (and so the time range)
//! the quoted words were spoken in.

use common::db::transcription::Segment;
use serde::Serialize;
use utoipa::ToSchema;

/// The transcript segments a quotation was found in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Citation {
    /// Index of the first segment (0-based, as in `GET /transcriptions/{id}`).
    pub first_segment: usize,
    pub last_segment: usize,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Who said it, when every segment cited has the same speaker (`speaker_id` and role as
    /// in `GET /transcriptions/{id}`).
    pub speaker_id: Option<i16>,
    pub speaker: Option<String>,
}

/// Finds `quote` in the segments, ignoring case, white space and the quotation's own
/// surrounding punctuation; `None` when the words are not there in that order.
pub fn locate(quote: &str, segments: &[Segment]) -> Option<Citation> {
    let needle = normalize(quote.trim_matches(|c: char| !c.is_alphanumeric()));
    if needle.is_empty() {
        return None;
    }
    // The segments' normalized texts, one space apart, with where each one starts.
    let mut haystack = String::new();
    let mut starts = Vec::with_capacity(segments.len());
    for segment in segments {
        if !haystack.is_empty() {
            haystack.push(' ');
        }
        starts.push(haystack.len());
        haystack.push_str(&normalize(&segment.text));
    }
    let at = haystack.find(&needle)?;
    let end = at + needle.len();
    let segment_at = |pos: usize| starts.partition_point(|s| *s <= pos).saturating_sub(1);
    let (first, last) = (segment_at(at), segment_at(end.saturating_sub(1)));
    let cited = &segments[first..=last];
    let speaker_id = cited[0]
        .speaker_id
        .filter(|id| cited.iter().all(|s| s.speaker_id == Some(*id)));
    let speaker = cited[0]
        .speaker
        .clone()
        .filter(|r| cited.iter().all(|s| s.speaker.as_ref() == Some(r)));
    Some(Citation {
        first_segment: first,
        last_segment: last,
        start_ms: segments[first].start_ms,
        end_ms: segments[last].end_ms,
        speaker_id,
        speaker,
    })
}

fn normalize(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: i64, end_ms: i64, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.into(),
            speaker: None,
            ..Default::default()
        }
    }

    #[test]
    fn a_quote_spanning_two_segments_cites_both_time_ranges() {
        let segments = [
            seg(0, 4_000, "Входная группа хорошо освещена."),
            seg(4_000, 9_000, "В лобби слишком   шумно,"),
            seg(9_000, 12_000, "а номера тихие."),
        ];
        let c = locate("«В лобби слишком шумно, а номера тихие»", &segments).unwrap();
        assert_eq!((c.first_segment, c.last_segment), (1, 2));
        assert_eq!((c.start_ms, c.end_ms), (4_000, 12_000));
        let c = locate("входная группа", &segments).unwrap();
        assert_eq!((c.first_segment, c.last_segment), (0, 0));
        assert_eq!(locate("в лобби очень шумно", &segments), None);
        assert_eq!(locate("«»", &segments), None);
    }

    #[test]
    fn a_quote_names_its_speaker_when_one_person_said_all_of_it() {
        let mut segments = vec![
            seg(0, 4_000, "Как вам номер?"),
            seg(4_000, 9_000, "Номер тихий,"),
            seg(9_000, 12_000, "но завтрак скучный."),
        ];
        for (s, (id, role)) in
            segments
                .iter_mut()
                .zip([(0, "Сотрудник"), (1, "Клиент"), (1, "Клиент")])
        {
            s.speaker_id = Some(id);
            s.speaker = Some(role.into());
        }
        let c = locate("номер тихий, но завтрак скучный", &segments).unwrap();
        assert_eq!(
            (c.speaker_id, c.speaker.as_deref()),
            (Some(1), Some("Клиент"))
        );
        let c = locate("как вам номер? номер тихий", &segments).unwrap();
        assert_eq!((c.speaker_id, c.speaker), (None, None));
    }
}
