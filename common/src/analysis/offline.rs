//! The offline analysis engine: no network, deterministic. For one job it builds every pass
//! of the report type from the transcript itself, following `common/prompts/sections.toml`
//! (the contract is in `common/prompts/README.md`, «sections.toml: контракт офлайн-движка»):
//!
//! 1. the transcript is cut into passages (sentences inside segments; short ones glued to the
//!    next, long ones cut at a word), each an exact substring of its segment; interviews get
//!    a role per passage (`roles`: stored segment roles, else a heuristic);
//! 2. all passages are embedded once per job; a passage's score for a section is its best
//!    cosine with the section's probes (the query, each of its sentences, the title) plus
//!    `keyword_weight · min(keywords matched, keyword_cap)`, keywords matched by Russian
//!    morphology (`stem`: Snowball stems, so a guest's «парковку» matches «парковка»);
//! 3. filters (role, venue anchors), the `min_score` threshold, exclusive assignment within a
//!    pass (in factor passes a passage also serves every other section whose keywords it
//!    uses: one statement may support several factors) and `max_quotes` pick each section's
//!    quotes;
//! 4. narrative passes are Markdown with verbatim «quotes» and their times; the metrics pass
//!    applies `[[metrics_rule]]` to what was found and is checked against the pair's schema.
//!
//! Its scores measure coverage of topics, not quality: the report is a digest of evidence.
//!
//! Where the contract is silent, this engine chooses:
//! - short sentences are glued to the next one only within one role, so a passage never
//!   mixes the interviewer and the client; a short last sentence of a segment stays alone;
//! - line breaks and guillemets split sentences and are never part of a passage (a quote is
//!   one Markdown line, and «…» in reports mark quotes only);
//! - a text the transcript repeats verbatim is quoted once per section (the next best distinct
//!   passage takes its place), and so also counts once in `count_passages`;
//! - the venue name matches case-insensitively with `ё` as `е`, like keywords;
//! - interview reports whose roles came from the heuristic say so in a line under the title.

use std::sync::Arc;

use super::catalog::Catalog;
use super::{JobInput, PassKind, PassOutput, ReportOutput};
use crate::embed::{Embedder, cosine};
use crate::{Error, Result};

mod render;
mod roles;
mod rules;
mod select;
mod spec;
mod stem;
mod text;

pub use stem::{stem, stems};

use roles::Role;
use spec::{Exclusive, Pair, PassBody, Report, Source, Spec};
use text::Span;

/// The section contract, embedded: a Lambda has no checkout.
const SECTIONS_TOML: &str = include_str!("../../prompts/sections.toml");

/// Printed under the title of interview reports whose roles came from the heuristic.
const ROLE_NOTE: &str = "Роли участников определены эвристически, без модели: вопросы и \
обращения ведущего отнесены к Сотруднику, остальные реплики к Клиенту; возможны ошибки.";

/// Printed under the title of interview reports whose roles came from the speakers' voices and
/// turns (the transcribe stage, `crate::speakers`).
const VOICE_ROLE_NOTE: &str = "Роли участников определены по записи: говорящие различены по \
голосам, Сотрудником считается тот, кто задаёт вопросы; возможны ошибки.";

/// What one section of a pass produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Outcome {
    /// Quoted passages (indices), in transcript order.
    pub passages: Vec<usize>,
    /// For a complement section: the titles it lists.
    pub listed: Vec<String>,
}

/// The offline engine: the parsed contract with its query embeddings, and the embedder for
/// passages. Build it once per process; [`OfflineEngine::analyze`] is CPU-bound and
/// synchronous (async callers run it on a blocking thread).
pub struct OfflineEngine {
    embedder: Arc<dyn Embedder>,
    spec: Spec,
}

impl std::fmt::Debug for OfflineEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineEngine")
            .field("embedder", &self.embedder.model_id())
            .field("pairs", &self.spec.pairs.len())
            .finish()
    }
}

/// One searched section of a report, see [`OfflineEngine::sections`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    pub pass: i16,
    /// The id in `sections.toml`, unique within its pass.
    pub id: String,
    pub group: Option<String>,
    pub title: String,
    /// The metric key the section feeds, if any.
    pub metric: Option<String>,
}

/// One passage of the transcript.
#[derive(Debug, Clone)]
struct Passage {
    span: Span,
    role: Option<Role>,
    /// Index of the sentence it starts in.
    first_sentence: usize,
    /// Byte offset (in the segment) where that sentence starts: a passage cut from a long
    /// sentence starts after it.
    sentence_start: usize,
}

/// Per passage, its normalized tokens (for venue anchors) and their stems (for keywords).
struct Words<'w> {
    tokens: &'w [Vec<String>],
    stems: &'w [Vec<String>],
}

/// A job's transcript cut for search.
struct Transcript<'a> {
    texts: Vec<&'a str>,
    sentences: Vec<Span>,
    passages: Vec<Passage>,
    /// Per passage, the index of the first passage with the same text.
    text_ids: Vec<usize>,
    /// Whether some role came from the heuristic rather than from the segments.
    heuristic_roles: bool,
    /// Whether the roles came with speakers told apart by voice.
    voice_roles: bool,
}

impl OfflineEngine {
    /// Parses and checks the built-in `sections.toml` against the prompt catalog and the
    /// metric schemas, and embeds every section query (about 400 texts) once.
    pub fn new(embedder: Arc<dyn Embedder>) -> Result<Self> {
        let catalog = Catalog::embedded()?;
        let mut spec = spec::compile(SECTIONS_TOML, catalog)?;
        spec.embed_queries(embedder.as_ref())?;
        Ok(Self { embedder, spec })
    }

    /// Names the encoder and the version of the section contract (the first 12 hex digits
    /// of the SHA-256 of `sections.toml`), so a stored report says exactly what made it.
    pub fn engine_id(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(SECTIONS_TOML.as_bytes());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("offline:{}+sections@{hex}", self.embedder.model_id())
    }

    /// The searched sections of every narrative pass of (report type, building), in report
    /// order, as the Markdown shows them: a section with a group is `### title` under
    /// `## group`, one without is `## title`. Empty for a pair the catalog does not have.
    pub fn sections(&self, report_type: &str, building: &str) -> Vec<SectionInfo> {
        let Some(pair) = self.spec.pair(report_type, building) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for pass in &pair.passes {
            let PassBody::Narrative(report) = &pass.body else {
                continue;
            };
            for s in &report.sections {
                if matches!(s.source, Source::Search(_)) {
                    out.push(SectionInfo {
                        pass: pass.number,
                        id: s.id.clone(),
                        group: s.group.clone(),
                        title: s.title.clone(),
                        metric: s.metric.clone(),
                    });
                }
            }
        }
        out
    }

    /// Every pass of the job's (report type, building), in catalog order: narratives as
    /// Markdown, the metrics pass as pretty-printed JSON (and as a value) that matches the
    /// pair's schema. The same job always gives the same bytes.
    ///
    /// Errors: [`Error::InvalidPair`] for a pair the catalog does not have,
    /// [`Error::UnknownReportType`] when the job's scenario is not the report type's, and the
    /// embedder's errors.
    pub fn analyze(&self, job: &JobInput) -> Result<ReportOutput> {
        let pair = self
            .spec
            .pair(&job.report_type, &job.building)
            .ok_or_else(|| Error::InvalidPair {
                building: job.building.clone(),
                report_type: job.report_type.clone(),
            })?;
        if pair.scenario != job.scenario {
            return Err(Error::UnknownReportType {
                name: job.report_type.clone(),
                scenario: job.scenario.clone(),
            });
        }
        let interview = pair.scenario == "interview";
        let transcript = self.cut(job, interview);
        let vectors = self.embed(&transcript)?;
        let tokens: Vec<Vec<String>> = transcript
            .passages
            .iter()
            .map(|p| text::tokens(transcript.text(&p.span)))
            .collect();
        let stems: Vec<Vec<String>> = tokens
            .iter()
            .map(|t| t.iter().map(|w| stem::stem_token(w)).collect())
            .collect();
        let note = match (
            interview,
            transcript.heuristic_roles,
            transcript.voice_roles,
        ) {
            (false, _, _) => None,
            (true, true, _) => Some(ROLE_NOTE),
            (true, false, true) => Some(VOICE_ROLE_NOTE),
            (true, false, false) => None,
        };

        let mut outcomes: Vec<Vec<Outcome>> = Vec::with_capacity(pair.passes.len());
        let mut passes = Vec::with_capacity(pair.passes.len());
        for pass in &pair.passes {
            match &pass.body {
                PassBody::Narrative(report) => {
                    let words = Words {
                        tokens: &tokens,
                        stems: &stems,
                    };
                    let found =
                        self.find(pair, report, &outcomes, &transcript, &vectors, &words, job);
                    let quote = |p: usize| {
                        let span = &transcript.passages[p].span;
                        (transcript.text(span), job.segments[span.seg].start_ms)
                    };
                    let markdown = render::render(report, &found, quote, &self.spec.defaults, note);
                    outcomes.push(found);
                    passes.push(PassOutput {
                        pass: pass.number,
                        title: pass.title.clone(),
                        kind: PassKind::Narrative,
                        text: markdown,
                        metrics: None,
                        prompt_name: pass.prompt_name.clone(),
                    });
                }
                PassBody::Metrics => {
                    let schema = crate::metrics::schema(&pair.report_type, &pair.building)
                        .ok_or_else(|| Error::InvalidMetrics {
                            report_type: pair.report_type.clone(),
                            building: pair.building.clone(),
                            details: "no metrics schema exists for this pair".into(),
                        })?;
                    outcomes.push(Vec::new());
                    let value = rules::compute(&pair.rule, &pair.passes, &outcomes, schema);
                    crate::metrics::validate(&pair.report_type, &pair.building, &value)?;
                    let json =
                        serde_json::to_string_pretty(&value).map_err(|e| Error::Analysis {
                            reason: format!("metrics could not be serialized: {e}"),
                        })?;
                    passes.push(PassOutput {
                        pass: pass.number,
                        title: pass.title.clone(),
                        kind: PassKind::Metrics,
                        text: json,
                        metrics: Some(value),
                        prompt_name: pass.prompt_name.clone(),
                    });
                }
            }
        }
        Ok(ReportOutput {
            passes,
            engine: self.engine_id(),
        })
    }

    /// Sentences, roles and passages of the job's segments.
    fn cut<'a>(&self, job: &'a JobInput, interview: bool) -> Transcript<'a> {
        let d = &self.spec.defaults;
        let texts: Vec<&str> = job.segments.iter().map(|s| s.text.as_str()).collect();
        let sentences: Vec<Span> = texts
            .iter()
            .enumerate()
            .flat_map(|(i, t)| text::sentences(i, t))
            .collect();
        let mut heuristic_roles = false;
        let roles: Vec<Option<Role>> = if interview {
            let given: Vec<Option<Role>> = sentences
                .iter()
                .map(|s| job.segments[s.seg].speaker.as_deref().and_then(Role::parse))
                .collect();
            heuristic_roles = given.iter().any(Option::is_none);
            let lines: Vec<(usize, &str)> = sentences
                .iter()
                .map(|s| (s.seg, &texts[s.seg][s.start..s.end]))
                .collect();
            roles::label(&lines, &given).into_iter().map(Some).collect()
        } else {
            vec![None; sentences.len()]
        };

        let mut passages = Vec::new();
        let mut i = 0;
        while i < sentences.len() {
            let first = i;
            let head = sentences[first];
            let seg_text = texts[head.seg];
            let mut end = head.end;
            // Glue short sentences to the next one of the same segment (and the same role,
            // so that a passage never mixes the two speakers).
            while seg_text[head.start..end].chars().count() < d.min_passage_chars
                && i + 1 < sentences.len()
                && sentences[i + 1].seg == head.seg
                && roles[i + 1] == roles[first]
            {
                i += 1;
                end = sentences[i].end;
            }
            for (start, end) in text::cut_long(seg_text, head.start, end, d.max_passage_chars) {
                passages.push(Passage {
                    span: Span {
                        seg: head.seg,
                        start,
                        end,
                    },
                    role: roles[first],
                    first_sentence: first,
                    sentence_start: head.start,
                });
            }
            i += 1;
        }
        let mut first_of: std::collections::HashMap<&str, usize> = Default::default();
        let text_ids = passages
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let span = p.span;
                *first_of
                    .entry(&texts[span.seg][span.start..span.end])
                    .or_insert(i)
            })
            .collect();
        Transcript {
            texts,
            sentences,
            passages,
            text_ids,
            heuristic_roles,
            voice_roles: job.segments.iter().any(|s| s.speaker_id.is_some()),
        }
    }

    /// One vector per passage, in one call (the embedder batches deterministically).
    fn embed(&self, transcript: &Transcript<'_>) -> Result<Vec<Vec<f32>>> {
        let texts: Vec<&str> = transcript
            .passages
            .iter()
            .map(|p| transcript.text(&p.span))
            .collect();
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let vectors = self.embedder.embed(&texts)?;
        if vectors.len() != texts.len() {
            return Err(Error::Analysis {
                reason: format!(
                    "the embedder returned {} vectors for {} passages",
                    vectors.len(),
                    texts.len()
                ),
            });
        }
        Ok(vectors)
    }

    /// The outcome of every section of one narrative pass.
    #[allow(clippy::too_many_arguments)]
    fn find(
        &self,
        pair: &Pair,
        report: &Report,
        earlier: &[Vec<Outcome>],
        transcript: &Transcript<'_>,
        vectors: &[Vec<f32>],
        words: &Words<'_>,
        job: &JobInput,
    ) -> Vec<Outcome> {
        let d = &self.spec.defaults;
        let tokens = words.tokens;
        let anchored: Vec<bool> = match &report.anchor {
            None => vec![true; transcript.passages.len()],
            Some(anchor) => {
                let place = anchor
                    .place
                    .then(|| job.place.as_deref().map(text::normalize))
                    .flatten()
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty());
                let hit = |piece: &str, words: &[String]| {
                    words.iter().any(|w| anchor.tokens.contains(w))
                        || place
                            .as_deref()
                            .is_some_and(|name| text::normalize(piece).contains(name))
                };
                transcript
                    .passages
                    .iter()
                    .zip(tokens)
                    .map(|(p, words)| {
                        hit(transcript.text(&p.span), words)
                            || transcript
                                .context(p)
                                .into_iter()
                                .any(|piece| hit(piece, &text::tokens(piece)))
                    })
                    .collect()
            }
        };

        let mut eligible: Vec<Vec<(usize, f64)>> = Vec::with_capacity(report.sections.len());
        // (section, passage) pairs where the passage matched one of the section's keywords.
        let mut lexical: std::collections::BTreeSet<(usize, usize)> = Default::default();
        let mut max_quotes = Vec::with_capacity(report.sections.len());
        for (s, section) in report.sections.iter().enumerate() {
            let mut candidates = Vec::new();
            if let Source::Search(search) = &section.source {
                for (p, passage) in transcript.passages.iter().enumerate() {
                    if !anchored[p] || search.speaker.is_some_and(|r| passage.role != Some(r)) {
                        continue;
                    }
                    let hits =
                        text::keyword_hits(&search.keywords, &words.stems[p]).min(d.keyword_cap);
                    let meaning = search
                        .query_vectors
                        .iter()
                        .map(|q| cosine(q, &vectors[p]))
                        .fold(f32::NEG_INFINITY, f32::max);
                    let score = f64::from(meaning) + d.keyword_weight * hits as f64;
                    if score >= d.min_score {
                        candidates.push((p, score));
                        if hits > 0 {
                            lexical.insert((s, p));
                        }
                    }
                }
                max_quotes.push(search.max_quotes);
            } else {
                max_quotes.push(0);
            }
            eligible.push(candidates);
        }
        let exclusive = report.exclusive.unwrap_or(d.exclusive);
        let shared =
            |s: usize, p: usize| exclusive == Exclusive::Keywords && lexical.contains(&(s, p));
        let chosen = select::assign(
            &eligible,
            &max_quotes,
            exclusive != Exclusive::None,
            &transcript.text_ids,
            &shared,
        );

        report
            .sections
            .iter()
            .zip(chosen)
            .map(|(section, passages)| match section.source {
                Source::Search(_) => Outcome {
                    passages,
                    listed: Vec::new(),
                },
                Source::Complement { pass } => Outcome {
                    passages: Vec::new(),
                    listed: complement(pair, earlier, pass, &section.title),
                },
            })
            .collect()
    }
}

/// Titles of the sections of pass `pass` in group `group` that found nothing.
fn complement(pair: &Pair, earlier: &[Vec<Outcome>], pass: i16, group: &str) -> Vec<String> {
    let Some((index, source)) = pair
        .passes
        .iter()
        .enumerate()
        .find(|(_, p)| p.number == pass)
    else {
        return Vec::new();
    };
    let (PassBody::Narrative(report), Some(outcomes)) = (&source.body, earlier.get(index)) else {
        return Vec::new();
    };
    report
        .sections
        .iter()
        .zip(outcomes)
        .filter(|(s, o)| {
            s.group.as_deref() == Some(group)
                && matches!(s.source, Source::Search(_))
                && o.passages.is_empty()
        })
        .map(|(s, _)| s.title.clone())
        .collect()
}

impl<'a> Transcript<'a> {
    fn text(&self, span: &Span) -> &'a str {
        &self.texts[span.seg][span.start..span.end]
    }

    /// What precedes a passage for the venue anchors: the sentence before the one it starts
    /// in, and, for a passage cut from a longer sentence, that sentence's text before it.
    fn context(&self, p: &Passage) -> Vec<&'a str> {
        let mut pieces = Vec::with_capacity(2);
        if let Some(prev) = p.first_sentence.checked_sub(1) {
            pieces.push(self.text(&self.sentences[prev]));
        }
        if p.span.start > p.sentence_start {
            pieces.push(&self.texts[p.span.seg][p.sentence_start..p.span.start]);
        }
        pieces
    }
}

#[cfg(test)]
mod tests;

/// Labels the sentences of `segments` with the heuristic of [`roles`] (stored speakers win):
/// consecutive sentences of one role in one segment form one turn. Used by the hosted engine
/// when a model's labelling cannot be trusted.
pub fn label_turns(segments: &[crate::db::transcription::Segment]) -> Vec<(&'static str, String)> {
    let texts: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    let sentences: Vec<Span> = texts
        .iter()
        .enumerate()
        .flat_map(|(i, t)| text::sentences(i, t))
        .collect();
    let given: Vec<Option<Role>> = sentences
        .iter()
        .map(|s| segments[s.seg].speaker.as_deref().and_then(Role::parse))
        .collect();
    let lines: Vec<(usize, &str)> = sentences
        .iter()
        .map(|s| (s.seg, &texts[s.seg][s.start..s.end]))
        .collect();
    let roles = roles::label(&lines, &given);
    let mut turns: Vec<(&'static str, usize, String)> = Vec::new();
    for ((seg, sentence), role) in lines.into_iter().zip(roles) {
        let name = match role {
            Role::Employee => "Сотрудник",
            Role::Client => "Клиент",
        };
        match turns.last_mut() {
            Some((last, last_seg, text)) if *last == name && *last_seg == seg => {
                text.push(' ');
                text.push_str(sentence.trim());
            }
            _ => turns.push((name, seg, sentence.trim().to_owned())),
        }
    }
    turns.into_iter().map(|(r, _, t)| (r, t)).collect()
}
