//! Reports as documents: Markdown, DOCX and PDF, all rendered from one outline of the report
//! (a title, a metadata table, the metrics as a table or the report's own text, and the quotes
//! with where they were said). Markdown is written from the outline directly; DOCX and PDF
//! from one [`Document`] built from it, so both files have the same blocks.
//!
//! The report's own text is Markdown written by the analysis (no structure is stored for it),
//! so the document converts it line by line: `#` headings to headings (levels 1-3), `-`, `*`, `+`
//! and numbered lines to list items, pipe tables to tables (the separator row dropped),
//! `>` lines to italic paragraphs, `**bold**` to bold runs, and other lines to paragraphs
//! (consecutive lines joined, a blank line ending a paragraph).

use std::fmt::Write;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use common::export::document::{Document, Run};

use crate::routes::audits::AuditDetail;

/// A DOCX file, as the OpenAPI document shows it (a binary string).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct DocxFile(Vec<u8>);

/// A PDF file, as the OpenAPI document shows it (a binary string).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct PdfFile(Vec<u8>);

/// What every document is made of.
struct Outline {
    title: String,
    meta: Vec<(&'static str, String)>,
    body: Body,
    quotes: Vec<QuoteLine>,
}

enum Body {
    /// (name, value) of every metric, nested names joined by ` / `.
    Metrics(Vec<(String, String)>),
    /// The report's own Markdown.
    Text(String),
}

struct QuoteLine {
    text: String,
    /// When and by whom it was said: `0:00–0:04, клиент`.
    at: Option<String>,
    verified: bool,
}

impl QuoteLine {
    fn mark(&self) -> &'static str {
        if self.verified {
            "✓"
        } else {
            "✗ не найдена в стенограмме"
        }
    }
}

fn outline(a: &AuditDetail) -> Outline {
    let s = &a.summary;
    let title = match &s.pass_title {
        Some(pass) => format!("{} — {}", s.report_type_desc, pass),
        None => s.report_type_desc.clone(),
    };

    let mut meta: Vec<(&str, String)> = vec![
        ("Сценарий", s.scenario_name.clone()),
        ("Тип отчёта", s.report_type_desc.clone()),
        ("Здание", s.building.clone()),
        ("Дата", s.audit_date.to_string()),
    ];
    let optional = [
        ("Место", &s.place_name),
        ("Город", &s.city_name),
        ("Сотрудник", &s.employee_name),
        ("Клиент", &s.client_name),
    ];
    meta.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v.clone()))),
    );
    if !s.zone_names.is_empty() {
        meta.push(("Зоны", s.zone_names.join(", ")));
    }
    let number = s
        .number_audio
        .map(|n| format!(" (№ {n})"))
        .unwrap_or_default();
    meta.push(("Запись", format!("{}{number}", s.audio_file_name)));
    meta.push(("Отчёт", format!("#{} (проход {})", s.audit_id, s.pass)));

    let body = match &s.metrics {
        Some(metrics) => {
            let mut rows = Vec::new();
            metric_rows(&mut rows, "", metrics);
            Body::Metrics(rows)
        }
        None => Body::Text(a.text.trim().to_owned()),
    };

    let quotes = a
        .quotes
        .iter()
        .map(|q| QuoteLine {
            text: one_line(&q.text),
            at: q.citation.as_ref().map(|c| {
                let who = match (&c.speaker, c.speaker_id) {
                    (Some(role), _) => format!(", {}", role.to_lowercase()),
                    (None, Some(id)) => format!(", говорящий {}", id + 1),
                    (None, None) => String::new(),
                };
                format!("{}–{}{who}", clock(c.start_ms), clock(c.end_ms))
            }),
            verified: q.verified,
        })
        .collect();
    Outline {
        title: one_line(&title),
        meta,
        body,
        quotes,
    }
}

/// An exported file: its content type and `Content-Disposition: attachment` with `file_name`
/// (ASCII, as the exports name their files).
pub fn attachment(content_type: &'static str, file_name: &str, body: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{file_name}\"");
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response()
}

/// The report as a Markdown document: a title, a metadata table, the report itself (its own
/// Markdown, or a table of metrics), and its quotations with where they were said.
pub fn markdown(a: &AuditDetail) -> String {
    let o = outline(a);
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", o.title);
    out.push_str("| | |\n|---|---|\n");
    for (key, value) in &o.meta {
        let _ = writeln!(out, "| {key} | {} |", cell(value));
    }
    out.push('\n');

    match &o.body {
        Body::Metrics(rows) => {
            out.push_str("## Метрики\n\n| Показатель | Значение |\n|---|---|\n");
            for (name, value) in rows {
                let _ = writeln!(out, "| {} | {} |", cell(name), cell(value));
            }
        }
        Body::Text(text) => {
            out.push_str(text);
            out.push('\n');
        }
    }

    if !o.quotes.is_empty() {
        out.push_str("\n## Цитаты\n\n");
        for q in &o.quotes {
            let at =
                q.at.as_ref()
                    .map(|at| format!(" ({at})"))
                    .unwrap_or_default();
            let _ = writeln!(out, "- «{}»{at} {}", q.text, q.mark());
        }
    }
    out
}

/// The report as a DOCX file, with the Markdown document's outline: the title, the metadata
/// table, the metrics as a table (or the report's text), and the quotes with their times.
pub fn docx(a: &AuditDetail) -> Vec<u8> {
    document(a).to_bytes()
}

/// The report as a PDF file (A4, DejaVu Sans embedded), with the same blocks as the DOCX.
pub fn pdf(a: &AuditDetail) -> Result<Vec<u8>, common::export::pdf::Error> {
    common::export::pdf::render(&document(a))
}

/// The outline as document blocks, for the DOCX and PDF writers.
fn document(a: &AuditDetail) -> Document {
    let o = outline(a);
    let mut doc = Document::new();
    doc.title(o.title);
    doc.table(
        Vec::new(),
        o.meta
            .into_iter()
            .map(|(k, v)| vec![k.to_owned(), one_line(&v)])
            .collect(),
    );
    match o.body {
        Body::Metrics(rows) => {
            doc.heading(2, "Метрики");
            doc.table(
                vec!["Показатель".into(), "Значение".into()],
                rows.into_iter().map(|(k, v)| vec![k, v]).collect(),
            );
        }
        Body::Text(text) => markdown_blocks(&mut doc, &text),
    }
    if !o.quotes.is_empty() {
        doc.heading(2, "Цитаты");
        for q in &o.quotes {
            let time = match &q.at {
                Some(at) => format!("{at} {}", q.mark()),
                None => q.mark().to_owned(),
            };
            doc.quote(q.text.clone(), Some(time));
        }
    }
    doc
}

/// Markdown as document blocks, line by line (see the module's documentation).
fn markdown_blocks(doc: &mut Document, text: &str) {
    let mut paragraph: Vec<&str> = Vec::new();
    let mut table: Vec<Vec<String>> = Vec::new();
    fn flush(doc: &mut Document, paragraph: &mut Vec<&str>, table: &mut Vec<Vec<String>>) {
        if !paragraph.is_empty() {
            doc.runs(inline(&paragraph.join(" ")));
            paragraph.clear();
        }
        if !table.is_empty() {
            let header = table.remove(0);
            doc.table(header, std::mem::take(table));
        }
    }
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('|') {
            if !paragraph.is_empty() {
                let mut none = Vec::new();
                flush(doc, &mut paragraph, &mut none);
            }
            let inner = line.trim_start_matches('|');
            let inner = inner.strip_suffix('|').unwrap_or(inner);
            let cells: Vec<String> = inner
                .split('|')
                .map(|c| c.trim().replace("**", ""))
                .collect();
            let separator = cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')));
            if !separator {
                table.push(cells);
            }
            continue;
        }
        if !table.is_empty() {
            let mut none = Vec::new();
            flush(doc, &mut none, &mut table);
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        let numbered = line
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if line.is_empty() || matches!(line, "---" | "***" | "___") {
            flush(doc, &mut paragraph, &mut table);
        } else if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            flush(doc, &mut paragraph, &mut table);
            let text = line[hashes..].trim().replace("**", "");
            doc.heading(hashes.min(3) as u8, text);
        } else if let Some(item) = ["- ", "* ", "+ "].iter().find_map(|p| line.strip_prefix(p)) {
            flush(doc, &mut paragraph, &mut table);
            doc.item(inline(item.trim()));
        } else if let Some((n, item)) = numbered {
            flush(doc, &mut paragraph, &mut table);
            let mut runs = vec![Run::plain(format!("{n}. "))];
            runs.extend(inline(item.trim()));
            doc.runs(runs);
        } else if let Some(quoted) = line.strip_prefix('>') {
            flush(doc, &mut paragraph, &mut table);
            let runs = inline(quoted.trim())
                .into_iter()
                .map(|r| Run { italic: true, ..r })
                .collect();
            doc.runs(runs);
        } else {
            paragraph.push(line);
        }
    }
    flush(doc, &mut paragraph, &mut table);
}

/// `**bold**` spans as bold runs; the rest plain.
fn inline(text: &str) -> Vec<Run> {
    text.split("**")
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| Run {
            bold: i % 2 == 1,
            ..Run::plain(part)
        })
        .collect()
}

fn metric_rows(out: &mut Vec<(String, String)>, prefix: &str, value: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix} / {k}")
                };
                metric_rows(out, &name, v);
            }
        }
        serde_json::Value::Null => out.push((prefix.to_owned(), "—".to_owned())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// `h:mm:ss` (or `m:ss` under an hour).
fn clock(ms: i64) -> String {
    let total = ms.max(0) / 1000;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use common::export::document::Block;

    use super::*;

    #[test]
    fn clock_times_read_like_a_player() {
        assert_eq!(clock(4_200), "0:04");
        assert_eq!(clock(754_000), "12:34");
        assert_eq!(clock(3_723_000), "1:02:03");
    }

    #[test]
    fn report_markdown_becomes_headings_items_tables_and_paragraphs() {
        let mut doc = Document::new();
        markdown_blocks(
            &mut doc,
            "## Фасад\nВход **чистый**\nи светлый.\n\n- пункт один\n2. второй\n\
             > сказано\n| Зона | Балл |\n|---|:---:|\n| Лобби | 5 |\n#### Глубже\n---",
        );

        assert_eq!(
            doc.blocks,
            [
                Block::Heading(2, "Фасад".into()),
                Block::Paragraph(vec![
                    Run::plain("Вход "),
                    Run::bold("чистый"),
                    Run::plain(" и светлый."),
                ]),
                Block::Item(vec![Run::plain("пункт один")]),
                Block::Paragraph(vec![Run::plain("2. "), Run::plain("второй")]),
                Block::Paragraph(vec![Run {
                    italic: true,
                    ..Run::plain("сказано")
                }]),
                Block::Table {
                    header: vec!["Зона".into(), "Балл".into()],
                    rows: vec![vec!["Лобби".into(), "5".into()]],
                },
                Block::Heading(3, "Глубже".into()),
            ]
        );
    }

    #[test]
    fn table_cells_stay_on_one_line_and_escape_pipes() {
        assert_eq!(cell("a |\n b"), "a \\| b");
    }
}
