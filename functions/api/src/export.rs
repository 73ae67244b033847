//! Reports as documents. Markdown today; PDF and DOCX would render the same outline.

use std::fmt::Write;

use crate::routes::audits::AuditDetail;

/// The report as a Markdown document: a title, a metadata table, the report itself (its own
/// Markdown, or a table of metrics), and its quotations with where they were said.
pub fn markdown(a: &AuditDetail) -> String {
    let s = &a.summary;
    let mut out = String::new();
    let title = match &s.pass_title {
        Some(pass) => format!("{} — {}", s.report_type_desc, pass),
        None => s.report_type_desc.clone(),
    };
    let _ = writeln!(out, "# {}\n", one_line(&title));

    let mut rows: Vec<(&str, String)> = vec![
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
    rows.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v.clone()))),
    );
    if !s.zone_names.is_empty() {
        rows.push(("Зоны", s.zone_names.join(", ")));
    }
    let number = s
        .number_audio
        .map(|n| format!(" (№ {n})"))
        .unwrap_or_default();
    rows.push(("Запись", format!("{}{number}", s.audio_file_name)));
    rows.push(("Отчёт", format!("#{} (проход {})", s.audit_id, s.pass)));
    out.push_str("| | |\n|---|---|\n");
    for (key, value) in rows {
        let _ = writeln!(out, "| {key} | {} |", cell(&value));
    }
    out.push('\n');

    match &s.metrics {
        Some(metrics) => {
            out.push_str("## Метрики\n\n| Показатель | Значение |\n|---|---|\n");
            metric_rows(&mut out, "", metrics);
        }
        None => {
            out.push_str(a.text.trim());
            out.push('\n');
        }
    }

    if !a.quotes.is_empty() {
        out.push_str("\n## Цитаты\n\n");
        for q in &a.quotes {
            let mark = if q.verified {
                "✓"
            } else {
                "✗ не найдена в стенограмме"
            };
            let at = q
                .citation
                .as_ref()
                .map(|c| {
                    let who = match (&c.speaker, c.speaker_id) {
                        (Some(role), _) => format!(", {}", role.to_lowercase()),
                        (None, Some(id)) => format!(", говорящий {}", id + 1),
                        (None, None) => String::new(),
                    };
                    format!(" ({}–{}{who})", clock(c.start_ms), clock(c.end_ms))
                })
                .unwrap_or_default();
            let _ = writeln!(out, "- «{}»{at} {mark}", one_line(&q.text));
        }
    }
    out
}

fn metric_rows(out: &mut String, prefix: &str, value: &serde_json::Value) {
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
        serde_json::Value::Null => {
            let _ = writeln!(out, "| {} | — |", cell(prefix));
        }
        other => {
            let _ = writeln!(out, "| {} | {} |", cell(prefix), cell(&other.to_string()));
        }
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
    use super::*;

    #[test]
    fn clock_times_read_like_a_player() {
        assert_eq!(clock(4_200), "0:04");
        assert_eq!(clock(754_000), "12:34");
        assert_eq!(clock(3_723_000), "1:02:03");
    }

    #[test]
    fn table_cells_stay_on_one_line_and_escape_pipes() {
        assert_eq!(cell("a |\n b"), "a \\| b");
    }
}
