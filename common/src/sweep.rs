//! The sweeper: no recording or job stays in a non-final state without a live lease.
//!
//! Leases end on their own (see [`crate::db::lease`]) and the queue redelivers, so work a
//! killed worker left is normally taken over by its message's next delivery. The sweeper
//! covers what that cannot: a message that went to a dead-letter queue while the row was
//! busy, a send lost between a commit and the queue, a crash between two statements. Each
//! stuck row (see [`crate::db::stuck`]) is re-queued, or failed with a reason naming where
//! its last worker stopped once its attempts are used up; recordings whose jobs have all
//! finished are settled. Deep questions stuck the same way go back to the analyze queue, or
//! fail once a day old (they count no attempts). It runs in `vox maintain` and, deployed, on
//! a schedule in the transcribe function.

use std::time::Duration;

use serde::Serialize;
use tracing::{info, warn};

use crate::Result;
use crate::config::{self, ConfigError};
use crate::db::{PgPool, stuck};
use crate::events::{ObjectCreated, notification_body};
use crate::queue::SqsQueue;

/// What the sweeper may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSettings {
    /// `VOX_SWEEP_IDLE_SECONDS`, default 600: how long a row must sit untouched with no live
    /// lease before it counts as stuck (its own message usually comes back sooner).
    pub idle: Duration,
    /// `VOX_MAX_ATTEMPTS`, default 5: claims of a recording before it is failed.
    pub max_attempts: i32,
    /// `VOX_JOB_MAX_ATTEMPTS`, default 5: claims of an analysis job before it is failed.
    pub job_max_attempts: i32,
    /// A deep question (which has no attempt count) still unanswered this long after it
    /// was asked is failed instead of re-queued (default one day).
    pub question_max_age: Duration,
    /// Report, change nothing.
    pub dry_run: bool,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(600),
            max_attempts: 5,
            job_max_attempts: 5,
            question_max_age: Duration::from_secs(24 * 3600),
            dry_run: false,
        }
    }
}

impl SweepSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            idle: Duration::from_secs(config::parsed_or("VOX_SWEEP_IDLE_SECONDS", 600u64)?),
            max_attempts: config::parsed_or("VOX_MAX_ATTEMPTS", 5i32)?,
            job_max_attempts: config::parsed_or("VOX_JOB_MAX_ATTEMPTS", 5i32)?,
            ..Self::default()
        })
    }
}

/// Where stuck work goes back to; a queue that is `None` leaves its rows as they are (and
/// reported), except those out of attempts, which are failed.
#[derive(Debug, Clone, Copy, Default)]
pub struct SweepQueues<'a> {
    pub transcribe: Option<&'a SqsQueue>,
    pub analyze: Option<&'a SqsQueue>,
}

/// One row the sweeper acted on (or, in a dry run, would act on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweptRow {
    /// `recording`, `analysis_job` or `question`.
    pub kind: &'static str,
    pub id: i64,
    pub recording_id: Option<i64>,
    /// What was found, in words.
    pub found: String,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub dry_run: bool,
    /// Put back on their queue.
    pub requeued: Vec<SweptRow>,
    /// Out of attempts: failed with the reason in `found`.
    pub failed: Vec<SweptRow>,
    /// Stuck, but their queue is not configured here: left as they are.
    pub left: Vec<SweptRow>,
    /// Recordings whose jobs had all finished, settled to done or failed.
    pub settled: Vec<i64>,
}

impl SweepReport {
    /// Rows that were stuck, whatever became of them.
    pub fn stuck(&self) -> usize {
        self.requeued.len() + self.failed.len() + self.left.len()
    }
}

/// One sweep over the whole database.
pub async fn sweep(
    pool: &PgPool,
    queues: SweepQueues<'_>,
    settings: &SweepSettings,
) -> Result<SweepReport> {
    let mut report = SweepReport {
        dry_run: settings.dry_run,
        ..SweepReport::default()
    };
    let mut conn = pool.get().await?;

    for row in stuck::recordings(&conn, settings.idle).await? {
        let found = match (&row.stage, row.lease_until) {
            (Some(stage), Some(until)) => format!(
                "{} since its worker stopped at \"{stage}\" (lease ran out {})",
                row.status,
                until.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            _ => format!("{} and never claimed", row.status),
        };
        let swept = SweptRow {
            kind: "recording",
            id: row.recording_id,
            recording_id: Some(row.recording_id),
            found,
        };
        if row.attempts >= settings.max_attempts {
            let reason = format!("gave up after {} attempts: {}", row.attempts, swept.found);
            if settings.dry_run || stuck::fail_recording(&conn, &row, &reason).await? {
                warn!(recording_id = row.recording_id, %reason, "stuck recording failed");
                report.failed.push(SweptRow {
                    found: reason,
                    ..swept
                });
            }
            continue;
        }
        let Some(queue) = queues.transcribe else {
            report.left.push(swept);
            continue;
        };
        if settings.dry_run {
            report.requeued.push(swept);
            continue;
        }
        if !stuck::touch_recording(&conn, &row).await? {
            continue;
        }
        let object = ObjectCreated {
            bucket: row.object.bucket.clone(),
            key: row.object.key.clone(),
            size: row.size_bytes.and_then(|s| u64::try_from(s).ok()),
            etag: row.object.etag.clone(),
            version_id: row.object.version_id.clone(),
            event_name: "ObjectCreated:Put".into(),
            // Not a new upload: a re-queued recording is never taken for a re-upload.
            event_time: None,
        };
        let dedup = format!("sweep-recording-{}-{}", row.recording_id, row.attempts);
        queue
            .send_json(&notification_body(&object), "transcribe", &dedup)
            .await?;
        info!(recording_id = row.recording_id, found = %swept.found, "stuck recording re-queued");
        report.requeued.push(swept);
    }

    for job in stuck::jobs(&conn, settings.idle).await? {
        let id = job.message.analysis_job_id;
        let found = match job.lease_until {
            Some(until) if job.status == "running" => format!(
                "running since its worker stopped (lease ran out {})",
                until.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            _ => format!(
                "queued and not taken for {} s",
                (chrono::Utc::now() - job.updated_at).num_seconds()
            ),
        };
        let swept = SweptRow {
            kind: "analysis_job",
            id,
            recording_id: job.message.recording_id,
            found,
        };
        if job.attempts >= settings.job_max_attempts {
            let reason = format!("gave up after {} attempts: {}", job.attempts, swept.found);
            let failed = if settings.dry_run {
                true
            } else {
                let tx = conn.transaction().await?;
                let failed = stuck::fail_job(&tx, &job, &reason).await?;
                tx.commit().await?;
                failed
            };
            if failed {
                warn!(job_id = id, %reason, "stuck analysis job failed");
                report.failed.push(SweptRow {
                    found: reason,
                    ..swept
                });
            }
            continue;
        }
        let Some(queue) = queues.analyze else {
            report.left.push(swept);
            continue;
        };
        if settings.dry_run {
            report.requeued.push(swept);
            continue;
        }
        if !stuck::touch_job(&conn, &job).await? {
            continue;
        }
        let dedup = format!("sweep-job-{id}-{}", job.attempts);
        queue.send_json(&job.message, "analysis", &dedup).await?;
        info!(job_id = id, found = %swept.found, "stuck analysis job re-queued");
        report.requeued.push(swept);
    }

    // Deep questions travel on the analyze queue too.
    for q in stuck::questions(&conn, settings.idle).await? {
        let id = q.question_job_id;
        let found = match q.lease_until {
            Some(until) if q.status == "running" => format!(
                "running since its worker stopped (lease ran out {})",
                until.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            _ => format!(
                "pending and not taken for {} s",
                (chrono::Utc::now() - q.updated_at).num_seconds()
            ),
        };
        let swept = SweptRow {
            kind: "question",
            id,
            recording_id: None,
            found,
        };
        let age = (chrono::Utc::now() - q.created_at)
            .to_std()
            .unwrap_or_default();
        if age >= settings.question_max_age {
            let reason = format!(
                "gave up after {} h without an answer: {}",
                age.as_secs() / 3600,
                swept.found
            );
            if settings.dry_run || stuck::fail_question(&conn, &q, &reason).await? {
                warn!(question_job_id = id, %reason, "stuck deep question failed");
                report.failed.push(SweptRow {
                    found: reason,
                    ..swept
                });
            }
            continue;
        }
        let Some(queue) = queues.analyze else {
            report.left.push(swept);
            continue;
        };
        if settings.dry_run {
            report.requeued.push(swept);
            continue;
        }
        if !stuck::touch_question(&conn, &q).await? {
            continue;
        }
        let message = serde_json::json!({ "question_job_id": id });
        queue
            .send_json(&message, "question", &format!("sweep-question-{id}"))
            .await?;
        info!(question_job_id = id, found = %swept.found, "stuck deep question re-queued");
        report.requeued.push(swept);
    }

    if !settings.dry_run {
        report.settled = stuck::settle_finished(&mut conn).await?;
    }
    Ok(report)
}
