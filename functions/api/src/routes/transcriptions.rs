//! Transcripts with their timestamped segments, and their export as text, SRT and WebVTT.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use common::db::transcription::{self, Transcription};
use common::export::transcript::{self as export, Format};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Caller, Permission};
use crate::export::DocxFile;
use crate::extract::{Id, QueryParams};
use crate::problem::{Problem, ProblemBody};

/// A timestamped piece of a transcript.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentView {
    /// 0-based position (what citations refer to).
    pub seq: usize,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    /// The role, `Сотрудник` or `Клиент`, once roles are known: for interviews decided
    /// from the speakers' turns (see `speakers`), or labelled by a model.
    pub speaker: Option<String>,
    /// Who speaks: 0, 1, ... in the order they first speak, when voices were told apart.
    pub speaker_id: Option<i16>,
}

/// One speaker told apart by voice, and what their turns say of them: the employee of an
/// interview is the one who asks (the share of questions), with who opens the conversation
/// and who speaks in shorter turns as lesser evidence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpeakerView {
    pub speaker_id: i16,
    /// `Сотрудник` or `Клиент`; `null` when the recording has one speaker or is not an
    /// interview.
    pub role: Option<String>,
    pub turns: usize,
    pub sentences: usize,
    /// Of the sentences, questions or interviewer prompts.
    pub questions: usize,
    pub speech_ms: i64,
    pub mean_turn_chars: f64,
    /// Spoke first.
    pub opens: bool,
}

/// A stretch of speech no transcribed text covers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UncoveredView {
    /// From the start of the recording.
    pub start_ms: i64,
    pub end_ms: i64,
}

/// How much of the speech the voice-activity detector heard the transcript covers. Speech
/// the engine could not turn into text, even decoding it again on its own, is listed, never
/// dropped in silence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpeechCoverageView {
    /// The share of the speech covered, 0 to 1.
    pub coverage: f64,
    pub speech_ms: i64,
    pub uncovered_ms: i64,
    pub uncovered: Vec<UncoveredView>,
}

impl From<transcription::Coverage> for SpeechCoverageView {
    fn from(c: transcription::Coverage) -> Self {
        Self {
            coverage: c.coverage,
            speech_ms: c.speech_ms,
            uncovered_ms: c.uncovered_ms,
            uncovered: c
                .uncovered
                .into_iter()
                .map(|u| UncoveredView {
                    start_ms: u.start_ms,
                    end_ms: u.end_ms,
                })
                .collect(),
        }
    }
}

/// A transcript.
#[derive(Debug, Serialize, ToSchema)]
pub struct TranscriptionView {
    pub transcription_id: i64,
    pub text: String,
    pub audio_file_name: String,
    pub number_audio: Option<i32>,
    pub recording_id: Option<i64>,
    pub language: Option<String>,
    pub audio_seconds: Option<f64>,
    pub model_id: Option<String>,
    pub date: DateTime<Utc>,
    pub segments: Vec<SegmentView>,
    /// How much of the speech the text covers; `null` when the engine does not measure it
    /// (a hosted speech API) or the transcript predates the measure.
    pub speech_coverage: Option<SpeechCoverageView>,
    /// The speakers told apart by voice; `null` when they were not (a hosted speech engine,
    /// or a transcript that predates it).
    pub speakers: Option<Vec<SpeakerView>>,
}

#[utoipa::path(
    get,
    path = "/transcriptions/{id}",
    operation_id = "get_transcription",
    tag = "transcriptions",
    params(("id" = i64, Path, description = "Transcription id", minimum = 1)),
    responses(
        (status = 200, description = "The transcript with its segments", body = TranscriptionView),
        (status = 404, description = "No such transcription", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<TranscriptionView>, Problem> {
    caller.require(Permission::Read)?;
    let t = load(&state, id).await?;
    Ok(Json(TranscriptionView {
        transcription_id: t.id,
        text: t.text,
        audio_file_name: t.audio_file_name,
        number_audio: t.number_audio,
        recording_id: t.recording_id,
        language: t.language,
        audio_seconds: t.audio_seconds,
        model_id: t.model_id,
        date: t.date,
        speech_coverage: t.coverage.map(Into::into),
        speakers: t.speakers.map(|all| {
            all.into_iter()
                .map(|e| SpeakerView {
                    speaker_id: i16::from(e.speaker),
                    role: e.role.map(|r| r.as_str().to_owned()),
                    turns: e.turns,
                    sentences: e.sentences,
                    questions: e.questions,
                    speech_ms: e.speech_ms,
                    mean_turn_chars: e.mean_turn_chars,
                    opens: e.opens,
                })
                .collect()
        }),
        segments: t
            .segments
            .into_iter()
            .enumerate()
            .map(|(seq, s)| SegmentView {
                seq,
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                text: s.text,
                speaker: s.speaker,
                speaker_id: s.speaker_id,
            })
            .collect(),
    }))
}

/// Loads a transcription with its segments; 404 when it does not exist (a recording gets its
/// transcription once it is transcribed).
async fn load(state: &AppState, id: i64) -> Result<Transcription, Problem> {
    let conn = state.pool.get().await?;
    transcription::get(&conn, id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("transcription {id} does not exist")))
}

/// `GET /transcriptions/{id}/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TranscriptExportParams {
    /// `txt` (a line a segment, `[HH:MM:SS] Speaker: text`, after a short header; the
    /// default), `srt` (SubRip), `vtt` (WebVTT) or `docx` (Word: the same lines, speakers in
    /// bold).
    #[param(pattern = "^(txt|srt|vtt|docx)$")]
    pub format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/transcriptions/{id}/export",
    operation_id = "export_transcription",
    tag = "transcriptions",
    params(("id" = i64, Path, description = "Transcription id", minimum = 1),
           TranscriptExportParams),
    responses(
        (status = 200, description = "The transcript as a file (`Content-Disposition: \
         attachment` named after the recording), with times and speakers",
         content((String = "text/plain"), (String = "application/x-subrip"),
                 (String = "text/vtt"),
                 (DocxFile = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"))),
        (status = 404, description = "No such transcription", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    QueryParams(params): QueryParams<TranscriptExportParams>,
) -> Result<Response, Problem> {
    caller.require(Permission::Read)?;
    let name = params
        .format
        .as_deref()
        .unwrap_or("txt")
        .trim()
        .to_lowercase();
    let format: Format = name.parse()?;
    let t = load(&state, id).await?;
    let body = export::render(&(&t).into(), format)?;
    let file_name = export::file_name(&t.audio_file_name, &format!("transcription-{id}"), format);
    Ok(crate::export::attachment(
        format.content_type(),
        &file_name,
        body,
    ))
}
