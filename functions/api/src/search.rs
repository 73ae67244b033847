//! The search and answer endpoints' contract (request and response types, in the OpenAPI
//! document) and the state they run on: `common::search` over the served index.
//!
//! Deep questions are jobs: `POST /questions` records one and sends it to the analyze queue
//! (`VOX_ANALYZE_QUEUE_URL`), whose function answers it; without a queue (`vox serve`) it is
//! answered in this process.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use common::db::PgPool;
use common::embed::{Embedder, UseEmbedder};
use common::index::reader::{ReaderSettings, ServedIndex};
use common::queue::SqsQueue;
use common::search::answer::{AnswerSettings, Answerer};
use common::search::{self as core, Searcher};
use common::storage::S3Store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What search and answers run on; built once per cold start.
#[derive(Debug)]
pub struct SearchState {
    /// The searcher (encoder + PostgreSQL) and the answer engine (model or offline).
    pub answerer: Answerer,
    /// The published snapshot; `None` without `VOX_INDEX_BUCKET` (stored chunks are then
    /// scanned exactly).
    pub served: Option<ServedIndex>,
    /// Where deep questions go (`VOX_ANALYZE_QUEUE_URL`); `None` answers them in process.
    pub questions: Option<SqsQueue>,
}

impl SearchState {
    /// The state for `answerer`, with no snapshot and no queue.
    pub fn new(answerer: Answerer) -> Self {
        Self {
            answerer,
            served: None,
            questions: None,
        }
    }

    /// From the environment: the sentence encoder (`VOX_MODELS_DIR`...), the chat model
    /// (`VOX_LLM_*`, offline without one), the index (`VOX_INDEX_*`) and the analyze queue.
    pub async fn from_env(
        pool: PgPool,
        s3: &S3Store,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, common::Error> {
        // The encoder loads while the first requests are answered; searches wait for it.
        let embedder: Arc<dyn Embedder> = Arc::new(UseEmbedder::preload(
            &common::embed::EmbedConfig::from_env()?,
        )?);
        let mut searcher = Searcher::new(pool, embedder);
        searcher.settings = core::Settings::from_env()?;
        let mut answerer = Answerer::new(searcher, common::llm::chat_model_from_env().await?);
        answerer.settings = AnswerSettings::from_env()?;
        let served = match common::config::optional("VOX_INDEX_BUCKET")? {
            Some(_) => Some(ServedIndex::open(s3.clone(), ReaderSettings::from_env()?).await?),
            None => None,
        };
        let questions =
            common::config::optional("VOX_ANALYZE_QUEUE_URL")?.map(|url| SqsQueue::new(sdk, url));
        Ok(Self {
            answerer,
            served,
            questions,
        })
    }
}

/// Metadata filters, applied as candidate sets before the vector search.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFilters {
    /// Scenario (`design`, `interview`).
    pub scenario: Option<String>,
    /// Report type id (`common-factors`...).
    pub report_type: Option<String>,
    /// Building id (`hotel`, `restaurant`, `spa`).
    pub building: Option<String>,
    pub city: Option<String>,
    pub place: Option<String>,
    pub client: Option<String>,
    pub employee: Option<String>,
    pub date_from: Option<NaiveDate>,
    pub date_to: Option<NaiveDate>,
}

/// `POST /search`: the chunks nearest to a query.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    pub query: String,
    /// Search configuration (index) name, e.g. `interview`, `design`, `transcripts` or a
    /// report type id; every report and transcript (`all`) when absent.
    pub index: Option<String>,
    #[serde(default)]
    pub filters: SearchFilters,
    /// How many hits (1-100, default 10).
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u16>,
    /// Fuse the ranking with full-text search (helps queries naming a rare exact word).
    #[serde(default)]
    pub hybrid: bool,
    /// `reports`, `transcripts` or `both`. Default: both without `index`, else what the named
    /// index holds (`both` with a report index adds the transcripts).
    pub corpus: Option<Corpus>,
}

/// What a search covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Corpus {
    Reports,
    Transcripts,
    Both,
}

impl From<Corpus> for core::Corpus {
    fn from(c: Corpus) -> Self {
        match c {
            Corpus::Reports => core::Corpus::Reports,
            Corpus::Transcripts => core::Corpus::Transcripts,
            Corpus::Both => core::Corpus::Both,
        }
    }
}

/// What a hit is: a piece of a report or a window of a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    Report,
    Transcript,
}

/// Where a hit or a source comes from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceRef {
    /// `report` or `transcript`.
    pub kind: HitKind,
    pub chunk_id: i64,
    /// The report (`null` for a transcript window).
    pub audit_id: Option<i64>,
    pub transcription_id: i64,
    pub recording_id: Option<i64>,
    /// The report's type (`null` for a transcript window).
    pub report_type: Option<String>,
    pub building: String,
    pub place: Option<String>,
    pub city: Option<String>,
    pub date: NaiveDate,
    /// Character range of the chunk in its report or transcript.
    pub start_char: i32,
    pub end_char: i32,
    /// Where a transcript window is in the recording, in milliseconds (`null` for reports:
    /// their quoted moments are in `segments`).
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// The role speaking throughout a transcript window (`Сотрудник`, `Клиент`), when one.
    pub speaker: Option<String>,
    /// The recording's object, when it came through the pipeline.
    pub bucket: Option<String>,
    pub object_key: Option<String>,
    /// Transcript segments the chunk cites, in time order: those a report's quotes come from,
    /// or every segment of a transcript window.
    pub segments: Vec<SegmentTime>,
}

/// Where in the recording something was said, and by whom.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SegmentTime {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    /// The role speaking (`Сотрудник`, `Клиент`), when labelled.
    pub speaker: Option<String>,
}

/// The moment of a recording a statement was said in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Moment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub speaker: Option<String>,
}

/// One search hit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// 1-based; answers cite sources by it (`[n]`).
    pub rank: usize,
    /// Cosine similarity (higher is nearer).
    pub score: f32,
    pub text: String,
    pub source: SourceRef,
}

/// Hits, nearest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResponse {
    /// The configurations searched (`all` holds every report and transcript).
    pub index: String,
    pub hits: Vec<SearchHit>,
    /// The snapshot generation searched (`None`: stored chunks were scanned exactly).
    pub generation: Option<u64>,
    /// Chunks newer than the snapshot that were scanned exactly.
    pub fresh_scanned: usize,
}

/// `POST /answers` (fast, synchronous) and `POST /questions` (deep, a job).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionRequest {
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    pub question: String,
    /// Search configuration name; routed from the question when absent.
    pub index: Option<String>,
    #[serde(default)]
    pub filters: SearchFilters,
}

/// A fast answer, from the top chunks only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnswerResponse {
    /// The answer, each statement followed by the ranks of its sources (`[2]`).
    pub answer: String,
    /// False when the sources do not contain the answer (and the answer says so).
    pub found: bool,
    pub statements: Vec<Statement>,
    /// The configuration searched.
    pub index: String,
    /// `request`, `similarity` or `default` (every report type).
    pub routed_by: String,
    /// `offline:extractive` or the model.
    pub engine: String,
    /// The sources cited.
    pub sources: Vec<SearchHit>,
}

/// One statement of an answer and the ranks of the sources it rests on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Statement {
    pub text: String,
    pub sources: Vec<usize>,
    /// Where it was said, when it is stated from a transcript.
    pub said: Option<Moment>,
}

/// A deep question's job.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuestionJob {
    pub question_id: i64,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// Recordings gone through so far.
    pub done: u32,
    pub total: u32,
    pub answer: Option<String>,
    /// Whether the reports answer it (once done).
    pub found: Option<bool>,
    pub statements: Vec<Statement>,
    pub sources: Vec<SearchHit>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The served index: which snapshot generation, and how far behind PostgreSQL it is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IndexState {
    /// The served generation; `None` when none is published or no index is configured
    /// (searches then scan stored chunks exactly).
    pub generation: Option<u64>,
    pub high_water_mark: i64,
    pub embedding_model: Option<String>,
    /// Chunks in PostgreSQL above the served high-water mark (searched exactly until the
    /// next generation).
    pub lag_chunks: i64,
    pub published_at: Option<DateTime<Utc>>,
    /// Chunks per search configuration.
    pub counts: std::collections::BTreeMap<String, u64>,
}

impl From<&SearchFilters> for core::Filters {
    fn from(f: &SearchFilters) -> Self {
        core::Filters {
            scenario: f.scenario.clone(),
            report_type: f.report_type.clone(),
            building: f.building.clone(),
            city: f.city.clone(),
            date_from: f.date_from,
            date_to: f.date_to,
            employee: f.employee.clone(),
            client: f.client.clone(),
            place: f.place.clone(),
        }
    }
}

impl From<core::Hit> for SearchHit {
    fn from(h: core::Hit) -> Self {
        SearchHit {
            rank: h.rank,
            score: h.score,
            source: SourceRef {
                kind: match h.kind {
                    core::HitKind::Report => HitKind::Report,
                    core::HitKind::Transcript => HitKind::Transcript,
                },
                chunk_id: h.chunk_id,
                audit_id: h.audit_id,
                transcription_id: h.transcription_id,
                recording_id: h.recording_id,
                report_type: h.report_type,
                building: h.building,
                place: h.place,
                city: h.city,
                date: h.audit_date,
                start_char: h.start_char,
                end_char: h.end_char,
                start_ms: h.start_ms,
                end_ms: h.end_ms,
                speaker: h.speaker,
                bucket: h.bucket,
                object_key: h.object_key,
                segments: h
                    .segments
                    .into_iter()
                    .map(|s| SegmentTime {
                        start_ms: s.start_ms,
                        end_ms: s.end_ms,
                        text: s.text,
                        speaker: s.speaker,
                    })
                    .collect(),
            },
            text: h.text,
        }
    }
}

impl From<common::search::answer::Answer> for AnswerResponse {
    fn from(a: common::search::answer::Answer) -> Self {
        AnswerResponse {
            answer: a.text,
            found: a.found,
            statements: a
                .statements
                .into_iter()
                .map(|s| Statement {
                    text: s.text,
                    sources: s.sources,
                    said: s.said.map(|m| Moment {
                        start_ms: m.start_ms,
                        end_ms: m.end_ms,
                        speaker: m.speaker,
                    }),
                })
                .collect(),
            index: a.route.config,
            routed_by: a.route.chosen_by,
            engine: a.engine,
            sources: a.sources.into_iter().map(SearchHit::from).collect(),
        }
    }
}

impl From<common::search::deep::QuestionJob> for QuestionJob {
    fn from(j: common::search::deep::QuestionJob) -> Self {
        let (answer, found, statements, sources) = match j.result {
            Some(a) => {
                let r = AnswerResponse::from(a);
                (Some(r.answer), Some(r.found), r.statements, r.sources)
            }
            None => (None, None, Vec::new(), Vec::new()),
        };
        QuestionJob {
            question_id: j.id,
            status: match j.status.as_str() {
                "pending" => "queued".to_owned(),
                other => other.to_owned(),
            },
            done: u32::try_from(j.done_items).unwrap_or(0),
            total: j
                .total_items
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(0),
            answer,
            found,
            statements,
            sources,
            last_error: j.last_error,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}
