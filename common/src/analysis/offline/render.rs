//! Markdown of a narrative pass: `# title`, `## group` / `### title` (or `## title` for a
//! section without a group), one line per quote `- «passage» (ЧЧ:ММ:СС)`, or per listed
//! factor `- title`; markers for empty sections as `sections.toml` says.

use std::fmt::Write as _;

use super::Outcome;
use super::spec::{Defaults, RenderEmpty, Report, Section, Source};
use super::text::hms;

/// `quote(p)` gives passage `p`'s text and its segment's start in milliseconds; `note` is a
/// line printed under the title.
pub(crate) fn render<'a>(
    report: &Report,
    outcomes: &[Outcome],
    quote: impl Fn(usize) -> (&'a str, i64),
    defaults: &Defaults,
    note: Option<&str>,
) -> String {
    let mut out = format!("# {}\n", report.title);
    if let Some(note) = note {
        let _ = write!(out, "\n{note}\n");
    }
    let items: Vec<(&Section, &Outcome)> = report.sections.iter().zip(outcomes).collect();
    let visible = |(s, o): &(&Section, &Outcome)| {
        report.render_empty == RenderEmpty::Mark
            || matches!(s.source, Source::Complement { .. })
            || !o.passages.is_empty()
    };
    let mut i = 0;
    while i < items.len() {
        let group = items[i].0.group.as_deref();
        let run_len = items[i..]
            .iter()
            .take_while(|(s, _)| s.group.as_deref() == group)
            .count();
        let run = &items[i..i + run_len];
        i += run_len;
        match group {
            Some(group) => {
                let _ = write!(out, "\n## {group}\n");
                let shown: Vec<_> = run.iter().filter(|item| visible(item)).collect();
                if shown.is_empty() {
                    let _ = writeln!(out, "{}", defaults.empty_marker);
                }
                for (s, o) in shown {
                    let _ = write!(out, "\n### {}\n", s.title);
                    body(&mut out, s, o, &quote, defaults);
                }
            }
            None => {
                for (s, o) in run.iter().filter(|item| visible(item)) {
                    let _ = write!(out, "\n## {}\n", s.title);
                    body(&mut out, s, o, &quote, defaults);
                }
            }
        }
    }
    out
}

fn body<'a>(
    out: &mut String,
    section: &Section,
    outcome: &Outcome,
    quote: &impl Fn(usize) -> (&'a str, i64),
    defaults: &Defaults,
) {
    match section.source {
        Source::Complement { .. } if outcome.listed.is_empty() => {
            let _ = writeln!(out, "{}", defaults.complement_empty_marker);
        }
        Source::Complement { .. } => {
            for title in &outcome.listed {
                let _ = writeln!(out, "- {title}");
            }
        }
        Source::Search(_) if outcome.passages.is_empty() => {
            let _ = writeln!(out, "{}", defaults.empty_marker);
        }
        Source::Search(_) => {
            for &p in &outcome.passages {
                let (text, start_ms) = quote(p);
                let _ = writeln!(out, "- «{text}» ({})", hms(start_ms));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::spec::{Exclusive, Search};
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            empty_marker: "Нет данных в записи".into(),
            complement_empty_marker: "Все факторы категории затронуты в интервью".into(),
            max_quotes: 3,
            min_score: 0.3,
            keyword_weight: 0.05,
            keyword_cap: 3,
            min_passage_chars: 25,
            max_passage_chars: 400,
            exclusive: Exclusive::Pass,
        }
    }

    fn section(group: Option<&str>, title: &str) -> Section {
        Section {
            id: title.into(),
            group: group.map(Into::into),
            title: title.into(),
            metric: None,
            source: Source::Search(Search {
                speaker: None,
                keywords: Vec::new(),
                max_quotes: 3,
                probes: Vec::new(),
                query_vectors: Vec::new(),
            }),
        }
    }

    fn out(passages: &[usize]) -> Outcome {
        Outcome {
            passages: passages.to_vec(),
            listed: Vec::new(),
        }
    }

    const PASSAGES: [(&str, i64); 3] = [
        ("Освещение слишком холодное.", 0),
        ("Вывеску почти не видно.", 65_000),
        ("Номер светлый и просторный.", 3_600_000),
    ];

    fn quote(p: usize) -> (&'static str, i64) {
        PASSAGES[p]
    }

    #[test]
    fn marked_sections_show_the_marker_and_quotes_carry_their_time() {
        let report = Report {
            title: "Отчёт".into(),
            render_empty: RenderEmpty::Mark,
            exclusive: None,
            anchor: None,
            sections: vec![
                section(Some("1. Фасад"), "1.1. Вход"),
                section(Some("1. Фасад"), "1.2. Вывеска"),
                section(None, "2. Номера"),
            ],
        };
        let md = render(
            &report,
            &[out(&[]), out(&[0, 1]), out(&[2])],
            quote,
            &defaults(),
            None,
        );
        assert_eq!(
            md,
            "# Отчёт\n\n## 1. Фасад\n\n### 1.1. Вход\nНет данных в записи\n\n### 1.2. Вывеска\n\
             - «Освещение слишком холодное.» (00:00:00)\n- «Вывеску почти не видно.» (00:01:05)\n\n\
             ## 2. Номера\n- «Номер светлый и просторный.» (01:00:00)\n"
        );
    }

    #[test]
    fn omitted_sections_vanish_and_an_empty_group_gets_the_marker() {
        let report = Report {
            title: "Факторы".into(),
            render_empty: RenderEmpty::Omit,
            exclusive: None,
            anchor: None,
            sections: vec![
                section(Some("Локация"), "Транспорт"),
                section(Some("Локация"), "Центр"),
                section(Some("Сервис"), "Персонал"),
            ],
        };
        let md = render(
            &report,
            &[out(&[]), out(&[0]), out(&[])],
            quote,
            &defaults(),
            Some("Роли размечены эвристически."),
        );
        assert_eq!(
            md,
            "# Факторы\n\nРоли размечены эвристически.\n\n## Локация\n\n### Центр\n\
             - «Освещение слишком холодное.» (00:00:00)\n\n## Сервис\nНет данных в записи\n"
        );
    }

    #[test]
    fn complement_sections_list_titles_or_say_all_were_covered() {
        let mut a = section(None, "Локация");
        a.source = Source::Complement { pass: 1 };
        let mut b = section(None, "Сервис");
        b.source = Source::Complement { pass: 1 };
        let report = Report {
            title: "Неисследованные".into(),
            render_empty: RenderEmpty::Mark,
            exclusive: None,
            anchor: None,
            sections: vec![a, b],
        };
        let listed = Outcome {
            passages: Vec::new(),
            listed: vec!["Транспорт".into(), "Виды".into()],
        };
        let md = render(&report, &[listed, out(&[])], quote, &defaults(), None);
        assert_eq!(
            md,
            "# Неисследованные\n\n## Локация\n- Транспорт\n- Виды\n\n\
             ## Сервис\nВсе факторы категории затронуты в интервью\n"
        );
    }
}
