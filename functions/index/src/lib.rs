//! The index function: one writer run ([`common::index::publish::Indexer::run`]) per
//! invocation.
//!
//! The messages of the index queue (the analyze stage's `IndexRequest`s) only say "there is
//! new work": the run reads everything above the manifest's high-water mark, so one run
//! serves the whole batch. On success no message fails; when another writer holds the lock,
//! or the run fails, every message id is reported as a failure so that the batch comes back.
//! A message (or a direct invocation) `{"rebuild": true}` rebuilds from every chunk.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use common::error::chain;
use common::index::publish::{Indexer, Outcome};
use serde::Deserialize;
use serde_json::Value;
use tracing::{info, warn};

/// What the function was invoked with.
#[derive(Debug)]
pub enum Invocation {
    /// From the SQS event source mapping.
    Sqs(SqsEvent),
    /// Given directly (`cargo lambda invoke`, operations): `{}` or `{"rebuild": true}`.
    Direct { rebuild: bool },
}

/// A message body or direct payload; anything else in it (an `IndexRequest`) is ignored.
#[derive(Debug, Default, Deserialize)]
struct Request {
    #[serde(default)]
    rebuild: bool,
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
            let request: Request =
                serde_json::from_value(payload).map_err(|e| common::Error::BadEvent {
                    reason: format!("not an index request: {e}"),
                })?;
            Ok(Invocation::Direct {
                rebuild: request.rebuild,
            })
        }
    }
}

/// Whether a message body asks for a rebuild (a body that does not parse is still a nudge).
pub fn wants_rebuild(body: &str) -> bool {
    serde_json::from_str::<Request>(body).is_ok_and(|r| r.rebuild)
}

/// Handles one invocation: the batch response for SQS, the outcome for a direct call.
pub async fn handle(indexer: &Indexer, invocation: Invocation) -> Result<Value, common::Error> {
    match invocation {
        Invocation::Sqs(event) => {
            let response = handle_sqs(indexer, event).await;
            Ok(serde_json::to_value(response).unwrap_or(Value::Null))
        }
        Invocation::Direct { rebuild } => {
            let outcome = indexer.run(rebuild).await?;
            info!(outcome = %describe(&outcome), "index run");
            Ok(serde_json::to_value(outcome).unwrap_or(Value::Null))
        }
    }
}

/// One run for the whole batch; every message fails when the run did not happen or failed.
pub async fn handle_sqs(indexer: &Indexer, event: SqsEvent) -> SqsBatchResponse {
    let ids: Vec<String> = event
        .records
        .iter()
        .map(|m| m.message_id.clone().unwrap_or_default())
        .collect();
    let rebuild = event
        .records
        .iter()
        .any(|m| m.body.as_deref().is_some_and(wants_rebuild));
    let mut response = SqsBatchResponse::default();
    if ids.is_empty() {
        return response;
    }
    match indexer.run(rebuild).await {
        Ok(Outcome::Busy) => {
            info!(
                messages = ids.len(),
                "another writer is running; the batch will come back"
            );
            for id in ids {
                response.add_failure(id);
            }
        }
        Ok(outcome) => info!(messages = ids.len(), outcome = %describe(&outcome), "index run"),
        Err(e) => {
            warn!(messages = ids.len(), error = %chain(&e), retryable = e.is_retryable(),
                  "index run failed; the batch will come back");
            for id in ids {
                response.add_failure(id);
            }
        }
    }
    response
}

/// One line for the log.
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Published(r) => {
            let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "generation {}{}: {} chunks added, high-water mark {}, {} bytes, counts {}",
                r.generation,
                if r.rebuilt { " (rebuilt)" } else { "" },
                r.chunks_added,
                r.high_water_mark,
                r.size_bytes,
                counts.join(" ")
            )
        }
        Outcome::UpToDate {
            generation,
            high_water_mark,
        } => match generation {
            Some(g) => format!("up to date at generation {g} (high-water mark {high_water_mark})"),
            None => "up to date: no chunks and no generation yet".to_owned(),
        },
        Outcome::Busy => "busy: another writer holds the lock".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../infra/local/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn sqs_batches_and_direct_requests_are_told_apart() {
        let Invocation::Sqs(batch) =
            Invocation::from_json(fixture("index-sqs-batch.json")).unwrap()
        else {
            panic!("not recognised as an SQS batch")
        };
        assert_eq!(batch.records.len(), 2);
        assert!(
            !batch
                .records
                .iter()
                .any(|m| wants_rebuild(m.body.as_deref().unwrap()))
        );
        let Invocation::Direct { rebuild } =
            Invocation::from_json(serde_json::json!({"rebuild": true})).unwrap()
        else {
            panic!("not recognised as a direct request")
        };
        assert!(rebuild);
        assert!(matches!(
            Invocation::from_json(serde_json::json!({})).unwrap(),
            Invocation::Direct { rebuild: false }
        ));
        assert!(wants_rebuild(r#"{"rebuild": true}"#));
        assert!(!wants_rebuild("not json"));
    }
}
