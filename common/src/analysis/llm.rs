//! The hosted-model engine: the catalog's prompts run through a [`ChatModel`].
//!
//! - Interviews are first labelled turn by turn (`Сотрудник:` / `Клиент:`) in windows that fit
//!   the model's budget; a window's answer must give back the window's text unchanged apart
//!   from the labels, else it is asked once more, and then labelled by the offline heuristic
//!   (the report says so). The stored transcript stays as transcribed.
//! - Narrative passes run in order, each seeing the narratives before it when its prompt
//!   asks for them. A transcript over the budget is split into overlapping windows at line
//!   or sentence boundaries and the windows' answers are merged by heading (see [`merge`]):
//!   nothing is silently truncated.
//! - The metrics pass must answer a JSON object valid against the pair's schema; an invalid
//!   answer is asked once more with the validation error, then the job fails with it.
//! - An answer cut off at the token limit is an error, never stored as if complete.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use super::catalog::{Catalog, PromptInput, PromptKind, PromptSpec, render};
use super::stage::ReportEngine;
use super::{JobInput, PassKind, PassOutput, ReportOutput};
use crate::db::transcription::Segment;
use crate::embed::Embedder;
use crate::llm::{ChatModel, ChatRequest, FinishReason, Message};
use crate::{Error, Result};

/// The empty-section marker of the prompts.
pub const EMPTY_MARKER: &str = "Нет данных в записи";

/// Characters of the previous window's labelled tail given as context to role labelling.
const CONTEXT_CHARS: usize = 1000;

/// The hosted engine.
pub struct LlmReports {
    model: Arc<dyn ChatModel>,
    catalog: &'static Catalog,
}

impl std::fmt::Debug for LlmReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmReports")
            .field("model", &self.model.model_id())
            .finish()
    }
}

impl LlmReports {
    /// The embedder is not needed by the passes themselves (chunks are embedded by the stage);
    /// it is taken so every engine is built the same way.
    pub fn new(model: Arc<dyn ChatModel>, _embedder: Arc<dyn Embedder>) -> Result<Self> {
        Ok(Self {
            model,
            catalog: Catalog::embedded()?,
        })
    }

    async fn ask(&self, prompt: String, what: &str) -> Result<String> {
        let request = ChatRequest {
            messages: vec![Message::user(prompt)],
            ..ChatRequest::default()
        };
        let response = self.model.chat(&request).await?;
        if response.finish == FinishReason::Length {
            return Err(Error::Provider {
                provider: self.model.model_id(),
                reason: format!(
                    "the answer for {what} was cut off at the output token limit; raise VOX_LLM_MAX_TOKENS"
                ),
                retryable: false,
            });
        }
        Ok(response.text)
    }

    /// The text the narrative passes read: labelled by role for interviews.
    async fn transcript_for(&self, job: &JobInput) -> Result<(String, bool)> {
        let raw: Vec<&str> = job.segments.iter().map(|s| s.text.trim()).collect();
        if job.scenario != "interview" {
            return Ok((raw.join("\n"), false));
        }
        if job.segments.iter().all(|s| s.speaker.is_some()) && !job.segments.is_empty() {
            let labelled = job
                .segments
                .iter()
                .map(|s| format!("{}: {}", s.speaker.as_deref().unwrap_or(""), s.text.trim()))
                .collect::<Vec<_>>()
                .join("\n");
            return Ok((labelled, false));
        }
        let Some(prompt) = self.catalog.role_labelling() else {
            return Ok((raw.join("\n"), false));
        };
        // The answer repeats the window, so a window takes at most half the budget.
        let budget = (self
            .model
            .max_input_chars()
            .saturating_sub(prompt.text.len())
            / 2)
        .max(500);
        let windows = windows_of_lines(&raw, budget);
        let count = windows.len();
        let mut labelled = String::new();
        let mut heuristic = false;
        for (i, window) in windows.iter().enumerate() {
            let context = if labelled.is_empty() {
                "нет".to_owned()
            } else {
                tail(&labelled, CONTEXT_CHARS).to_owned()
            };
            let mut values = BTreeMap::new();
            values.insert("window_index", (i + 1).to_string());
            values.insert("window_count", count.to_string());
            values.insert("context", context);
            values.insert("transcript", window.clone());
            let rendered = render(prompt.text, &values);
            let mut result = None;
            for _ in 0..2 {
                let answer = self.ask(rendered.clone(), "role labelling").await?;
                if let Some(lines) = check_labels(&answer, window) {
                    result = Some(lines);
                    break;
                }
            }
            let lines = result.unwrap_or_else(|| {
                heuristic = true;
                label_by_heuristic(window)
            });
            if !labelled.is_empty() {
                labelled.push('\n');
            }
            labelled.push_str(&lines);
        }
        Ok((labelled, heuristic))
    }

    async fn narrative(
        &self,
        spec: &PromptSpec,
        base: &BTreeMap<&'static str, String>,
        transcript: &str,
        previous: &str,
    ) -> Result<String> {
        let mut values = base.clone();
        values.insert("previous", previous.to_owned());
        let uses_transcript = spec.input != PromptInput::Previous;
        let fixed = render(spec.text, &{
            let mut v = values.clone();
            v.insert("transcript", String::new());
            v
        })
        .chars()
        .count();
        let budget = self.model.max_input_chars().saturating_sub(fixed).max(1000);
        if !uses_transcript || transcript.chars().count() <= budget {
            values.insert("transcript", transcript.to_owned());
            return self.ask(render(spec.text, &values), &spec.name).await;
        }
        let lines: Vec<&str> = transcript.lines().collect();
        let windows = windows_of_lines(&lines, budget);
        let mut answers = Vec::with_capacity(windows.len());
        for window in &windows {
            values.insert("transcript", window.clone());
            let answer = self.ask(render(spec.text, &values), &spec.name).await?;
            answers.push((answer, window.chars().count()));
        }
        Ok(merge(&answers))
    }

    async fn metrics(
        &self,
        spec: &PromptSpec,
        job: &JobInput,
        base: &BTreeMap<&'static str, String>,
        previous: &str,
    ) -> Result<Value> {
        let mut values = base.clone();
        values.insert("previous", previous.to_owned());
        values.insert("transcript", String::new());
        let prompt = render(spec.text, &values);
        let mut messages = vec![Message::user(prompt)];
        let mut last_error = String::new();
        for attempt in 0..2 {
            let request = ChatRequest {
                messages: messages.clone(),
                ..ChatRequest::default()
            };
            let response = self.model.chat(&request).await?;
            let problem = match parse_json_object(&response.text) {
                Err(e) => e,
                Ok(value) => {
                    match crate::metrics::validate(&job.report_type, &job.building, &value) {
                        Ok(()) => return Ok(value),
                        Err(e) => e.to_string(),
                    }
                }
            };
            last_error = problem.clone();
            if attempt == 0 {
                messages.push(Message::assistant(response.text));
                messages.push(Message::user(format!(
                    "Ответ не прошёл проверку: {problem}\nПришли исправленный ответ: только JSON-объект по образцу, без пояснений."
                )));
            }
        }
        Err(Error::InvalidMetrics {
            report_type: job.report_type.clone(),
            building: job.building.clone(),
            details: format!("the model's answer was still invalid after one retry: {last_error}"),
        })
    }
}

impl ReportEngine for LlmReports {
    fn engine_id(&self) -> String {
        self.model.model_id()
    }

    fn analyze<'a>(&'a self, job: &'a JobInput) -> BoxFuture<'a, Result<ReportOutput>> {
        Box::pin(async move {
            let passes = self.catalog.passes(&job.report_type, &job.building);
            if passes.is_empty() {
                return Err(Error::InvalidPair {
                    building: job.building.clone(),
                    report_type: job.report_type.clone(),
                });
            }
            let base = placeholder_values(job);
            let (transcript, heuristic) = self.transcript_for(job).await?;
            let mut narratives: Vec<String> = Vec::new();
            let mut out = Vec::with_capacity(passes.len());
            for spec in passes {
                let previous = narratives.join("\n\n");
                match spec.kind {
                    PromptKind::Narrative => {
                        let mut text = self.narrative(spec, &base, &transcript, &previous).await?;
                        if heuristic && narratives.is_empty() {
                            text.push_str(
                                "\n\n_Роли участников частично определены эвристикой: модель не вернула разметку, совпадающую с расшифровкой._\n",
                            );
                        }
                        narratives.push(text.clone());
                        out.push(PassOutput {
                            pass: spec.pass,
                            title: spec.title.clone(),
                            kind: PassKind::Narrative,
                            text,
                            metrics: None,
                            prompt_name: spec.name.clone(),
                        });
                    }
                    PromptKind::Metrics => {
                        let value = self.metrics(spec, job, &base, &previous).await?;
                        out.push(PassOutput {
                            pass: spec.pass,
                            title: spec.title.clone(),
                            kind: PassKind::Metrics,
                            text: value.to_string(),
                            metrics: Some(value),
                            prompt_name: spec.name.clone(),
                        });
                    }
                    PromptKind::RoleLabelling => {}
                }
            }
            Ok(ReportOutput {
                passes: out,
                engine: self.engine_id(),
            })
        })
    }
}

/// The metadata placeholders; unknown values read «не указано».
fn placeholder_values(job: &JobInput) -> BTreeMap<&'static str, String> {
    let unknown = || "не указано".to_owned();
    let building = match job.place_building.as_deref().unwrap_or(&job.building) {
        "hotel" => "Отель".to_owned(),
        "restaurant" => "Ресторан".to_owned(),
        "spa" => "Центр Здоровья".to_owned(),
        _ => unknown(),
    };
    let mut values = BTreeMap::new();
    values.insert("client", job.client.clone().unwrap_or_else(unknown));
    values.insert("employee", job.employee.clone().unwrap_or_else(unknown));
    values.insert("place", job.place.clone().unwrap_or_else(unknown));
    values.insert("city", job.city.clone().unwrap_or_else(unknown));
    values.insert("building", building);
    values.insert(
        "date",
        job.date
            .map(|d| d.format("%d.%m.%Y").to_string())
            .unwrap_or_else(unknown),
    );
    values.insert(
        "zones",
        if job.zones.is_empty() {
            unknown()
        } else {
            job.zones.join(", ")
        },
    );
    values
}

/// Groups lines into windows of at most `budget` characters, each window after the first
/// starting with the last line(s) of the one before (about a tenth of the budget) so that a
/// statement cut by a boundary is seen whole once. A line longer than the budget is cut at
/// sentence ends, then spaces.
pub fn windows_of_lines(lines: &[&str], budget: usize) -> Vec<String> {
    let budget = budget.max(100);
    let overlap = budget / 10;
    let mut pieces: Vec<String> = Vec::new();
    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.chars().count() <= budget {
            pieces.push(line.to_owned());
        } else {
            pieces.extend(split_long(line, budget));
        }
    }
    let mut windows = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut size = 0usize;
    for piece in &pieces {
        let len = piece.chars().count() + 1;
        if size + len > budget && !current.is_empty() {
            windows.push(current.join("\n"));
            // Carry the tail over as overlap.
            let mut carried: Vec<&str> = Vec::new();
            let mut carried_size = 0;
            for prev in current.iter().rev() {
                let l = prev.chars().count() + 1;
                if carried_size + l > overlap || carried_size + l + len > budget {
                    break;
                }
                carried.insert(0, prev);
                carried_size += l;
            }
            current = carried;
            size = carried_size;
        }
        current.push(piece);
        size += len;
    }
    if !current.is_empty() {
        windows.push(current.join("\n"));
    }
    windows
}

fn split_long(line: &str, budget: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for word in line.split_inclusive([' ', '.', '!', '?']) {
        if current.chars().count() + word.chars().count() > budget && !current.is_empty() {
            out.push(current.trim().to_owned());
            current.clear();
        }
        if word.chars().count() > budget {
            let chars: Vec<char> = word.chars().collect();
            for part in chars.chunks(budget) {
                out.push(part.iter().collect());
            }
            continue;
        }
        current.push_str(word);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

fn tail(text: &str, chars: usize) -> &str {
    let n = text.chars().count();
    if n <= chars {
        return text;
    }
    let skip = text.char_indices().nth(n - chars).map_or(0, |(i, _)| i);
    // Start at a line.
    match text[skip..].find('\n') {
        Some(nl) => &text[skip + nl + 1..],
        None => &text[skip..],
    }
}

const ROLES: [&str; 2] = ["Сотрудник:", "Клиент:"];

/// The labelled lines of an answer when, with the labels taken off, it gives back the window
/// (white space aside); `None` otherwise.
pub fn check_labels(answer: &str, window: &str) -> Option<String> {
    let mut lines = Vec::new();
    let mut stripped = String::new();
    for line in answer.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let role = ROLES.iter().find(|r| line.starts_with(**r))?;
        let text = line[role.len()..].trim();
        lines.push(format!("{role} {text}"));
        stripped.push(' ');
        stripped.push_str(text);
    }
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!lines.is_empty() && norm(&stripped) == norm(window)).then(|| lines.join("\n"))
}

/// The offline engine's heuristic roles for a window (one line per segment line).
fn label_by_heuristic(window: &str) -> String {
    let segments: Vec<Segment> = window
        .lines()
        .map(|l| Segment {
            start_ms: 0,
            end_ms: 0,
            text: l.to_owned(),
            ..Segment::default()
        })
        .collect();
    super::offline::label_turns(&segments)
        .into_iter()
        .map(|(role, text)| format!("{role}: {text}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON object in a model's answer (code fences and text around it tolerated).
fn parse_json_object(answer: &str) -> std::result::Result<Value, String> {
    let start = answer.find('{');
    let end = answer.rfind('}');
    let (Some(start), Some(end)) = (start, end) else {
        return Err("the answer holds no JSON object".into());
    };
    if end < start {
        return Err("the answer holds no JSON object".into());
    }
    serde_json::from_str::<Value>(&answer[start..=end])
        .map_err(|e| format!("the answer's JSON does not parse: {e}"))
        .and_then(|v| {
            if v.is_object() {
                Ok(v)
            } else {
                Err("the answer's JSON is not an object".into())
            }
        })
}

/// Merges the answers of several windows of one pass by heading: the first answer gives the
/// order of headings (others' new headings follow); under each heading the lines of all
/// windows are joined without repeats; the empty marker goes when another window found
/// something; `Оценка: N %` lines become one, the mean weighted by window length.
pub fn merge(answers: &[(String, usize)]) -> String {
    #[derive(Default)]
    struct Section {
        lines: Vec<String>,
        scores: Vec<(f64, usize)>,
    }
    let mut order: Vec<String> = Vec::new();
    let mut sections: BTreeMap<String, Section> = BTreeMap::new();
    for (answer, weight) in answers {
        let mut heading = String::new();
        for line in answer.lines() {
            let trimmed = line.trim_end();
            if trimmed.starts_with('#') {
                heading = trimmed.trim().to_owned();
                if !sections.contains_key(&heading) {
                    order.push(heading.clone());
                    sections.insert(heading.clone(), Section::default());
                }
                continue;
            }
            if !sections.contains_key(&heading) {
                order.insert(0, heading.clone());
                sections.insert(heading.clone(), Section::default());
            }
            let section = sections.get_mut(&heading).expect("inserted above");
            if let Some(score) = score_of(trimmed) {
                section.scores.push((score, *weight));
                continue;
            }
            if trimmed.trim().is_empty() || section.lines.iter().any(|l| l == trimmed) {
                continue;
            }
            section.lines.push(trimmed.to_owned());
        }
    }
    let mut out = String::new();
    for heading in &order {
        let section = &sections[heading];
        let has_content = section
            .lines
            .iter()
            .any(|l| l.trim() != EMPTY_MARKER && !l.trim().is_empty());
        if !heading.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(heading);
            out.push('\n');
        }
        if !section.scores.is_empty() {
            let total: usize = section.scores.iter().map(|(_, w)| w).sum();
            let mean = section
                .scores
                .iter()
                .map(|(s, w)| s * *w as f64)
                .sum::<f64>()
                / total.max(1) as f64;
            out.push_str(&format!("Оценка: {} %\n", mean.round()));
        }
        for line in &section.lines {
            if has_content && line.trim() == EMPTY_MARKER {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn score_of(line: &str) -> Option<f64> {
    let rest = line.trim().strip_prefix("Оценка:")?;
    let number = rest.trim().strip_suffix('%')?.trim().replace(',', ".");
    number.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_line_within_budget_with_overlap() {
        let lines: Vec<String> = (0..200)
            .map(|i| format!("Реплика номер {i}: в лобби было темно и шумно."))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let windows = windows_of_lines(&refs, 2000);
        assert!(windows.len() > 3);
        for w in &windows {
            assert!(w.chars().count() <= 2000);
        }
        for line in &lines {
            assert!(windows.iter().any(|w| w.contains(line.as_str())), "{line}");
        }
        // Consecutive windows share their boundary line.
        for pair in windows.windows(2) {
            let last = pair[0].lines().last().unwrap();
            assert!(pair[1].contains(last));
        }
        let long = "Слово ".repeat(1000);
        let windows = windows_of_lines(&[long.as_str()], 500);
        assert!(windows.iter().all(|w| w.chars().count() <= 500));
        let words: usize = windows.iter().map(|w| w.matches("Слово").count()).sum();
        assert!(words >= 1000, "{words}");
    }

    #[test]
    fn labels_must_give_back_the_window() {
        let window = "Здравствуйте, расскажите о поездке.\nМы ездили в Казань.";
        let good = "Сотрудник: Здравствуйте, расскажите о поездке.\nКлиент: Мы ездили   в Казань.";
        assert_eq!(
            check_labels(good, window).as_deref(),
            Some("Сотрудник: Здравствуйте, расскажите о поездке.\nКлиент: Мы ездили   в Казань.")
        );
        assert!(
            check_labels(
                "Сотрудник: Здравствуйте.\nКлиент: Мы ездили в Казань.",
                window
            )
            .is_none()
        );
        assert!(check_labels("Гость: Мы ездили в Казань.", window).is_none());
    }

    #[test]
    fn merge_joins_sections_drops_markers_and_weights_scores() {
        let a = "# Отчёт\n## 1. Фасад\n- «фасад чистый»\n## 2. Лобби\nНет данных в записи\n## Итог\nОценка: 80 %\n";
        let b = "# Отчёт\n## 1. Фасад\n- «фасад чистый»\n- «вывеска тусклая»\n## 2. Лобби\n- «лобби тёмное»\n## Итог\nОценка: 50 %\n";
        let merged = merge(&[(a.to_owned(), 3000), (b.to_owned(), 1000)]);
        assert_eq!(
            merged,
            "# Отчёт\n\n## 1. Фасад\n- «фасад чистый»\n- «вывеска тусклая»\n\n## 2. Лобби\n- «лобби тёмное»\n\n## Итог\nОценка: 73 %\n"
        );
        let only_empty = merge(&[(a.to_owned(), 1), (a.to_owned(), 1)]);
        assert!(only_empty.contains("## 2. Лобби\nНет данных в записи\n"));
    }

    #[test]
    fn json_is_found_in_fenced_or_chatty_answers() {
        let v = parse_json_object("Вот:\n```json\n{\"a\": 1}\n```").unwrap();
        assert_eq!(v["a"], 1);
        assert!(parse_json_object("нет").is_err());
        assert!(parse_json_object("[1]").is_err());
        assert!(
            parse_json_object("{oops}")
                .unwrap_err()
                .contains("does not parse")
        );
    }
}
