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
}

/// One recording by id.
pub async fn get(client: &impl GenericClient, recording_id: i64) -> Result<Option<RecordingRow>> {
    let stmt = client
        .prepare_cached(
            "SELECT recording_id, bucket, object_key, etag, size_bytes, content_type, metadata,
                    status, stage, progress, attempts, last_error, created_at, updated_at
             FROM recording WHERE recording_id = $1",
        )
        .await?;
    Ok(client
        .query_opt(&stmt, &[&recording_id])
        .await?
        .map(|r| RecordingRow {
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
        }))
}

/// A finished speech window of a transcription in flight.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SavedWindow {
    pub seq: i32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub segments: Vec<super::transcription::Segment>,
    pub language: Option<String>,
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
            "INSERT INTO transcription_window (recording_id, seq, start_ms, end_ms, segments, language)
             SELECT $1, $3, $4, $5, $6, $7 FROM recording
             WHERE recording_id = $1 AND lease_owner = $2 AND status = 'transcribing'
             ON CONFLICT (recording_id, seq) DO UPDATE
             SET start_ms = EXCLUDED.start_ms, end_ms = EXCLUDED.end_ms,
                 segments = EXCLUDED.segments, language = EXCLUDED.language",
        )
        .await?;
    let segments = serde_json::to_value(&w.segments).unwrap_or_else(|_| Value::Array(Vec::new()));
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
            "SELECT seq, start_ms, end_ms, segments, language FROM transcription_window
             WHERE recording_id = $1 ORDER BY seq",
        )
        .await?;
    client
        .query(&stmt, &[&recording_id])
        .await?
        .into_iter()
        .map(|r| {
            let segments: Value = r.get(3);
            Ok(SavedWindow {
                seq: r.get(0),
                start_ms: r.get(1),
                end_ms: r.get(2),
                segments: serde_json::from_value(segments).map_err(|e| Error::InvalidInput {
                    field: "transcription_window",
                    reason: e.to_string(),
                })?,
                language: r.get(4),
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
