//! Transcriptions and their timestamped segments.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::speakers::SpeakerEvidence;

use super::GenericClient;
use crate::{Error, Result};

/// One timestamped piece of a transcript.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
    /// `Сотрудник` or `Клиент` once roles are labelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    /// Who speaks, 0, 1, ... in the order they first speak, once voices are told apart
    /// ([`crate::speakers::diarize`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_id: Option<i16>,
    /// The segment's voiceprint: kept in a saved window until the whole recording is
    /// transcribed and its speakers are found, never stored with the transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<crate::speakers::Voiceprint>,
}

/// Speech the voice-activity detector heard that no transcribed text covers, in
/// milliseconds from the start of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UncoveredSpeech {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// How much of a recording's speech its text covers, as the local engine measures it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Speech the voice-activity detector heard.
    pub speech_ms: i64,
    /// Of which no text covers (the sum of `uncovered`).
    pub uncovered_ms: i64,
    /// The share of the speech covered, 0..=1.
    pub coverage: f64,
    pub uncovered: Vec<UncoveredSpeech>,
}

impl Coverage {
    pub fn new(speech_ms: i64, uncovered: Vec<UncoveredSpeech>) -> Self {
        let uncovered_ms: i64 = uncovered.iter().map(|u| u.end_ms - u.start_ms).sum();
        Self {
            speech_ms,
            uncovered_ms,
            coverage: covered_share(speech_ms, uncovered_ms),
            uncovered,
        }
    }
}

/// The share of `speech_ms` outside `uncovered_ms`, 0..=1 (1 when there is no speech).
pub fn covered_share(speech_ms: i64, uncovered_ms: i64) -> f64 {
    if speech_ms <= 0 {
        return 1.0;
    }
    1.0 - uncovered_ms.clamp(0, speech_ms) as f64 / speech_ms as f64
}

/// The text of a transcript: its segments' texts, one space apart.
pub fn text_of(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| s.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A transcript to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTranscription {
    pub text: String,
    /// The recording's file name (or object key).
    pub audio_file_name: String,
    /// The auditor's own sequence number of the recording.
    pub number_audio: Option<i32>,
    /// The recording row it came from, if the pipeline made it.
    pub recording_id: Option<i64>,
    pub language: Option<String>,
    pub audio_seconds: Option<f64>,
    pub model_id: Option<String>,
    /// When it was transcribed (default: now).
    pub date: Option<DateTime<Utc>>,
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// How much of the speech the text covers, when the engine measures it.
    #[serde(default)]
    pub coverage: Option<Coverage>,
    /// The speakers told apart by their voices, and what their turns say of them.
    #[serde(default)]
    pub speakers: Option<Vec<SpeakerEvidence>>,
}

/// A stored transcript.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcription {
    pub id: i64,
    pub text: String,
    pub audio_file_name: String,
    pub number_audio: Option<i32>,
    pub recording_id: Option<i64>,
    pub language: Option<String>,
    pub audio_seconds: Option<f64>,
    pub model_id: Option<String>,
    pub date: DateTime<Utc>,
    pub segments: Vec<Segment>,
    /// How much of the speech the text covers (`None`: not measured).
    pub coverage: Option<Coverage>,
    /// The speakers told apart by their voices (`None`: not told apart).
    pub speakers: Option<Vec<SpeakerEvidence>>,
}

const INSERT_BY_RECORDING: &str = "
WITH ins AS (
    INSERT INTO transcription (transcription_text, audio_file_name, number_audio, recording_id,
                               language, audio_seconds, model_id, text_sha256, transcription_date,
                               speech_ms, uncovered_ms, uncovered, speakers)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()), $10, $11, $12, $13)
    ON CONFLICT (recording_id) DO NOTHING
    RETURNING transcription_id)
SELECT transcription_id, true FROM ins
UNION ALL
SELECT transcription_id, false FROM transcription WHERE recording_id = $4";

const INSERT_BY_TEXT: &str = "
WITH ins AS (
    INSERT INTO transcription (transcription_text, audio_file_name, number_audio, recording_id,
                               language, audio_seconds, model_id, text_sha256, transcription_date,
                               speech_ms, uncovered_ms, uncovered, speakers)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()), $10, $11, $12, $13)
    ON CONFLICT ((md5(audio_file_name)), text_sha256) WHERE recording_id IS NULL DO NOTHING
    RETURNING transcription_id)
SELECT transcription_id, true FROM ins
UNION ALL
SELECT transcription_id, false FROM transcription
WHERE recording_id IS NULL AND md5(audio_file_name) = md5($2) AND audio_file_name = $2
  AND text_sha256 = $8";

const INSERT_SEGMENTS: &str = "
INSERT INTO transcription_segment (transcription_id, seq, start_ms, end_ms, text, speaker,
                                   speaker_id)
SELECT $1, s.seq, s.start_ms, s.end_ms, s.text, s.speaker, s.speaker_id
FROM unnest($2::int[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::smallint[])
     AS s (seq, start_ms, end_ms, text, speaker, speaker_id)";

/// Stores a transcription with its segments, or finds the one already stored for the same
/// recording (or, without a recording, the same file name and text). Returns its id and
/// whether this call created it.
pub async fn get_or_create(
    client: &impl GenericClient,
    t: &NewTranscription,
) -> Result<(i64, bool)> {
    validate(t)?;
    let sha = Sha256::digest(t.text.as_bytes()).to_vec();
    let sql = if t.recording_id.is_some() {
        INSERT_BY_RECORDING
    } else {
        INSERT_BY_TEXT
    };
    let stmt = client.prepare_cached(sql).await?;
    let speech_ms = t.coverage.as_ref().map(|c| c.speech_ms);
    let uncovered_ms = t.coverage.as_ref().map(|c| c.uncovered_ms);
    let uncovered = t
        .coverage
        .as_ref()
        .map(|c| serde_json::to_value(&c.uncovered))
        .transpose()
        .map_err(|e| Error::InvalidInput {
            field: "uncovered",
            reason: e.to_string(),
        })?;
    let speakers = t
        .speakers
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| Error::InvalidInput {
            field: "speakers",
            reason: e.to_string(),
        })?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 13] = [
        &t.text,
        &t.audio_file_name,
        &t.number_audio,
        &t.recording_id,
        &t.language,
        &t.audio_seconds,
        &t.model_id,
        &sha,
        &t.date,
        &speech_ms,
        &uncovered_ms,
        &uncovered,
        &speakers,
    ];
    // An empty answer is a concurrent insert committed after our snapshot: look again.
    for _ in 0..8 {
        if let Some(row) = client.query_opt(&stmt, &params).await? {
            let (id, created): (i64, bool) = (row.get(0), row.get(1));
            if created && !t.segments.is_empty() {
                insert_segments(client, id, &t.segments).await?;
            }
            return Ok((id, created));
        }
    }
    Err(Error::InvalidInput {
        field: "transcription",
        reason: "could not be stored: it kept conflicting with a concurrent write".into(),
    })
}

async fn insert_segments(client: &impl GenericClient, id: i64, segments: &[Segment]) -> Result<()> {
    let seq: Vec<i32> = (0..segments.len())
        .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
        .collect();
    let start: Vec<i64> = segments.iter().map(|s| s.start_ms).collect();
    let end: Vec<i64> = segments.iter().map(|s| s.end_ms).collect();
    let text: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    let speaker: Vec<Option<&str>> = segments.iter().map(|s| s.speaker.as_deref()).collect();
    let speaker_id: Vec<Option<i16>> = segments.iter().map(|s| s.speaker_id).collect();
    let stmt = client.prepare_cached(INSERT_SEGMENTS).await?;
    client
        .execute(
            &stmt,
            &[&id, &seq, &start, &end, &text, &speaker, &speaker_id],
        )
        .await?;
    Ok(())
}

fn validate(t: &NewTranscription) -> Result<()> {
    let invalid = |field, reason: &str| {
        Err(Error::InvalidInput {
            field,
            reason: reason.into(),
        })
    };
    if t.audio_file_name.trim().is_empty() {
        return invalid("audio_file_name", "must not be blank");
    }
    if t.text.contains('\0') {
        return invalid("transcription", "must not contain a NUL character");
    }
    if t.audio_seconds.is_some_and(|s| !s.is_finite() || s < 0.0) {
        return invalid("audio_seconds", "must be a non-negative number");
    }
    if let Some(c) = &t.coverage {
        let total: i64 = c.uncovered.iter().map(|u| u.end_ms - u.start_ms).sum();
        if c.speech_ms < 0
            || c.uncovered
                .iter()
                .any(|u| u.start_ms < 0 || u.end_ms < u.start_ms)
            || total != c.uncovered_ms
            || c.uncovered_ms > c.speech_ms
        {
            return invalid(
                "coverage",
                "uncovered regions must be spans (start <= end) summing to uncovered_ms, at most speech_ms",
            );
        }
    }
    for (i, s) in t.segments.iter().enumerate() {
        if s.start_ms < 0 || s.end_ms < s.start_ms {
            return Err(Error::InvalidInput {
                field: "segments",
                reason: format!("segment {i} runs from {} ms to {} ms", s.start_ms, s.end_ms),
            });
        }
        if let Some(speaker) = s.speaker.as_deref()
            && !matches!(speaker, "Сотрудник" | "Клиент")
        {
            return Err(Error::InvalidInput {
                field: "segments",
                reason: format!(
                    "segment {i} has speaker {speaker:?}, expected Сотрудник or Клиент"
                ),
            });
        }
    }
    Ok(())
}

/// Whether a transcription exists.
pub async fn exists(client: &impl GenericClient, id: i64) -> Result<bool> {
    let stmt = client
        .prepare_cached("SELECT 1 FROM transcription WHERE transcription_id = $1")
        .await?;
    Ok(client.query_opt(&stmt, &[&id]).await?.is_some())
}

/// A stored transcription with its segments in order.
pub async fn get(client: &impl GenericClient, id: i64) -> Result<Option<Transcription>> {
    let stmt = client
        .prepare_cached(
            "SELECT transcription_id, transcription_text, audio_file_name, number_audio,
                    recording_id, language, audio_seconds, model_id, transcription_date,
                    speech_ms, uncovered, speakers
             FROM transcription WHERE transcription_id = $1",
        )
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&id]).await? else {
        return Ok(None);
    };
    let seg_stmt = client
        .prepare_cached(
            "SELECT start_ms, end_ms, text, speaker, speaker_id FROM transcription_segment
             WHERE transcription_id = $1 ORDER BY seq",
        )
        .await?;
    let segments = client
        .query(&seg_stmt, &[&id])
        .await?
        .into_iter()
        .map(|r| Segment {
            start_ms: r.get(0),
            end_ms: r.get(1),
            text: r.get(2),
            speaker: r.get(3),
            speaker_id: r.get(4),
            voice: None,
        })
        .collect();
    let speakers = row
        .get::<_, Option<serde_json::Value>>(11)
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::InvalidInput {
            field: "transcription.speakers",
            reason: e.to_string(),
        })?;
    Ok(Some(Transcription {
        id: row.get(0),
        text: row.get(1),
        audio_file_name: row.get(2),
        number_audio: row.get(3),
        recording_id: row.get(4),
        language: row.get(5),
        audio_seconds: row.get(6),
        model_id: row.get(7),
        date: row.get(8),
        segments,
        coverage: coverage_of(row.get(9), row.get(10))?,
        speakers,
    }))
}

/// The stored coverage columns as a [`Coverage`] (`None` when not measured).
pub fn coverage_of(
    speech_ms: Option<i64>,
    uncovered: Option<serde_json::Value>,
) -> Result<Option<Coverage>> {
    let (Some(speech_ms), Some(uncovered)) = (speech_ms, uncovered) else {
        return Ok(None);
    };
    let uncovered: Vec<UncoveredSpeech> =
        serde_json::from_value(uncovered).map_err(|e| Error::InvalidInput {
            field: "transcription.uncovered",
            reason: e.to_string(),
        })?;
    Ok(Some(Coverage::new(speech_ms, uncovered)))
}
