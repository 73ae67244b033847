//! Reports (audits): the listing users filter, one report with its quotes and where they
//! were said, and its export.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use common::db::audit::{self, AuditFilter, AuditRow};
use common::db::transcription;
use common::export::{docx, pdf};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Permission};
use crate::citations::{self, Citation};
use crate::export::{self, DocxFile, PdfFile};
use crate::extract::{Id, QueryParams};
use crate::pagination::{self, Page};
use crate::problem::{Problem, ProblemBody};

const LISTING: &str = "audits";

/// How many characters of a report a listing shows.
const EXCERPT_CHARS: usize = 280;

/// A report in a listing: its metadata and the beginning of its text.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditSummary {
    pub audit_id: i64,
    pub audit_date: NaiveDate,
    pub transcription_id: i64,
    pub audio_file_name: String,
    pub number_audio: Option<i32>,
    pub employee_name: Option<String>,
    pub client_name: Option<String>,
    pub place_name: Option<String>,
    /// The place's building type (stored name).
    pub building_type: Option<String>,
    pub zone_names: Vec<String>,
    pub city_name: Option<String>,
    pub scenario_name: String,
    pub scenario: String,
    pub report_type_desc: String,
    pub report_type: String,
    /// The report's building id (`non-building` for building-independent reports).
    pub building: String,
    pub pass: i16,
    pub pass_title: Option<String>,
    /// `narrative` or `metrics`.
    pub kind: String,
    /// The validated metrics object of a metrics report.
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<serde_json::Value>,
    /// Quotations not found verbatim in the transcript.
    pub unverified_quotes: i32,
    pub created_at: DateTime<Utc>,
    /// The first characters of the report.
    pub excerpt: String,
}

impl From<&AuditRow> for AuditSummary {
    fn from(a: &AuditRow) -> Self {
        Self {
            audit_id: a.audit_id,
            audit_date: a.audit_date,
            transcription_id: a.transcription_id,
            audio_file_name: a.audio_file_name.clone(),
            number_audio: a.number_audio,
            employee_name: a.employee_name.clone(),
            client_name: a.client_name.clone(),
            place_name: a.place_name.clone(),
            building_type: a.building_type.clone(),
            zone_names: a.zone_names.clone(),
            city_name: a.city_name.clone(),
            scenario_name: a.scenario_name.clone(),
            scenario: a.scenario.clone(),
            report_type_desc: a.report_type_desc.clone(),
            report_type: a.report_type.clone(),
            building: a.building.clone(),
            pass: a.pass,
            pass_title: a.pass_title.clone(),
            kind: a.kind.clone(),
            metrics: a.metrics.clone(),
            unverified_quotes: a.unverified_quotes,
            created_at: a.created_at,
            excerpt: a.audit_text.chars().take(EXCERPT_CHARS).collect(),
        }
    }
}

/// A quotation of a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuoteView {
    pub text: String,
    /// Whether it is a verbatim part of the transcript.
    pub verified: bool,
    /// Where in the transcript it was said, when found there.
    pub citation: Option<Citation>,
}

/// A whole report: text, metrics, quotes with their citations, provenance.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditDetail {
    #[serde(flatten)]
    pub summary: AuditSummary,
    /// The report (Markdown for narratives, pretty JSON for metrics).
    pub text: String,
    pub quotes: Vec<QuoteView>,
    /// Which engine wrote it (`offline`, a model id...).
    pub engine: Option<String>,
    pub prompt_id: Option<i64>,
    pub analysis_job_id: Option<i64>,
    pub recording_id: Option<i64>,
    pub updated_at: DateTime<Utc>,
}

/// Filters and page of `GET /audits`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditListParams {
    /// Scenario id or stored name (`design`, `Интервью`...).
    #[param(min_length = 1)]
    pub scenario: String,
    /// Report type id or stored name.
    pub report_type: Option<String>,
    /// The report's building, or the building type of its place (id or stored name).
    pub building: Option<String>,
    pub city: Option<String>,
    pub date_from: Option<NaiveDate>,
    pub date_to: Option<NaiveDate>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u16>,
}

/// `GET /audits/{id}/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `md` (Markdown, the default), `docx` (Word) or `pdf` (A4, fonts embedded).
    #[param(pattern = "^(md|markdown|docx|pdf)$")]
    pub format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/audits",
    operation_id = "list_audits",
    tag = "audits",
    params(AuditListParams),
    responses((status = 200, description = "Reports of the scenario, newest first",
               body = Page<AuditSummary>))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<AuditListParams>,
) -> Result<Json<Page<AuditSummary>>, Problem> {
    caller.require(Permission::Read)?;
    let limit = pagination::limit(params.limit)?;
    let after = pagination::decode(LISTING, params.cursor.as_deref())?;
    let filter = AuditFilter {
        scenario: params.scenario,
        report_type: params.report_type,
        building: params.building,
        city: params.city,
        date_from: params.date_from,
        date_to: params.date_to,
    };
    let conn = state.pool.get().await?;
    let page = audit::list(&conn, &filter, after, limit).await?;
    Ok(Json(Page {
        items: page.items.iter().map(AuditSummary::from).collect(),
        next_cursor: page.next_after.map(|id| pagination::encode(LISTING, id)),
    }))
}

/// Loads a report with its quotes located in the transcript; 404 when it does not exist.
async fn load(state: &AppState, id: i64) -> Result<AuditDetail, Problem> {
    let conn = state.pool.get().await?;
    let (row, provenance) = tokio::try_join!(audit::get(&conn, id), audit::provenance(&conn, id))?;
    let (Some(row), Some(provenance)) = (row, provenance) else {
        return Err(Problem::not_found(format!("audit {id} does not exist")));
    };
    let segments = if provenance.quotes.is_empty() {
        Vec::new()
    } else {
        transcription::get(&conn, row.transcription_id)
            .await?
            .map(|t| t.segments)
            .unwrap_or_default()
    };
    let quotes = provenance
        .quotes
        .into_iter()
        .map(|q| QuoteView {
            citation: citations::locate(&q.text, &segments),
            text: q.text,
            verified: q.verified,
        })
        .collect();
    Ok(AuditDetail {
        summary: AuditSummary::from(&row),
        text: row.audit_text,
        quotes,
        engine: provenance.engine,
        prompt_id: provenance.prompt_id,
        analysis_job_id: provenance.analysis_job_id,
        recording_id: provenance.recording_id,
        updated_at: provenance.updated_at,
    })
}

#[utoipa::path(
    get,
    path = "/audits/{id}",
    operation_id = "get_audit",
    tag = "audits",
    params(("id" = i64, Path, description = "Audit id", minimum = 1)),
    responses(
        (status = 200, description = "The report", body = AuditDetail),
        (status = 404, description = "No such report", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<AuditDetail>, Problem> {
    caller.require(Permission::Read)?;
    Ok(Json(load(&state, id).await?))
}

/// The formats a report exports as.
enum Format {
    Markdown,
    Docx,
    Pdf,
}

#[utoipa::path(
    get,
    path = "/audits/{id}/export",
    operation_id = "export_audit",
    tag = "audits",
    params(("id" = i64, Path, description = "Audit id", minimum = 1), ExportParams),
    responses(
        (status = 200, description = "The report as a Markdown, DOCX or PDF document \
         (`Content-Disposition: attachment`, `audit-{id}.md`, `audit-{id}.docx` or \
         `audit-{id}.pdf`)",
         content((String = "text/markdown"),
                 (DocxFile = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
                 (PdfFile = "application/pdf"))),
        (status = 400, description = "A parameter is not valid: the id, or a `format` other \
         than md, docx or pdf (`field` names it)", body = ProblemBody,
         content_type = "application/problem+json"),
        (status = 404, description = "No such report", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    QueryParams(params): QueryParams<ExportParams>,
) -> Result<Response, Problem> {
    caller.require(Permission::Read)?;
    let format = params
        .format
        .as_deref()
        .unwrap_or("md")
        .trim()
        .to_lowercase();
    let format = match format.as_str() {
        "md" | "markdown" => Format::Markdown,
        "docx" => Format::Docx,
        "pdf" => Format::Pdf,
        other => {
            return Err(Problem::invalid(
                "format",
                format!("{other:?} is not an export format; use md, docx or pdf"),
            ));
        }
    };
    let detail = load(&state, id).await?;
    let (body, content_type, extension) = match format {
        Format::Markdown => (
            export::markdown(&detail).into_bytes(),
            "text/markdown; charset=utf-8",
            "md",
        ),
        Format::Docx => (export::docx(&detail), docx::CONTENT_TYPE, "docx"),
        Format::Pdf => (
            export::pdf(&detail).map_err(|e| Problem::internal(&e))?,
            pdf::CONTENT_TYPE,
            "pdf",
        ),
    };
    Ok(export::attachment(
        content_type,
        &format!("audit-{id}.{extension}"),
        body,
    ))
}
