//! The analyze function: decodes job messages (an SQS batch, or one job given directly) and
//! hands each to [`common::analysis::stage::Stage`].
//!
//! SQS batches report partial failures: a job that must be retried never fails its
//! neighbours; a job that cannot succeed is recorded as failed with its reason and not
//! retried; a malformed message is left to the dead-letter queue.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use common::analysis::stage::{Outcome, Stage};
use common::db::analysis_job::JobMessage;
use common::error::chain;
use serde_json::Value;
use tracing::{Instrument, error, info, info_span, warn};

/// What the function was invoked with.
#[derive(Debug)]
pub enum Invocation {
    /// From the SQS event source mapping.
    Sqs(SqsEvent),
    /// One job given directly (`cargo lambda invoke`, operations).
    Job(JobMessage),
}

impl Invocation {
    pub fn from_json(payload: Value) -> Result<Self, common::Error> {
        if payload.get("Records").is_some() {
            serde_json::from_value(payload)
                .map(Invocation::Sqs)
                .map_err(|e| common::Error::BadEvent {
                    reason: format!("malformed SQS event: {e}"),
                })
        } else {
            parse_job(&payload.to_string()).map(Invocation::Job)
        }
    }
}

/// A job message body.
pub fn parse_job(body: &str) -> Result<JobMessage, common::Error> {
    serde_json::from_str(body).map_err(|e| common::Error::BadEvent {
        reason: format!("not an analysis job message: {e}"),
    })
}

/// Handles one invocation.
pub async fn handle(stage: &Stage, invocation: Invocation) -> Result<Value, common::Error> {
    match invocation {
        Invocation::Sqs(event) => {
            let response = handle_sqs(stage, event).await;
            Ok(serde_json::to_value(response).unwrap_or(Value::Null))
        }
        Invocation::Job(job) => {
            let outcome = stage.process(&job).await?;
            Ok(serde_json::to_value(outcome).unwrap_or(Value::Null))
        }
    }
}

/// Processes every message; the ids of those to retry come back as batch item failures.
pub async fn handle_sqs(stage: &Stage, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.unwrap_or_default();
        let result = match parse_job(&body) {
            Ok(job) => {
                let span = info_span!("job", message_id = %id, job_id = job.analysis_job_id,
                                      report_type = %job.report_type, building = %job.building);
                stage.process(&job).instrument(span).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(outcome) => info!(message_id = %id, outcome = %describe(&outcome), "job handled"),
            Err(e @ common::Error::BadEvent { .. }) => {
                // Retrying cannot fix a malformed message; the dead-letter queue keeps it.
                error!(message_id = %id, error = %chain(&e), "malformed message");
                response.add_failure(id);
            }
            Err(e) => {
                warn!(message_id = %id, error = %chain(&e), "will be retried");
                response.add_failure(id);
            }
        }
    }
    response
}

/// One line for the log.
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Analyzed {
            analysis_job_id,
            audit_ids,
            chunks,
            quotes,
            unverified_quotes,
        } => format!(
            "job {analysis_job_id}: {} reports, {chunks} chunks, {quotes} quotes ({unverified_quotes} not found in the transcript)",
            audit_ids.len()
        ),
        Outcome::AlreadyDone { analysis_job_id } => {
            format!("job {analysis_job_id}: already done")
        }
        Outcome::Failed {
            analysis_job_id,
            reason,
        } => format!("job {analysis_job_id}: failed: {reason}"),
    }
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
    fn sqs_batches_and_direct_jobs_are_told_apart() {
        let Invocation::Sqs(batch) =
            Invocation::from_json(fixture("analyze-sqs-batch.json")).unwrap()
        else {
            panic!("not recognised as an SQS batch")
        };
        let jobs: Vec<JobMessage> = batch
            .records
            .iter()
            .map(|m| parse_job(m.body.as_deref().unwrap()).unwrap())
            .collect();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].report_type, "structured-audit");
        let Invocation::Job(job) =
            Invocation::from_json(serde_json::to_value(&jobs[1]).unwrap()).unwrap()
        else {
            panic!("not recognised as a job")
        };
        assert_eq!(job, jobs[1]);
    }

    #[test]
    fn a_body_that_is_no_job_is_a_bad_event() {
        let err = parse_job(r#"{"analysis_job_id": "x"}"#).unwrap_err();
        assert!(matches!(err, common::Error::BadEvent { .. }), "{err}");
    }
}
