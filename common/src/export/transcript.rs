//! Transcripts as the files people load into players and editors: plain text with times and
//! speakers, SubRip (SRT), WebVTT and DOCX.
//!
//! - **Text**: a header (the recording, its language, its duration), a blank line, then one
//!   line a segment: `[HH:MM:SS] Speaker: text`, the speaker left out when unknown. A
//!   transcript stored without segments (text only) gives its text after the header.
//! - **SRT**: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, the speaker as a prefix of the
//!   cue's text (`Клиент: ...`).
//! - **WebVTT**: `WEBVTT`, cues `HH:MM:SS.mmm --> HH:MM:SS.mmm`, the speaker as a voice span
//!   (`<v Клиент>...`); `&`, `<` and `>` of the text as character references.
//! - **DOCX**: the text format's header (the first line as the title), then a paragraph a
//!   segment, `[HH:MM:SS] Speaker: text` with the speaker in bold.
//!
//! Speakers: the role (`Сотрудник`, `Клиент`) where roles are known, `Говорящий N` where
//! voices were only told apart (N counted from 1, as people count), and `Клиент (говорящий
//! N)` where one role is held by several voices (two guests), so that diarized speakers stay
//! apart in every format.
//!
//! Cues: a long segment is cut at word boundaries (at a sentence end when one is near) into
//! cues of at most two lines of about [`LINE_CHARS`] characters (the usual subtitle limit,
//! 42), its time shared between them in proportion to their characters. Cues never overlap and never end at or before they start:
//! a cue that runs into the next one ends where the next starts, and a segment without
//! duration is shown for [`MIN_CUE_MS`] (or until the next cue starts). Text is one line of
//! words before it is cut, so blank lines and line breaks inside a segment disappear, and no
//! SRT line can be read as a timing line (`-->` is written `-- >`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::str::FromStr;

use super::docx::{self, Document, Run};
use crate::db::transcription::{Segment, Transcription};
use crate::quotes::hms;
use crate::{Error, Result};

/// The longest line of a cue, in characters; a cue holds two.
pub const LINE_CHARS: usize = 42;
const CUE_CHARS: usize = 2 * LINE_CHARS;
/// How long a segment without duration of its own is shown, unless the next cue starts sooner.
pub const MIN_CUE_MS: i64 = 1_000;

/// The formats a transcript exports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Txt,
    Srt,
    Vtt,
    Docx,
}

impl Format {
    /// The accepted names, for messages.
    pub const NAMES: &'static str = "txt, srt, vtt or docx";

    pub fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Docx => "docx",
        }
    }

    /// The media type, with its charset (every format is UTF-8).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Txt => "text/plain; charset=utf-8",
            Format::Srt => "application/x-subrip; charset=utf-8",
            Format::Vtt => "text/vtt; charset=utf-8",
            Format::Docx => docx::CONTENT_TYPE,
        }
    }
}

impl FromStr for Format {
    type Err = Error;

    /// `txt`, `srt`, `vtt` or `docx`, in any case; anything else is invalid input naming `format`.
    fn from_str(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "txt" => Ok(Format::Txt),
            "srt" => Ok(Format::Srt),
            "vtt" => Ok(Format::Vtt),
            "docx" => Ok(Format::Docx),
            _ => Err(Error::InvalidInput {
                field: "format",
                reason: format!(
                    "{name:?} is not a transcript export format; use {}",
                    Format::NAMES
                ),
            }),
        }
    }
}

/// What an export is made of: a stored transcription, or one just made (`vox transcribe`).
#[derive(Debug, Clone, Copy)]
pub struct Transcript<'a> {
    /// The recording's file name or object key.
    pub recording: &'a str,
    /// The auditor's own number of the recording.
    pub number_audio: Option<i32>,
    pub language: Option<&'a str>,
    pub audio_seconds: Option<f64>,
    /// The whole text: what the text format gives when there are no segments.
    pub text: &'a str,
    pub segments: &'a [Segment],
}

impl<'a> From<&'a Transcription> for Transcript<'a> {
    fn from(t: &'a Transcription) -> Self {
        Self {
            recording: &t.audio_file_name,
            number_audio: t.number_audio,
            language: t.language.as_deref(),
            audio_seconds: t.audio_seconds,
            text: &t.text,
            segments: &t.segments,
        }
    }
}

/// The transcript as a document of `format` (UTF-8 text, or a DOCX file). SRT and WebVTT need
/// timed segments: a transcript stored as text only is invalid input naming `format` (its
/// text exports as `txt` or `docx`).
pub fn render(t: &Transcript<'_>, format: Format) -> Result<Vec<u8>> {
    let timed = matches!(format, Format::Srt | Format::Vtt);
    if timed && t.segments.is_empty() && !t.text.trim().is_empty() {
        return Err(Error::InvalidInput {
            field: "format",
            reason: format!(
                "the transcript has no timed segments to make {} cues of; use txt or docx",
                format.extension()
            ),
        });
    }
    Ok(match format {
        Format::Txt => txt(t).into_bytes(),
        Format::Srt => srt(t.segments).into_bytes(),
        Format::Vtt => vtt(t.segments).into_bytes(),
        Format::Docx => docx(t).to_bytes(),
    })
}

/// A safe ASCII file name for the export of `recording`: the last part of its name or key
/// without its extension, Cyrillic transliterated, anything else but letters, digits, `.`,
/// `-` and `_` replaced by `_`, then the format's extension. The stem matches the
/// recording's, so players that look for subtitles beside a media file find them.
/// `fallback` (itself safe) is the stem when nothing usable is left.
pub fn file_name(recording: &str, fallback: &str, format: Format) -> String {
    let base = recording.rsplit(['/', '\\']).next().unwrap_or_default();
    let stem = match base.rfind('.') {
        Some(dot) if dot > 0 => &base[..dot],
        _ => base,
    };
    let mut safe = String::new();
    for c in stem.chars() {
        let part = latin(c).unwrap_or_else(|| "_".to_owned());
        for c in part.chars() {
            // Runs of replaced characters collapse into one underscore.
            if !(c == '_' && safe.ends_with('_')) {
                safe.push(c);
            }
        }
    }
    let safe: String = safe
        .trim_matches(['_', '.', '-'])
        .chars()
        .take(100)
        .collect();
    let stem = if safe.is_empty() { fallback } else { &safe };
    format!("{stem}.{}", format.extension())
}

/// The lines of the header: the recording, its language, its duration.
fn header(t: &Transcript<'_>) -> Vec<String> {
    let number = t
        .number_audio
        .map(|n| format!(" (№ {n})"))
        .unwrap_or_default();
    let mut lines = vec![format!("Запись: {}{number}", one_line(t.recording))];
    if let Some(language) = t.language.map(one_line).filter(|l| !l.is_empty()) {
        lines.push(format!("Язык: {language}"));
    }
    let duration_ms = t
        .audio_seconds
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| (s * 1000.0).round() as i64)
        .or_else(|| t.segments.iter().map(|s| s.end_ms).max());
    if let Some(ms) = duration_ms {
        lines.push(format!("Длительность: {}", hms(ms)));
    }
    lines
}

fn docx(t: &Transcript<'_>) -> Document {
    let mut doc = Document::new();
    for (i, line) in header(t).into_iter().enumerate() {
        if i == 0 {
            doc.title(line);
        } else {
            doc.paragraph(line);
        }
    }
    if t.segments.is_empty() {
        for paragraph in t.text.split("\n\n").map(one_line).filter(|p| !p.is_empty()) {
            doc.paragraph(paragraph);
        }
        return doc;
    }
    for (segment, label) in t.segments.iter().zip(speaker_labels(t.segments)) {
        let text = one_line(&segment.text);
        if text.is_empty() {
            continue;
        }
        let mut runs = vec![Run::plain(format!("[{}] ", hms(segment.start_ms)))];
        if let Some(label) = label {
            runs.push(Run::bold(label));
            runs.push(Run::plain(": "));
        }
        runs.push(Run::plain(text));
        doc.runs(runs);
    }
    doc
}

fn txt(t: &Transcript<'_>) -> String {
    let mut out = String::new();
    for line in header(t) {
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
    if t.segments.is_empty() {
        let text = t.text.trim();
        if !text.is_empty() {
            out.push_str(text);
            out.push('\n');
        }
        return out;
    }
    for (segment, label) in t.segments.iter().zip(speaker_labels(t.segments)) {
        let text = one_line(&segment.text);
        if text.is_empty() {
            continue;
        }
        let _ = write!(out, "[{}] ", hms(segment.start_ms));
        if let Some(label) = label {
            let _ = write!(out, "{label}: ");
        }
        let _ = writeln!(out, "{text}");
    }
    out
}

fn srt(segments: &[Segment]) -> String {
    let labels = speaker_labels(segments);
    let blocks: Vec<String> = cues(segments, &labels)
        .iter()
        .enumerate()
        .map(|(i, cue)| {
            let mut block = format!(
                "{}\n{} --> {}\n",
                i + 1,
                stamp(cue.start_ms, ','),
                stamp(cue.end_ms, ',')
            );
            for (n, line) in cue.lines.iter().enumerate() {
                let line = match cue.speaker {
                    Some(speaker) if n == 0 => format!("{speaker}: {line}"),
                    _ => line.clone(),
                };
                let _ = writeln!(block, "{}", line.replace("-->", "-- >"));
            }
            block
        })
        .collect();
    blocks.join("\n")
}

fn vtt(segments: &[Segment]) -> String {
    let labels = speaker_labels(segments);
    let mut out = String::from("WEBVTT\n");
    for cue in cues(segments, &labels) {
        let _ = writeln!(
            out,
            "\n{} --> {}",
            stamp(cue.start_ms, '.'),
            stamp(cue.end_ms, '.')
        );
        for (n, line) in cue.lines.iter().enumerate() {
            if n == 0
                && let Some(speaker) = cue.speaker
            {
                let _ = write!(out, "<v {}>", vtt_escape(speaker));
            }
            let _ = writeln!(out, "{}", vtt_escape(line));
        }
    }
    out
}

/// One subtitle: its time and its one or two lines, the speaker apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cue<'a> {
    start_ms: i64,
    end_ms: i64,
    speaker: Option<&'a str>,
    lines: Vec<String>,
}

fn cues<'a>(segments: &[Segment], labels: &'a [Option<String>]) -> Vec<Cue<'a>> {
    let mut cues = Vec::new();
    for (segment, label) in segments.iter().zip(labels) {
        let words: Vec<&str> = segment.text.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        let pieces = pieces(&words);
        let start = segment.start_ms.max(0);
        let span = segment.end_ms.max(start) - start;
        let total = pieces.iter().map(|p| chars(p)).sum::<usize>().max(1) as i64;
        let mut done = 0;
        for piece in pieces {
            let from = start + span * done / total;
            done += chars(&piece) as i64;
            cues.push(Cue {
                start_ms: from,
                end_ms: start + span * done / total,
                speaker: label.as_deref(),
                lines: two_lines(&piece),
            });
        }
    }
    separate(&mut cues);
    cues
}

/// The words as pieces of at most [`CUE_CHARS`] characters (a longer word is a piece alone),
/// ending where a sentence ends when that leaves the piece at least half full.
fn pieces(words: &[&str]) -> Vec<String> {
    let len = |ws: &[&str]| ws.iter().map(|w| chars(w)).sum::<usize>() + ws.len().saturating_sub(1);
    let mut pieces = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for &word in words {
        // Each turn moves a non-empty prefix out of `current`, so this ends.
        while !current.is_empty() && len(&current) + 1 + chars(word) > CUE_CHARS {
            let keep = current
                .iter()
                .rposition(|w| w.ends_with(['.', '!', '?', '…']))
                .map(|i| i + 1)
                .filter(|&n| n < current.len() && len(&current[..n]) >= CUE_CHARS / 2)
                .unwrap_or(current.len());
            let rest = current.split_off(keep);
            pieces.push(current.join(" "));
            current = rest;
        }
        current.push(word);
    }
    if !current.is_empty() {
        pieces.push(current.join(" "));
    }
    pieces
}

/// A piece as one line, or two cut at the space nearest its middle.
fn two_lines(piece: &str) -> Vec<String> {
    let total = chars(piece);
    if total <= LINE_CHARS {
        return vec![piece.to_owned()];
    }
    let cut = piece
        .char_indices()
        .enumerate()
        .filter(|(_, (_, c))| *c == ' ')
        .min_by_key(|(position, _)| (2 * position).abs_diff(total))
        .map(|(_, (byte, _))| byte);
    match cut {
        Some(byte) => vec![piece[..byte].to_owned(), piece[byte + 1..].to_owned()],
        None => vec![piece.to_owned()],
    }
}

/// Makes the cues follow one another: each starts no earlier than the previous ends, ends
/// after it starts, and ends no later than the next one starts.
fn separate(cues: &mut [Cue<'_>]) {
    let mut floor = 0;
    for i in 0..cues.len() {
        let start = cues[i].start_ms.max(floor);
        let mut end = cues[i].end_ms;
        if end <= start {
            end = start + MIN_CUE_MS;
        }
        if let Some(next) = cues.get(i + 1).map(|c| c.start_ms).filter(|&n| n > start) {
            end = end.min(next);
        }
        cues[i].start_ms = start;
        cues[i].end_ms = end;
        floor = end;
    }
}

/// Each segment's speaker as shown, or `None` when unknown.
fn speaker_labels(segments: &[Segment]) -> Vec<Option<String>> {
    fn role_of(s: &Segment) -> Option<&str> {
        s.speaker
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
    }
    let mut voices: BTreeMap<&str, BTreeSet<i16>> = BTreeMap::new();
    for s in segments {
        if let (Some(role), Some(id)) = (role_of(s), s.speaker_id) {
            voices.entry(role).or_default().insert(id);
        }
    }
    segments
        .iter()
        .map(|s| match (role_of(s), s.speaker_id) {
            (Some(role), Some(id)) if voices.get(role).is_some_and(|ids| ids.len() > 1) => {
                Some(format!("{role} (говорящий {})", i32::from(id) + 1))
            }
            (Some(role), _) => Some(one_line(role)),
            (None, Some(id)) => Some(format!("Говорящий {}", i32::from(id) + 1)),
            (None, None) => None,
        })
        .collect()
}

/// Latin letters for a character of a file name: ASCII letters, digits, `.`, `-` and `_` as
/// they are, Russian letters transliterated, `None` for anything else.
fn latin(c: char) -> Option<String> {
    const RUSSIAN: [(char, &str); 33] = [
        ('а', "a"),
        ('б', "b"),
        ('в', "v"),
        ('г', "g"),
        ('д', "d"),
        ('е', "e"),
        ('ё', "e"),
        ('ж', "zh"),
        ('з', "z"),
        ('и', "i"),
        ('й', "y"),
        ('к', "k"),
        ('л', "l"),
        ('м', "m"),
        ('н', "n"),
        ('о', "o"),
        ('п', "p"),
        ('р', "r"),
        ('с', "s"),
        ('т', "t"),
        ('у', "u"),
        ('ф', "f"),
        ('х', "kh"),
        ('ц', "ts"),
        ('ч', "ch"),
        ('ш', "sh"),
        ('щ', "shch"),
        ('ъ', ""),
        ('ы', "y"),
        ('ь', ""),
        ('э', "e"),
        ('ю', "yu"),
        ('я', "ya"),
    ];
    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
        return Some(c.to_string());
    }
    let lower = c.to_lowercase().next()?;
    let (_, latin) = RUSSIAN.iter().find(|(k, _)| *k == lower)?;
    if lower == c {
        return Some((*latin).to_owned());
    }
    let mut upper = latin.chars();
    Some(
        upper
            .next()
            .map(|first| first.to_ascii_uppercase().to_string() + upper.as_str())
            .unwrap_or_default(),
    )
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn vtt_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT).
fn stamp(ms: i64, separator: char) -> String {
    let ms = ms.max(0);
    format!("{}{separator}{:03}", hms(ms), ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start_ms: i64, end_ms: i64, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.into(),
            ..Default::default()
        }
    }

    fn spoken(start_ms: i64, end_ms: i64, text: &str, role: Option<&str>, id: i16) -> Segment {
        Segment {
            speaker: role.map(str::to_owned),
            speaker_id: Some(id),
            ..segment(start_ms, end_ms, text)
        }
    }

    fn transcript(segments: &[Segment]) -> Transcript<'_> {
        Transcript {
            recording: "recordings/2025/06/01/ab12/interview.ogg",
            number_audio: Some(7),
            language: Some("ru"),
            audio_seconds: Some(3_725.4),
            text: "",
            segments,
        }
    }

    fn render_ok(segments: &[Segment], format: Format) -> String {
        String::from_utf8(render(&transcript(segments), format).unwrap()).unwrap()
    }

    /// (start, end) of every cue of an SRT document.
    fn srt_times(doc: &str) -> Vec<(String, String)> {
        doc.lines()
            .filter_map(|l| l.split_once(" --> "))
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect()
    }

    fn ms_of(stamp: &str) -> i64 {
        let (hms, ms) = stamp.split_once([',', '.']).unwrap();
        let parts: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
        ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1000 + ms.parse::<i64>().unwrap()
    }

    fn interview() -> Vec<Segment> {
        vec![
            spoken(0, 2_500, "Как вам наш отель?", Some("Сотрудник"), 0),
            spoken(2_500, 6_000, "Очень понравился номер.", Some("Клиент"), 1),
            segment(3_661_000, 3_663_500, "Спасибо, до свидания."),
        ]
    }

    #[test]
    fn formats_are_named_in_any_case_and_others_are_refused_naming_the_field() {
        assert_eq!(" SRT ".parse::<Format>().unwrap(), Format::Srt);
        assert_eq!("vtt".parse::<Format>().unwrap(), Format::Vtt);
        assert_eq!("DOCX".parse::<Format>().unwrap(), Format::Docx);
        let Err(Error::InvalidInput { field, reason }) = "pdf".parse::<Format>() else {
            panic!("pdf parsed");
        };
        assert_eq!(field, "format");
        assert_eq!(
            reason,
            "\"pdf\" is not a transcript export format; use txt, srt, vtt or docx"
        );
        assert_eq!(
            Format::Srt.content_type(),
            "application/x-subrip; charset=utf-8"
        );
    }

    #[test]
    fn text_has_a_header_and_a_timed_line_per_segment_with_its_speaker() {
        let doc = render_ok(&interview(), Format::Txt);

        assert_eq!(
            doc,
            "Запись: recordings/2025/06/01/ab12/interview.ogg (№ 7)\n\
             Язык: ru\n\
             Длительность: 01:02:05\n\
             \n\
             [00:00:00] Сотрудник: Как вам наш отель?\n\
             [00:00:02] Клиент: Очень понравился номер.\n\
             [01:01:01] Спасибо, до свидания.\n"
        );
    }

    #[test]
    fn docx_has_the_header_then_a_paragraph_a_segment_with_the_speaker_in_bold() {
        let mut segments = interview();
        segments[1].text = "Номер <отличный> & \"тихий\"".into();
        let bytes = render(&transcript(&segments), Format::Docx).unwrap();

        let xml = docx::read::entry(&bytes, "word/document.xml").expect("a valid docx");

        let t = |text: &str| format!("<w:t xml:space=\"preserve\">{text}</w:t>");
        for part in [
            format!(
                "<w:pStyle w:val=\"Title\"/></w:pPr><w:r>{}</w:r>",
                t("Запись: recordings/2025/06/01/ab12/interview.ogg (№ 7)")
            ),
            format!("<w:p><w:r>{}</w:r></w:p>", t("Длительность: 01:02:05")),
            format!(
                "<w:p><w:r>{}</w:r><w:r><w:rPr><w:b/></w:rPr>{}</w:r><w:r>{}</w:r><w:r>{}</w:r></w:p>",
                t("[00:00:02] "),
                t("Клиент"),
                t(": "),
                t("Номер &lt;отличный&gt; &amp; &quot;тихий&quot;")
            ),
            format!(
                "<w:p><w:r>{}</w:r><w:r>{}</w:r></w:p>",
                t("[01:01:01] "),
                t("Спасибо, до свидания.")
            ),
        ] {
            assert!(xml.contains(&part), "{part:?} missing in:\n{xml}");
        }
        assert!(xml.contains(&t("Сотрудник")));
        assert_eq!(Format::Docx.content_type(), docx::CONTENT_TYPE);
        assert_eq!(file_name("a/b.ogg", "x", Format::Docx), "b.docx");
    }

    #[test]
    fn text_keeps_each_segment_on_one_line_and_skips_empty_ones() {
        let segments = [
            segment(0, 1_000, "Первая строка\n\nвторая\tстрока"),
            segment(1_000, 2_000, "  \n "),
        ];

        let doc = render_ok(&segments, Format::Txt);

        assert!(
            doc.ends_with("\n\n[00:00:00] Первая строка вторая строка\n"),
            "{doc}"
        );
    }

    #[test]
    fn text_of_a_transcript_without_segments_is_its_text_and_duration_falls_back_to_them() {
        let t = Transcript {
            recording: "a.ogg",
            number_audio: None,
            language: None,
            audio_seconds: None,
            text: "Текст без времени.\n",
            segments: &[],
        };
        assert_eq!(
            render(&t, Format::Txt).unwrap(),
            "Запись: a.ogg\n\nТекст без времени.\n".as_bytes()
        );
        let untimed = docx::read::entry(&render(&t, Format::Docx).unwrap(), "word/document.xml")
            .expect("a docx of an untimed transcript");
        assert!(untimed.contains(">Текст без времени.</w:t>"), "{untimed}");
        let Err(Error::InvalidInput { field, reason }) = render(&t, Format::Vtt) else {
            panic!("vtt of an untimed transcript");
        };
        assert_eq!(field, "format");
        assert!(reason.contains("use txt"), "{reason}");

        let timed = [segment(0, 65_000, "Да.")];
        let t = Transcript {
            segments: &timed,
            ..t
        };
        assert!(
            String::from_utf8(render(&t, Format::Txt).unwrap())
                .unwrap()
                .contains("Длительность: 00:01:05\n")
        );
    }

    #[test]
    fn an_empty_transcript_is_a_valid_empty_document_in_every_format() {
        assert_eq!(render_ok(&[], Format::Srt), "");
        assert_eq!(render_ok(&[], Format::Vtt), "WEBVTT\n");
        assert!(render_ok(&[], Format::Txt).ends_with("Длительность: 01:02:05\n\n"));
    }

    #[test]
    fn srt_numbers_its_cues_and_prefixes_the_speaker() {
        let doc = render_ok(&interview(), Format::Srt);

        assert_eq!(
            doc,
            "1\n00:00:00,000 --> 00:00:02,500\nСотрудник: Как вам наш отель?\n\
             \n\
             2\n00:00:02,500 --> 00:00:06,000\nКлиент: Очень понравился номер.\n\
             \n\
             3\n01:01:01,000 --> 01:01:03,500\nСпасибо, до свидания.\n"
        );
    }

    #[test]
    fn vtt_gives_voice_spans_and_escapes_markup() {
        let segments = [
            spoken(1_234, 3_000, "Цены <выше> & дороже", Some("Клиент"), 0),
            segment(3_661_001, 3_662_000, "a --> b"),
        ];

        let doc = render_ok(&segments, Format::Vtt);

        assert_eq!(
            doc,
            "WEBVTT\n\
             \n\
             00:00:01.234 --> 00:00:03.000\n\
             <v Клиент>Цены &lt;выше&gt; &amp; дороже\n\
             \n\
             01:01:01.001 --> 01:01:02.000\n\
             a --&gt; b\n"
        );
    }

    #[test]
    fn srt_text_never_holds_a_timing_arrow_or_a_blank_line() {
        let segments = [segment(
            0,
            2_000,
            "-->\n\n00:00:01,000 ---> 00:00:02,000\n\n",
        )];

        let doc = render_ok(&segments, Format::Srt);

        assert_eq!(
            doc,
            "1\n00:00:00,000 --> 00:00:02,000\n-- > 00:00:01,000 --- > 00:00:02,000\n"
        );
    }

    #[test]
    fn diarized_voices_stay_apart_without_roles_and_when_they_share_one() {
        let segments = [
            spoken(0, 1_000, "Здравствуйте.", None, 0),
            spoken(1_000, 2_000, "Добрый день.", None, 1),
            spoken(2_000, 3_000, "Мы вдвоём.", Some("Клиент"), 1),
            spoken(3_000, 4_000, "Да.", Some("Клиент"), 2),
            spoken(4_000, 5_000, "Хорошо.", Some("Сотрудник"), 0),
        ];

        let txt = render_ok(&segments, Format::Txt);
        let srt = render_ok(&segments, Format::Srt);
        let vtt = render_ok(&segments, Format::Vtt);

        for line in [
            "[00:00:00] Говорящий 1: Здравствуйте.",
            "[00:00:01] Говорящий 2: Добрый день.",
            "[00:00:02] Клиент (говорящий 2): Мы вдвоём.",
            "[00:00:03] Клиент (говорящий 3): Да.",
            "[00:00:04] Сотрудник: Хорошо.",
        ] {
            assert!(
                txt.lines().any(|l| l == line),
                "{line:?} missing in:\n{txt}"
            );
        }
        assert!(srt.contains("\nКлиент (говорящий 3): Да.\n"), "{srt}");
        assert!(vtt.contains("\n<v Говорящий 2>Добрый день.\n"), "{vtt}");
        assert!(
            vtt.contains("\n<v Клиент (говорящий 2)>Мы вдвоём.\n"),
            "{vtt}"
        );
    }

    #[test]
    fn a_long_segment_is_cut_into_cues_of_two_short_lines_timed_by_their_characters() {
        let sentence =
            "Номер был чистым, кровать удобной, а вид из окна на реку просто замечательный.";
        let text = [sentence; 3].join(" ");
        let segments = [spoken(10_000, 40_000, &text, Some("Клиент"), 1)];

        let srt = render_ok(&segments, Format::Srt);
        let vtt = render_ok(&segments, Format::Vtt);

        let blocks: Vec<&str> = srt.split("\n\n").collect();
        assert_eq!(blocks.len(), 3, "{srt}");
        assert!(
            blocks
                .iter()
                .all(|b| b.trim_end().ends_with("замечательный.")),
            "cues end where sentences end:\n{srt}"
        );
        let mut words = Vec::new();
        for block in &blocks {
            let lines: Vec<&str> = block.lines().skip(2).collect();
            assert!((1..=2).contains(&lines.len()), "{block}");
            let body = lines.join(" ");
            let body = body
                .strip_prefix("Клиент: ")
                .expect("every cue names the speaker");
            assert!(chars(body) <= CUE_CHARS, "{block}");
            for line in &lines {
                assert!(
                    chars(line.trim_start_matches("Клиент: ")) <= LINE_CHARS + 12,
                    "{line}"
                );
            }
            words.extend(body.split(' ').map(str::to_owned));
        }
        assert_eq!(words.join(" "), text, "no word lost or reordered");
        let times = srt_times(&srt);
        assert_eq!(ms_of(&times[0].0), 10_000);
        assert_eq!(ms_of(&times[times.len() - 1].1), 40_000);
        for pair in times.windows(2) {
            assert_eq!(
                pair[0].1, pair[1].0,
                "cues of one segment follow each other"
            );
        }
        let first_share = (ms_of(&times[0].1) - 10_000) as f64 / 30_000.0;
        let first_chars = blocks[0].lines().skip(2).collect::<Vec<_>>().join(" ");
        let expected = (chars(&first_chars) - chars("Клиент: ")) as f64 / chars(&text) as f64;
        assert!(
            (first_share - expected).abs() < 0.03,
            "{first_share} vs {expected}"
        );
        assert_eq!(vtt.matches("<v Клиент>").count(), blocks.len());
    }

    #[test]
    fn cues_never_overlap_nor_end_before_they_start() {
        let segments = [
            segment(0, 0, "Ноль."),
            segment(0, 3_000, "Перекрывает следующий."),
            segment(2_000, 2_000, "Мгновение."),
            segment(2_000, 5_000, "Дальше."),
            segment(4_000, 1_000, "Назад во времени."),
            segment(9_000, 9_000, "Последний без длительности."),
        ];

        for format in [Format::Srt, Format::Vtt] {
            let doc = render_ok(&segments, format);
            let times: Vec<(i64, i64)> = doc
                .lines()
                .filter_map(|l| l.split_once(" --> "))
                .map(|(a, b)| (ms_of(a), ms_of(b)))
                .collect();

            assert_eq!(times.len(), segments.len(), "{doc}");
            for &(start, end) in &times {
                assert!(end > start, "{doc}");
            }
            for pair in times.windows(2) {
                assert!(pair[1].0 >= pair[0].1, "{doc}");
            }
            assert_eq!(
                times[0],
                (0, MIN_CUE_MS),
                "a zero-length cue is shown a while"
            );
            assert_eq!(times[5], (9_000, 9_000 + MIN_CUE_MS));
        }
    }

    #[test]
    fn times_past_an_hour_keep_their_hours() {
        assert_eq!(stamp(3_600_000 + 2 * 60_000 + 3_045, ','), "01:02:03,045");
        assert_eq!(stamp(36_000_000, '.'), "10:00:00.000");
        assert_eq!(hms(-5), "00:00:00");
    }

    #[test]
    fn file_names_are_safe_ascii_named_after_the_recording() {
        assert_eq!(
            file_name("recordings/2025/06/01/ab/interview.ogg", "t-1", Format::Srt),
            "interview.srt"
        );
        assert_eq!(
            file_name("Аудит отеля «Щука» №2.m4a", "t-1", Format::Vtt),
            "Audit_otelya_Shchuka_2.vtt"
        );
        assert_eq!(
            file_name("recordings/...", "transcription-4", Format::Txt),
            "transcription-4.txt"
        );
        assert_eq!(
            file_name("日本.wav", "transcription-4", Format::Txt),
            "transcription-4.txt"
        );
        assert_eq!(file_name("a\"b;c.ogg", "x", Format::Txt), "a_b_c.txt");
    }
}
