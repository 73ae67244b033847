//! Operations: the retention policy and routine maintenance, run by `vox maintain` (on a
//! schedule in production, as any cron-like runner would).
//!
//! - Stuck work is swept ([`crate::sweep`]): recordings and jobs in a non-final state with no
//!   live lease are re-queued, or failed once out of attempts; finished recordings settled.
//! - Temporary files of processes that are gone are removed ([`crate::scratch`]).
//! - Audio of recordings finished (done or failed) more than `audio_retention_days` ago is
//!   deleted from S3; the recording row keeps `audio_deleted_at`, and transcripts and reports
//!   stay. Off unless a number of days is given.
//! - Deep questions finished more than `question_retention_days` ago are deleted.
//! - Index health: the manifest, the lag behind PostgreSQL, and snapshot objects no generation
//!   names (left by a writer killed after its upload), which are deleted once older than an
//!   hour (a running writer's fresh upload is never touched).
//! - `ANALYZE` refreshes the planner's statistics.
//!
//! Old index generations are deleted by the writer (`VOX_INDEX_KEEP_GENERATIONS`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{Duration, Utc};
use serde::Serialize;
use tracing::warn;

use crate::Result;
use crate::db::PgPool;
use crate::index::publish::{self, read_manifest};
use crate::index::reader::IndexLag;
use crate::scratch::{self, Swept};
use crate::storage::S3Store;
use crate::sweep::{self, SweepQueues, SweepReport, SweepSettings};

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintainSettings {
    /// Delete the audio of recordings finished more than this many days ago (`None`: keep).
    pub audio_retention_days: Option<u32>,
    /// Delete deep questions finished more than this many days ago.
    pub question_retention_days: u32,
    /// Report what would be deleted without deleting it.
    pub dry_run: bool,
    /// Snapshot objects no generation names are deleted once this old (a writer's upload is
    /// orphaned only until its manifest swap, seconds later).
    pub orphan_min_age: Duration,
    /// How stuck work is told and what it may be given (`dry_run` is this struct's).
    pub sweep: SweepSettings,
    /// Directories whose dead processes' scratch directories are removed.
    pub temp_dirs: Vec<PathBuf>,
}

impl Default for MaintainSettings {
    fn default() -> Self {
        Self {
            audio_retention_days: None,
            question_retention_days: 90,
            dry_run: false,
            orphan_min_age: Duration::hours(1),
            sweep: SweepSettings::default(),
            temp_dirs: vec![std::env::temp_dir()],
        }
    }
}

/// A recording whose audio is (or, in a dry run, would be) deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiredAudio {
    pub recording_id: i64,
    pub bucket: String,
    pub object_key: String,
}

/// The index as maintenance found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexHealth {
    /// The published generation (`None`: nothing published yet).
    pub generation: Option<u64>,
    pub high_water_mark: i64,
    /// Stored chunks above the high-water mark.
    pub chunks_not_indexed: i64,
    /// Snapshot objects no live generation names (older than `orphan_min_age`): deleted, or
    /// in a dry run to be deleted.
    pub orphan_snapshots: Vec<String>,
}

/// What a run did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintainReport {
    pub dry_run: bool,
    /// Stuck recordings and jobs, and what became of them.
    pub stuck: SweepReport,
    /// Scratch directories of processes that are gone (in a dry run: none removed).
    pub temp_files: Swept,
    pub audio_deleted: Vec<ExpiredAudio>,
    pub questions_deleted: u64,
    /// `None` without an index bucket.
    pub index: Option<IndexHealth>,
    pub analyzed: bool,
}

/// One maintenance run.
pub async fn run(
    pool: &PgPool,
    s3: &S3Store,
    index: Option<&publish::Settings>,
    queues: SweepQueues<'_>,
    settings: &MaintainSettings,
) -> Result<MaintainReport> {
    let stuck = sweep::sweep(
        pool,
        queues,
        &SweepSettings {
            dry_run: settings.dry_run,
            ..settings.sweep.clone()
        },
    )
    .await?;
    let mut temp_files = Swept::default();
    if !settings.dry_run {
        for dir in &settings.temp_dirs {
            match scratch::sweep(dir) {
                Ok(swept) => {
                    temp_files.bytes += swept.bytes;
                    temp_files.removed.extend(swept.removed);
                }
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "could not sweep temporary files")
                }
            }
        }
    }
    let conn = pool.get().await?;
    let mut audio_deleted = Vec::new();
    if let Some(days) = settings.audio_retention_days {
        let rows = conn
            .query(
                "SELECT recording_id, bucket, object_key FROM recording
                 WHERE status IN ('done', 'failed') AND audio_deleted_at IS NULL
                   AND coalesce(finished_at, updated_at) < now() - make_interval(days => $1)
                 ORDER BY recording_id",
                &[&(days as i32)],
            )
            .await?;
        for row in rows {
            let expired = ExpiredAudio {
                recording_id: row.get(0),
                bucket: row.get(1),
                object_key: row.get(2),
            };
            if !settings.dry_run {
                s3.delete(&expired.bucket, &expired.object_key).await?;
                conn.execute(
                    "UPDATE recording SET audio_deleted_at = now(), updated_at = now()
                     WHERE recording_id = $1",
                    &[&expired.recording_id],
                )
                .await?;
            }
            audio_deleted.push(expired);
        }
    }

    let days = settings.question_retention_days as i32;
    let questions_deleted = if settings.dry_run {
        let row = conn
            .query_one(
                "SELECT count(*) FROM question_job WHERE status IN ('done', 'failed')
                   AND finished_at < now() - make_interval(days => $1)",
                &[&days],
            )
            .await?;
        row.get::<_, i64>(0).unsigned_abs()
    } else {
        conn.execute(
            "DELETE FROM question_job WHERE status IN ('done', 'failed')
               AND finished_at < now() - make_interval(days => $1)",
            &[&days],
        )
        .await?
    };

    let index = match index {
        Some(s) => Some(index_health(&conn, s3, s, settings).await?),
        None => None,
    };
    conn.batch_execute("ANALYZE").await?;
    Ok(MaintainReport {
        dry_run: settings.dry_run,
        stuck,
        temp_files,
        audio_deleted,
        questions_deleted,
        index,
        analyzed: true,
    })
}

async fn index_health(
    conn: &crate::db::Connection,
    s3: &S3Store,
    s: &publish::Settings,
    settings: &MaintainSettings,
) -> Result<IndexHealth> {
    let manifest = read_manifest(s3, &s.bucket, &s.manifest_key()).await?;
    let (generation, high_water_mark) = manifest.as_ref().map_or((None, 0), |m| {
        (Some(m.manifest.generation), m.manifest.high_water_mark)
    });
    let lag = IndexLag::measure(conn, generation, high_water_mark)
        .await?
        .chunks_not_indexed;
    let mut live: BTreeSet<String> = conn
        .query(
            "SELECT object_key FROM index_generation WHERE deleted_at IS NULL",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if let Some(m) = &manifest {
        live.insert(m.manifest.object_key.clone());
    }
    let cutoff = Utc::now() - settings.orphan_min_age;
    let mut orphan_snapshots = Vec::new();
    for (key, modified) in s3
        .list(&s.bucket, &format!("{}generations/", s.prefix))
        .await?
    {
        if live.contains(&key) || modified.is_none_or(|m| m > cutoff) {
            continue;
        }
        if !settings.dry_run
            && let Err(e) = s3.delete(&s.bucket, &key).await
        {
            warn!(error = %crate::error::chain(&e), key, "could not delete an orphan snapshot");
            continue;
        }
        orphan_snapshots.push(key);
    }
    Ok(IndexHealth {
        generation,
        high_water_mark,
        chunks_not_indexed: lag,
        orphan_snapshots,
    })
}
