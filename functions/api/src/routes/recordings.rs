//! Recordings: announcing an upload (metadata checked, row created, presigned PUT returned),
//! then following it through transcription and analysis.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use common::db::recording::{self, RecordingRow};
use common::db::reference::{self, ReportTypeInfo};
use common::domain::{RecordingMetadata, canonical_building, canonical_scenario, normalize_name};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Permission};
use crate::extract::{Id, JsonBody, QueryParams};
use crate::pagination::{self, Page};
use crate::problem::{Problem, ProblemBody};
use crate::routes::required_text;
use crate::routes::transcriptions::SpeechCoverageView;
use crate::upload;

const LISTING: &str = "recordings";

/// `POST /recordings`: a recording about to be uploaded, with the metadata the user
/// confirmed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecording {
    /// The file's name on the user's device (kept, made safe, as the object key's last part).
    #[schema(min_length = 1, max_length = 255, pattern = "\\S")]
    pub file_name: String,
    /// The file's media type, e.g. `audio/ogg`, `audio/mpeg`, `audio/mp4`, `video/webm`.
    #[schema(
        pattern = "^(audio/[a-z0-9.+-]+|video/(mp4|webm|ogg)|application/(ogg|octet-stream))$"
    )]
    pub content_type: String,
    /// The exact size of the file; the upload must match it.
    #[schema(minimum = 1)]
    pub size_bytes: i64,
    /// `design` or `interview` (or `Дизайн`, `Интервью`).
    #[schema(min_length = 1, pattern = "\\S")]
    pub scenario: String,
    /// Building type of the place: `hotel`, `restaurant`, `spa` (or a word for one).
    #[schema(min_length = 1, pattern = "\\S")]
    pub building: String,
    /// Report type ids (or stored names) to produce; empty means every report type valid
    /// for the scenario and building.
    #[serde(default)]
    pub report_types: Vec<String>,
    pub employee: Option<String>,
    pub place: Option<String>,
    #[serde(default)]
    pub zones: Vec<String>,
    pub city: Option<String>,
    pub client: Option<String>,
    /// Date of the audit or interview (`YYYY-MM-DD`).
    pub date: Option<NaiveDate>,
    /// The auditor's own sequence number of the recording.
    #[schema(minimum = 0)]
    pub number: Option<i32>,
    /// `ru` or `en`; detected when absent.
    #[schema(pattern = "^(ru|en)$")]
    pub language: Option<String>,
}

/// The request that uploads the file: send it exactly as given.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadRequest {
    pub url: String,
    /// `PUT`.
    pub method: String,
    /// Headers to send with the upload (the signature covers them).
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// The recording was created; upload the file with `upload`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedRecording {
    pub recording_id: i64,
    pub object_key: String,
    /// `awaiting_upload`.
    pub status: String,
    pub upload: UploadRequest,
}

/// A recording and where it is in the pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recording {
    pub recording_id: i64,
    pub object_key: String,
    /// `awaiting_upload`, `pending`, `transcribing`, `transcribed`, `analyzing`, `done` or
    /// `failed`.
    pub status: String,
    /// What is happening now, for a person.
    pub stage: Option<String>,
    /// 0 to 1 within the current stage.
    pub progress: Option<f32>,
    pub attempts: i32,
    /// Why it failed (or last failed), for a person.
    pub last_error: Option<String>,
    pub size_bytes: Option<i64>,
    pub content_type: Option<String>,
    /// The metadata confirmed at upload.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// How much of the speech the stored transcript covers (`null` until it is stored, or
    /// when the engine does not measure it).
    pub speech_coverage: Option<SpeechCoverageView>,
    /// What a person should know about the result, e.g. speech that could not be
    /// transcribed; empty when there is nothing to say.
    pub warnings: Vec<String>,
}

impl From<RecordingRow> for Recording {
    fn from(r: RecordingRow) -> Self {
        let warnings = r
            .speech_coverage
            .as_ref()
            .and_then(uncovered_warning)
            .into_iter()
            .collect();
        Self {
            recording_id: r.recording_id,
            object_key: r.object_key,
            status: r.status,
            stage: r.stage,
            progress: r.progress,
            attempts: r.attempts,
            last_error: r.last_error,
            size_bytes: r.size_bytes,
            content_type: r.content_type,
            metadata: r.metadata,
            created_at: r.created_at,
            updated_at: r.updated_at,
            speech_coverage: r.speech_coverage.map(Into::into),
            warnings,
        }
    }
}

/// The warning for speech the transcript lacks, naming where it is.
fn uncovered_warning(c: &common::db::transcription::Coverage) -> Option<String> {
    if c.uncovered.is_empty() {
        return None;
    }
    let at = |ms: i64| format!("{}:{:04.1}", ms / 60_000, (ms % 60_000) as f64 / 1000.0);
    let mut places: Vec<String> = c
        .uncovered
        .iter()
        .take(5)
        .map(|u| format!("{}-{}", at(u.start_ms), at(u.end_ms)))
        .collect();
    if c.uncovered.len() > 5 {
        places.push(format!("and {} more", c.uncovered.len() - 5));
    }
    Some(format!(
        "{:.1} s of {:.1} s of speech could not be transcribed ({:.1} % covered) at {}; \
         the transcript and its reports lack what was said there",
        c.uncovered_ms as f64 / 1000.0,
        c.speech_ms as f64 / 1000.0,
        c.coverage * 100.0,
        places.join(", ")
    ))
}

/// An analysis job of a recording (one per report type and building).
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalysisJob {
    pub analysis_job_id: i64,
    pub report_type: String,
    pub building: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// A report a recording produced.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProducedAudit {
    pub audit_id: i64,
    pub report_type: String,
    pub building: String,
    pub pass: i16,
    pub pass_title: Option<String>,
    /// `narrative` or `metrics`.
    pub kind: String,
}

/// A recording with what it produced so far.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingDetail {
    #[serde(flatten)]
    pub recording: Recording,
    pub transcription_id: Option<i64>,
    pub jobs: Vec<AnalysisJob>,
    pub audits: Vec<ProducedAudit>,
}

/// Filters and page of `GET /recordings`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordingListParams {
    /// Only recordings in this status.
    pub status: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u16>,
}

/// Media types a recording may be announced with.
fn acceptable_content_type(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("audio/")
        || matches!(
            mime.as_str(),
            "video/mp4"
                | "video/webm"
                | "video/ogg"
                | "application/ogg"
                | "application/octet-stream"
        )
}

/// The last part of the object key: the file's name with anything but letters, digits, dots,
/// dashes and underscores replaced, so that keys need no escaping anywhere.
fn safe_file_name(name: &str) -> String {
    let mut safe = String::new();
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    for c in base.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
            c
        } else {
            '_'
        };
        // Runs of replaced characters collapse into one underscore.
        if !(c == '_' && safe.ends_with('_')) {
            safe.push(c);
        }
    }
    let safe: String = safe.trim_matches('.').chars().take(100).collect();
    if safe.trim_matches('_').is_empty() {
        "recording".to_owned()
    } else {
        safe
    }
}

fn random_token() -> Result<String, Problem> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| Problem::internal(&e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn optional_name(field: &str, value: Option<&str>) -> Result<Option<String>, Problem> {
    match value {
        None => Ok(None),
        Some(v) => {
            if v.chars().count() > 300 || v.contains('\0') {
                return Err(Problem::invalid(
                    field,
                    "must be at most 300 characters, without NUL",
                ));
            }
            Ok(normalize_name(v))
        }
    }
}

/// Checks the request against the vocabulary and the valid pairs, and returns the metadata
/// to store (canonical ids, names normalised).
fn metadata_of(
    req: &NewRecording,
    catalog: &[ReportTypeInfo],
) -> Result<RecordingMetadata, Problem> {
    let scenario = canonical_scenario(&req.scenario).ok_or_else(|| {
        Problem::invalid(
            "scenario",
            format!(
                "{:?} is neither design (Дизайн) nor interview (Интервью)",
                req.scenario
            ),
        )
    })?;
    let building = canonical_building(&req.building)
        .filter(|b| *b != "non-building")
        .ok_or_else(|| {
            Problem::invalid(
                "building",
                format!("{:?} is not a hotel, restaurant or spa", req.building),
            )
        })?;
    let mut report_types = Vec::with_capacity(req.report_types.len());
    for wanted in &req.report_types {
        let wanted = wanted.trim();
        let Some(rt) = catalog
            .iter()
            .find(|rt| rt.scenario == scenario && (rt.id == wanted || rt.name == wanted))
        else {
            return Err(Problem::invalid(
                "report_types",
                format!("{wanted:?} is not a report type of the {scenario} scenario"),
            ));
        };
        if !rt
            .buildings
            .iter()
            .any(|b| b == building || b == "non-building")
        {
            return Err(Problem::invalid(
                "report_types",
                format!("report type {} is not valid for building {building}", rt.id),
            ));
        }
        if !report_types.contains(&rt.id) {
            report_types.push(rt.id.clone());
        }
    }
    let mut zones = Vec::with_capacity(req.zones.len());
    for zone in &req.zones {
        if let Some(z) = optional_name("zones", Some(zone))?
            && !zones.contains(&z)
        {
            zones.push(z);
        }
    }
    let metadata = RecordingMetadata {
        scenario: Some(scenario.to_owned()),
        building: Some(building.to_owned()),
        report_types,
        employee: optional_name("employee", req.employee.as_deref())?,
        place: optional_name("place", req.place.as_deref())?,
        zones,
        city: optional_name("city", req.city.as_deref())?,
        client: optional_name("client", req.client.as_deref())?,
        date: req.date,
        number: req.number,
        language: req.language.as_deref().map(|l| l.trim().to_lowercase()),
    };
    metadata
        .validate()
        .map_err(|e| Problem::invalid(e.field, e.reason))?;
    Ok(metadata)
}

#[utoipa::path(
    post,
    path = "/recordings",
    operation_id = "create_recording",
    tag = "recordings",
    request_body = NewRecording,
    responses(
        (status = 201, description = "Created; upload the file with the presigned request",
         body = CreatedRecording,
         headers(("location" = String, description = "The recording's URL"))),
        (status = 413, description = "The body is over 1 MiB", body = ProblemBody,
         content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<NewRecording>,
) -> Result<Response, Problem> {
    caller.require(Permission::Upload)?;
    required_text("file_name", &req.file_name, 255)?;
    if !acceptable_content_type(&req.content_type)
        || HeaderValue::from_str(&req.content_type).is_err()
    {
        return Err(Problem::invalid(
            "content_type",
            format!("{:?} is not an audio or video media type", req.content_type),
        ));
    }
    let max = state.settings.max_recording_bytes;
    if req.size_bytes < 1 || u64::try_from(req.size_bytes).is_ok_and(|n| n > max) {
        return Err(Problem::invalid(
            "size_bytes",
            format!("must be between 1 and {max} bytes"),
        ));
    }
    let conn = state.pool.get().await?;
    let catalog = reference::report_types(&conn).await?;
    let metadata = metadata_of(&req, &catalog)?;

    let key = format!(
        "{}{}/{}/{}",
        state.settings.recordings_prefix,
        Utc::now().format("%Y/%m/%d"),
        random_token()?,
        safe_file_name(&req.file_name)
    );
    let bucket = &state.settings.recordings_bucket;
    let presigned = upload::presign_put(
        &state.s3,
        bucket,
        &key,
        &req.content_type,
        req.size_bytes,
        state.settings.upload_url_ttl,
    )
    .await?;
    let metadata_json = serde_json::to_value(&metadata).map_err(|e| Problem::internal(&e))?;
    let row = recording::create_intent(
        &conn,
        bucket,
        &key,
        &req.content_type,
        req.size_bytes,
        &metadata_json,
        caller.principal().as_deref(),
    )
    .await?;
    tracing::info!(recording_id = row.recording_id, key = %key, "upload intent created");
    let location = format!("/recordings/{}", row.recording_id);
    let body = CreatedRecording {
        recording_id: row.recording_id,
        object_key: row.object_key,
        status: row.status,
        upload: UploadRequest {
            url: presigned.url,
            method: presigned.method,
            headers: presigned.headers,
            expires_at: presigned.expires_at,
        },
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/recordings",
    operation_id = "list_recordings",
    tag = "recordings",
    params(RecordingListParams),
    responses((status = 200, description = "Recordings, newest first (an uploader: only its own)",
               body = Page<Recording>))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams<RecordingListParams>,
) -> Result<Json<Page<Recording>>, Problem> {
    caller.require(Permission::ReadRecordings)?;
    let limit = pagination::limit(params.limit)?;
    let after = pagination::decode(LISTING, params.cursor.as_deref())?;
    let conn = state.pool.get().await?;
    let scope = caller.recordings_scope();
    let page = recording::list(
        &conn,
        params.status.as_deref(),
        scope.as_deref(),
        after,
        limit,
    )
    .await?;
    Ok(Json(Page {
        items: page.items.into_iter().map(Recording::from).collect(),
        next_cursor: page.next_after.map(|id| pagination::encode(LISTING, id)),
    }))
}

#[utoipa::path(
    get,
    path = "/recordings/{id}",
    operation_id = "get_recording",
    tag = "recordings",
    params(("id" = i64, Path, description = "Recording id", minimum = 1)),
    responses(
        (status = 200, description = "The recording and what it produced",
         body = RecordingDetail),
        (status = 404, description = "No such recording", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<RecordingDetail>, Problem> {
    caller.require(Permission::ReadRecordings)?;
    let conn = state.pool.get().await?;
    // Another uploader's recording is as absent as one that does not exist.
    let scope = caller.recordings_scope();
    let Some(row) = recording::get(&conn, id)
        .await?
        .filter(|r| scope.is_none() || r.created_by == scope)
    else {
        return Err(Problem::not_found(format!("recording {id} does not exist")));
    };
    let produced = recording::produced(&conn, id).await?;
    Ok(Json(RecordingDetail {
        recording: row.into(),
        transcription_id: produced.transcription_id,
        jobs: produced
            .jobs
            .into_iter()
            .map(|j| AnalysisJob {
                analysis_job_id: j.analysis_job_id,
                report_type: j.report_type,
                building: j.building,
                status: j.status,
                attempts: j.attempts,
                last_error: j.last_error,
            })
            .collect(),
        audits: produced
            .audits
            .into_iter()
            .map(|a| ProducedAudit {
                audit_id: a.audit_id,
                report_type: a.report_type,
                building: a.building,
                pass: a.pass,
                pass_title: a.pass_title,
                kind: a.kind,
            })
            .collect(),
    }))
}

/// `GET /recordings/{id}/media`: where a player loads the recording from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MediaUrl {
    pub recording_id: i64,
    /// A presigned GET of the recording; it needs no credentials and expires at `expires_at`.
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub content_type: Option<String>,
}

#[utoipa::path(
    get,
    path = "/recordings/{id}/media",
    operation_id = "get_recording_media",
    tag = "recordings",
    params(("id" = i64, Path, description = "Recording id", minimum = 1)),
    responses(
        (status = 200, description = "A short-lived URL to play the recording from",
         body = MediaUrl),
        (status = 404, description = "No such recording, or it was never uploaded",
         body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn media(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<MediaUrl>, Problem> {
    // Hearing a recording is reading what was said: the reports' and transcripts' permission.
    caller.require(Permission::Read)?;
    let conn = state.pool.get().await?;
    let Some(row) = recording::get(&conn, id).await? else {
        return Err(Problem::not_found(format!("recording {id} does not exist")));
    };
    if row.status == "awaiting_upload" {
        // Announced: the object may be there already, before transcribe has adopted it.
        match state.s3.head(&row.bucket, &row.object_key).await {
            Ok(_) => {}
            Err(common::Error::ObjectNotFound { .. }) => {
                return Err(Problem::not_found(format!(
                    "recording {id} has not been uploaded yet"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (url, expires_at) = upload::presign_get(
        &state.s3,
        &row.bucket,
        &row.object_key,
        state.settings.media_url_ttl,
    )
    .await?;
    Ok(Json(MediaUrl {
        recording_id: id,
        url,
        expires_at,
        content_type: row.content_type,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_become_safe_key_parts() {
        assert_eq!(safe_file_name("Аудит отеля.ogg"), "_.ogg");
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(
            safe_file_name("audit 12 (lobby).m4a"),
            "audit_12_lobby_.m4a"
        );
        assert_eq!(safe_file_name("..."), "recording");
    }

    #[test]
    fn lost_speech_is_a_warning_that_says_where() {
        use common::db::transcription::{Coverage, UncoveredSpeech};
        let lost = |start_ms, end_ms| UncoveredSpeech { start_ms, end_ms };
        let none = Coverage::new(60_000, Vec::new());
        let some = Coverage::new(120_000, vec![lost(12_400, 15_000), lost(61_000, 63_500)]);
        let many = Coverage::new(
            600_000,
            (0..7)
                .map(|i| lost(i * 60_000, i * 60_000 + 1_500))
                .collect(),
        );

        assert_eq!(uncovered_warning(&none), None);
        let warning = uncovered_warning(&some).unwrap();
        assert!(
            warning.starts_with(
                "5.1 s of 120.0 s of speech could not be transcribed (95.8 % covered)"
            ),
            "{warning}"
        );
        assert!(
            warning.contains("0:12.4-0:15.0, 1:01.0-1:03.5"),
            "{warning}"
        );
        assert!(uncovered_warning(&many).unwrap().contains("and 2 more"));
    }
}
