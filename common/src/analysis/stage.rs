//! The analyze stage: a job message becomes, effectively once, the stored reports of one
//! (recording, report type, building).
//!
//! Per job: claim it under a lease (a finished job is a no-op, a live lease elsewhere is
//! retried later, an expired one taken over); load the transcript and the recording's
//! metadata; run the engine; verify every quotation against the transcript; split the
//! narratives into chunks and embed them, and the transcript into windows when its windows
//! are not stored yet (the first job of a recording makes them; see [`super::windows`]); then
//! **one transaction**: references and audits through the foundation's persist function,
//! `user_road`, the chunks and windows, the job done (and the recording once its last job
//! is). After the commit, a message to the index queue. A
//! non-retryable error fails the job with its reason; any other leaves the message for a
//! redelivery.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use super::chunk::{self, ChunkParams};
use super::quotes::Verifier;
use super::windows::{self, WindowParams};
use super::{JobInput, PassKind, ReportOutput};
use crate::config::{self, ConfigError};
use crate::db::analysis_job::{self, ClaimedJob, JobClaim, JobMessage};
use crate::db::audit::{
    self, AuditSubmission, PersistStep, ReportBody, ReportInput, TranscriptionSource,
};
use crate::db::chunk::{self as chunk_db, NewChunk, NewTranscriptChunk};
use crate::db::lease::{Heartbeat, Leased};
use crate::db::transcription::{self, Transcription};
use crate::db::{PgPool, Retry};
use crate::domain::{AuditMeta, RecordingMetadata, canonical_building};
use crate::embed::Embedder;
use crate::queue::SqsQueue;
use crate::{Error, Result};

/// Turns a job's input into its passes: the offline engine or a hosted model.
pub trait ReportEngine: Send + Sync {
    /// Stored with every report (e.g. `offline:use-multilingual-v3-int8@1b63e01b4d2f`).
    fn engine_id(&self) -> String;

    fn analyze<'a>(&'a self, job: &'a JobInput) -> BoxFuture<'a, Result<ReportOutput>>;
}

/// Settings of the stage, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `VOX_JOB_LEASE_SECONDS`, default 120 (2-900): how long a claim holds without a
    /// heartbeat (see [`crate::db::lease`]).
    pub lease: Duration,
    /// `VOX_JOB_MAX_ATTEMPTS`, default 5.
    pub max_attempts: i32,
    pub chunks: ChunkParams,
    pub windows: WindowParams,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            lease: crate::db::lease::from_env("VOX_JOB_LEASE_SECONDS")?,
            max_attempts: config::parsed_or("VOX_JOB_MAX_ATTEMPTS", 5i32)?,
            chunks: ChunkParams {
                size: config::parsed_or("VOX_CHUNK_CHARS", 800usize)?,
                overlap: config::parsed_or("VOX_CHUNK_OVERLAP", 100usize)?,
            },
            windows: WindowParams::default(),
        })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            lease: crate::db::lease::DEFAULT_LEASE,
            max_attempts: 5,
            chunks: ChunkParams::default(),
            windows: WindowParams::default(),
        }
    }
}

/// The message the index queue receives after a job's reports are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRequest {
    pub analysis_job_id: i64,
    pub audit_ids: Vec<i64>,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Analyzed {
        analysis_job_id: i64,
        audit_ids: Vec<i64>,
        chunks: usize,
        /// Windows of the transcript stored with this job (0 when an earlier job stored them).
        transcript_windows: usize,
        quotes: usize,
        unverified_quotes: usize,
    },
    /// Finished earlier; the index was asked again to pick it up.
    AlreadyDone { analysis_job_id: i64 },
    /// Failed for good (the reason is stored with the job).
    Failed {
        analysis_job_id: i64,
        reason: String,
    },
}

/// Where a fault can be injected (tests): after each persist step, then after the chunks and
/// after the job is marked done, all before the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageStep {
    Persist(PersistStep),
    Chunks,
    JobDone,
}

type StageCheckpoint<'a> = &'a (dyn Fn(StageStep) -> Result<()> + Sync);

/// The stage with its clients, built once per cold start.
#[derive(Clone)]
pub struct Stage {
    pub pool: PgPool,
    pub engine: Arc<dyn ReportEngine>,
    pub embedder: Arc<dyn Embedder>,
    /// Where to announce stored reports; `None` when nothing indexes (tests, `vox analyze`).
    pub index: Option<SqsQueue>,
    pub settings: Settings,
    /// Identifies this worker's leases.
    pub worker: String,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("engine", &self.engine.engine_id())
            .field("worker", &self.worker)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Stage {
    /// Processes one job message. An `Err` means "try again later" (the message stays).
    pub async fn process(&self, message: &JobMessage) -> Result<Outcome> {
        self.process_with(message, &|_| Ok(())).await
    }

    /// [`Stage::process`] with a checkpoint called before the commit (fault injection).
    ///
    /// A dropped database connection is tried again here, twice, after 1 s and 4 s, on fresh
    /// connections: a database failover does not wait for the queue to redeliver.
    pub async fn process_with(
        &self,
        message: &JobMessage,
        checkpoint: StageCheckpoint<'_>,
    ) -> Result<Outcome> {
        let mut pause = Duration::from_secs(1);
        let mut tries = 1;
        loop {
            match self.process_once(message, checkpoint).await {
                Err(e) if e.is_transient_db() && tries < 3 => {
                    warn!(job_id = message.analysis_job_id, error = %crate::error::chain(&e),
                          "the database connection failed; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                    tries += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn process_once(
        &self,
        message: &JobMessage,
        checkpoint: StageCheckpoint<'_>,
    ) -> Result<Outcome> {
        let job_id = message.analysis_job_id;
        let claim = {
            let conn = self.pool.get().await?;
            analysis_job::claim(
                &conn,
                job_id,
                &self.worker,
                self.settings.lease,
                self.settings.max_attempts,
            )
            .await?
        };
        let job = match claim {
            JobClaim::Claimed(job) => job,
            JobClaim::Done => {
                let audit_ids = self.audits_of_job(job_id).await?;
                self.announce(job_id, audit_ids).await?;
                return Ok(Outcome::AlreadyDone {
                    analysis_job_id: job_id,
                });
            }
            JobClaim::Failed { reason } => {
                return Ok(Outcome::Failed {
                    analysis_job_id: job_id,
                    reason,
                });
            }
            JobClaim::Busy { lease_until } => {
                return Err(Error::JobBusy {
                    job_id,
                    until: lease_until.to_rfc3339(),
                });
            }
        };
        info!(job_id, attempts = job.attempts, report_type = %job.report_type,
              building = %job.building, "analysis job claimed");
        let heartbeat = Heartbeat::start(
            self.pool.clone(),
            Leased::Job(job_id),
            self.worker.clone(),
            self.settings.lease,
        );
        let result = self.run(&job, checkpoint).await;
        drop(heartbeat);
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) if !e.is_retryable() => {
                let reason = crate::error::chain(&e);
                warn!(job_id, error = %reason, "analysis job failed for good");
                let conn = self.pool.get().await?;
                analysis_job::fail(&conn, job_id, &self.worker, &reason).await?;
                Ok(Outcome::Failed {
                    analysis_job_id: job_id,
                    reason,
                })
            }
            Err(e) => {
                // Let the lease go so that the redelivery can start at once. The failure may
                // have been the database dropping connections, so the release gets fresh
                // ones; when it still fails, the lease expires on its own.
                let error = crate::error::chain(&e);
                let (worker, error) = (self.worker.as_str(), error.as_str());
                let released = self
                    .pool
                    .retrying(Retry::LEASE_RELEASE, |conn| async move {
                        analysis_job::release(&*conn, job_id, worker, error).await
                    })
                    .await;
                if let Err(release_error) = released {
                    warn!(job_id, error = %crate::error::chain(&release_error),
                          "could not give the job's lease up; it expires at its end");
                }
                Err(e)
            }
        }
    }

    async fn run(&self, job: &ClaimedJob, checkpoint: StageCheckpoint<'_>) -> Result<Outcome> {
        let (transcript, metadata) = self.load(job).await?;
        let input = job_input(job, &transcript, &metadata);
        let output = self.engine.analyze(&input).await?;
        let verifier = Verifier::new(&transcript.text);

        let mut reports = Vec::with_capacity(output.passes.len());
        let mut narratives = Vec::new();
        let (mut quotes, mut unverified) = (0, 0);
        for pass in &output.passes {
            let body = match pass.kind {
                PassKind::Narrative => {
                    narratives.push((pass.pass, pass.text.clone()));
                    ReportBody::Narrative(pass.text.clone())
                }
                PassKind::Metrics => {
                    ReportBody::Metrics(pass.metrics.clone().ok_or_else(|| Error::Analysis {
                        reason: format!("metrics pass {} came without metrics", pass.pass),
                    })?)
                }
            };
            let checked = match pass.kind {
                PassKind::Narrative => verifier.check(&pass.text),
                PassKind::Metrics => Vec::new(),
            };
            quotes += checked.len();
            unverified += checked.iter().filter(|q| !q.verified).count();
            let prompt_id = self.prompt_id(&pass.prompt_name).await?;
            reports.push(ReportInput {
                pass: pass.pass,
                title: Some(pass.title.clone()),
                body,
                prompt_id,
                engine: Some(output.engine.clone()),
                quotes: checked,
            });
        }
        if reports.is_empty() {
            return Err(Error::Analysis {
                reason: format!(
                    "the engine produced no report for {} ({})",
                    job.report_type, job.building
                ),
            });
        }

        // Chunks and their embeddings are computed before the transaction opens, so it stays
        // short.
        let mut pieces: Vec<(i16, Vec<chunk::TextChunk>)> = narratives
            .iter()
            .map(|(pass, text)| (*pass, chunk::split(text, self.settings.chunks)))
            .collect();
        pieces.retain(|(_, c)| !c.is_empty());
        // The transcript's windows, unless a job before this one stored them (two jobs of a
        // recording at once both make them; the second write changes nothing).
        let model = self.embedder.model_id().to_owned();
        let stored_windows = {
            let conn = self.pool.get().await?;
            chunk_db::transcript_chunks(&conn, job.transcription_id, &model).await?
        };
        let windows = if stored_windows == 0 {
            windows::split(&transcript.segments, self.settings.windows)
        } else {
            Vec::new()
        };
        let texts: Vec<String> = pieces
            .iter()
            .flat_map(|(_, cs)| cs.iter().map(|c| c.text.clone()))
            .chain(windows.iter().map(|w| w.text.clone()))
            .collect();
        let embedder = Arc::clone(&self.embedder);
        let vectors = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed(&refs)
        })
        .await
        .map_err(|e| Error::Analysis {
            reason: format!("the embedder panicked: {e}"),
        })??;
        let mut vectors = vectors.into_iter();
        let mut next_vector = || {
            vectors.next().ok_or_else(|| Error::Analysis {
                reason: "the embedder returned fewer vectors than texts".into(),
            })
        };
        let mut chunks_by_pass: Vec<(i16, Vec<NewChunk>)> = Vec::with_capacity(pieces.len());
        for (pass, cs) in pieces {
            let mut stored = Vec::with_capacity(cs.len());
            for c in cs {
                stored.push(NewChunk {
                    seq: c.seq,
                    start_char: i32::try_from(c.start_char).unwrap_or(i32::MAX),
                    end_char: i32::try_from(c.end_char).unwrap_or(i32::MAX),
                    text: c.text,
                    embedding: next_vector()?,
                });
            }
            chunks_by_pass.push((pass, stored));
        }
        let mut transcript_chunks = Vec::with_capacity(windows.len());
        for w in windows {
            transcript_chunks.push(NewTranscriptChunk {
                seq: w.seq,
                start_char: i32::try_from(w.start_char).unwrap_or(i32::MAX),
                end_char: i32::try_from(w.end_char).unwrap_or(i32::MAX),
                first_segment: i32::try_from(w.first_segment).unwrap_or(i32::MAX),
                last_segment: i32::try_from(w.last_segment).unwrap_or(i32::MAX),
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                speaker: w.speaker,
                text: w.text,
                embedding: next_vector()?,
            });
        }
        let chunk_count = chunks_by_pass.iter().map(|(_, c)| c.len()).sum();

        let submission = AuditSubmission {
            scenario: job.scenario.clone(),
            report_type: job.report_type.clone(),
            building: job.building.clone(),
            meta: AuditMeta {
                date: metadata
                    .date
                    .unwrap_or_else(|| transcript.date.with_timezone(&Utc).date_naive()),
                employee: metadata.employee.clone(),
                place: metadata.place.clone(),
                zones: metadata.zones.clone(),
                city: metadata.city.clone(),
                client: metadata.client.clone(),
            },
            place_building: metadata
                .building
                .as_deref()
                .and_then(canonical_building)
                .map(str::to_owned),
            transcription: TranscriptionSource::Stored(job.transcription_id),
            reports,
            analysis_job_id: Some(job.analysis_job_id),
        };

        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        let persisted = audit::persist_in(&tx, &submission, &|step| {
            checkpoint(StageStep::Persist(step))
        })
        .await?;
        for (pass, chunks) in &chunks_by_pass {
            let audit_id = submission
                .reports
                .iter()
                .position(|r| r.pass == *pass)
                .and_then(|i| persisted.audit_ids.get(i))
                .copied()
                .ok_or_else(|| Error::Analysis {
                    reason: format!("no stored audit for pass {pass}"),
                })?;
            chunk_db::replace_for_audit(&tx, audit_id, chunks, &model).await?;
        }
        if !transcript_chunks.is_empty() {
            chunk_db::replace_for_transcription(
                &tx,
                job.transcription_id,
                &transcript_chunks,
                &model,
            )
            .await?;
        }
        checkpoint(StageStep::Chunks)?;
        analysis_job::finish(&tx, job.analysis_job_id, &self.worker, &output.engine).await?;
        checkpoint(StageStep::JobDone)?;
        tx.commit().await?;
        // Reports and their chunks commit together, so both crash points follow the commit:
        // the first before the index hears of the chunks, the second after (the job's message
        // not yet deleted).
        crate::chaos::point("audits-stored");
        info!(
            job_id = job.analysis_job_id,
            audits = persisted.audit_ids.len(),
            chunks = chunk_count,
            transcript_windows = transcript_chunks.len(),
            quotes,
            unverified_quotes = unverified,
            "reports stored"
        );
        self.announce(job.analysis_job_id, persisted.audit_ids.clone())
            .await?;
        crate::chaos::point("chunks-stored");
        Ok(Outcome::Analyzed {
            analysis_job_id: job.analysis_job_id,
            audit_ids: persisted.audit_ids,
            chunks: chunk_count,
            transcript_windows: transcript_chunks.len(),
            quotes,
            unverified_quotes: unverified,
        })
    }

    async fn load(&self, job: &ClaimedJob) -> Result<(Transcription, RecordingMetadata)> {
        let conn = self.pool.get().await?;
        let transcript = transcription::get(&conn, job.transcription_id)
            .await?
            .ok_or(Error::UnknownTranscription {
                id: job.transcription_id,
            })?;
        let metadata = match job.recording_id {
            None => RecordingMetadata::default(),
            Some(recording_id) => {
                let row = conn
                    .query_opt(
                        "SELECT metadata FROM recording WHERE recording_id = $1",
                        &[&recording_id],
                    )
                    .await?;
                match row.map(|r| r.get::<_, Value>(0)) {
                    Some(value) if value.as_object().is_some_and(|m| !m.is_empty()) => {
                        serde_json::from_value(value).map_err(|e| Error::InvalidInput {
                            field: "metadata",
                            reason: format!("recording {recording_id}: {e}"),
                        })?
                    }
                    _ => RecordingMetadata::default(),
                }
            }
        };
        Ok((transcript, metadata))
    }

    async fn prompt_id(&self, prompt_name: &str) -> Result<Option<i64>> {
        let Some(spec) = super::catalog::Catalog::embedded()?.get(prompt_name) else {
            return Ok(None);
        };
        let conn = self.pool.get().await?;
        super::catalog::stored_id(&conn, &spec.name, &spec.version).await
    }

    async fn audits_of_job(&self, job_id: i64) -> Result<Vec<i64>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT audit_id FROM audit WHERE analysis_job_id = $1 ORDER BY pass",
                &[&job_id],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn announce(&self, job_id: i64, audit_ids: Vec<i64>) -> Result<()> {
        let Some(queue) = &self.index else {
            return Ok(());
        };
        let request = IndexRequest {
            analysis_job_id: job_id,
            audit_ids,
        };
        // The index queue may be FIFO with one message group (one writer at a time).
        let dedup = format!("job-{job_id}-{}", Utc::now().timestamp_millis());
        queue.send_json(&request, "index", &dedup).await
    }
}

/// The engine's input from a claimed job, its transcript and the recording's metadata.
pub fn job_input(
    job: &ClaimedJob,
    transcript: &Transcription,
    metadata: &RecordingMetadata,
) -> JobInput {
    JobInput {
        scenario: job.scenario.clone(),
        report_type: job.report_type.clone(),
        building: job.building.clone(),
        place_building: metadata
            .building
            .as_deref()
            .and_then(canonical_building)
            .map(str::to_owned),
        client: metadata.client.clone(),
        employee: metadata.employee.clone(),
        place: metadata.place.clone(),
        city: metadata.city.clone(),
        zones: metadata.zones.clone(),
        date: metadata.date,
        segments: transcript.segments.clone(),
    }
}
