//! SQS: the queues between the stages. Messages are JSON; senders commit first, then send, so
//! a crash in between is repaired by the redelivery that re-sends.

use aws_config::SdkConfig;
use aws_sdk_sqs::error::SdkError;
use serde::Serialize;

use crate::{Error, Result};

/// One queue, built once per cold start.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    /// A FIFO queue (its name ends in `.fifo`, as SQS requires of FIFO queues).
    fifo: bool,
}

impl SqsQueue {
    pub fn new(sdk: &SdkConfig, url: impl Into<String>) -> Self {
        let url = url.into();
        Self {
            client: aws_sdk_sqs::Client::new(sdk),
            fifo: url.ends_with(".fifo"),
            url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this is a FIFO queue (decided once, from its name).
    pub fn is_fifo(&self) -> bool {
        self.fifo
    }

    /// Sends one JSON message. On a FIFO queue, `group` orders messages and `dedup` (e.g. a
    /// job id) drops repeats within five minutes; a standard queue ignores both.
    pub async fn send_json<T: Serialize>(&self, body: &T, group: &str, dedup: &str) -> Result<()> {
        let (group, dedup) = if self.fifo {
            (Some(group), Some(dedup))
        } else {
            (None, None)
        };
        let body = serde_json::to_string(body).map_err(|e| Error::InvalidInput {
            field: "message",
            reason: e.to_string(),
        })?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_message_group_id(group.map(str::to_owned))
            .set_message_deduplication_id(dedup.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The underlying client, for the local event source mapping and setup.
    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    fn error<E, R>(&self, e: SdkError<E, R>) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let retryable = !matches!(e, SdkError::ConstructionFailure(_));
        Error::Queue {
            queue: self.url.clone(),
            retryable,
            source: Box::new(e),
        }
    }
}
