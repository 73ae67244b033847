//! The analyze function: decodes job messages (an SQS batch, or one job given directly) and
//! hands each to [`common::analysis::stage::Stage`]. The same queue carries deep questions
//! (`{"question_job_id": N}`, sent by the API), answered by [`Answerer::run_deep`]: like a
//! job, they read every report in scope with the encoder and the model this function has.
//!
//! SQS batches report partial failures: a job that must be retried never fails its
//! neighbours; a job that cannot succeed is recorded as failed with its reason and not
//! retried; a malformed message is left to the dead-letter queue.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use common::analysis::stage::{Outcome, Stage};
use common::db::analysis_job::JobMessage;
use common::error::chain;
use common::search::answer::Answerer;
use common::search::deep::QuestionMessage;
use serde_json::Value;
use tracing::{Instrument, error, info, info_span, warn};

/// What the function was invoked with.
#[derive(Debug)]
pub enum Invocation {
    /// From the SQS event source mapping.
    Sqs(SqsEvent),
    /// One job given directly (`cargo lambda invoke`, operations).
    Job(JobMessage),
    /// One deep question given directly.
    Question(QuestionMessage),
}

/// A message of the analyze queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Job(JobMessage),
    Question(QuestionMessage),
}

/// A message body: an analysis job, or a deep question.
pub fn parse_message(body: &str) -> Result<Message, common::Error> {
    let value: Value = serde_json::from_str(body).map_err(|e| common::Error::BadEvent {
        reason: format!("a message body is not JSON: {e}"),
    })?;
    if value.get("question_job_id").is_some() {
        serde_json::from_value(value)
            .map(Message::Question)
            .map_err(|e| common::Error::BadEvent {
                reason: format!("not a question message: {e}"),
            })
    } else {
        parse_job(body).map(Message::Job)
    }
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
            match parse_message(&payload.to_string())? {
                Message::Job(job) => Ok(Invocation::Job(job)),
                Message::Question(q) => Ok(Invocation::Question(q)),
            }
        }
    }
}

/// A job message body.
pub fn parse_job(body: &str) -> Result<JobMessage, common::Error> {
    serde_json::from_str(body).map_err(|e| common::Error::BadEvent {
        reason: format!("not an analysis job message: {e}"),
    })
}

/// Handles one invocation; deep questions need an `answerer`.
pub async fn handle(
    stage: &Stage,
    answerer: Option<&Answerer>,
    invocation: Invocation,
) -> Result<Value, common::Error> {
    match invocation {
        Invocation::Sqs(event) => {
            let response = handle_sqs_with(stage, answerer, event).await;
            Ok(serde_json::to_value(response).unwrap_or(Value::Null))
        }
        Invocation::Job(job) => {
            let outcome = stage.process(&job).await?;
            Ok(serde_json::to_value(outcome).unwrap_or(Value::Null))
        }
        Invocation::Question(q) => {
            let answer = answer(stage, answerer, q).await?;
            Ok(serde_json::to_value(answer).unwrap_or(Value::Null))
        }
    }
}

/// Processes every message of a batch without a question answerer (question messages are
/// retried until a worker with one takes them).
pub async fn handle_sqs(stage: &Stage, event: SqsEvent) -> SqsBatchResponse {
    handle_sqs_with(stage, None, event).await
}

async fn answer(
    stage: &Stage,
    answerer: Option<&Answerer>,
    q: QuestionMessage,
) -> Result<common::search::answer::Answer, common::Error> {
    let Some(answerer) = answerer else {
        return Err(common::Error::NotHere {
            reason: "it has no question answerer".into(),
        });
    };
    answerer
        .run_deep(q.question_job_id, &stage.worker, &|done, total| {
            info!(
                question_job_id = q.question_job_id,
                done, total, "recordings read"
            )
        })
        .await
}

/// Processes every message; the ids of those to retry come back as batch item failures.
pub async fn handle_sqs_with(
    stage: &Stage,
    answerer: Option<&Answerer>,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in event.records {
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.unwrap_or_default();
        let result = match parse_message(&body) {
            Ok(Message::Job(job)) => {
                let span = info_span!("job", message_id = %id, job_id = job.analysis_job_id,
                                      report_type = %job.report_type, building = %job.building);
                stage
                    .process(&job)
                    .instrument(span)
                    .await
                    .map(|outcome| describe(&outcome))
            }
            Ok(Message::Question(q)) => {
                let span =
                    info_span!("question", message_id = %id, question_job_id = q.question_job_id);
                match answer(stage, answerer, q).instrument(span).await {
                    Ok(a) => Ok(format!(
                        "question {}: {} ({} sources)",
                        q.question_job_id,
                        if a.found {
                            "answered"
                        } else {
                            "no answer in the reports"
                        },
                        a.sources.len()
                    )),
                    // The question is recorded as failed with its reason; nothing to retry.
                    Err(e) if !e.is_retryable() => Ok(format!(
                        "question {}: failed: {}",
                        q.question_job_id,
                        chain(&e)
                    )),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(outcome) => info!(message_id = %id, outcome = %outcome, "message handled"),
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
            transcript_windows,
            quotes,
            unverified_quotes,
        } => format!(
            "job {analysis_job_id}: {} reports, {chunks} chunks, {transcript_windows} transcript windows, {quotes} quotes ({unverified_quotes} not found in the transcript)",
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
    fn question_messages_are_told_from_jobs() {
        assert_eq!(
            parse_message(r#"{"question_job_id": 42}"#).unwrap(),
            Message::Question(QuestionMessage {
                question_job_id: 42
            })
        );
        let err = parse_message(r#"{"question_job_id": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("question"), "{err}");
        assert!(matches!(
            parse_message("not json").unwrap_err(),
            common::Error::BadEvent { .. }
        ));
    }

    #[test]
    fn a_body_that_is_no_job_is_a_bad_event() {
        let err = parse_job(r#"{"analysis_job_id": "x"}"#).unwrap_err();
        assert!(matches!(err, common::Error::BadEvent { .. }), "{err}");
    }
}
