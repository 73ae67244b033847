//! The analyze stage's building blocks: the prompt catalog, the engines that turn a
//! transcript into the passes of one report type, quote verification and chunking.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

use crate::db::transcription::Segment;

/// What one analysis job analyses: a transcript and the recording's metadata, for one
/// (scenario, report type, building). Codes are domain.md's English ids.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInput {
    /// `interview` or `design`.
    pub scenario: String,
    /// e.g. `common-factors`.
    pub report_type: String,
    /// `hotel`, `restaurant`, `spa` or `non-building`.
    pub building: String,
    /// The building type of the place (`hotel`...), when known; for `{building}`.
    pub place_building: Option<String>,
    pub client: Option<String>,
    pub employee: Option<String>,
    pub place: Option<String>,
    pub city: Option<String>,
    pub zones: Vec<String>,
    pub date: Option<NaiveDate>,
    /// The transcript as stored: segments in order, with times.
    pub segments: Vec<Segment>,
}

/// A narrative (Markdown) or metrics (JSON) pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PassKind {
    Narrative,
    Metrics,
}

/// One kept pass: one stored report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassOutput {
    /// 1-based, as in the catalog.
    pub pass: i16,
    pub title: String,
    pub kind: PassKind,
    /// Markdown for narratives; the JSON text for metrics.
    pub text: String,
    /// The validated metrics object (metrics passes only).
    pub metrics: Option<Value>,
    /// The catalog's prompt name that made it (the offline engine names the prompt whose
    /// sections it follows).
    pub prompt_name: String,
}

/// All passes of one job, in pass order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportOutput {
    pub passes: Vec<PassOutput>,
    /// Which engine made it, e.g. `offline:use-multilingual-v3-int8@1b63e01b4d2f` or
    /// `openai:gpt-4o-mini`.
    pub engine: String,
}

pub mod catalog;
pub mod chunk;
pub mod engines;
pub mod llm;
pub mod offline;
/// Quotations in reports, checked against their transcript (search cites them too, so they
/// live outside this feature).
pub use crate::quotes;
pub mod stage;
pub mod windows;
