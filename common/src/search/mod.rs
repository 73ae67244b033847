//! Search across stored reports and what was said: the question is embedded, the served
//! snapshot is searched in one configuration (or all of them), metadata filters become arroy
//! candidate sets from PostgreSQL, and every hit is hydrated with its report or transcript
//! window, its recording and the transcript segments it cites (a report chunk's quotes, a
//! window's own segments, with times and speakers).
//!
//! Two corpora ([`Corpus`]): pieces of reports, and windows of transcripts (about 30-60 s of
//! consecutive segments, `analysis::windows`), each in configurations of their own. A
//! transcript window's metadata (scenario, building, place, city, date, employee, client) is
//! its recording's, read from the recording's first report; a `report_type` filter keeps the
//! windows of recordings that have a report of that type.
//!
//! The snapshot always trails PostgreSQL a little (the index lag). Chunks above its high-water
//! mark are scanned exactly from their stored embeddings (up to [`Settings::fresh_max`]), so a
//! report is searchable as soon as it is stored, and everything is searchable before the first
//! snapshot exists. Chunks deleted after a snapshot are dropped at hydration.
//!
//! Optionally the vector ranking is fused with PostgreSQL full-text search (Russian
//! configuration) by reciprocal rank fusion: it helps questions that name a rare exact word
//! (a brand, a room number) that sentence embeddings blur.

pub mod answer;
pub mod deep;
mod locate;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::db::GenericClient;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;

use crate::db::PgPool;
use crate::db::chunk::decode_embedding;
use crate::embed::{Embedder, cosine};
use crate::index::{Candidates, IndexReader};
use crate::quotes;
use crate::{Error, Result};

pub use locate::SegmentLocator;

/// The most results one search returns.
pub const MAX_LIMIT: usize = 200;

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 2_000;

/// Metadata filters; each one given narrows the search. Names compare case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filters {
    /// Scenario code or name (`design`, `interview`).
    pub scenario: Option<String>,
    /// Report type code or description.
    pub report_type: Option<String>,
    /// The report's building code or type, or the building type of its place.
    pub building: Option<String>,
    pub city: Option<String>,
    pub date_from: Option<NaiveDate>,
    pub date_to: Option<NaiveDate>,
    pub employee: Option<String>,
    pub client: Option<String>,
    /// The audited place (hotel, restaurant or centre by name).
    pub place: Option<String>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn validate(&self) -> Result<()> {
        if let (Some(from), Some(to)) = (self.date_from, self.date_to)
            && from > to
        {
            return Err(Error::InvalidInput {
                field: "date_from",
                reason: format!("{from} is after date_to {to}"),
            });
        }
        Ok(())
    }
}

/// What a search covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corpus {
    /// Pieces of reports.
    Reports,
    /// Windows of transcripts: what was said.
    Transcripts,
    /// Both (the default when no configuration is named).
    Both,
}

impl Corpus {
    fn reports(self) -> bool {
        matches!(self, Corpus::Reports | Corpus::Both)
    }

    fn transcripts(self) -> bool {
        matches!(self, Corpus::Transcripts | Corpus::Both)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Corpus::Reports => "reports",
            Corpus::Transcripts => "transcripts",
            Corpus::Both => "both",
        }
    }
}

/// What to search for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    /// A configuration name (`index_config.name`); `None` (or `all`) searches everything.
    #[serde(default)]
    pub config: Option<String>,
    /// Reports, transcripts or both. Default: both when no configuration is named, else what
    /// the named configuration holds; `both` with a report configuration adds the transcripts.
    #[serde(default)]
    pub corpus: Option<Corpus>,
    #[serde(default)]
    pub filters: Filters,
    /// Results wanted (1 to [`MAX_LIMIT`], default 10).
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Fuse with PostgreSQL full-text search by reciprocal rank fusion.
    #[serde(default)]
    pub hybrid: bool,
}

fn default_limit() -> usize {
    10
}

impl SearchRequest {
    pub fn new(query: impl Into<String>) -> Self {
        Self {
            query: query.into(),
            config: None,
            corpus: None,
            filters: Filters::default(),
            limit: default_limit(),
            hybrid: false,
        }
    }

    fn validate(&self) -> Result<()> {
        let chars = self.query.trim().chars().count();
        if chars == 0 {
            return Err(Error::InvalidInput {
                field: "query",
                reason: "is empty".into(),
            });
        }
        if chars > MAX_QUERY_CHARS {
            return Err(Error::InvalidInput {
                field: "query",
                reason: format!("{chars} characters is over the {MAX_QUERY_CHARS} limit"),
            });
        }
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(Error::InvalidInput {
                field: "limit",
                reason: format!("{} is not between 1 and {MAX_LIMIT}", self.limit),
            });
        }
        self.filters.validate()
    }
}

/// A search configuration: one arroy index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexConfig {
    pub id: u16,
    pub name: String,
    pub description: String,
    /// The scenario of a report configuration (`None` for the transcripts one, which holds
    /// every scenario's).
    pub scenario: Option<String>,
    /// The report type of a per-type configuration; `None` for scenario-wide ones.
    pub report_type: Option<String>,
    /// What it holds: `reports`, `transcripts`, or `both` (the `all` configuration).
    pub corpus: Corpus,
}

/// Every configuration, by id.
pub async fn configs(client: &impl GenericClient) -> Result<Vec<IndexConfig>> {
    let rows = client
        .query(
            "SELECT ic.index_config_id, ic.name, ic.description, s.code, rt.code, ic.corpus
             FROM index_config ic
             LEFT JOIN scenario s ON s.scenario_id = ic.scenario_id
             LEFT JOIN report_type rt ON rt.report_type_id = ic.report_type_id
             ORDER BY ic.index_config_id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| IndexConfig {
            id: u16::try_from(r.get::<_, i16>(0)).unwrap_or_default(),
            name: r.get(1),
            description: r.get(2),
            scenario: r.get(3),
            report_type: r.get(4),
            corpus: match r.get::<_, &str>(5) {
                "transcripts" => Corpus::Transcripts,
                "both" => Corpus::Both,
                _ => Corpus::Reports,
            },
        })
        .collect())
}

/// The configurations a request names: one by name; or, naming none (or `all`), the `all`
/// configuration (every chunk, one search) for both corpora, every per-report-type one
/// (together they cover each report chunk once) for reports, the transcripts one for
/// transcripts (see [`SearchRequest::corpus`]).
pub fn select<'a>(
    all: &'a [IndexConfig],
    name: Option<&str>,
    corpus: Option<Corpus>,
) -> Result<Vec<&'a IndexConfig>> {
    let transcripts = all.iter().filter(|c| c.corpus == Corpus::Transcripts);
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None | Some("all") => {
            let corpus = corpus.unwrap_or(Corpus::Both);
            if corpus == Corpus::Both
                && let Some(every) = all.iter().find(|c| c.corpus == Corpus::Both)
            {
                return Ok(vec![every]);
            }
            let reports = all
                .iter()
                .filter(|c| c.report_type.is_some() && c.corpus == Corpus::Reports);
            Ok(reports
                .filter(|_| corpus.reports())
                .chain(transcripts.filter(|_| corpus.transcripts()))
                .collect())
        }
        Some(name) => match all.iter().find(|c| c.name.eq_ignore_ascii_case(name)) {
            Some(c) => match (c.corpus, corpus) {
                (Corpus::Reports, Some(Corpus::Both)) => {
                    Ok(std::iter::once(c).chain(transcripts).collect())
                }
                (held, Some(asked)) if asked != Corpus::Both && asked != held => {
                    Err(Error::InvalidInput {
                        field: "corpus",
                        reason: format!(
                            "configuration {:?} holds {}, not {}",
                            c.name,
                            held.as_str(),
                            asked.as_str()
                        ),
                    })
                }
                _ => Ok(vec![c]),
            },
            None => Err(Error::InvalidInput {
                field: "config",
                reason: format!(
                    "unknown configuration {name:?}; known: all, {}",
                    all.iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        },
    }
}

/// The snapshot a search reads: its reader and what its manifest says.
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    pub reader: &'a IndexReader,
    pub generation: u64,
    /// Chunks up to this id are in the snapshot.
    pub high_water_mark: i64,
    pub embedding_model: &'a str,
    /// The database the snapshot was built from (`None` in manifests older than the
    /// identity, which are not served).
    pub database_id: Option<&'a str>,
}

#[cfg(feature = "index-read")]
impl<'a> From<&'a crate::index::reader::Snapshot> for Served<'a> {
    fn from(s: &'a crate::index::reader::Snapshot) -> Self {
        Served {
            reader: &s.reader,
            generation: s.manifest.generation,
            high_water_mark: s.manifest.high_water_mark,
            embedding_model: &s.manifest.embedding_model,
            database_id: s.manifest.database_id.as_deref(),
        }
    }
}

/// A transcript segment a hit cites (through a quote it contains).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub seq: i32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    /// The role speaking (`Сотрудник`, `Клиент`), when labelled.
    #[serde(default)]
    pub speaker: Option<String>,
}

/// What a hit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// A piece of a report.
    Report,
    /// A window of a transcript.
    Transcript,
}

/// Where a hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The served snapshot.
    Index,
    /// The exact scan of chunks newer than the snapshot.
    Fresh,
    /// Full-text search only (hybrid searches).
    Text,
}

/// One search result with everything needed to cite it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// 1-based rank.
    pub rank: usize,
    /// Cosine similarity to the query (for text-only hits of a hybrid search, 0).
    pub score: f32,
    pub source: Source,
    /// A piece of a report or a window of a transcript.
    pub kind: HitKind,
    pub chunk_id: i64,
    /// The report (`None` for a transcript window).
    pub audit_id: Option<i64>,
    /// The chunk's number within its report or transcript, and its character range there.
    pub seq: i32,
    pub start_char: i32,
    pub end_char: i32,
    pub text: String,
    /// Where a transcript window is in the recording (`None` for report pieces: their cited
    /// moments are in `segments`).
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// The role speaking throughout a transcript window, when it is one.
    pub speaker: Option<String>,
    pub scenario: String,
    /// The report's type (`None` for a transcript window).
    pub report_type: Option<String>,
    pub report_type_desc: Option<String>,
    pub building: String,
    pub pass: Option<i16>,
    pub pass_title: Option<String>,
    pub audit_date: NaiveDate,
    pub city: Option<String>,
    pub employee: Option<String>,
    pub client: Option<String>,
    pub place: Option<String>,
    pub transcription_id: i64,
    pub audio_file_name: String,
    pub recording_id: Option<i64>,
    /// The recording's object (`s3://bucket/key`'s parts), when it came through the pipeline.
    pub bucket: Option<String>,
    pub object_key: Option<String>,
    /// Transcript segments the hit cites, in time order: those a report piece's quotes come
    /// from, or every segment of a transcript window.
    pub segments: Vec<SegmentRef>,
}

/// How current the searched data was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// The snapshot generation searched (`None`: no snapshot; everything was scanned).
    pub generation: Option<u64>,
    pub high_water_mark: i64,
    /// Chunks newer than the snapshot that were scanned exactly.
    pub fresh_scanned: usize,
    /// More newer chunks exist than were scanned ([`Settings::fresh_max`]): results may miss
    /// some until the next snapshot.
    pub fresh_truncated: bool,
    /// Set when the snapshot was made by another encoder than the query's and was skipped.
    pub warning: Option<String>,
}

/// A search's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    pub query: String,
    /// The configurations searched, by name.
    pub configs: Vec<String>,
    pub hits: Vec<Hit>,
    pub freshness: Freshness,
}

/// Search tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `VOX_SEARCH_FRESH_MAX` (default 20,000): the most chunks above the snapshot's
    /// high-water mark scanned exactly per search.
    pub fresh_max: i64,
    /// Reciprocal rank fusion's constant (60, as in the original paper).
    pub rrf_k: f32,
    /// `VOX_SEARCH_TEXT_MATCH` (`any` or `all`, default `any`): which chunks the full-text
    /// side of a hybrid search keeps. Measured by the retrieval bench (77 questions, 18
    /// recordings, both corpora): hit@5 0.831 with `any`, 0.714 with `all`, 0.688 vector
    /// only; on paraphrases sharing no word with the answer 0.455, 0.481 and 0.481.
    pub text_match: TextMatch,
}

/// Which chunks full-text search keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMatch {
    /// Those holding every word of the query (PostgreSQL's web-search syntax).
    All,
    /// Those holding any word, ranked by cover density.
    Any,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fresh_max: 20_000,
            rrf_k: 60.0,
            text_match: TextMatch::Any,
        }
    }
}

impl Settings {
    pub fn from_env() -> std::result::Result<Self, crate::config::ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            fresh_max: crate::config::parsed_or("VOX_SEARCH_FRESH_MAX", defaults.fresh_max)?,
            text_match: match crate::config::optional("VOX_SEARCH_TEXT_MATCH")?.as_deref() {
                None | Some("any") => TextMatch::Any,
                Some("all") => TextMatch::All,
                Some(other) => {
                    return Err(crate::config::ConfigError::Invalid {
                        var: "VOX_SEARCH_TEXT_MATCH",
                        reason: format!("{other:?} is not all or any"),
                    });
                }
            },
            ..defaults
        })
    }
}

/// The search service: PostgreSQL for filters and hydration, the encoder for queries.
#[derive(Clone)]
pub struct Searcher {
    pub pool: PgPool,
    pub embedder: Arc<dyn Embedder>,
    pub settings: Settings,
    /// This database's identity, read once.
    database_id: Arc<tokio::sync::OnceCell<String>>,
    /// The search configurations, read once (only migrations change them).
    configs: Arc<tokio::sync::OnceCell<Vec<IndexConfig>>>,
}

impl std::fmt::Debug for Searcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Searcher")
            .field("embedder", &self.embedder.model_id())
            .field("settings", &self.settings)
            .finish()
    }
}

/// Every chunk with the audit whose metadata it is filtered by: a report piece's own, a
/// transcript window's recording's first report.
const CHUNK_FROM: &str = "
FROM chunk c
JOIN audit a ON a.audit_id = coalesce(c.audit_id,
    (SELECT min(x.audit_id) FROM audit x WHERE x.transcription_id = c.transcription_id))
JOIN report_type rt ON rt.report_type_id = a.report_type_id
JOIN scenario s ON s.scenario_id = rt.scenario_id
JOIN buildings b ON b.building_id = a.building_id
LEFT JOIN employee e ON e.employee_id = a.employee_id
LEFT JOIN client cl ON cl.client_id = a.client_id
LEFT JOIN place p ON p.place_id = a.place_id
LEFT JOIN city ci ON ci.city_id = a.city_id";

/// A query over the chunks of some configurations with a condition for each filter given and
/// none for the others. Each combination of filters is then a statement of its own whose
/// generic plan PostgreSQL keeps; one statement with a `$n IS NULL OR ...` catch-all per
/// filter would be re-planned on every call (a plan for the given values always looks
/// cheaper), which cost tens of milliseconds a query.
pub(crate) struct ChunkQuery<'a> {
    pub sql: String,
    pub params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> ChunkQuery<'a> {
    /// `SELECT columns` over the chunks of the configurations `configs` matching `f`.
    pub fn new(columns: &str, f: &'a Filters, configs: &'a Vec<i16>) -> Self {
        let mut q = Self {
            sql: format!("SELECT {columns} {CHUNK_FROM}\nWHERE "),
            params: Vec::new(),
        };
        // Membership as the view `index_config_chunk` defines it, written out so that the
        // planner can hash it: every chunk is in `all`, a report piece in the configurations
        // holding its report type, a transcript window in the transcripts configuration.
        let c = q.param(configs);
        q.sql.push_str(&format!(
            "(EXISTS (SELECT 1 FROM index_config ic
                     WHERE ic.index_config_id = ANY ({c}::smallint[]) AND ic.corpus = 'both')
             OR CASE WHEN c.audit_id IS NOT NULL
               THEN EXISTS (SELECT 1 FROM index_config_member m
                            WHERE m.index_config_id = ANY ({c}::smallint[])
                              AND m.report_type_id = a.report_type_id)
               ELSE EXISTS (SELECT 1 FROM index_config ic
                            WHERE ic.index_config_id = ANY ({c}::smallint[])
                              AND ic.corpus = 'transcripts')
             END)"
        ));
        let text: [(&'a Option<String>, &str); 7] = [
            (&f.scenario, "(s.code = $ OR s.scenario_name = $)"),
            (
                &f.report_type,
                "(rt.code = $ OR rt.report_type_desc = $ OR (c.audit_id IS NULL AND EXISTS \
                 (SELECT 1 FROM audit x JOIN report_type xr ON xr.report_type_id = x.report_type_id \
                  WHERE x.transcription_id = c.transcription_id \
                    AND (xr.code = $ OR xr.report_type_desc = $))))",
            ),
            (
                &f.building,
                "(b.code = $ OR b.building_type = $ OR p.building_type = \
                 (SELECT building_type FROM buildings WHERE building_type = $ OR code = $))",
            ),
            (&f.city, "lower(ci.city_name) = lower($)"),
            (&f.employee, "lower(e.employee_name) = lower($)"),
            (&f.client, "lower(cl.client_name) = lower($)"),
            (&f.place, "lower(p.place_name) = lower($)"),
        ];
        for (value, condition) in text {
            if let Some(v) = value {
                let n = q.param(v);
                q.and(&condition.replace('$', &n));
            }
        }
        if let Some(from) = &f.date_from {
            let n = q.param(from);
            q.and(&format!("a.audit_date >= {n}"));
        }
        if let Some(to) = &f.date_to {
            let n = q.param(to);
            q.and(&format!("a.audit_date <= {n}"));
        }
        q
    }

    /// Adds a parameter; returns its placeholder (`$n`).
    pub fn param(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// Adds `AND condition`.
    pub fn and(&mut self, condition: &str) {
        self.sql.push_str("\n  AND ");
        self.sql.push_str(condition);
    }
}

const HYDRATE_SQL: &str = "
SELECT c.chunk_id, c.audit_id, c.seq, c.start_char, c.end_char, c.text,
       s.code, rt.code, rt.report_type_desc, b.code, a.pass, a.pass_title, a.audit_date,
       ci.city_name, e.employee_name, cl.client_name, p.place_name,
       a.transcription_id, t.audio_file_name, t.recording_id, r.bucket, r.object_key,
       c.start_ms, c.end_ms, c.speaker, c.first_segment, c.last_segment
FROM chunk c
JOIN audit a ON a.audit_id = coalesce(c.audit_id,
    (SELECT min(x.audit_id) FROM audit x WHERE x.transcription_id = c.transcription_id))
JOIN report_type rt ON rt.report_type_id = a.report_type_id
JOIN scenario s ON s.scenario_id = rt.scenario_id
JOIN buildings b ON b.building_id = a.building_id
JOIN transcription t ON t.transcription_id = a.transcription_id
LEFT JOIN recording r ON r.recording_id = t.recording_id
LEFT JOIN employee e ON e.employee_id = a.employee_id
LEFT JOIN client cl ON cl.client_id = a.client_id
LEFT JOIN place p ON p.place_id = a.place_id
LEFT JOIN city ci ON ci.city_id = a.city_id
WHERE c.chunk_id = ANY ($1)";

const SEGMENTS_SQL: &str = "
SELECT transcription_id, seq, start_ms, end_ms, text, speaker FROM transcription_segment
WHERE transcription_id = ANY ($1) ORDER BY transcription_id, seq";

impl Searcher {
    pub fn new(pool: PgPool, embedder: Arc<dyn Embedder>) -> Self {
        Self {
            pool,
            embedder,
            settings: Settings::default(),
            database_id: Arc::new(tokio::sync::OnceCell::new()),
            configs: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The search configurations (read from PostgreSQL once).
    pub async fn configs(&self, client: &impl GenericClient) -> Result<&[IndexConfig]> {
        Ok(self
            .configs
            .get_or_try_init(|| configs(client))
            .await?
            .as_slice())
    }

    /// Embeds texts off the async threads (the encoder is CPU-bound).
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let embedder = Arc::clone(&self.embedder);
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed(&refs)
        })
        .await
        .map_err(|e| Error::Embed {
            reason: format!("the encoder task failed: {e}"),
        })?
    }

    /// Searches `served` (or, without a snapshot, every stored chunk exactly).
    pub async fn search(
        &self,
        served: Option<Served<'_>>,
        request: &SearchRequest,
    ) -> Result<SearchResults> {
        request.validate()?;
        let query = request.query.trim().to_owned();
        let vector = self
            .embed(vec![query.clone()])
            .await?
            .pop()
            .ok_or_else(|| Error::Embed {
                reason: "the encoder returned no vector for the query".into(),
            })?;
        self.search_vector(served, request, &vector).await
    }

    /// [`Searcher::search`] with the query already embedded.
    pub async fn search_vector(
        &self,
        served: Option<Served<'_>>,
        request: &SearchRequest,
        vector: &[f32],
    ) -> Result<SearchResults> {
        request.validate()?;
        let conn = self.pool.get().await?;
        let all = self.configs(&conn).await?;
        let chosen = select(all, request.config.as_deref(), request.corpus)?;
        let config_ids: Vec<i16> = chosen.iter().map(|c| c.id as i16).collect();
        // A named report configuration holds one scenario's reports; the transcripts searched
        // beside it are that scenario's recordings (a no-op for the reports).
        let mut filters = request.filters.clone();
        let named = request
            .config
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty() && *n != "all")
            .and_then(|n| chosen.iter().find(|c| c.name.eq_ignore_ascii_case(n)));
        let with_transcripts = chosen.iter().any(|c| c.corpus == Corpus::Transcripts);
        if filters.scenario.is_none()
            && with_transcripts
            && let Some(scenario) = named.and_then(|c| c.scenario.clone())
        {
            filters.scenario = Some(scenario);
        }
        let f = &filters;

        let mut warning = None;
        let database = self
            .database_id
            .get_or_try_init(|| crate::db::database_id(&conn))
            .await?;
        let served = match served {
            Some(s) if s.database_id != Some(database.as_str()) => {
                warning = Some(format!(
                    "the served snapshot (generation {}) was built from another database; \
                     it was skipped and stored chunks were scanned instead (rebuild the index)",
                    s.generation
                ));
                None
            }
            Some(s) if s.embedding_model != self.embedder.model_id() => {
                warning = Some(format!(
                    "the served snapshot (generation {}) was made with {}, queries with {}: \
                     it was skipped and stored chunks were scanned instead",
                    s.generation,
                    s.embedding_model,
                    self.embedder.model_id()
                ));
                None
            }
            other => other,
        };
        let high_water_mark = served.map_or(0, |s| s.high_water_mark);
        // Ask for more than wanted: chunks deleted since the snapshot drop out at hydration.
        let k = request.limit + request.limit / 2 + 2;

        // The snapshot, restricted to the filters' candidates when there are filters.
        let mut scored: HashMap<i64, (f32, Source)> = HashMap::new();
        if let Some(s) = served {
            let candidates = if f.is_empty() {
                None
            } else {
                let mut q = ChunkQuery::new("c.chunk_id", f, &config_ids);
                let h = q.param(&high_water_mark);
                q.and(&format!("c.chunk_id <= {h}"));
                let stmt = conn.prepare_cached(&q.sql).await?;
                let rows = conn.query(&stmt, &q.params).await?;
                Some(
                    rows.iter()
                        .map(|r| r.get::<_, i64>(0))
                        .collect::<Candidates>(),
                )
            };
            if candidates.as_ref().is_none_or(|c| !c.is_empty()) {
                for id in in_snapshot(all, &chosen, s.reader)? {
                    for (id, score) in s.reader.search(id, vector, k, candidates.as_ref())? {
                        let e = scored.entry(id).or_insert((score, Source::Index));
                        e.0 = e.0.max(score);
                    }
                }
            }
        }

        // Chunks newer than the snapshot, exactly.
        let fetch = self.settings.fresh_max.max(0) + 1;
        let model_id = self.embedder.model_id().to_owned();
        let mut q = ChunkQuery::new("c.chunk_id, c.embedding", f, &config_ids);
        let (h, m, l) = (
            q.param(&high_water_mark),
            q.param(&model_id),
            q.param(&fetch),
        );
        q.and(&format!("c.chunk_id > {h} AND c.embedding_model = {m}"));
        q.sql
            .push_str(&format!("\nORDER BY c.chunk_id DESC LIMIT {l}"));
        let stmt = conn.prepare_cached(&q.sql).await?;
        let rows = conn.query(&stmt, &q.params).await?;
        let fresh_truncated = rows.len() as i64 > self.settings.fresh_max.max(0);
        let fresh_rows = &rows[..rows.len().min(self.settings.fresh_max.max(0) as usize)];
        for r in fresh_rows {
            let embedding = decode_embedding(r.get::<_, &[u8]>(1));
            if embedding.len() == vector.len() {
                scored.insert(r.get(0), (cosine(vector, &embedding), Source::Fresh));
            }
        }

        let mut ranked: Vec<(i64, f32, Source)> = scored
            .into_iter()
            .map(|(id, (s, src))| (id, s, src))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(k);

        if request.hybrid {
            let text = request.query.trim().to_owned();
            let limit = k as i64;
            let mut q = ChunkQuery::new("c.chunk_id", f, &config_ids);
            let (t, l) = (q.param(&text), q.param(&limit));
            // Every word (websearch syntax), or any of them ranked by how many match.
            let tsquery = match self.settings.text_match {
                TextMatch::All => format!("websearch_to_tsquery('russian', {t})"),
                TextMatch::Any => {
                    format!("replace(plainto_tsquery('russian', {t})::text, ' & ', ' | ')::tsquery")
                }
            };
            q.and(&format!("to_tsvector('russian', c.text) @@ {tsquery}"));
            q.sql.push_str(&format!(
                "\nORDER BY ts_rank_cd(to_tsvector('russian', c.text), {tsquery}) DESC, \
                 c.chunk_id LIMIT {l}"
            ));
            let stmt = conn.prepare_cached(&q.sql).await?;
            let rows = conn.query(&stmt, &q.params).await?;
            let text_ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
            ranked = fuse(&ranked, &text_ids, self.settings.rrf_k);
        }

        let ids: Vec<i64> = ranked.iter().map(|r| r.0).collect();
        let mut hits = hydrate(&conn, &ids).await?;
        let order: HashMap<i64, (usize, f32, Source)> = ranked
            .iter()
            .enumerate()
            .map(|(i, r)| (r.0, (i, r.1, r.2)))
            .collect();
        hits.sort_by_key(|h| order.get(&h.chunk_id).map_or(usize::MAX, |o| o.0));
        hits.truncate(request.limit);
        for (i, hit) in hits.iter_mut().enumerate() {
            hit.rank = i + 1;
            if let Some(&(_, score, source)) = order.get(&hit.chunk_id) {
                hit.score = score;
                hit.source = source;
            }
        }
        Ok(SearchResults {
            query: request.query.trim().to_owned(),
            configs: chosen.iter().map(|c| c.name.clone()).collect(),
            hits,
            freshness: Freshness {
                generation: served.map(|s| s.generation),
                high_water_mark,
                fresh_scanned: fresh_rows.len(),
                fresh_truncated,
                warning,
            },
        })
    }
}

/// The snapshot's configurations to search for `chosen`: `all` itself when the snapshot
/// holds it, else (a snapshot published before it existed, until the writer's rebuild) what it
/// stands for, every per-report-type configuration and the transcripts.
fn in_snapshot(
    all: &[IndexConfig],
    chosen: &[&IndexConfig],
    reader: &IndexReader,
) -> Result<Vec<u16>> {
    let mut ids = Vec::new();
    for c in chosen {
        if c.corpus == Corpus::Both && reader.len(c.id)? == 0 {
            ids.extend(
                all.iter()
                    .filter(|o| {
                        o.corpus == Corpus::Transcripts
                            || (o.corpus == Corpus::Reports && o.report_type.is_some())
                    })
                    .map(|o| o.id),
            );
        } else {
            ids.push(c.id);
        }
    }
    Ok(ids)
}

/// Reciprocal rank fusion of the vector ranking and the full-text one: each list adds
/// `1 / (k + rank)`; the vector score is kept for display (0 for text-only hits).
fn fuse(vector: &[(i64, f32, Source)], text: &[i64], k: f32) -> Vec<(i64, f32, Source)> {
    let mut fused: HashMap<i64, (f32, f32, Source)> = HashMap::new();
    for (rank, &(id, score, source)) in vector.iter().enumerate() {
        fused.insert(id, (1.0 / (k + rank as f32 + 1.0), score, source));
    }
    for (rank, &id) in text.iter().enumerate() {
        let e = fused.entry(id).or_insert((0.0, 0.0, Source::Text));
        e.0 += 1.0 / (k + rank as f32 + 1.0);
    }
    let mut out: Vec<(i64, f32, f32, Source)> = fused
        .into_iter()
        .map(|(id, (rrf, score, source))| (id, rrf, score, source))
        .collect();
    out.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(b.2.total_cmp(&a.2))
            .then(a.0.cmp(&b.0))
    });
    out.into_iter()
        .map(|(id, _, s, src)| (id, s, src))
        .collect()
}

/// The chunks `ids` with their report, recording and cited segments (ids no longer stored are
/// left out; order is not kept).
pub async fn hydrate(client: &impl GenericClient, ids: &[i64]) -> Result<Vec<Hit>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = client.prepare_cached(HYDRATE_SQL).await?;
    let rows = client.query(&stmt, &[&ids]).await?;
    // A transcript window's segment range, by hit.
    let mut windows: Vec<Option<(i32, i32)>> = Vec::with_capacity(rows.len());
    let mut hits: Vec<Hit> = rows
        .iter()
        .map(|r| {
            let audit_id: Option<i64> = r.get(1);
            let report = audit_id.is_some();
            windows.push(match (r.get::<_, Option<i32>>(25), r.get(26)) {
                (Some(first), Some(last)) => Some((first, last)),
                _ => None,
            });
            Hit {
                rank: 0,
                score: 0.0,
                source: Source::Index,
                kind: if report {
                    HitKind::Report
                } else {
                    HitKind::Transcript
                },
                chunk_id: r.get(0),
                audit_id,
                seq: r.get(2),
                start_char: r.get(3),
                end_char: r.get(4),
                text: r.get(5),
                start_ms: r.get(22),
                end_ms: r.get(23),
                speaker: r.get(24),
                scenario: r.get(6),
                report_type: report.then(|| r.get(7)),
                report_type_desc: report.then(|| r.get(8)),
                building: r.get(9),
                pass: report.then(|| r.get(10)),
                pass_title: if report { r.get(11) } else { None },
                audit_date: r.get(12),
                city: r.get(13),
                employee: r.get(14),
                client: r.get(15),
                place: r.get(16),
                transcription_id: r.get(17),
                audio_file_name: r.get(18),
                recording_id: r.get(19),
                bucket: r.get(20),
                object_key: r.get(21),
                segments: Vec::new(),
            }
        })
        .collect();
    let quoted: Vec<(usize, Vec<String>)> = hits
        .iter()
        .enumerate()
        .filter(|(i, _)| windows[*i].is_none())
        .map(|(i, h)| (i, quotes::extract(&h.text)))
        .filter(|(_, q)| !q.is_empty())
        .collect();
    if quoted.is_empty() && windows.iter().all(Option::is_none) {
        return Ok(hits);
    }
    let transcriptions: Vec<i64> = hits
        .iter()
        .enumerate()
        .filter(|(i, _)| windows[*i].is_some() || quoted.iter().any(|(q, _)| q == i))
        .map(|(_, h)| h.transcription_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let stmt = client.prepare_cached(SEGMENTS_SQL).await?;
    let rows = client.query(&stmt, &[&transcriptions]).await?;
    let mut by_transcription: HashMap<i64, Vec<SegmentRef>> = HashMap::new();
    for r in &rows {
        by_transcription
            .entry(r.get(0))
            .or_default()
            .push(SegmentRef {
                seq: r.get(1),
                start_ms: r.get(2),
                end_ms: r.get(3),
                text: r.get(4),
                speaker: r.get(5),
            });
    }
    for (hit, window) in hits.iter_mut().zip(&windows) {
        if let (Some((first, last)), Some(segs)) =
            (window, by_transcription.get(&hit.transcription_id))
        {
            hit.segments = segs
                .iter()
                .filter(|s| (*first..=*last).contains(&s.seq))
                .filter(|s| !s.text.trim().is_empty())
                .cloned()
                .collect();
        }
    }
    let locators: HashMap<i64, SegmentLocator> = by_transcription
        .iter()
        .map(|(&id, segs)| {
            (
                id,
                SegmentLocator::new(segs.iter().map(|s| s.text.as_str())),
            )
        })
        .collect();
    for (i, quotes) in quoted {
        let t = hits[i].transcription_id;
        let (Some(locator), Some(segs)) = (locators.get(&t), by_transcription.get(&t)) else {
            continue;
        };
        let mut found = BTreeSet::new();
        for q in &quotes {
            if let Some(range) = locator.locate(q) {
                found.extend(range);
            }
        }
        hits[i].segments = found.into_iter().map(|s| segs[s].clone()).collect();
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement_and_keeps_text_only_hits() {
        let vector = vec![
            (1, 0.9, Source::Index),
            (2, 0.8, Source::Index),
            (3, 0.7, Source::Fresh),
        ];
        let fused = fuse(&vector, &[3, 4], 60.0);
        let ids: Vec<i64> = fused.iter().map(|f| f.0).collect();
        // 3 is in both lists and overtakes 1 and 2; 4 is text-only and comes last.
        assert_eq!(ids, vec![3, 1, 2, 4]);
        assert_eq!(fused[0].1, 0.7);
        assert_eq!(fused[3], (4, 0.0, Source::Text));
    }

    #[test]
    fn selecting_configurations() {
        let cfg = |id: u16, name: &str, rt: Option<&str>| IndexConfig {
            id,
            name: name.into(),
            description: String::new(),
            scenario: Some("design".into()),
            report_type: rt.map(Into::into),
            corpus: Corpus::Reports,
        };
        let all = vec![
            cfg(1, "design", None),
            cfg(7, "audit-compliance", Some("audit-compliance")),
            cfg(8, "structured-audit", Some("structured-audit")),
            IndexConfig {
                scenario: None,
                corpus: Corpus::Transcripts,
                ..cfg(9, "transcripts", None)
            },
        ];
        let ids = |v: Vec<&IndexConfig>| v.iter().map(|c| c.id).collect::<Vec<_>>();
        let both = Some(Corpus::Both);
        // With the `all` configuration, naming none is one search in it.
        let mut with_all = all.clone();
        with_all.push(IndexConfig {
            scenario: None,
            corpus: Corpus::Both,
            ..cfg(10, "all", None)
        });
        assert_eq!(ids(select(&with_all, None, None).unwrap()), vec![10]);
        assert_eq!(ids(select(&with_all, Some("all"), both).unwrap()), vec![10]);
        let reports = Some(Corpus::Reports);
        assert_eq!(ids(select(&with_all, None, reports).unwrap()), vec![7, 8]);
        // Without it, every report type and the transcripts.
        // No name: every report type and the transcripts, or one corpus of them.
        assert_eq!(ids(select(&all, None, None).unwrap()), vec![7, 8, 9]);
        assert_eq!(ids(select(&all, Some("all"), both).unwrap()), vec![7, 8, 9]);
        assert_eq!(ids(select(&all, Some("all"), reports).unwrap()), vec![7, 8]);
        let transcripts = Some(Corpus::Transcripts);
        assert_eq!(ids(select(&all, None, transcripts).unwrap()), vec![9]);
        // A name: what it holds, plus the transcripts when both are asked for.
        assert_eq!(ids(select(&all, Some("Design"), None).unwrap()), vec![1]);
        assert_eq!(ids(select(&all, Some("design"), both).unwrap()), vec![1, 9]);
        assert_eq!(
            ids(select(&all, Some("transcripts"), both).unwrap()),
            vec![9]
        );
        let err = select(&all, Some("design"), transcripts)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("corpus") && err.contains("reports"),
            "{err}"
        );
        let err = select(&all, Some("nope"), None).unwrap_err().to_string();
        assert!(err.contains("config") && err.contains("nope"), "{err}");
    }

    #[test]
    fn requests_are_validated() {
        let mut r = SearchRequest::new("  ");
        assert!(r.validate().unwrap_err().to_string().starts_with("query"));
        r.query = "лобби".into();
        r.limit = 0;
        assert!(r.validate().unwrap_err().to_string().starts_with("limit"));
        r.limit = 5;
        r.filters.date_from = NaiveDate::from_ymd_opt(2025, 2, 1);
        r.filters.date_to = NaiveDate::from_ymd_opt(2025, 1, 1);
        assert!(
            r.validate()
                .unwrap_err()
                .to_string()
                .starts_with("date_from")
        );
        r.filters.date_to = None;
        assert!(r.validate().is_ok());
    }
}
