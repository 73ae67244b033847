//! Analysis jobs: one per (transcription, report type, building). The natural key makes a
//! job's id deterministic, so creating or sending a job twice is harmless.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::GenericClient;
use crate::{Error, Result};

/// A job as it travels on the analyze queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub analysis_job_id: i64,
    pub recording_id: Option<i64>,
    pub transcription_id: i64,
    pub scenario: String,
    pub report_type: String,
    pub building: String,
}

const WANTED: &str = "
SELECT rt.report_type_id, b.building_id, s.code, rt.code, rt.report_type_desc, b.code
FROM report_type rt
JOIN scenario s ON s.scenario_id = rt.scenario_id
JOIN buildings_report_type brt ON brt.report_type_id = rt.report_type_id
JOIN buildings b ON b.building_id = brt.building_id
WHERE (s.code = $1 OR s.scenario_name = $1)
  AND (b.code = $2 OR b.building_type = $2 OR b.code = 'non-building')
ORDER BY rt.report_type_id, b.building_id";

const INSERT: &str = "
INSERT INTO analysis_job (recording_id, transcription_id, report_type_id, building_id)
SELECT $1, $2, r, b FROM unnest($3::smallint[], $4::smallint[]) AS j (r, b)
ON CONFLICT (transcription_id, report_type_id, building_id) DO NOTHING";

const SELECT: &str = "
SELECT analysis_job_id FROM analysis_job
WHERE transcription_id = $1 AND report_type_id = $2 AND building_id = $3";

/// Creates (or finds) the jobs a transcription needs: the requested report types (ids or
/// stored names), or every report type valid for the scenario and the place's building
/// (building-independent ones included) when none is requested.
pub async fn create_for_transcription(
    client: &impl GenericClient,
    recording_id: Option<i64>,
    transcription_id: i64,
    scenario: &str,
    building: &str,
    requested: &[String],
) -> Result<Vec<JobMessage>> {
    let stmt = client.prepare_cached(WANTED).await?;
    let rows = client.query(&stmt, &[&scenario, &building]).await?;
    if rows.is_empty() {
        return Err(Error::InvalidInput {
            field: "metadata",
            reason: format!("no report type fits scenario {scenario:?} and building {building:?}"),
        });
    }
    let chosen: Vec<&tokio_postgres::Row> = rows
        .iter()
        .filter(|r| {
            requested.is_empty()
                || requested
                    .iter()
                    .any(|q| q == r.get::<_, &str>(3) || q == r.get::<_, &str>(4))
        })
        .collect();
    for q in requested {
        if !chosen
            .iter()
            .any(|r| q == r.get::<_, &str>(3) || q == r.get::<_, &str>(4))
        {
            return Err(Error::InvalidInput {
                field: "report_types",
                reason: format!(
                    "{q:?} is not a report type of scenario {scenario:?} for building {building:?}"
                ),
            });
        }
    }
    let report_type_ids: Vec<i16> = chosen.iter().map(|r| r.get(0)).collect();
    let building_ids: Vec<i16> = chosen.iter().map(|r| r.get(1)).collect();
    let insert = client.prepare_cached(INSERT).await?;
    client
        .execute(
            &insert,
            &[
                &recording_id,
                &transcription_id,
                &report_type_ids,
                &building_ids,
            ],
        )
        .await?;
    let select = client.prepare_cached(SELECT).await?;
    let mut jobs = Vec::with_capacity(chosen.len());
    for r in chosen {
        let (report_type_id, building_id): (i16, i16) = (r.get(0), r.get(1));
        let row = client
            .query_one(&select, &[&transcription_id, &report_type_id, &building_id])
            .await?;
        jobs.push(JobMessage {
            analysis_job_id: row.get(0),
            recording_id,
            transcription_id,
            scenario: r.get(2),
            report_type: r.get(3),
            building: r.get(5),
        });
    }
    Ok(jobs)
}

/// Jobs of a recording not finished yet: what a redelivered notification re-sends when the
/// transcription was stored but the sending was cut short.
pub async fn unfinished_for_recording(
    client: &impl GenericClient,
    recording_id: i64,
) -> Result<Vec<JobMessage>> {
    let stmt = client
        .prepare_cached(
            "SELECT j.analysis_job_id, j.transcription_id, s.code, rt.code, b.code
             FROM analysis_job j
             JOIN report_type rt ON rt.report_type_id = j.report_type_id
             JOIN scenario s ON s.scenario_id = rt.scenario_id
             JOIN buildings b ON b.building_id = j.building_id
             WHERE j.recording_id = $1 AND j.status IN ('queued', 'running')
             ORDER BY j.analysis_job_id",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&recording_id])
        .await?
        .into_iter()
        .map(|r| JobMessage {
            analysis_job_id: r.get(0),
            recording_id: Some(recording_id),
            transcription_id: r.get(1),
            scenario: r.get(2),
            report_type: r.get(3),
            building: r.get(4),
        })
        .collect())
}

/// The outcome of trying to claim a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobClaim {
    /// Ours until the lease ends; `attempts` counts this one.
    Claimed(ClaimedJob),
    /// Finished earlier: a repeated message, nothing to do.
    Done,
    /// Someone else holds a live lease.
    Busy { lease_until: DateTime<Utc> },
    /// Failed for good earlier.
    Failed { reason: String },
}

/// A claimed job with what it needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub analysis_job_id: i64,
    pub recording_id: Option<i64>,
    pub transcription_id: i64,
    pub attempts: i32,
    pub scenario: String,
    pub report_type: String,
    pub building: String,
}

const CLAIM_JOB: &str = "
UPDATE analysis_job j
SET status = 'running', lease_owner = $2, lease_until = now() + $3 * interval '1 millisecond',
    attempts = j.attempts + 1, updated_at = now()
FROM report_type rt, scenario s, buildings b
WHERE j.analysis_job_id = $1
  AND rt.report_type_id = j.report_type_id AND s.scenario_id = rt.scenario_id
  AND b.building_id = j.building_id
  AND (j.status = 'queued' OR (j.status = 'running' AND j.lease_until < now()))
RETURNING j.recording_id, j.transcription_id, j.attempts, s.code, rt.code, b.code";

/// Claims job `job_id` for `owner` for `lease`; a job over `max_attempts` fails for good.
/// Run it outside the job's work transaction so the claim is visible at once.
pub async fn claim(
    client: &impl GenericClient,
    job_id: i64,
    owner: &str,
    lease: Duration,
    max_attempts: i32,
) -> Result<JobClaim> {
    let lease_ms = lease.as_millis() as f64;
    let stmt = client.prepare_cached(CLAIM_JOB).await?;
    if let Some(row) = client
        .query_opt(&stmt, &[&job_id, &owner, &lease_ms])
        .await?
    {
        let job = ClaimedJob {
            analysis_job_id: job_id,
            recording_id: row.get(0),
            transcription_id: row.get(1),
            attempts: row.get(2),
            scenario: row.get(3),
            report_type: row.get(4),
            building: row.get(5),
        };
        if job.attempts > max_attempts {
            let reason = format!("gave up after {max_attempts} attempts");
            fail(client, job_id, owner, &reason).await?;
            return Ok(JobClaim::Failed { reason });
        }
        if let Some(recording_id) = job.recording_id {
            let stmt = client
                .prepare_cached(
                    "UPDATE recording SET status = 'analyzing', updated_at = now()
                     WHERE recording_id = $1 AND status = 'transcribed'",
                )
                .await?;
            client.execute(&stmt, &[&recording_id]).await?;
        }
        return Ok(JobClaim::Claimed(job));
    }
    let stmt = client
        .prepare_cached(
            "SELECT status, lease_until, coalesce(last_error, '') FROM analysis_job
             WHERE analysis_job_id = $1",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&job_id])
        .await?
        .ok_or(Error::UnknownJob { job_id })?;
    let status: String = row.get(0);
    Ok(match status.as_str() {
        "done" => JobClaim::Done,
        "failed" => JobClaim::Failed { reason: row.get(2) },
        _ => JobClaim::Busy {
            lease_until: row
                .get::<_, Option<DateTime<Utc>>>(1)
                .unwrap_or_else(Utc::now),
        },
    })
}

/// Marks the job done (inside the transaction that stores its reports) and, when it was the
/// recording's last unfinished job, the recording too. Fails when the lease was lost.
pub async fn finish(
    client: &impl GenericClient,
    job_id: i64,
    owner: &str,
    engine: &str,
) -> Result<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE analysis_job SET status = 'done', engine = $3, lease_owner = NULL,
                    lease_until = NULL, last_error = NULL, finished_at = now(), updated_at = now()
             WHERE analysis_job_id = $1 AND lease_owner = $2 AND status = 'running'
             RETURNING recording_id",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&job_id, &owner, &engine])
        .await?
        .ok_or(Error::JobLeaseLost { job_id })?;
    if let Some(recording_id) = row.get::<_, Option<i64>>(0) {
        settle_recording(client, recording_id).await?;
    }
    Ok(())
}

/// Marks the job failed for good with a reason a person understands.
pub async fn fail(
    client: &impl GenericClient,
    job_id: i64,
    owner: &str,
    reason: &str,
) -> Result<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE analysis_job SET status = 'failed', last_error = $3, lease_owner = NULL,
                    lease_until = NULL, finished_at = now(), updated_at = now()
             WHERE analysis_job_id = $1 AND (lease_owner = $2 OR lease_owner IS NULL)
               AND status <> 'done'
             RETURNING recording_id",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&job_id, &owner, &reason]).await?;
    if let Some(recording_id) = row.and_then(|r| r.get::<_, Option<i64>>(0)) {
        settle_recording(client, recording_id).await?;
    }
    Ok(())
}

/// Gives the lease up after a retryable error, so a redelivery can start at once.
pub async fn release(
    client: &impl GenericClient,
    job_id: i64,
    owner: &str,
    error: &str,
) -> Result<()> {
    let stmt = client
        .prepare_cached(
            "UPDATE analysis_job SET status = 'queued', last_error = $3, lease_owner = NULL,
                    lease_until = NULL, updated_at = now()
             WHERE analysis_job_id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .await?;
    client.execute(&stmt, &[&job_id, &owner, &error]).await?;
    Ok(())
}

/// A recording whose jobs are all finished becomes `done`, or `failed` with the failed jobs'
/// reasons when any of them failed (the reports of the others stay stored and readable);
/// true when this call settled it.
///
/// Jobs of one recording finish in concurrent transactions. Under READ COMMITTED each one's
/// count saw the others still running, so none settled the recording and it stayed
/// `analyzing` for good. The recording row is locked first, in the caller's transaction:
/// settlers queue behind each other, and the next statement's snapshot, taken once the lock
/// is held, sees every job whose transaction committed before, so the last one settles.
pub(crate) async fn settle_recording(
    client: &impl GenericClient,
    recording_id: i64,
) -> Result<bool> {
    let lock = client
        .prepare_cached("SELECT 1 FROM recording WHERE recording_id = $1 FOR UPDATE")
        .await?;
    client.execute(&lock, &[&recording_id]).await?;
    let stmt = client
        .prepare_cached(
            "UPDATE recording r
             SET status = CASE WHEN s.failed = 0 THEN 'done' ELSE 'failed' END,
                 last_error = CASE WHEN s.failed = 0 THEN NULL
                                   ELSE s.failed || ' of ' || s.total || ' analysis jobs failed: '
                                        || s.errors END,
                 progress = 1, finished_at = now(), updated_at = now()
             FROM (SELECT count(*) AS total,
                          count(*) FILTER (WHERE status = 'failed') AS failed,
                          count(*) FILTER (WHERE status IN ('queued', 'running')) AS open,
                          string_agg(last_error, '; ' ORDER BY analysis_job_id)
                              FILTER (WHERE status = 'failed') AS errors
                   FROM analysis_job WHERE recording_id = $1) s
             WHERE r.recording_id = $1 AND s.open = 0 AND r.status IN ('transcribed', 'analyzing')",
        )
        .await?;
    Ok(client.execute(&stmt, &[&recording_id]).await? == 1)
}
