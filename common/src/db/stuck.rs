//! Work left in a non-final state with no live lease: what the sweeper
//! ([`crate::sweep`], run by `vox maintain` and on a schedule) re-queues or fails.
//!
//! A row is stuck when nothing is working on it and nothing untouched for `idle` says
//! anything will: a recording `pending`, or `transcribing` with its lease run out; an
//! analysis job `queued`, or `running` with its lease run out. A claim, a heartbeat, a
//! release or a sweep touches the row, so a row the sweeper re-queued is not re-queued
//! again until another `idle` has passed without a worker taking it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::GenericClient;
use super::analysis_job::JobMessage;
use super::recording::ObjectIdentity;
use crate::Result;

/// A recording nothing is working on.
#[derive(Debug, Clone, PartialEq)]
pub struct StuckRecording {
    pub recording_id: i64,
    pub object: ObjectIdentity,
    pub size_bytes: Option<i64>,
    pub status: String,
    /// Where the last worker was (`None` when none ever claimed it).
    pub stage: Option<String>,
    pub attempts: i32,
    pub lease_until: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// An analysis job nothing is working on.
#[derive(Debug, Clone, PartialEq)]
pub struct StuckJob {
    pub message: JobMessage,
    pub status: String,
    pub attempts: i32,
    pub lease_until: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

fn idle_ms(idle: Duration) -> f64 {
    idle.as_millis() as f64
}

/// Recordings `pending`, or `transcribing` past their lease, untouched for `idle`.
pub async fn recordings(
    client: &impl GenericClient,
    idle: Duration,
) -> Result<Vec<StuckRecording>> {
    let stmt = client
        .prepare_cached(
            "SELECT recording_id, bucket, object_key, etag, version_id, size_bytes, status, stage,
                    attempts, lease_until, updated_at
             FROM recording
             WHERE (status = 'pending' OR (status = 'transcribing' AND lease_until < now()))
               AND updated_at < now() - $1 * interval '1 millisecond'
             ORDER BY recording_id",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&idle_ms(idle)])
        .await?
        .iter()
        .map(|r| StuckRecording {
            recording_id: r.get(0),
            object: ObjectIdentity {
                bucket: r.get(1),
                key: r.get(2),
                etag: r.get(3),
                version_id: r.get(4),
            },
            size_bytes: r.get(5),
            status: r.get(6),
            stage: r.get(7),
            attempts: r.get(8),
            lease_until: r.get(9),
            updated_at: r.get(10),
        })
        .collect())
}

/// Marks a stuck recording re-queued, unless a worker touched it since it was read: true
/// when this sweep owns the re-queue.
pub async fn touch_recording(client: &impl GenericClient, stuck: &StuckRecording) -> Result<bool> {
    let stmt = client
        .prepare_cached(
            "UPDATE recording SET updated_at = now()
             WHERE recording_id = $1 AND updated_at = $2
               AND (status = 'pending' OR (status = 'transcribing' AND lease_until < now()))",
        )
        .await?;
    Ok(client
        .execute(&stmt, &[&stuck.recording_id, &stuck.updated_at])
        .await?
        == 1)
}

/// Fails a recording that is still stuck, with `reason`: true when it was.
pub async fn fail_recording(
    client: &impl GenericClient,
    stuck: &StuckRecording,
    reason: &str,
) -> Result<bool> {
    let stmt = client
        .prepare_cached(
            "UPDATE recording SET status = 'failed', stage = NULL, last_error = $3,
                    lease_owner = NULL, lease_until = NULL, finished_at = now(), updated_at = now()
             WHERE recording_id = $1 AND updated_at = $2
               AND (status = 'pending' OR (status = 'transcribing' AND lease_until < now()))",
        )
        .await?;
    Ok(client
        .execute(&stmt, &[&stuck.recording_id, &stuck.updated_at, &reason])
        .await?
        == 1)
}

/// Jobs `queued`, or `running` past their lease, untouched for `idle`.
pub async fn jobs(client: &impl GenericClient, idle: Duration) -> Result<Vec<StuckJob>> {
    let stmt = client
        .prepare_cached(
            "SELECT j.analysis_job_id, j.recording_id, j.transcription_id, s.code, rt.code, b.code,
                    j.status, j.attempts, j.lease_until, j.updated_at
             FROM analysis_job j
             JOIN report_type rt ON rt.report_type_id = j.report_type_id
             JOIN scenario s ON s.scenario_id = rt.scenario_id
             JOIN buildings b ON b.building_id = j.building_id
             WHERE (j.status = 'queued' OR (j.status = 'running' AND j.lease_until < now()))
               AND j.updated_at < now() - $1 * interval '1 millisecond'
             ORDER BY j.analysis_job_id",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&idle_ms(idle)])
        .await?
        .iter()
        .map(|r| StuckJob {
            message: JobMessage {
                analysis_job_id: r.get(0),
                recording_id: r.get(1),
                transcription_id: r.get(2),
                scenario: r.get(3),
                report_type: r.get(4),
                building: r.get(5),
            },
            status: r.get(6),
            attempts: r.get(7),
            lease_until: r.get(8),
            updated_at: r.get(9),
        })
        .collect())
}

/// Marks a stuck job re-queued, unless a worker touched it since it was read.
pub async fn touch_job(client: &impl GenericClient, stuck: &StuckJob) -> Result<bool> {
    let stmt = client
        .prepare_cached(
            "UPDATE analysis_job SET updated_at = now()
             WHERE analysis_job_id = $1 AND updated_at = $2
               AND (status = 'queued' OR (status = 'running' AND lease_until < now()))",
        )
        .await?;
    Ok(client
        .execute(&stmt, &[&stuck.message.analysis_job_id, &stuck.updated_at])
        .await?
        == 1)
}

/// Fails a job that is still stuck, with `reason`, and settles its recording: true when it
/// was still stuck. Run it in a transaction (the recording's row is locked to settle it).
pub async fn fail_job(client: &impl GenericClient, stuck: &StuckJob, reason: &str) -> Result<bool> {
    let stmt = client
        .prepare_cached(
            "UPDATE analysis_job SET status = 'failed', last_error = $3, lease_owner = NULL,
                    lease_until = NULL, finished_at = now(), updated_at = now()
             WHERE analysis_job_id = $1 AND updated_at = $2
               AND (status = 'queued' OR (status = 'running' AND lease_until < now()))
             RETURNING recording_id",
        )
        .await?;
    let Some(row) = client
        .query_opt(
            &stmt,
            &[&stuck.message.analysis_job_id, &stuck.updated_at, &reason],
        )
        .await?
    else {
        return Ok(false);
    };
    if let Some(recording_id) = row.get::<_, Option<i64>>(0) {
        super::analysis_job::settle_recording(client, recording_id).await?;
    }
    Ok(true)
}

/// Recordings still `transcribed` or `analyzing` whose jobs have all finished (none should
/// be: the last job to finish settles its recording), settled now: their ids.
pub async fn settle_finished(client: &mut super::Connection) -> Result<Vec<i64>> {
    let ids: Vec<i64> = client
        .query(
            "SELECT r.recording_id FROM recording r
             WHERE r.status IN ('transcribed', 'analyzing')
               AND EXISTS (SELECT 1 FROM analysis_job j WHERE j.recording_id = r.recording_id)
               AND NOT EXISTS (SELECT 1 FROM analysis_job j
                               WHERE j.recording_id = r.recording_id
                                 AND j.status IN ('queued', 'running'))
             ORDER BY r.recording_id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut settled = Vec::with_capacity(ids.len());
    for id in ids {
        let tx = client.transaction().await?;
        if super::analysis_job::settle_recording(&tx, id).await? {
            settled.push(id);
        }
        tx.commit().await?;
    }
    Ok(settled)
}

/// A deep question nothing is working on.
#[derive(Debug, Clone, PartialEq)]
pub struct StuckQuestion {
    pub question_job_id: i64,
    pub status: String,
    pub lease_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Deep questions `pending`, or `running` past their lease, untouched for `idle`.
pub async fn questions(client: &impl GenericClient, idle: Duration) -> Result<Vec<StuckQuestion>> {
    let stmt = client
        .prepare_cached(
            "SELECT question_job_id, status, lease_until, created_at, updated_at
             FROM question_job
             WHERE (status = 'pending' OR (status = 'running' AND lease_until < now()))
               AND updated_at < now() - $1 * interval '1 millisecond'
             ORDER BY question_job_id",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&idle_ms(idle)])
        .await?
        .iter()
        .map(|r| StuckQuestion {
            question_job_id: r.get(0),
            status: r.get(1),
            lease_until: r.get(2),
            created_at: r.get(3),
            updated_at: r.get(4),
        })
        .collect())
}

/// Marks a stuck question re-queued, unless a worker touched it since it was read.
pub async fn touch_question(client: &impl GenericClient, stuck: &StuckQuestion) -> Result<bool> {
    let stmt = client
        .prepare_cached(
            "UPDATE question_job SET updated_at = now()
             WHERE question_job_id = $1 AND updated_at = $2
               AND (status = 'pending' OR (status = 'running' AND lease_until < now()))",
        )
        .await?;
    Ok(client
        .execute(&stmt, &[&stuck.question_job_id, &stuck.updated_at])
        .await?
        == 1)
}

/// Fails a question that is still stuck, with `reason`: true when it was.
pub async fn fail_question(
    client: &impl GenericClient,
    stuck: &StuckQuestion,
    reason: &str,
) -> Result<bool> {
    let stmt = client
        .prepare_cached(
            "UPDATE question_job SET status = 'failed', last_error = $3, lease_owner = NULL,
                    lease_until = NULL, finished_at = now(), updated_at = now()
             WHERE question_job_id = $1 AND updated_at = $2
               AND (status = 'pending' OR (status = 'running' AND lease_until < now()))",
        )
        .await?;
    Ok(client
        .execute(&stmt, &[&stuck.question_job_id, &stuck.updated_at, &reason])
        .await?
        == 1)
}
