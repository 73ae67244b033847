//! Recordings: one row per uploaded object version, claimed by a worker under an expiring
//! lease so that at-least-once notifications have effectively-once results.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::GenericClient;
use crate::{Error, Result};

/// The identity of an uploaded object version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectIdentity {
    pub bucket: String,
    pub key: String,
    /// Without quotes.
    pub etag: String,
    /// Empty when the bucket is not versioned.
    pub version_id: String,
}

/// The outcome of trying to claim a recording for transcription.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Ours until `lease_until`; `attempts` counts this one.
    Claimed {
        recording_id: i64,
        attempts: i32,
        metadata: Value,
        lease_until: DateTime<Utc>,
    },
    /// Already transcribed (or further): a repeated notification, nothing to do.
    Done { recording_id: i64 },
    /// Someone else holds a live lease: try again after it.
    Busy {
        recording_id: i64,
        lease_until: DateTime<Utc>,
    },
    /// Failed for good earlier (bad file, or too many attempts).
    Failed { recording_id: i64, reason: String },
}

const ADOPT_INTENT: &str = "
UPDATE recording SET etag = $3, version_id = $4, status = 'pending', updated_at = now()
WHERE recording_id = (
    SELECT recording_id FROM recording
    WHERE bucket = $1 AND object_key = $2 AND etag = '' AND status = 'awaiting_upload'
      AND NOT EXISTS (SELECT 1 FROM recording
                      WHERE bucket = $1 AND object_key = $2 AND etag = $3 AND version_id = $4)
    ORDER BY recording_id DESC LIMIT 1
    FOR UPDATE)";

const CLAIM: &str = "
INSERT INTO recording (bucket, object_key, etag, version_id, status, stage, lease_owner,
                       lease_until, attempts)
VALUES ($1, $2, $3, $4, 'transcribing', 'claimed', $5, now() + $6 * interval '1 millisecond', 1)
ON CONFLICT (bucket, object_key, etag, version_id) DO UPDATE
SET status = 'transcribing', stage = 'claimed', lease_owner = EXCLUDED.lease_owner,
    lease_until = EXCLUDED.lease_until, attempts = recording.attempts + 1, updated_at = now()
WHERE recording.status = 'pending'
   OR (recording.status = 'transcribing' AND recording.lease_until < now())
RETURNING recording_id, attempts, metadata, lease_until";

const STATE: &str = "
SELECT recording_id, status, lease_until, coalesce(last_error, '')
FROM recording WHERE bucket = $1 AND object_key = $2 AND etag = $3 AND version_id = $4";

/// Claims the recording of an object version for `owner` for `lease`, creating its row if
/// this is the first notification of it. Run it in a transaction of its own so the claim is
/// visible at once.
pub async fn claim(
    client: &impl GenericClient,
    object: &ObjectIdentity,
    owner: &str,
    lease: Duration,
    max_attempts: i32,
) -> Result<Claim> {
    let id = [
        &object.bucket,
        &object.key,
        &object.etag,
        &object.version_id,
    ];
    let adopt = client.prepare_cached(ADOPT_INTENT).await?;
    client
        .execute(&adopt, &[id[0], id[1], id[2], id[3]])
        .await?;

    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let stmt = client.prepare_cached(CLAIM).await?;
    if let Some(row) = client
        .query_opt(
            &stmt,
            &[id[0], id[1], id[2], id[3], &owner, &(lease_ms as f64)],
        )
        .await?
    {
        let recording_id: i64 = row.get(0);
        let attempts: i32 = row.get(1);
        if attempts > max_attempts {
            let reason = format!("gave up after {max_attempts} attempts");
            fail(client, recording_id, owner, &reason).await?;
            return Ok(Claim::Failed {
                recording_id,
                reason,
            });
        }
        return Ok(Claim::Claimed {
            recording_id,
            attempts,
            metadata: row.get(2),
            lease_until: row.get(3),
        });
    }
    let state = client.prepare_cached(STATE).await?;
    let row = client
        .query_one(&state, &[id[0], id[1], id[2], id[3]])
        .await?;
    let recording_id: i64 = row.get(0);
    let status: String = row.get(1);
    Ok(match status.as_str() {
        "failed" => Claim::Failed {
            recording_id,
            reason: row.get(3),
        },
        "transcribing" => Claim::Busy {
            recording_id,
            lease_until: row
                .get::<_, Option<DateTime<Utc>>>(2)
                .unwrap_or_else(Utc::now),
        },
        _ => Claim::Done { recording_id },
    })
}

/// What a re-upload of a failed recording reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopened {
    /// It failed before its transcript was stored: it is `pending` again with its attempts
    /// reset, and object metadata (unless an upload intent confirmed it) is read afresh.
    Transcription { recording_id: i64 },
    /// Its transcript is stored and analysis jobs failed: those jobs are `queued` again with
    /// their attempts reset, and the recording `transcribed`.
    Analysis { recording_id: i64, jobs: u64 },
}

/// Reopens the failed recording of `object` when the notification being handled is of a new
/// upload of the same bytes (same key and ETag): S3 stored it at `uploaded_at`, after the
/// recording failed. A user who fixes metadata (or waits out an outage) and uploads again
/// expects it processed again; a redelivered notification of the first upload is older
/// than the failure and changes nothing. `None` when nothing was reopened.
pub async fn reopen_if_reuploaded(
    client: &impl GenericClient,
    object: &ObjectIdentity,
    uploaded_at: DateTime<Utc>,
) -> Result<Option<Reopened>> {
    let stmt = client
        .prepare_cached(
            "UPDATE recording r
             SET status = 'pending', stage = 're-uploaded after a failure', progress = NULL,
                 attempts = 0, last_error = NULL, finished_at = NULL, lease_owner = NULL,
                 lease_until = NULL,
                 metadata = CASE WHEN r.created_by IS NULL THEN '{}'::jsonb ELSE r.metadata END,
                 updated_at = now()
             WHERE bucket = $1 AND object_key = $2 AND etag = $3 AND version_id = $4
               AND status = 'failed' AND finished_at < $5
               AND NOT EXISTS (SELECT 1 FROM transcription t WHERE t.recording_id = r.recording_id)
             RETURNING recording_id",
        )
        .await?;
    let id = [
        &object.bucket,
        &object.key,
        &object.etag,
        &object.version_id,
    ];
    if let Some(row) = client
        .query_opt(&stmt, &[id[0], id[1], id[2], id[3], &uploaded_at])
        .await?
    {
        return Ok(Some(Reopened::Transcription {
            recording_id: row.get(0),
        }));
    }
    let stmt = client
        .prepare_cached(
            "WITH reopened AS (
                 UPDATE recording r
                 SET status = 'transcribed', stage = 're-uploaded after a failure',
                     last_error = NULL, finished_at = NULL, updated_at = now()
                 WHERE bucket = $1 AND object_key = $2 AND etag = $3 AND version_id = $4
                   AND status = 'failed' AND finished_at < $5
                   AND EXISTS (SELECT 1 FROM transcription t WHERE t.recording_id = r.recording_id)
                 RETURNING recording_id),
             jobs AS (
                 UPDATE analysis_job j
                 SET status = 'queued', attempts = 0, last_error = NULL, finished_at = NULL,
                     lease_owner = NULL, lease_until = NULL, updated_at = now()
                 FROM reopened WHERE j.recording_id = reopened.recording_id AND j.status = 'failed'
                 RETURNING j.analysis_job_id)
             SELECT recording_id, (SELECT count(*) FROM jobs) FROM reopened",
        )
        .await?;
    Ok(client
        .query_opt(&stmt, &[id[0], id[1], id[2], id[3], &uploaded_at])
        .await?
        .map(|row| Reopened::Analysis {
            recording_id: row.get(0),
            jobs: row.get::<_, i64>(1).unsigned_abs(),
        }))
}

/// Records what S3 says of the object; the metadata is kept only when the row has none yet
/// (an upload intent's confirmed metadata wins over object metadata).
pub async fn set_object_info(
    client: &impl GenericClient,
    recording_id: i64,
    size: u64,
    content_type: Option<&str>,
    metadata: &Value,
) -> Result<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE recording SET size_bytes = $2, content_type = $3,
                    metadata = CASE WHEN metadata = '{}'::jsonb THEN $4 ELSE metadata END,
                    updated_at = now()
             WHERE recording_id = $1",
        )
        .await?;
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    client
        .execute(&stmt, &[&recording_id, &size, &content_type, metadata])
        .await?;
    Ok(())
}

/// Saves progress while the lease is ours; returns false when it is not (anymore), in which
/// case the caller must stop.
pub async fn report_progress(
    client: &impl GenericClient,
    recording_id: i64,
    owner: &str,
    stage: &str,
    progress: f32,
    lease: Duration,
) -> Result<bool> {
    let stmt = client
        .prepare_cached(
            "UPDATE recording SET stage = $3, progress = $4,
                    lease_until = now() + $5 * interval '1 millisecond', updated_at = now()
             WHERE recording_id = $1 AND lease_owner = $2 AND status = 'transcribing'",
        )
        .await?;
    let lease_ms = lease.as_millis() as f64;
    Ok(client
        .execute(
            &stmt,
            &[
                &recording_id,
                &owner,
                &stage,
                &progress.clamp(0.0, 1.0),
                &lease_ms,
            ],
        )
        .await?
        == 1)
}

/// Lets the lease go early (e.g. before a deadline) so a redelivery resumes at once.
pub async fn release(client: &impl GenericClient, recording_id: i64, owner: &str) -> Result<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE recording SET lease_until = now(), updated_at = now()
             WHERE recording_id = $1 AND lease_owner = $2 AND status = 'transcribing'",
        )
        .await?;
    client.execute(&stmt, &[&recording_id, &owner]).await?;
    Ok(())
}

/// Marks the recording failed for good with a reason a person understands.
pub async fn fail(
    client: &impl GenericClient,
    recording_id: i64,
    owner: &str,
    reason: &str,
) -> Result<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE recording SET status = 'failed', stage = NULL, last_error = $3,
                    lease_owner = NULL, lease_until = NULL, finished_at = now(), updated_at = now()
             WHERE recording_id = $1 AND (lease_owner = $2 OR lease_owner IS NULL)
               AND status IN ('pending', 'transcribing')",
        )
        .await?;
    client
        .execute(&stmt, &[&recording_id, &owner, &reason])
        .await?;
    Ok(())
}

/// Marks the recording transcribed (inside the transaction that stores its transcription).
pub async fn finish_transcription(
    client: &impl GenericClient,
    recording_id: i64,
    owner: &str,
) -> Result<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE recording SET status = 'transcribed', stage = NULL, progress = 1,
                    lease_owner = NULL, lease_until = NULL, last_error = NULL, updated_at = now()
             WHERE recording_id = $1 AND lease_owner = $2 AND status = 'transcribing'",
        )
        .await?;
    if client.execute(&stmt, &[&recording_id, &owner]).await? == 1 {
        Ok(())
    } else {
        Err(Error::LeaseLost { recording_id })
    }
}

/// A recording as users see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingRow {
    pub recording_id: i64,
    pub bucket: String,
    pub object_key: String,
    pub etag: String,
    pub size_bytes: Option<i64>,
    pub content_type: Option<String>,
    pub metadata: Value,
    pub status: String,
    pub stage: Option<String>,
    pub progress: Option<f32>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who created the upload intent through the API (`key:<id>`, `token:<sub>`); `None` for
    /// objects put into the bucket directly.
    pub created_by: Option<String>,
    /// How much of the speech its stored transcript covers (`None`: no transcript yet, or an
    /// engine that does not measure it).
    pub speech_coverage: Option<super::transcription::Coverage>,
}

/// One recording by id.
pub async fn get(client: &impl GenericClient, recording_id: i64) -> Result<Option<RecordingRow>> {
    let sql = format!("SELECT {RECORDING_COLUMNS} FROM recording WHERE recording_id = $1");
    let stmt = client.prepare_cached(&sql).await?;
    client
        .query_opt(&stmt, &[&recording_id])
        .await?
        .as_ref()
        .map(recording_row)
        .transpose()
}

/// A finished speech window of a transcription in flight.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SavedWindow {
    pub seq: i32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub segments: Vec<super::transcription::Segment>,
    pub language: Option<String>,
    /// VAD speech in the window (`None`: the engine does not measure it).
    pub speech_ms: Option<i64>,
    /// Speech in the window that no text covers.
    pub uncovered: Vec<super::transcription::UncoveredSpeech>,
}

/// Saves a finished window while the lease is ours (false when the lease was lost).
pub async fn save_window(
    client: &impl GenericClient,
    recording_id: i64,
    owner: &str,
    w: &SavedWindow,
) -> Result<bool> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO transcription_window (recording_id, seq, start_ms, end_ms, segments, language,
                                               speech_ms, uncovered)
             SELECT $1, $3, $4, $5, $6, $7, $8, $9 FROM recording
             WHERE recording_id = $1 AND lease_owner = $2 AND status = 'transcribing'
             ON CONFLICT (recording_id, seq) DO UPDATE
             SET start_ms = EXCLUDED.start_ms, end_ms = EXCLUDED.end_ms,
                 segments = EXCLUDED.segments, language = EXCLUDED.language,
                 speech_ms = EXCLUDED.speech_ms, uncovered = EXCLUDED.uncovered",
        )
        .await?;
    let segments = serde_json::to_value(&w.segments).unwrap_or_else(|_| Value::Array(Vec::new()));
    let uncovered = serde_json::to_value(&w.uncovered).unwrap_or_else(|_| Value::Array(Vec::new()));
    Ok(client
        .execute(
            &stmt,
            &[
                &recording_id,
                &owner,
                &w.seq,
                &w.start_ms,
                &w.end_ms,
                &segments,
                &w.language,
                &w.speech_ms,
                &uncovered,
            ],
        )
        .await?
        == 1)
}

/// The windows saved so far, in order.
pub async fn saved_windows(
    client: &impl GenericClient,
    recording_id: i64,
) -> Result<Vec<SavedWindow>> {
    let stmt = client
        .prepare_cached(
            "SELECT seq, start_ms, end_ms, segments, language, speech_ms, uncovered
             FROM transcription_window WHERE recording_id = $1 ORDER BY seq",
        )
        .await?;
    client
        .query(&stmt, &[&recording_id])
        .await?
        .into_iter()
        .map(|r| {
            let segments: Value = r.get(3);
            let uncovered: Value = r.get(6);
            Ok(SavedWindow {
                seq: r.get(0),
                start_ms: r.get(1),
                end_ms: r.get(2),
                segments: serde_json::from_value(segments).map_err(|e| Error::InvalidInput {
                    field: "transcription_window",
                    reason: e.to_string(),
                })?,
                language: r.get(4),
                speech_ms: r.get(5),
                uncovered: serde_json::from_value(uncovered).map_err(|e| Error::InvalidInput {
                    field: "transcription_window.uncovered",
                    reason: e.to_string(),
                })?,
            })
        })
        .collect()
}

/// Removes the saved windows once the transcription is stored (same transaction).
pub async fn clear_windows(client: &impl GenericClient, recording_id: i64) -> Result<()> {
    let stmt = client
        .prepare_cached("DELETE FROM transcription_window WHERE recording_id = $1")
        .await?;
    client.execute(&stmt, &[&recording_id]).await?;
    Ok(())
}

// Upload intents and listings (the API) ----------------------------------------------------

/// Creates the row of an upload announced through the API, before the object exists: status
/// `awaiting_upload`, an empty ETag, and the user's confirmed metadata. The transcribe stage
/// adopts it when the object's notification arrives (see `ADOPT_INTENT`).
pub async fn create_intent(
    client: &impl GenericClient,
    bucket: &str,
    key: &str,
    content_type: &str,
    size_bytes: i64,
    metadata: &Value,
    created_by: Option<&str>,
) -> Result<RecordingRow> {
    if !metadata.is_object() {
        return Err(Error::InvalidInput {
            field: "metadata",
            reason: "must be a JSON object".into(),
        });
    }
    let sql = format!(
        "INSERT INTO recording (bucket, object_key, content_type, size_bytes, metadata, status,
                                stage, created_by)
         VALUES ($1, $2, $3, $4, $5, 'awaiting_upload', 'waiting for the upload', $6)
         RETURNING {RECORDING_COLUMNS}"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &bucket,
                &key,
                &content_type,
                &size_bytes,
                metadata,
                &created_by,
            ],
        )
        .await?;
    recording_row(&row)
}

const RECORDING_COLUMNS: &str = "recording_id, bucket, object_key, etag, size_bytes, content_type, \
     metadata, status, stage, progress, attempts, last_error, created_at, updated_at, created_by, \
     (SELECT jsonb_build_object('speech_ms', t.speech_ms, 'uncovered', t.uncovered) \
      FROM transcription t WHERE t.recording_id = recording.recording_id AND t.speech_ms IS NOT NULL)";

fn recording_row(r: &tokio_postgres::Row) -> Result<RecordingRow> {
    // The transcript's coverage, when it is stored and measured: one lookup, both columns.
    let coverage: Option<Value> = r.get(15);
    let speech_coverage = match coverage {
        None => None,
        Some(c) => super::transcription::coverage_of(
            c.get("speech_ms").and_then(Value::as_i64),
            c.get("uncovered").cloned(),
        )?,
    };
    Ok(RecordingRow {
        recording_id: r.get(0),
        bucket: r.get(1),
        object_key: r.get(2),
        etag: r.get(3),
        size_bytes: r.get(4),
        content_type: r.get(5),
        metadata: r.get(6),
        status: r.get(7),
        stage: r.get(8),
        progress: r.get(9),
        attempts: r.get(10),
        last_error: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
        created_by: r.get(14),
        speech_coverage,
    })
}

/// The statuses a recording can be in (the `recording.status` check constraint).
pub const STATUSES: [&str; 7] = [
    "awaiting_upload",
    "pending",
    "transcribing",
    "transcribed",
    "analyzing",
    "done",
    "failed",
];

/// Recordings, newest first, optionally of one status and only those `created_by` one
/// caller, `limit` (1-1000) per page after the recording id `after` (keyset pagination).
pub async fn list(
    client: &impl GenericClient,
    status: Option<&str>,
    created_by: Option<&str>,
    after: Option<i64>,
    limit: u16,
) -> Result<super::audit::Page<RecordingRow>> {
    if !(1..=1000).contains(&limit) {
        return Err(Error::InvalidInput {
            field: "limit",
            reason: format!("{limit} is not between 1 and 1000"),
        });
    }
    if let Some(s) = status
        && !STATUSES.contains(&s)
    {
        return Err(Error::InvalidInput {
            field: "status",
            reason: format!("{s:?} is not one of {}", STATUSES.join(", ")),
        });
    }
    let sql = format!(
        "SELECT {RECORDING_COLUMNS} FROM recording
         WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR recording_id < $2)
           AND ($4::text IS NULL OR created_by = $4)
         ORDER BY recording_id DESC LIMIT $3"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let fetch = i64::from(limit) + 1;
    let rows = client
        .query(&stmt, &[&status, &after, &fetch, &created_by])
        .await?;
    let mut items: Vec<RecordingRow> = rows.iter().map(recording_row).collect::<Result<_>>()?;
    let next_after = if items.len() > usize::from(limit) {
        items.truncate(usize::from(limit));
        items.last().map(|r| r.recording_id)
    } else {
        None
    };
    Ok(super::audit::Page { items, next_after })
}

/// What a recording has produced so far: its transcription, the analysis jobs (one per
/// report type and building) with their state, and the stored reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Produced {
    pub transcription_id: Option<i64>,
    pub jobs: Vec<ProducedJob>,
    pub audits: Vec<ProducedAudit>,
}

/// An analysis job of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProducedJob {
    pub analysis_job_id: i64,
    pub report_type: String,
    pub building: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// A stored report of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProducedAudit {
    pub audit_id: i64,
    pub report_type: String,
    pub building: String,
    pub pass: i16,
    pub pass_title: Option<String>,
    pub kind: String,
}

/// The transcription, jobs and reports of a recording, each in a stable order.
pub async fn produced(client: &impl GenericClient, recording_id: i64) -> Result<Produced> {
    let transcription = client
        .prepare_cached("SELECT transcription_id FROM transcription WHERE recording_id = $1")
        .await?;
    let jobs = client
        .prepare_cached(
            "SELECT j.analysis_job_id, rt.code, b.code, j.status, j.attempts, j.last_error
             FROM analysis_job j
             JOIN report_type rt ON rt.report_type_id = j.report_type_id
             JOIN buildings b ON b.building_id = j.building_id
             WHERE j.recording_id = $1 ORDER BY j.analysis_job_id",
        )
        .await?;
    let audits = client
        .prepare_cached(
            "SELECT a.audit_id, rt.code, b.code, a.pass, a.pass_title, a.kind
             FROM audit a
             JOIN transcription t ON t.transcription_id = a.transcription_id
             JOIN report_type rt ON rt.report_type_id = a.report_type_id
             JOIN buildings b ON b.building_id = a.building_id
             WHERE t.recording_id = $1 ORDER BY a.audit_id",
        )
        .await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&recording_id];
    let (transcription, jobs, audits) = tokio::try_join!(
        client.query_opt(&transcription, &params),
        client.query(&jobs, &params),
        client.query(&audits, &params),
    )?;
    Ok(Produced {
        transcription_id: transcription.map(|r| r.get(0)),
        jobs: jobs
            .iter()
            .map(|r| ProducedJob {
                analysis_job_id: r.get(0),
                report_type: r.get(1),
                building: r.get(2),
                status: r.get(3),
                attempts: r.get(4),
                last_error: r.get(5),
            })
            .collect(),
        audits: audits
            .iter()
            .map(|r| ProducedAudit {
                audit_id: r.get(0),
                report_type: r.get(1),
                building: r.get(2),
                pass: r.get(3),
                pass_title: r.get(4),
                kind: r.get(5),
            })
            .collect(),
    })
}
