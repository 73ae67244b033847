//! The transcribe function: decodes S3 notifications (an SQS batch, or a direct S3 event) and
//! hands each created object to [`common::transcribe::Stage`].
//!
//! SQS batches report partial failures: one object that must be retried never fails its
//! neighbours, and a bad file is recorded as failed (with its reason) and not retried.

use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use common::error::chain;
use common::events::{Notification, parse_notification};
use common::queue::SqsQueue;
use common::sweep::{SweepQueues, SweepSettings, sweep};
use common::transcribe::{Outcome, Stage};
use serde::Deserialize;
use serde_json::Value;
use tracing::{Instrument, error, info, info_span, warn};

/// What the function was invoked with.
#[derive(Debug)]
pub enum Invocation {
    /// From the SQS event source mapping.
    Sqs(SqsEvent),
    /// Directly from S3 (or `cargo lambda invoke` with an S3 event).
    S3(String),
    /// An EventBridge schedule (`"source": "aws.events"`): sweep stuck work.
    Sweep,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "Records", default)]
    records: Vec<ProbeRecord>,
    #[serde(default)]
    source: String,
}

#[derive(Deserialize)]
struct ProbeRecord {
    #[serde(rename = "eventSource", default)]
    event_source: String,
}

impl Invocation {
    /// Tells SQS batches from direct S3 events by their records' `eventSource`, and a
    /// schedule by its `source`.
    pub fn from_json(payload: Value) -> Result<Self, common::Error> {
        let probe: Probe =
            serde_json::from_value(payload.clone()).map_err(|e| common::Error::BadEvent {
                reason: e.to_string(),
            })?;
        if probe.source == "aws.events" {
            return Ok(Invocation::Sweep);
        }
        match probe.records.first().map(|r| r.event_source.as_str()) {
            Some("aws:sqs") => serde_json::from_value(payload)
                .map(Invocation::Sqs)
                .map_err(|e| common::Error::BadEvent {
                    reason: format!("malformed SQS event: {e}"),
                }),
            // A direct S3 event, or a bare S3 test event (no records).
            _ => Ok(Invocation::S3(payload.to_string())),
        }
    }
}

/// What a scheduled invocation needs beside the stage, built once per cold start.
#[derive(Debug, Clone, Default)]
pub struct Sweeper {
    /// The transcribe queue itself (`VOX_TRANSCRIBE_QUEUE_URL`), where stuck recordings go
    /// back; without it they are only failed once out of attempts.
    pub transcribe: Option<SqsQueue>,
    pub settings: SweepSettings,
}

/// Handles one invocation; `deadline` is when Lambda stops it. A schedule sweeps stuck
/// work back to `sweeper`'s queues.
pub async fn handle(
    stage: &Stage,
    sweeper: &Sweeper,
    invocation: Invocation,
    deadline: Instant,
) -> Result<Value, common::Error> {
    match invocation {
        Invocation::Sweep => {
            let queues = SweepQueues {
                transcribe: sweeper.transcribe.as_ref(),
                analyze: Some(&stage.analyze),
            };
            let report = sweep(&stage.pool, queues, &sweeper.settings).await?;
            info!(
                stuck = report.stuck(),
                requeued = report.requeued.len(),
                failed = report.failed.len(),
                settled = report.settled.len(),
                "swept stuck work"
            );
            Ok(serde_json::to_value(report).unwrap_or(Value::Null))
        }
        Invocation::Sqs(event) => {
            let response = handle_sqs(stage, event, deadline).await;
            Ok(serde_json::to_value(response).unwrap_or(Value::Null))
        }
        Invocation::S3(body) => {
            // Lambda retries a failed asynchronous invocation, so an error is the retry signal.
            let outcomes = handle_notification(stage, &body, deadline).await?;
            Ok(serde_json::json!({ "processed": outcomes }))
        }
    }
}

/// Processes every message; the ids of those to retry come back as batch item failures.
pub async fn handle_sqs(stage: &Stage, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let span = info_span!("message", message_id = %id);
        let body = message.body.unwrap_or_default();
        let result = handle_notification(stage, &body, deadline)
            .instrument(span)
            .await;
        if let Err(e) = result {
            if matches!(e, common::Error::BadEvent { .. }) {
                // Retrying cannot fix a malformed message; the dead-letter queue keeps it.
                error!(message_id = %id, error = %chain(&e), "malformed message");
            } else {
                warn!(message_id = %id, error = %chain(&e), "will be retried");
            }
            response.add_failure(id);
        }
    }
    response
}

/// Processes the objects of one notification body.
async fn handle_notification(
    stage: &Stage,
    body: &str,
    deadline: Instant,
) -> Result<Vec<String>, common::Error> {
    let objects = match parse_notification(body)? {
        Notification::Test => {
            info!("S3 test event: nothing to do");
            return Ok(Vec::new());
        }
        Notification::Objects(objects) => objects,
    };
    let mut outcomes = Vec::with_capacity(objects.len());
    for object in &objects {
        let span =
            info_span!("object", bucket = %object.bucket, key = %object.key, etag = %object.etag);
        let outcome = stage.process(object, deadline).instrument(span).await?;
        outcomes.push(describe(&outcome));
        if let Outcome::Paused {
            recording_id,
            windows,
        } = outcome
        {
            // Saved progress is not success: the message must come back to finish the work.
            return Err(common::Error::Paused {
                recording_id,
                windows,
            });
        }
    }
    Ok(outcomes)
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Transcribed {
            recording_id,
            transcription_id,
            jobs,
        } => {
            format!(
                "recording {recording_id}: transcription {transcription_id}, {} analysis jobs",
                jobs.len()
            )
        }
        Outcome::AlreadyDone {
            recording_id,
            resent,
        } => {
            format!("recording {recording_id}: already transcribed, {resent} jobs re-sent")
        }
        Outcome::Failed {
            recording_id,
            reason,
        } => format!("recording {recording_id}: failed: {reason}"),
        Outcome::Paused {
            recording_id,
            windows,
        } => {
            format!("recording {recording_id}: paused after {windows} windows")
        }
    }
}

/// Lambda's longest timeout: the budget of an invocation whose deadline is not usable.
pub const MAX_INVOCATION: Duration = Duration::from_secs(15 * 60);

/// The deadline of an invocation from Lambda's epoch-milliseconds deadline.
///
/// A deadline that has already passed when the invocation starts never comes from Lambda;
/// `cargo lambda watch` sends a constant (600,000, i.e. 1970). Such a deadline would pause
/// every recording after its first window, so it is taken as Lambda's longest timeout
/// instead, with a warning.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if deadline_ms <= now_ms {
        warn!(
            deadline_ms,
            now_ms,
            "the runtime's deadline has already passed (an emulator?); allowing {} s",
            MAX_INVOCATION.as_secs()
        );
        return Instant::now() + MAX_INVOCATION;
    }
    Instant::now() + Duration::from_millis(deadline_ms - now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../infra/local/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn a_deadline_in_the_past_allows_lambdas_longest_timeout() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let left = |d: Instant| d.saturating_duration_since(Instant::now());
        // cargo lambda watch's constant deadline.
        let emulated = left(deadline_from_epoch_ms(600_000));
        assert!(
            emulated > MAX_INVOCATION - Duration::from_secs(5),
            "{emulated:?}"
        );
        let real = left(deadline_from_epoch_ms(now_ms + 60_000));
        assert!(
            real > Duration::from_secs(55) && real <= Duration::from_secs(60),
            "{real:?}"
        );
    }

    #[test]
    fn sqs_batches_and_direct_s3_events_are_told_apart() {
        let Invocation::Sqs(batch) =
            Invocation::from_json(fixture("transcribe-sqs-batch.json")).unwrap()
        else {
            panic!("not recognised as an SQS batch")
        };
        assert_eq!(batch.records.len(), 2);
        let bodies: Vec<Notification> = batch
            .records
            .iter()
            .map(|m| parse_notification(m.body.as_deref().unwrap()).unwrap())
            .collect();
        assert_eq!(bodies[0], Notification::Test);
        let Notification::Objects(objects) = &bodies[1] else {
            panic!()
        };
        assert_eq!(objects[0].key, "аудит 1/запись ё.ogg");

        let Invocation::S3(direct) =
            Invocation::from_json(fixture("transcribe-s3-direct.json")).unwrap()
        else {
            panic!("not recognised as a direct S3 event")
        };
        let Notification::Objects(objects) = parse_notification(&direct).unwrap() else {
            panic!()
        };
        assert_eq!(objects[0].key, "design/2026-03-14 Grand Hotel.m4a");
        assert_eq!(
            objects[0].event_name,
            "ObjectCreated:CompleteMultipartUpload"
        );
    }

    #[test]
    fn a_payload_that_is_no_event_is_an_error() {
        let err = Invocation::from_json(serde_json::json!({"Records": "nope"})).unwrap_err();
        assert!(err.to_string().starts_with("malformed event"), "{err}");
    }
}
