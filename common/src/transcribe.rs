//! The transcribe stage: a created object becomes, effectively once, a stored transcript with
//! timestamped segments and queued analysis jobs.
//!
//! Per object: claim the recording under a lease, check size and metadata, stream the object
//! to a temporary file (always removed), run the speech engine window by window (each window
//! saved, so a redelivery resumes instead of starting over; the work stops cleanly before the
//! deadline), then store transcript, segments, status and jobs in one transaction and, after
//! the commit, send the jobs. A repeated notification of a finished recording re-sends its
//! unfinished jobs, which repairs a crash between commit and send.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{info, warn};

use crate::config::{self, ConfigError};
use crate::db::analysis_job::{self, JobMessage};
use crate::db::lease::{Heartbeat, Leased};
use crate::db::recording::{self, Claim, ObjectIdentity, SavedWindow};
use crate::db::transcription::{self, Coverage, NewTranscription, Segment, UncoveredSpeech};
use crate::db::{PgPool, Retry};
use crate::domain::{RecordingMetadata, canonical_building, canonical_scenario};
use crate::events::ObjectCreated;
use crate::queue::SqsQueue;
use crate::speakers::{self, DiarizeParams};
use crate::storage::{S3Store, Version};
use crate::{Error, Result};

/// One finished speech window, as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowDone {
    pub start_ms: i64,
    pub end_ms: i64,
    pub segments: Vec<Segment>,
    pub language: Option<String>,
    /// How far into the recording the engine has got, 0..=1, when it knows the length.
    pub progress: Option<f32>,
    /// Speech the engine's voice-activity detector heard in the window (`None`: the engine
    /// does not measure it).
    pub speech_ms: Option<i64>,
    /// Of that speech, what no text covers even after decoding it again on its own.
    pub uncovered: Vec<UncoveredSpeech>,
}

/// What the engine says of a whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub audio_seconds: f64,
    /// True when `on_window` asked it to stop before the end.
    pub stopped: bool,
}

/// Speech to text over a file, window by window. Implementations are CPU-bound and are
/// called on a blocking thread.
pub trait SpeechEngine: Send + Sync + 'static {
    /// Stored with every transcript (e.g. `whisper-base-int8`).
    fn model_id(&self) -> String;

    /// Transcribes `path` from `start_ms` on, calling `on_window` after each speech window in
    /// order; stops when it returns `Break`. Bad audio is [`Error::BadAudio`].
    fn transcribe_file(
        &self,
        path: &Path,
        language: Option<&str>,
        start_ms: i64,
        on_window: &mut dyn FnMut(WindowDone) -> ControlFlow<()>,
    ) -> Result<RunSummary>;
}

/// Settings of the stage, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `VOX_MAX_RECORDING_BYTES`, default 2 GB.
    pub max_bytes: u64,
    /// `VOX_LEASE_SECONDS`, default 120 (2-900): how long a claim holds without a heartbeat
    /// (see [`crate::db::lease`]).
    pub lease: Duration,
    /// `VOX_MAX_ATTEMPTS`, default 5: deliveries of one recording before it is given up.
    pub max_attempts: i32,
    /// `VOX_DEFAULT_LANGUAGE`, default `ru`; `auto` detects.
    pub default_language: Option<String>,
    /// Where recordings are downloaded (`TMPDIR`, default /tmp).
    pub tmp_dir: PathBuf,
    /// How long before the deadline to stop and leave the rest to a redelivery.
    pub safety_margin: Duration,
    /// How speakers are told apart (`VOX_MAX_SPEAKERS`, default 4, 1-8;
    /// `VOX_SPEAKER_THRESHOLD`, the cosine similarity above which two voices are one speaker).
    pub diarize: DiarizeParams,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let language = config::or_default("VOX_DEFAULT_LANGUAGE", "ru")?;
        let default_language = match language.as_str() {
            "auto" => None,
            "ru" | "en" => Some(language),
            other => {
                return Err(ConfigError::Invalid {
                    var: "VOX_DEFAULT_LANGUAGE",
                    reason: format!("{other:?} is not ru, en or auto"),
                });
            }
        };
        Ok(Self {
            max_bytes: config::parsed_or("VOX_MAX_RECORDING_BYTES", 2_000_000_000u64)?,
            lease: crate::db::lease::from_env("VOX_LEASE_SECONDS")?,
            max_attempts: config::parsed_or("VOX_MAX_ATTEMPTS", 5i32)?,
            default_language,
            tmp_dir: std::env::temp_dir(),
            safety_margin: Duration::from_secs(config::parsed_or(
                "VOX_DEADLINE_MARGIN_SECONDS",
                20u64,
            )?),
            diarize: DiarizeParams::from_env()?,
        })
    }
}

/// What became of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Stored, with the analysis jobs sent.
    Transcribed {
        recording_id: i64,
        transcription_id: i64,
        jobs: Vec<JobMessage>,
    },
    /// Already done earlier; its unfinished jobs were sent again.
    AlreadyDone { recording_id: i64, resent: usize },
    /// Failed for good (the reason is stored with the recording); nothing to retry.
    Failed { recording_id: i64, reason: String },
    /// Stopped before the deadline after saving progress; a redelivery resumes.
    Paused { recording_id: i64, windows: usize },
}

/// The stage with its clients, built once per cold start.
#[derive(Clone)]
pub struct Stage {
    pub pool: PgPool,
    pub s3: S3Store,
    pub analyze: SqsQueue,
    pub engine: Arc<dyn SpeechEngine>,
    pub settings: Settings,
    /// Identifies this worker's leases.
    pub worker: String,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("worker", &self.worker)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Stage {
    /// Processes one created object; `deadline` is when the invocation ends.
    /// An `Err` means "try again later" (the message stays on the queue).
    ///
    /// A dropped database connection is tried again here, twice, after 1 s and 4 s, on fresh
    /// connections (while the deadline allows): saved windows are kept, so a retry costs a
    /// claim, not the work, and a database failover does not wait for a redelivery.
    pub async fn process(&self, object: &ObjectCreated, deadline: Instant) -> Result<Outcome> {
        let mut pause = Duration::from_secs(1);
        let mut tries = 1;
        loop {
            match self.process_once(object, deadline).await {
                Err(e)
                    if e.is_transient_db()
                        && tries < 3
                        && Instant::now() + pause + self.settings.safety_margin < deadline =>
                {
                    warn!(key = %object.key, error = %crate::error::chain(&e),
                          "the database connection failed; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                    tries += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn process_once(&self, object: &ObjectCreated, deadline: Instant) -> Result<Outcome> {
        let identity = ObjectIdentity {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            etag: object.etag.clone(),
            version_id: object.version_id.clone(),
        };
        let conn = self.pool.get().await?;
        if let Some(uploaded_at) = object.event_time
            && let Some(reopened) =
                recording::reopen_if_reuploaded(&conn, &identity, uploaded_at).await?
        {
            info!(?reopened, key = %object.key, "a failed recording was uploaded again: processing it again");
        }
        let claim = recording::claim(
            &conn,
            &identity,
            &self.worker,
            self.settings.lease,
            self.settings.max_attempts,
        )
        .await?;
        let (recording_id, stored_metadata) = match claim {
            Claim::Claimed {
                recording_id,
                metadata,
                attempts,
                ..
            } => {
                info!(recording_id, attempts, key = %object.key, "recording claimed");
                crate::chaos::point("claimed");
                (recording_id, metadata)
            }
            Claim::Done { recording_id } => {
                let jobs = analysis_job::unfinished_for_recording(&conn, recording_id).await?;
                self.send_jobs(&jobs).await?;
                return Ok(Outcome::AlreadyDone {
                    recording_id,
                    resent: jobs.len(),
                });
            }
            Claim::Failed {
                recording_id,
                reason,
            } => {
                return Ok(Outcome::Failed {
                    recording_id,
                    reason,
                });
            }
            Claim::Busy {
                recording_id,
                lease_until,
            } => {
                return Err(Error::Busy {
                    recording_id,
                    until: lease_until.to_rfc3339(),
                });
            }
        };
        drop(conn);
        let heartbeat = Heartbeat::start(
            self.pool.clone(),
            Leased::Recording(recording_id),
            self.worker.clone(),
            self.settings.lease,
        );
        let result = self
            .transcribe_claimed(
                recording_id,
                object,
                stored_metadata,
                deadline,
                heartbeat.lost_flag(),
            )
            .await;
        drop(heartbeat);
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) if !e.is_retryable() => {
                let reason = e.to_string();
                warn!(recording_id, error = %reason, "recording failed for good");
                let conn = self.pool.get().await?;
                recording::fail(&conn, recording_id, &self.worker, &reason).await?;
                Ok(Outcome::Failed {
                    recording_id,
                    reason,
                })
            }
            Err(e) => {
                // Let the lease go so that the redelivery can start at once. The failure may
                // have been the database dropping connections, so the release gets fresh
                // ones; when it still fails, the lease expires on its own.
                let released = self
                    .pool
                    .retrying(Retry::LEASE_RELEASE, |conn| async move {
                        recording::release(&*conn, recording_id, &self.worker).await
                    })
                    .await;
                if let Err(release_error) = released {
                    warn!(recording_id, error = %crate::error::chain(&release_error),
                          "could not give the recording's lease up; it expires at its end");
                }
                Err(e)
            }
        }
    }

    async fn transcribe_claimed(
        &self,
        recording_id: i64,
        object: &ObjectCreated,
        stored_metadata: Value,
        deadline: Instant,
        lease_lost: Arc<AtomicBool>,
    ) -> Result<Outcome> {
        // Every read is of the version the notification named: a file overwritten since is
        // failed as superseded (the newer one has its own notification and recording), never
        // transcribed under the older one's row.
        let version = Version {
            etag: &object.etag,
            version_id: &object.version_id,
        };
        let head = self
            .s3
            .head_version(&object.bucket, &object.key, version)
            .await?;
        if head.size == 0 {
            return Err(Error::BadAudio {
                reason: "the file is empty".into(),
            });
        }
        if head.size > self.settings.max_bytes {
            return Err(Error::ObjectTooLarge {
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                limit: self.settings.max_bytes,
            });
        }
        let metadata = if stored_metadata.as_object().is_some_and(|m| !m.is_empty()) {
            let meta: RecordingMetadata =
                serde_json::from_value(stored_metadata).map_err(|e| Error::InvalidInput {
                    field: "metadata",
                    reason: e.to_string(),
                })?;
            meta.validate().map_err(|e| Error::InvalidInput {
                field: e.field,
                reason: e.reason,
            })?;
            meta
        } else {
            RecordingMetadata::from_object_metadata(&head.metadata).map_err(|e| {
                Error::InvalidInput {
                    field: e.field,
                    reason: e.reason,
                }
            })?
        };
        let meta_json = serde_json::to_value(&metadata).unwrap_or(Value::Null);
        {
            let conn = self.pool.get().await?;
            recording::set_object_info(
                &conn,
                recording_id,
                head.size,
                head.content_type.as_deref(),
                &meta_json,
            )
            .await?;
        }

        let file = tempfile::Builder::new()
            .prefix(&format!("vox-{recording_id}-"))
            .tempfile_in(
                crate::scratch::dir_in(&self.settings.tmp_dir).map_err(|e| Error::Io {
                    path: self.settings.tmp_dir.display().to_string(),
                    source: e,
                })?,
            )
            .map_err(|e| Error::Io {
                path: self.settings.tmp_dir.display().to_string(),
                source: e,
            })?;
        self.s3
            .download_version_to(
                &object.bucket,
                &object.key,
                version,
                file.path(),
                self.settings.max_bytes,
            )
            .await?;

        let language = metadata
            .language
            .clone()
            .or_else(|| self.settings.default_language.clone());
        let saved = {
            let conn = self.pool.get().await?;
            recording::saved_windows(&conn, recording_id).await?
        };
        let (summary, windows) = self
            .run_engine(
                recording_id,
                file.path(),
                language.as_deref(),
                saved,
                deadline,
                Arc::clone(&lease_lost),
            )
            .await?;
        // The temporary file goes now, not at the end of the transaction.
        drop(file);
        if summary.stopped && lease_lost.load(Ordering::SeqCst) {
            return Err(Error::LeaseLost { recording_id });
        }
        if summary.stopped {
            let conn = self.pool.get().await?;
            recording::release(&conn, recording_id, &self.worker).await?;
            return Ok(Outcome::Paused {
                recording_id,
                windows: windows.len(),
            });
        }

        let mut segments: Vec<Segment> = windows
            .iter()
            .flat_map(|w| w.segments.iter().cloned())
            .collect();
        // Measured only when every window was (a hosted engine measures none).
        let coverage = windows
            .iter()
            .map(|w| w.speech_ms)
            .sum::<Option<i64>>()
            .map(|speech_ms| {
                let uncovered = windows.iter().flat_map(|w| w.uncovered.clone()).collect();
                Coverage::new(speech_ms, uncovered)
            });
        if let Some(c) = coverage.as_ref().filter(|c| c.uncovered_ms > 0) {
            warn!(
                recording_id,
                speech_ms = c.speech_ms,
                uncovered_ms = c.uncovered_ms,
                regions = c.uncovered.len(),
                coverage = c.coverage,
                "part of the speech could not be transcribed"
            );
        }
        let text = transcription::text_of(&segments);
        let detected = windows.iter().find_map(|w| w.language.clone()).or(language);
        let scenario = metadata
            .scenario
            .as_deref()
            .and_then(canonical_scenario)
            .unwrap_or("design");
        // Speakers from the voices of the whole recording; roles for interviews only (an
        // audit's second voice is not a guest).
        let speakers = speakers::label_segments(
            &mut segments,
            &self.settings.diarize,
            scenario == "interview",
        );
        if !speakers.is_empty() {
            info!(
                recording_id,
                speakers = speakers.len(),
                roles = speakers.iter().any(|s| s.role.is_some()),
                "speakers told apart"
            );
        }
        let building = metadata
            .building
            .as_deref()
            .and_then(canonical_building)
            .unwrap_or("non-building");

        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await?;
        let (transcription_id, _) = transcription::get_or_create(
            &tx,
            &NewTranscription {
                text,
                audio_file_name: object.key.clone(),
                number_audio: metadata.number,
                recording_id: Some(recording_id),
                language: detected,
                audio_seconds: Some(summary.audio_seconds),
                model_id: Some(self.engine.model_id()),
                date: None,
                segments,
                coverage,
                speakers: (!speakers.is_empty()).then_some(speakers),
            },
        )
        .await?;
        recording::finish_transcription(&tx, recording_id, &self.worker).await?;
        recording::clear_windows(&tx, recording_id).await?;
        let jobs = analysis_job::create_for_transcription(
            &tx,
            Some(recording_id),
            transcription_id,
            scenario,
            building,
            &metadata.report_types,
        )
        .await?;
        tx.commit().await?;
        crate::chaos::point("transcript-stored");
        info!(
            recording_id,
            transcription_id,
            jobs = jobs.len(),
            "transcription stored"
        );

        self.send_jobs(&jobs).await?;
        Ok(Outcome::Transcribed {
            recording_id,
            transcription_id,
            jobs,
        })
    }

    /// Runs the engine on a blocking thread; windows flow back through a channel and are
    /// saved as they come. Stops the engine when the deadline nears or the lease is lost
    /// (a save finds it gone, or the heartbeat does).
    async fn run_engine(
        &self,
        recording_id: i64,
        path: &Path,
        language: Option<&str>,
        mut windows: Vec<SavedWindow>,
        deadline: Instant,
        lease_lost: Arc<AtomicBool>,
    ) -> Result<(RunSummary, Vec<SavedWindow>)> {
        // Saved windows (of an earlier delivery) are kept; the engine resumes after them.
        let resume_ms = windows.last().map_or(0, |w| w.end_ms);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<WindowDone>();
        let stop = Arc::new(AtomicBool::new(false));
        let engine = Arc::clone(&self.engine);
        let (path, language) = (path.to_owned(), language.map(str::to_owned));
        let stop_in_engine = Arc::clone(&stop);
        let margin = self.settings.safety_margin;
        let run = tokio::task::spawn_blocking(move || {
            engine.transcribe_file(&path, language.as_deref(), resume_ms, &mut |w| {
                let _ = tx.send(w);
                if stop_in_engine.load(Ordering::Relaxed)
                    || lease_lost.load(Ordering::Relaxed)
                    || Instant::now() + margin >= deadline
                {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
        });
        let conn = self.pool.get().await?;
        while let Some(w) = rx.recv().await {
            let saved = SavedWindow {
                seq: i32::try_from(windows.len()).unwrap_or(i32::MAX),
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                segments: w.segments,
                language: w.language,
                speech_ms: w.speech_ms,
                uncovered: w.uncovered,
            };
            if !recording::save_window(&conn, recording_id, &self.worker, &saved).await? {
                stop.store(true, Ordering::Relaxed);
                return Err(Error::LeaseLost { recording_id });
            }
            crate::chaos::point("window-saved");
            let stage = format!("transcribing: {} s done", saved.end_ms / 1000);
            let progress = w.progress.unwrap_or(0.0);
            recording::report_progress(
                &conn,
                recording_id,
                &self.worker,
                &stage,
                progress,
                self.settings.lease,
            )
            .await?;
            windows.push(saved);
        }
        let summary = run.await.map_err(|e| Error::Engine {
            reason: format!("the speech engine panicked: {e}"),
        })??;
        Ok((summary, windows))
    }

    async fn send_jobs(&self, jobs: &[JobMessage]) -> Result<()> {
        for job in jobs {
            let dedup = job.analysis_job_id.to_string();
            self.analyze.send_json(job, "analysis", &dedup).await?;
        }
        Ok(())
    }
}

pub use crate::config::worker_id;
