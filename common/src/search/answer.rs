//! Fast answers: the question's top chunks, then either one model call that may answer only
//! from them, or (offline, the default) an extractive answer made of the report lines most
//! similar to the question. Every statement cites its sources by their rank; when the sources
//! do not hold an answer, the answer says so plainly instead of guessing.
//!
//! Routing picks the configuration for a question by embedding similarity to the
//! configurations' descriptions (among those with stored chunks); a request may name one.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::{
    Corpus, Filters, Freshness, Hit, HitKind, IndexConfig, SearchRequest, Searcher, Served, configs,
};
use crate::embed::cosine;
use crate::llm::{ChatModel, ChatRequest, FinishReason, Message};
use crate::quotes::hms;
use crate::{Error, Result};

/// What an answer says when its sources do not contain one.
pub const NOT_FOUND: &str = "В отчётах и расшифровках нет ответа на этот вопрос.";

/// Weight of the lexical overlap in an offline line's score (see
/// [`AnswerSettings::min_score`]).
pub const LEXICAL_WEIGHT: f32 = 0.2;

/// The reply the model is told to give when the sources do not answer.
const MODEL_NOT_FOUND: &str = "НЕТ ОТВЕТА";

/// A question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    pub question: String,
    /// A configuration name; `None` routes the question.
    #[serde(default)]
    pub config: Option<String>,
    #[serde(default)]
    pub filters: Filters,
}

impl AnswerRequest {
    pub fn new(question: impl Into<String>) -> Self {
        Self {
            question: question.into(),
            config: None,
            filters: Filters::default(),
        }
    }
}

/// How the configuration was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub config: String,
    /// `request` (named by the caller), `similarity` (routed by the configurations'
    /// descriptions) or `default` (no description fitted: every report type).
    pub chosen_by: String,
    /// Cosine similarity of the question to the configuration's description (when routed).
    pub score: Option<f32>,
}

/// One statement of an answer and the sources (hit ranks) it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    pub text: String,
    pub sources: Vec<usize>,
    /// Where it was said, when it comes from a transcript (offline answers; a model's
    /// statements cite their sources, whose hits carry the times).
    #[serde(default)]
    pub said: Option<Moment>,
}

/// A moment of a recording: a segment's times and who speaks in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moment {
    pub start_ms: i64,
    pub end_ms: i64,
    /// The role speaking (`Сотрудник`, `Клиент`), when labelled.
    pub speaker: Option<String>,
}

/// An answer with its citations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub question: String,
    /// Whether the reports hold an answer.
    pub found: bool,
    /// The answer as text, with `[n]` markers naming sources.
    pub text: String,
    pub statements: Vec<Statement>,
    /// The sources cited, each with its rank `n` as in the markers.
    pub sources: Vec<Hit>,
    pub route: Route,
    /// `offline:extractive` or the model's id.
    pub engine: String,
    pub freshness: Freshness,
}

/// Answer tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSettings {
    /// Chunks given to a model (the old system used 50).
    pub model_sources: usize,
    /// Chunks whose lines the offline answer considers.
    pub offline_sources: usize,
    /// `VOX_ANSWER_MIN_SCORE` (default 0.22): the least score of a report line for the offline
    /// answer to state it. The score is the line's cosine similarity to the question plus
    /// [`LEXICAL_WEIGHT`] times the share of the question's content words whose stems the line
    /// contains. Measured on festival reports with the multilingual USE encoder: lines that
    /// answer score 0.27-0.40, the best lines for questions the reports do not answer
    /// (exchange rates, elections, recipes) 0.10-0.13.
    pub min_score: f32,
    /// `VOX_ROUTE_MIN_SIMILARITY` (default 0.25): routing picks a configuration only when the
    /// question is at least this similar to its description; otherwise it searches all.
    pub route_min_similarity: f32,
    /// The most statements of an offline answer.
    pub max_statements: usize,
    /// `VOX_DEEP_CONCURRENCY` (default 4): recordings a deep question reads at once with a
    /// model (offline reading is CPU-bound and runs one at a time).
    pub deep_concurrency: usize,
    /// `VOX_ANSWER_HYBRID` (`true` or `false`, default false): fuse the answer's search with
    /// full-text search (see `common::search::SearchRequest::hybrid`).
    pub hybrid: bool,
}

impl Default for AnswerSettings {
    fn default() -> Self {
        Self {
            model_sources: 50,
            offline_sources: 20,
            min_score: 0.22,
            route_min_similarity: 0.25,
            max_statements: 5,
            deep_concurrency: 4,
            hybrid: false,
        }
    }
}

impl AnswerSettings {
    pub fn from_env() -> std::result::Result<Self, crate::config::ConfigError> {
        let d = Self::default();
        Ok(Self {
            min_score: crate::config::parsed_or("VOX_ANSWER_MIN_SCORE", d.min_score)?,
            route_min_similarity: crate::config::parsed_or(
                "VOX_ROUTE_MIN_SIMILARITY",
                d.route_min_similarity,
            )?,
            deep_concurrency: crate::config::parsed_or("VOX_DEEP_CONCURRENCY", d.deep_concurrency)?,
            hybrid: crate::config::parsed_or("VOX_ANSWER_HYBRID", d.hybrid)?,
            ..d
        })
    }
}

/// Every configuration with its description's embedding.
type Routes = Vec<(IndexConfig, Vec<f32>)>;

/// Answers questions over a [`Searcher`], with a chat model or offline.
#[derive(Clone)]
pub struct Answerer {
    pub searcher: Searcher,
    pub model: Option<Arc<dyn ChatModel>>,
    pub settings: AnswerSettings,
    /// Configuration descriptions, embedded once.
    routes: Arc<OnceCell<Routes>>,
}

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answerer")
            .field("searcher", &self.searcher)
            .field("model", &self.model.as_ref().map(|m| m.model_id()))
            .field("settings", &self.settings)
            .finish()
    }
}

/// A line the offline answer may state, with the hit it came from.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub hit: usize,
    /// As stated: the heading it sits under and the line as the report has it, or a
    /// sentence of a transcript in guillemets with its time and speaker.
    pub text: String,
    /// As compared: the line without list marks, guillemets and its time stamp.
    pub plain: String,
    /// Where a transcript's sentence was said.
    pub said: Option<Moment>,
    /// The line is a question (it ends with `?`): it shows where a topic came up, not a fact.
    pub asks: bool,
    /// For a sentence of a transcript's turn that replies to a question: the question (an
    /// index into the same list of lines) that the previous turn, by another speaker, asked.
    pub context: Option<usize>,
}

impl Answerer {
    pub fn new(searcher: Searcher, model: Option<Arc<dyn ChatModel>>) -> Self {
        Self {
            searcher,
            model,
            settings: AnswerSettings::default(),
            routes: Arc::new(OnceCell::new()),
        }
    }

    pub fn engine_id(&self) -> String {
        self.model
            .as_ref()
            .map_or_else(|| "offline:extractive".to_owned(), |m| m.model_id())
    }

    /// The configuration for a question: the one named, or the one whose description is most
    /// similar to the question among those with stored chunks.
    pub async fn route(&self, config: Option<&str>, question: &[f32]) -> Result<Route> {
        if let Some(name) = config.map(str::trim).filter(|n| !n.is_empty()) {
            let conn = self.searcher.pool.get().await?;
            let all = self.searcher.configs(&conn).await?;
            let chosen = super::select(all, Some(name), None)?;
            return Ok(Route {
                config: chosen
                    .first()
                    .map_or_else(|| name.to_owned(), |c| c.name.clone()),
                chosen_by: "request".into(),
                score: None,
            });
        }
        let routes = self
            .routes
            .get_or_try_init(|| async {
                let conn = self.searcher.pool.get().await?;
                // Routing picks among report configurations; transcripts are searched beside
                // whichever it picks.
                let all: Vec<IndexConfig> = configs(&conn)
                    .await?
                    .into_iter()
                    .filter(|c| c.corpus == Corpus::Reports)
                    .collect();
                let texts = all
                    .iter()
                    .map(|c| format!("{}. {}", c.name, c.description))
                    .collect();
                let vectors = self.searcher.embed(texts).await?;
                Ok::<_, Error>(all.into_iter().zip(vectors).collect())
            })
            .await?;
        let conn = self.searcher.pool.get().await?;
        let populated = populated_configs(&conn).await?;
        let best = routes
            .iter()
            .filter(|(c, _)| populated.contains(&c.id))
            .map(|(c, v)| (c, cosine(question, v)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        Ok(match best {
            Some((c, score)) if score >= self.settings.route_min_similarity => Route {
                config: c.name.clone(),
                chosen_by: "similarity".into(),
                score: Some(score),
            },
            // No description fits well enough (or nothing is stored yet): search everything.
            best => Route {
                config: "all".into(),
                chosen_by: "default".into(),
                score: best.map(|(_, s)| s),
            },
        })
    }

    /// A fast answer: routed search, then the model or the offline extractive answer.
    pub async fn answer(
        &self,
        served: Option<Served<'_>>,
        request: &AnswerRequest,
    ) -> Result<Answer> {
        let question = request.question.trim().to_owned();
        let mut search = SearchRequest::new(question.clone());
        search.filters = request.filters.clone();
        search.limit = if self.model.is_some() {
            self.settings.model_sources
        } else {
            self.settings.offline_sources
        };
        search.validate().map_err(as_question)?;
        let vector = self
            .searcher
            .embed(vec![question.clone()])
            .await?
            .pop()
            .ok_or_else(|| Error::Embed {
                reason: "the encoder returned no vector for the question".into(),
            })?;
        let route = self.route(request.config.as_deref(), &vector).await?;
        search.config = Some(route.config.clone());
        search.corpus = Some(Corpus::Both);
        search.hybrid = self.settings.hybrid;
        let results = self
            .searcher
            .search_vector(served, &search, &vector)
            .await?;
        let (statements, engine) = match &self.model {
            Some(model) => (
                model_answer(model.as_ref(), &question, &results.hits).await?,
                model.model_id(),
            ),
            None => (
                self.extract(
                    &question,
                    &vector,
                    &results.hits,
                    self.settings.max_statements,
                )
                .await?,
                self.engine_id(),
            ),
        };
        Ok(finish(
            question,
            statements,
            results.hits,
            route,
            engine,
            results.freshness,
        ))
    }

    /// The offline answer: report lines of `hits` scoring at least
    /// [`AnswerSettings::min_score`] against the question, best first, at most `max`.
    pub(crate) async fn extract(
        &self,
        question_text: &str,
        question: &[f32],
        hits: &[Hit],
        max: usize,
    ) -> Result<Vec<Statement>> {
        let lines = source_lines(hits);
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = self
            .searcher
            .embed(lines.iter().map(|l| l.plain.clone()).collect())
            .await?;
        let stems = content_stems(question_text);
        let own: Vec<f32> = lines
            .iter()
            .zip(&vectors)
            .map(|(l, v)| {
                cosine(question, v)
                    + LEXICAL_WEIGHT * lexical_overlap(&stems, &with_place(l, &hits[l.hit]))
            })
            .collect();
        let ranked = rank(
            &lines,
            &own,
            !asks_about_questions(&stems),
            self.settings.min_score,
        );
        let mut seen = BTreeSet::new();
        let mut out: Vec<Statement> = Vec::new();
        // Statements with the plain text they were stated for.
        let mut keys: Vec<String> = Vec::new();
        for line in ranked.into_iter().map(|i| &lines[i]) {
            let key = line.plain.to_lowercase();
            let rank = hits[line.hit].rank;
            if !seen.insert(key.clone()) {
                // The same passage in another source or section (overlapping chunks, a quote
                // under two headings, repeated reports): one statement citing both.
                if let Some(at) = keys.iter().position(|k| *k == key) {
                    if !out[at].sources.contains(&rank) {
                        out[at].sources.push(rank);
                    }
                    if out[at].said.is_none() {
                        out[at].said = line.said.clone();
                    }
                }
                continue;
            }
            if out.len() < max {
                out.push(Statement {
                    text: line.text.clone(),
                    sources: vec![rank],
                    said: line.said.clone(),
                });
                keys.push(key);
            }
        }
        Ok(out)
    }
}

/// A search request's error as the question's: its text is the `question` field.
pub(crate) fn as_question(e: Error) -> Error {
    match e {
        Error::InvalidInput {
            field: "query",
            reason,
        } => Error::InvalidInput {
            field: "question",
            reason,
        },
        other => other,
    }
}

/// Assembles an answer: text with markers, and only the sources cited.
pub(crate) fn finish(
    question: String,
    statements: Vec<Statement>,
    hits: Vec<Hit>,
    route: Route,
    engine: String,
    freshness: Freshness,
) -> Answer {
    let cited: BTreeSet<usize> = statements.iter().flat_map(|s| s.sources.clone()).collect();
    let found = !statements.is_empty();
    let text = if found {
        let mut text = String::new();
        for s in &statements {
            let marks: String = s.sources.iter().map(|n| format!("[{n}]")).collect();
            let _ = writeln!(text, "- {} {marks}", s.text);
        }
        text.trim_end().to_owned()
    } else {
        NOT_FOUND.to_owned()
    };
    Answer {
        question,
        found,
        text,
        statements,
        sources: hits
            .into_iter()
            .filter(|h| cited.contains(&h.rank))
            .collect(),
        route,
        engine,
        freshness,
    }
}

/// Configurations that have at least one stored chunk.
async fn populated_configs(client: &impl crate::db::GenericClient) -> Result<BTreeSet<u16>> {
    let rows = client
        .query(
            "SELECT DISTINCT m.index_config_id FROM index_config_member m
             WHERE EXISTS (SELECT 1 FROM chunk c JOIN audit a ON a.audit_id = c.audit_id
                           WHERE a.report_type_id = m.report_type_id)",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| u16::try_from(r.get::<_, i16>(0)).ok())
        .collect())
}

/// The statable lines of the hits: for report pieces, list items and sentences with the
/// heading they sit under as context (`Освещение: «…» (00:01:02)`), leaving out headings,
/// markers of empty sections and fragments without a few words; for transcript windows,
/// every sentence of at least three words of their segments, in guillemets with the
/// segment's time and speaker (`«…» (00:00:41, Клиент)`).
pub(crate) fn source_lines(hits: &[Hit]) -> Vec<Line> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, hit) in hits.iter().enumerate() {
        if hit.kind == HitKind::Transcript {
            // The last question of the previous turn, and who asked it.
            let mut asked: Option<(usize, Option<&str>)> = None;
            for segment in &hit.segments {
                let speaker = segment.speaker.as_deref();
                let context = asked
                    .filter(|(_, by)| by.is_none() || *by != speaker)
                    .map(|(q, _)| q);
                asked = None;
                for sentence in split_long(segment.text.trim(), 1) {
                    let words = sentence
                        .split_whitespace()
                        .filter(|w| w.chars().any(char::is_alphabetic))
                        .count();
                    let plain = plain(sentence);
                    if words < 3 || plain.is_empty() {
                        continue;
                    }
                    let text = match &segment.speaker {
                        Some(who) => format!("«{sentence}» ({}, {who})", hms(segment.start_ms)),
                        None => format!("«{sentence}» ({})", hms(segment.start_ms)),
                    };
                    if seen.insert(format!("{i}\u{0}{text}")) {
                        let asks = is_question(&plain);
                        if asks {
                            asked = Some((out.len(), speaker));
                        }
                        out.push(Line {
                            hit: i,
                            text,
                            plain,
                            said: Some(Moment {
                                start_ms: segment.start_ms,
                                end_ms: segment.end_ms,
                                speaker: segment.speaker.clone(),
                            }),
                            asks,
                            context: context.filter(|_| !asks),
                        });
                    }
                }
            }
            continue;
        }
        let mut heading: Option<String> = None;
        for raw in hit.text.lines() {
            let line = raw.trim();
            if let Some(h) = line.strip_prefix('#') {
                let h = h.trim_start_matches('#').trim();
                heading = (!h.is_empty()).then(|| h.to_owned());
                continue;
            }
            let body = line
                .trim_start_matches(['-', '*', '•', '–', '—'])
                .trim_start();
            let body = strip_numbering(body);
            let words = body
                .split_whitespace()
                .filter(|w| w.chars().any(char::is_alphabetic))
                .count();
            if words < 3 || body.starts_with("Нет данных") {
                continue;
            }
            for sentence in split_long(body, 400) {
                let text = match &heading {
                    Some(h) => format!("{h}: {sentence}"),
                    None => sentence.to_owned(),
                };
                let plain = plain(sentence);
                if !plain.is_empty() && seen.insert(format!("{i}\u{0}{text}")) {
                    out.push(Line {
                        hit: i,
                        asks: is_question(&plain),
                        text,
                        plain,
                        said: None,
                        context: None,
                    });
                }
            }
        }
    }
    out
}

/// A line as compared with the question: guillemets and a trailing `(ЧЧ:ММ:СС)` removed
/// (quotation marks and time stamps only blur its meaning for the encoder).
fn plain(line: &str) -> String {
    let mut s = line.replace(['«', '»'], "");
    if s.ends_with(')')
        && let Some(open) = s.rfind(" (")
        && s[open + 2..s.len() - 1]
            .chars()
            .all(|c| c.is_ascii_digit() || c == ':')
    {
        s.truncate(open);
    }
    s.trim().to_owned()
}

/// The lines worth stating, best first, as indices into `lines`, given each line's own score
/// against the question (`own`, in the same order). A reply scores at least the mean of its
/// own score and its question's: the question names the topic ("how was breakfast?"), the
/// reply states the fact ("the porridge was cold"). Lines scoring under `min` are left out;
/// with `demote_questions`, questions come after every fact that qualifies (they show where a
/// topic came up, not what was said of it).
///
/// Measured on the retrieval benchmark (offline answers citing the answering turn): 0.338
/// before, 0.604 with questions demoted and replies taking their question's topic; letting
/// every sentence also take the topic of the sentence before it cited 0.617 but stated the
/// fact less often (0.519 against 0.552), so it is not done.
fn rank(lines: &[Line], own: &[f32], demote_questions: bool, min: f32) -> Vec<usize> {
    let mut scored: Vec<(bool, f32, usize)> = lines
        .iter()
        .zip(own)
        .enumerate()
        .map(|(i, (l, &score))| {
            let score = l
                .context
                .map_or(score, |c| score.max((own[c] + score) / 2.0));
            (demote_questions && l.asks, score, i)
        })
        .filter(|&(_, score, _)| score >= min)
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    scored.into_iter().map(|(_, _, i)| i).collect()
}

/// A line's words as compared with the question's: the line's, then its recording's city and
/// venue, so that «в московском ресторане» favours the Moscow recording's lines (on the
/// retrieval benchmark: answers citing the turn 0.604 to 0.610, stating the fact 0.552 to
/// 0.558; weighting lines by their hit's rank as well was tried and stated facts less often).
fn with_place(line: &Line, hit: &Hit) -> String {
    format!(
        "{} {} {}",
        line.plain,
        hit.city.as_deref().unwrap_or(""),
        hit.place.as_deref().unwrap_or("")
    )
}

/// A line that asks rather than states.
fn is_question(plain: &str) -> bool {
    plain
        .trim_end_matches(|c: char| !c.is_alphanumeric() && c != '?')
        .ends_with('?')
}

/// Whether a question's content stems ask about the questions that were asked ("какие вопросы
/// задавал сотрудник", "о чём спрашивали гостя").
fn asks_about_questions(stems: &[String]) -> bool {
    stems
        .iter()
        .any(|s| matches!(s.as_str(), "вопро" | "спраш" | "спрос" | "задав"))
}

/// Question words and other words too common to tell lines apart.
const STOP_WORDS: &[&str] = &[
    "что",
    "чего",
    "как",
    "какой",
    "какая",
    "какое",
    "какие",
    "каких",
    "каким",
    "почему",
    "зачем",
    "когда",
    "где",
    "куда",
    "откуда",
    "сколько",
    "кто",
    "кого",
    "чем",
    "это",
    "этот",
    "эта",
    "эти",
    "этом",
    "этой",
    "того",
    "тот",
    "так",
    "такой",
    "также",
    "есть",
    "был",
    "была",
    "было",
    "были",
    "быть",
    "или",
    "для",
    "при",
    "про",
    "под",
    "над",
    "без",
    "все",
    "всё",
    "весь",
    "вся",
    "они",
    "она",
    "оно",
    "его",
    "её",
    "ему",
    "нас",
    "вас",
    "них",
    "мне",
    "меня",
    "сегодня",
    "очень",
    "можно",
    "нужно",
    "ли",
    "не",
    "ни",
    "же",
    "бы",
    "по",
    "на",
    "из",
];

/// The stems (first five letters) of a question's content words: words of four or more
/// letters that are not [`STOP_WORDS`].
pub(crate) fn content_stems(text: &str) -> Vec<String> {
    let mut stems: Vec<String> = words(text)
        .into_iter()
        .filter(|w| w.chars().count() >= 4 && !STOP_WORDS.contains(&w.as_str()))
        .map(|w| w.chars().take(5).collect())
        .collect();
    stems.sort();
    stems.dedup();
    stems
}

/// Share of `stems` that start a word of `line` (0 without stems).
pub(crate) fn lexical_overlap(stems: &[String], line: &str) -> f32 {
    if stems.is_empty() {
        return 0.0;
    }
    let words = words(line);
    let hits = stems
        .iter()
        .filter(|s| words.iter().any(|w| w.starts_with(s.as_str())))
        .count();
    hits as f32 / stems.len() as f32
}

/// Lower-cased words (letters and digits), `ё` as `е`.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.chars()
                .flat_map(char::to_lowercase)
                .map(|c| if c == 'ё' { 'е' } else { c })
                .collect()
        })
        .collect()
}

/// `1. ` / `2) ` numbering at the start of a line removed.
fn strip_numbering(s: &str) -> &str {
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    if digits > 0
        && let Some(rest) = s[digits..]
            .strip_prefix('.')
            .or_else(|| s[digits..].strip_prefix(')'))
    {
        return rest.trim_start();
    }
    s
}

/// A long line cut after sentence ends (`. `, `! `, `? `) into pieces of about `max` bytes.
fn split_long(s: &str, max: usize) -> Vec<&str> {
    if s.len() <= max {
        return vec![s];
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut last_end = None;
    let bytes = s.as_bytes();
    for (i, c) in s.char_indices() {
        if matches!(c, '.' | '!' | '?') && bytes.get(i + 1) == Some(&b' ') {
            last_end = Some(i + 1);
        }
        if i - start >= max
            && let Some(end) = last_end.filter(|&e| e > start)
        {
            out.push(s[start..end].trim());
            start = end;
            last_end = None;
        }
    }
    if start < s.len() {
        out.push(s[start..].trim());
    }
    out.retain(|p| !p.is_empty());
    out
}

/// One model call over the hits; statements are the answer's lines with their `[n]` markers
/// (markers naming no given source are dropped). No statements when the model says the
/// sources do not answer.
pub(crate) async fn model_answer(
    model: &dyn ChatModel,
    question: &str,
    hits: &[Hit],
) -> Result<Vec<Statement>> {
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let budget = model
        .max_input_chars()
        .saturating_sub(question.len() + 2_000);
    let mut sources = String::new();
    let mut given = BTreeSet::new();
    for hit in hits {
        let block = format!("[{}] {}\n{}\n\n", hit.rank, describe(hit), hit.text.trim());
        if !given.is_empty() && sources.len() + block.len() > budget {
            break;
        }
        sources.push_str(&block);
        given.insert(hit.rank);
    }
    let request = ChatRequest {
        system: Some(format!(
            "Ты аналитик отчётов об аудитах отелей, ресторанов и центров здоровья. Отвечай \
             по-русски только по источникам, которые даёт пользователь; ничего не добавляй от \
             себя. После каждого утверждения ставь номера источников в квадратных скобках, \
             например [2] или [1][4]. Каждое утверждение пиши с новой строки. Если в \
             источниках нет ответа на вопрос, ответь ровно: {MODEL_NOT_FOUND}"
        )),
        messages: vec![Message::user(format!(
            "Вопрос: {question}\n\nИсточники:\n\n{sources}"
        ))],
        max_tokens: Some(1_500),
        temperature: Some(0.0),
    };
    let response = model.chat(&request).await?;
    if response.finish == FinishReason::Length {
        return Err(Error::Provider {
            provider: model.model_id(),
            retryable: false,
            reason: "the answer was cut off at the token limit".into(),
        });
    }
    Ok(parse_cited(&response.text, &given))
}

/// A source's description for the model: report type, building, place, city, date, file.
pub(crate) fn describe(hit: &Hit) -> String {
    let mut parts = match hit.kind {
        HitKind::Report => vec![hit.report_type_desc.clone().unwrap_or_default()],
        HitKind::Transcript => {
            let mut p = vec![format!(
                "расшифровка записи, {}–{}",
                hms(hit.start_ms.unwrap_or(0)),
                hms(hit.end_ms.unwrap_or(0))
            )];
            p.extend(hit.speaker.clone());
            p
        }
    };
    parts.push(hit.building.clone());
    parts.extend(hit.place.clone());
    parts.extend(hit.city.clone());
    parts.push(hit.audit_date.to_string());
    parts.push(format!("запись {}", hit.audio_file_name));
    parts.join(", ")
}

/// The statements of a model's answer: one per non-empty line (list markers removed), with
/// the `[n]` markers found in it that name a given source; nothing if the model said there is
/// no answer.
pub(crate) fn parse_cited(answer: &str, given: &BTreeSet<usize>) -> Vec<Statement> {
    let trimmed = answer.trim();
    if trimmed.is_empty() || trimmed.to_uppercase().starts_with(MODEL_NOT_FOUND) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for line in trimmed.lines() {
        let line = line.trim().trim_start_matches(['-', '*', '•']).trim();
        if line.is_empty() {
            continue;
        }
        let mut sources = Vec::new();
        let mut text = String::new();
        let mut rest = line;
        while let Some(open) = rest.find('[') {
            text.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after.find(']') {
                Some(close) if is_marker(&after[..close]) => {
                    for n in after[..close]
                        .split(',')
                        .filter_map(|n| n.trim().parse().ok())
                    {
                        if given.contains(&n) && !sources.contains(&n) {
                            sources.push(n);
                        }
                    }
                    rest = &after[close + 1..];
                }
                _ => {
                    text.push('[');
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        let text = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace(" .", ".")
            .replace(" ,", ",")
            .replace(" ;", ";");
        if text.chars().any(char::is_alphanumeric) {
            out.push(Statement {
                text,
                sources,
                said: None,
            });
        }
    }
    out
}

fn is_marker(inner: &str) -> bool {
    !inner.trim().is_empty()
        && inner
            .split(',')
            .all(|n| !n.trim().is_empty() && n.trim().chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_answers_are_parsed_into_cited_statements() {
        let given: BTreeSet<usize> = [1, 2, 3].into();
        let s = parse_cited(
            "- Свет в лобби холодный [1][3].\n\n- Персонал вежлив [2, 9]\nВывод без ссылок. [x]",
            &given,
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].text, "Свет в лобби холодный.");
        assert_eq!(s[0].sources, vec![1, 3]);
        assert_eq!(s[1].sources, vec![2]); // 9 names no given source
        assert_eq!(s[2].text, "Вывод без ссылок. [x]");
        assert!(s[2].sources.is_empty());
        assert!(parse_cited("НЕТ ОТВЕТА", &given).is_empty());
        assert!(parse_cited("  нет ответа.", &given).is_empty());
    }

    #[test]
    fn lines_are_compared_without_marks_and_by_content_words() {
        assert_eq!(
            plain("«Освещение слишком холодное.» (00:01:02)"),
            "Освещение слишком холодное."
        );
        assert_eq!(plain("Итог (см. выше)"), "Итог (см. выше)");
        let stems = content_stems("Что не так с освещением в лобби?");
        assert_eq!(stems, vec!["лобби", "освещ"]);
        assert_eq!(lexical_overlap(&stems, "Освещение слишком холодное"), 0.5);
        assert_eq!(lexical_overlap(&stems, "В ЛОББИ освещённо"), 1.0);
        assert_eq!(lexical_overlap(&[], "что угодно"), 0.0);
    }

    fn transcript_hit(turns: &[(&str, &str)]) -> Hit {
        let mut hit = Hit {
            rank: 1,
            score: 0.5,
            source: super::super::Source::Index,
            kind: HitKind::Transcript,
            chunk_id: 1,
            audit_id: None,
            seq: 0,
            start_char: 0,
            end_char: 0,
            text: String::new(),
            start_ms: Some(0),
            end_ms: Some(30_000),
            speaker: None,
            scenario: "interview".into(),
            report_type: None,
            report_type_desc: None,
            building: "hotel".into(),
            pass: None,
            pass_title: None,
            audit_date: chrono::NaiveDate::from_ymd_opt(2026, 4, 2).expect("a date"),
            city: None,
            employee: None,
            client: None,
            place: None,
            transcription_id: 1,
            audio_file_name: "a.wav".into(),
            recording_id: Some(1),
            bucket: None,
            object_key: None,
            segments: Vec::new(),
        };
        hit.segments = turns
            .iter()
            .enumerate()
            .map(|(i, (who, text))| super::super::SegmentRef {
                seq: i as i32,
                start_ms: i as i64 * 10_000,
                end_ms: i as i64 * 10_000 + 9_000,
                text: (*text).to_owned(),
                speaker: Some((*who).to_owned()),
            })
            .collect();
        hit
    }

    #[test]
    fn a_reply_takes_its_topic_from_the_question_and_questions_come_last() {
        let hit = transcript_hit(&[
            ("Сотрудник", "Как вам завтрак в этой гостинице?"),
            (
                "Клиент",
                "Честно говоря, не очень. Каша была совсем холодная, кофе остывший.",
            ),
            ("Клиент", "Ещё мне понравился вид из окна номера."),
        ]);
        let lines = source_lines(&[hit]);
        let texts: Vec<&str> = lines.iter().map(|l| l.plain.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Как вам завтрак в этой гостинице?",
                "Честно говоря, не очень.",
                "Каша была совсем холодная, кофе остывший.",
                "Ещё мне понравился вид из окна номера.",
            ]
        );
        let asks: Vec<bool> = lines.iter().map(|l| l.asks).collect();
        assert_eq!(asks, [true, false, false, false]);
        // The reply's sentences answer the question; the guest's next turn did not follow a
        // question by someone else.
        let context: Vec<Option<usize>> = lines.iter().map(|l| l.context).collect();
        assert_eq!(context, [None, Some(0), Some(0), None]);

        // The question is most like the asked one; the fact inherits from it.
        let own = [0.8, 0.1, 0.3, 0.25];
        assert_eq!(rank(&lines, &own, true, 0.22), [2, 1, 3, 0]);
        // Asked about the questions themselves: by score alone.
        assert_eq!(rank(&lines, &own, false, 0.22), [0, 2, 1, 3]);
        // Under the least score nothing is stated, whatever its context.
        assert_eq!(
            rank(&lines, &[0.2, 0.1, 0.1, 0.1], true, 0.22),
            Vec::<usize>::new()
        );
        assert!(asks_about_questions(&content_stems(
            "Какие вопросы задавал сотрудник?"
        )));
        assert!(!asks_about_questions(&content_stems(
            "Что гость сказал о завтраке?"
        )));
        // Where it was said counts as the line's words.
        let mut hit = transcript_hit(&[("Клиент", "Завтрак был холодный.")]);
        hit.city = Some("Казань".into());
        let stems = content_stems("Какой завтрак в казанском отеле?");
        let line = &source_lines(std::slice::from_ref(&hit))[0];
        assert_eq!(lexical_overlap(&stems, &line.plain), 1.0 / 3.0);
        assert_eq!(lexical_overlap(&stems, &with_place(line, &hit)), 2.0 / 3.0);
        assert!(is_question("Правда? «Да»?"));
        assert!(!is_question("Вопрос? Нет, ответ."));
    }

    #[test]
    fn long_lines_split_at_sentence_ends() {
        let s = "Первое предложение здесь. Второе предложение тоже. Третье.";
        assert_eq!(split_long(s, 1000), vec![s]);
        assert_eq!(
            split_long(s, 20),
            vec![
                "Первое предложение здесь.",
                "Второе предложение тоже.",
                "Третье."
            ]
        );
        assert_eq!(strip_numbering("12. Пункт"), "Пункт");
        assert_eq!(strip_numbering("2025 год"), "2025 год");
    }
}
