//! The local SQS event source mapping: what AWS Lambda does between a queue and a function,
//! done by `vox run` on one machine (locally nothing else moves messages to functions).
//!
//! For each bound queue it long-polls up to a batch of messages (the binding's
//! [`Binding::batch_size`], as the deployed mapping's `BatchSize`), builds the Lambda
//! [`SqsEvent`] from them, invokes the handler in process, and deletes only the messages that
//! succeeded: the ids in the returned `batchItemFailures` stay on the queue and come back once
//! their visibility timeout ends, as with `ReportBatchItemFailures`. A response naming an id
//! that was not in the batch, or a handler that panics, fails the whole batch, as Lambda
//! treats a malformed response.
//!
//! Poison messages: when a queue has a `RedrivePolicy`, SQS itself moves a message to the
//! dead-letter queue on the receive that would exceed `maxReceiveCount` (AWS does, and so does
//! moto), so the mapping does nothing more than watch the dead-letter queue's depth. Only a
//! queue without a redrive policy, given [`Options::max_receives`], has its poison messages
//! moved by the mapping (to `<name>-dlq`, `<name>-dlq.fifo` for FIFO queues).
//!
//! FIFO queues: SQS hands out a message group's next messages only once the previous ones are
//! gone; the mapping keeps that order by never deleting a message that follows a failed one of
//! the same group in its batch.
//!
//! While a handler runs, the mapping keeps its batch invisible (extending the visibility
//! timeout at half-time), so that short local timeouts retry failures quickly without
//! redelivering a batch that is still being worked on. Lambda needs no such thing because
//! deployed queues have visibility timeouts of six function timeouts.
//!
//! SQS outages: a failed receive is retried a second later, forever, as Lambda's pollers do.
//! The calls that decide how a run ends (the idle check of `run(until_idle)` and the
//! dead-letter depths read at its start and end) are retried with a growing backoff too, and
//! give up only once they have been failing, without a success between, for
//! [`Options::outage_limit`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tracing::{error, warn};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the mapping could not go on.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// An SQS request failed.
    #[error("SQS {operation} on {queue} failed")]
    Sqs {
        operation: &'static str,
        queue: String,
        #[source]
        source: BoxError,
    },
    /// An SQS request kept failing for longer than [`Options::outage_limit`].
    #[error("SQS {operation} on {queue} has been failing for {} s", failing_for.as_secs())]
    Outage {
        operation: &'static str,
        queue: String,
        failing_for: Duration,
        /// The last failure.
        #[source]
        source: BoxError,
    },
    /// A queue is not usable as configured.
    #[error("queue {queue}: {reason}")]
    Setup { queue: String, reason: String },
}

/// A function as the mapping invokes it: one SQS batch in, the failed message ids out
/// (`batchItemFailures`).
pub trait BatchHandler: Send + Sync {
    /// Handles one batch.
    fn handle(&self, event: SqsEvent) -> BoxFuture<'_, SqsBatchResponse>;
}

impl<F, Fut> BatchHandler for F
where
    F: Fn(SqsEvent) -> Fut + Send + Sync,
    Fut: Future<Output = SqsBatchResponse> + Send + 'static,
{
    fn handle(&self, event: SqsEvent) -> BoxFuture<'_, SqsBatchResponse> {
        Box::pin(self(event))
    }
}

/// A queue and the function it feeds.
pub struct Binding {
    /// Short name for the console (`transcribe`).
    pub name: String,
    pub queue_url: String,
    /// Messages per receive and per invocation, 1..=10: the `BatchSize` of the queue's
    /// deployed event source mapping. [`Options::batch_size`] overrides it.
    pub batch_size: i32,
    pub handler: Arc<dyn BatchHandler>,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding")
            .field("name", &self.name)
            .field("queue_url", &self.queue_url)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// How the mapping polls.
#[derive(Debug, Clone)]
pub struct Options {
    /// Messages per batch for every queue, 1..=10, instead of each binding's
    /// [`Binding::batch_size`].
    pub batch_size: Option<i32>,
    /// Long-poll wait of each receive (at most 20 s).
    pub wait: Duration,
    /// Visibility timeout of received messages; `None` keeps the queue's own.
    pub visibility_timeout: Option<Duration>,
    /// For queues without a redrive policy: receives after which the mapping itself moves a
    /// message to `<name>-dlq`. Queues with a redrive policy are left to SQS.
    pub max_receives: Option<u32>,
    /// Keep a batch invisible while its handler runs (see the module documentation).
    pub extend_while_running: bool,
    /// How often `run(until_idle)` checks whether everything is done.
    pub idle_check: Duration,
    /// How long a queue call that decides the end of a run (the idle check, the dead-letter
    /// depths) may keep failing before the run gives up with [`MappingError::Outage`];
    /// meanwhile it is retried after 1 s, 2 s, 4 s, ... (at most 10 s).
    pub outage_limit: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch_size: None,
            wait: Duration::from_secs(20),
            visibility_timeout: None,
            max_receives: None,
            extend_while_running: true,
            idle_check: Duration::from_millis(500),
            outage_limit: Duration::from_secs(5 * 60),
        }
    }
}

/// What became of one batch.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// The binding's name.
    pub queue: String,
    /// Messages received.
    pub messages: usize,
    /// Ids handled and deleted.
    pub succeeded: Vec<String>,
    /// Ids left on the queue to come back after the visibility timeout.
    pub failed: Vec<String>,
    /// Ids the mapping moved to the dead-letter queue instead of invoking the handler.
    pub dead_lettered: Vec<String>,
    pub elapsed: Duration,
}

/// A bound queue, for the console.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    pub name: String,
    pub url: String,
    /// Messages per batch.
    pub batch_size: i32,
    pub dead_letter: Option<DeadLetterInfo>,
}

/// Where a queue's poison messages go.
#[derive(Debug, Clone)]
pub struct DeadLetterInfo {
    pub url: String,
    pub max_receives: u32,
    /// True when SQS moves them itself (the queue has a redrive policy), false when the
    /// mapping does ([`Options::max_receives`]).
    pub moved_by_sqs: bool,
}

/// Messages that landed in a dead-letter queue during a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLettered {
    /// The binding's name.
    pub queue: String,
    pub dead_letter_queue: String,
    pub count: u64,
}

/// A dead-letter queue that holds messages at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterDepth {
    /// The binding's name.
    pub queue: String,
    pub dead_letter_queue: String,
    /// Messages in it at the end of the run.
    pub count: u64,
    /// Messages in it when the run started.
    pub before: u64,
}

/// What a whole run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub batches: usize,
    pub messages: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Growth of each dead-letter queue over the run (only those that grew): the messages
    /// that landed during the run.
    pub dead_lettered: Vec<DeadLettered>,
    /// Every dead-letter queue that holds messages at the end, whether they landed during
    /// the run or were there before it.
    pub dead_letter_at_end: Vec<DeadLetterDepth>,
}

#[derive(Debug, Clone)]
struct DeadLetter {
    url: String,
    max_receives: u32,
    /// True when SQS moves poison messages itself (the queue has a redrive policy).
    by_sqs: bool,
}

struct Queue {
    name: String,
    url: String,
    arn: String,
    region: String,
    fifo: bool,
    batch_size: i32,
    visibility: Duration,
    dead_letter: Option<DeadLetter>,
    handler: Arc<dyn BatchHandler>,
}

/// The mapping over its queues, built once by [`Mapping::new`].
pub struct Mapping {
    client: aws_sdk_sqs::Client,
    queues: Vec<Queue>,
    options: Options,
    in_flight: AtomicUsize,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field(
                "queues",
                &self.queues.iter().map(|q| &q.url).collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Decrements the in-flight count however the batch ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Mapping {
    /// Reads each queue's attributes (ARN, FIFO, visibility timeout, redrive policy) and
    /// finds its dead-letter queue. A batch size outside 1..=10 is refused.
    pub async fn new(
        client: aws_sdk_sqs::Client,
        bindings: Vec<Binding>,
        options: Options,
    ) -> Result<Self, MappingError> {
        if let Some(n) = options.batch_size
            && !(1..=10).contains(&n)
        {
            return Err(MappingError::Setup {
                queue: "*".into(),
                reason: format!("batch size {n} is not within 1..=10"),
            });
        }
        let mut queues = Vec::with_capacity(bindings.len());
        for b in bindings {
            let batch_size = options.batch_size.unwrap_or(b.batch_size);
            if !(1..=10).contains(&batch_size) {
                return Err(MappingError::Setup {
                    queue: b.queue_url,
                    reason: format!("batch size {batch_size} is not within 1..=10"),
                });
            }
            let attrs = queue_attributes(&client, &b.queue_url, QueueAttributeName::All).await?;
            let setup = |reason: String| MappingError::Setup {
                queue: b.queue_url.clone(),
                reason,
            };
            let arn = attrs
                .get(&QueueAttributeName::QueueArn)
                .cloned()
                .ok_or_else(|| setup("the queue has no QueueArn attribute".into()))?;
            let fifo = attrs
                .get(&QueueAttributeName::FifoQueue)
                .is_some_and(|v| v == "true");
            let visibility = attrs
                .get(&QueueAttributeName::VisibilityTimeout)
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(Duration::from_secs(30), Duration::from_secs);
            let dead_letter = match attrs.get(&QueueAttributeName::RedrivePolicy) {
                Some(policy) => {
                    let (dlq_arn, max) = parse_redrive(policy).map_err(setup)?;
                    Some(DeadLetter {
                        url: url_of_arn(&client, &dlq_arn).await?,
                        max_receives: max,
                        by_sqs: true,
                    })
                }
                None => match options.max_receives {
                    Some(max) => {
                        let name = dead_letter_name(name_of_arn(&arn));
                        let url = client
                            .get_queue_url()
                            .queue_name(&name)
                            .send()
                            .await
                            .ok()
                            .and_then(|o| o.queue_url().map(str::to_owned))
                            .ok_or_else(|| {
                                setup(format!(
                                    "it has no redrive policy and its dead-letter queue {name} does not exist"
                                ))
                            })?;
                        Some(DeadLetter {
                            url,
                            max_receives: max,
                            by_sqs: false,
                        })
                    }
                    None => None,
                },
            };
            let region = arn.split(':').nth(3).unwrap_or_default().to_owned();
            queues.push(Queue {
                name: b.name,
                url: b.queue_url,
                arn,
                region,
                fifo,
                batch_size,
                visibility,
                dead_letter,
                handler: b.handler,
            });
        }
        Ok(Self {
            client,
            queues,
            options,
            in_flight: AtomicUsize::new(0),
        })
    }

    /// The bound queues and where their poison messages go.
    pub fn describe(&self) -> Vec<QueueInfo> {
        self.queues
            .iter()
            .map(|q| QueueInfo {
                name: q.name.clone(),
                url: q.url.clone(),
                batch_size: q.batch_size,
                dead_letter: q.dead_letter.as_ref().map(|d| DeadLetterInfo {
                    url: d.url.clone(),
                    max_receives: d.max_receives,
                    moved_by_sqs: d.by_sqs,
                }),
            })
            .collect()
    }

    /// One receive on the queue bound as `name` (waiting up to `wait`), then the batch
    /// handled; `None` when nothing came.
    pub async fn poll_once(
        &self,
        name: &str,
        wait: Duration,
    ) -> Result<Option<BatchReport>, MappingError> {
        let queue =
            self.queues
                .iter()
                .find(|q| q.name == name)
                .ok_or_else(|| MappingError::Setup {
                    queue: name.to_owned(),
                    reason: "no such binding".into(),
                })?;
        self.poll(queue, wait).await
    }

    async fn poll(&self, q: &Queue, wait: Duration) -> Result<Option<BatchReport>, MappingError> {
        let wait_s = i32::try_from(wait.as_secs().min(20)).unwrap_or(20);
        let out = self
            .client
            .receive_message()
            .queue_url(&q.url)
            .max_number_of_messages(q.batch_size)
            .wait_time_seconds(wait_s)
            .set_visibility_timeout(self.options.visibility_timeout.map(secs))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", &q.url, e))?;
        let messages = out.messages();
        if messages.is_empty() {
            return Ok(None);
        }
        // Received messages are invisible, so a queue depth check counts them until this
        // count is up; it goes down only after the deletes (and the handler's own sends).
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _guard = InFlight(&self.in_flight);
        self.process(q, messages).await.map(Some)
    }

    async fn process(&self, q: &Queue, messages: &[Message]) -> Result<BatchReport, MappingError> {
        let start = Instant::now();
        let mut report = BatchReport {
            queue: q.name.clone(),
            messages: messages.len(),
            ..BatchReport::default()
        };
        let mut batch = Vec::with_capacity(messages.len());
        for m in messages {
            if let Some(dl) = &q.dead_letter
                && !dl.by_sqs
                && receive_count(m) > dl.max_receives
            {
                self.move_to_dead_letter(q, dl, m).await?;
                report.dead_lettered.push(id_of(m));
                continue;
            }
            batch.push(m);
        }
        if batch.is_empty() {
            report.elapsed = start.elapsed();
            return Ok(report);
        }
        let ids: Vec<String> = batch.iter().map(|m| id_of(m)).collect();
        let receipts: Vec<String> = batch
            .iter()
            .filter_map(|m| m.receipt_handle().map(str::to_owned))
            .collect();
        let event = self.event(q, &batch)?;
        let mut failed: HashSet<String> = match self.invoke(q, event, &receipts).await {
            None => ids.iter().cloned().collect(),
            Some(response) => {
                let named: HashSet<String> = response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect();
                if let Some(unknown) = named.iter().find(|id| !ids.contains(id)) {
                    warn!(queue = %q.name, id = %unknown,
                          "batchItemFailures names a message not in the batch; the whole batch fails");
                    ids.iter().cloned().collect()
                } else {
                    named
                }
            }
        };
        if q.fifo {
            // Keep each message group in order: what follows a failure waits for it.
            let mut blocked = HashSet::new();
            for m in &batch {
                let group = system_attribute(m, MessageSystemAttributeName::MessageGroupId);
                if failed.contains(&id_of(m)) {
                    blocked.insert(group);
                } else if blocked.contains(&group) {
                    failed.insert(id_of(m));
                }
            }
        }
        let done: Vec<&Message> = batch
            .iter()
            .copied()
            .filter(|m| !failed.contains(&id_of(m)))
            .collect();
        self.delete(q, &done).await?;
        for id in ids {
            if failed.contains(&id) {
                report.failed.push(id);
            } else {
                report.succeeded.push(id);
            }
        }
        report.elapsed = start.elapsed();
        Ok(report)
    }

    /// Runs the handler, keeping the batch invisible meanwhile; `None` if it panicked.
    async fn invoke(
        &self,
        q: &Queue,
        event: SqsEvent,
        receipts: &[String],
    ) -> Option<SqsBatchResponse> {
        let run = AssertUnwindSafe(q.handler.handle(event)).catch_unwind();
        let mut run = std::pin::pin!(run);
        let visibility = self.options.visibility_timeout.unwrap_or(q.visibility);
        let outcome = if self.options.extend_while_running && visibility >= Duration::from_secs(2) {
            let half = visibility / 2;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + half, half);
            loop {
                tokio::select! {
                    outcome = &mut run => break outcome,
                    _ = tick.tick() => {
                        if let Err(e) = self.extend(q, receipts, visibility).await {
                            warn!(queue = %q.name, error = %common::error::chain(&e),
                                  "could not extend the batch's visibility");
                        }
                    }
                }
            }
        } else {
            run.await
        };
        match outcome {
            Ok(response) => Some(response),
            Err(_) => {
                error!(queue = %q.name, "the handler panicked; the whole batch fails");
                None
            }
        }
    }

    async fn extend(
        &self,
        q: &Queue,
        receipts: &[String],
        visibility: Duration,
    ) -> Result<(), MappingError> {
        let mut request = self
            .client
            .change_message_visibility_batch()
            .queue_url(&q.url);
        for (i, receipt) in receipts.iter().enumerate() {
            let entry = ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .visibility_timeout(secs(visibility))
                .build()
                .map_err(|e| sqs_error("ChangeMessageVisibilityBatch", &q.url, e))?;
            request = request.entries(entry);
        }
        request
            .send()
            .await
            .map_err(|e| sqs_error("ChangeMessageVisibilityBatch", &q.url, e))?;
        Ok(())
    }

    async fn delete(&self, q: &Queue, messages: &[&Message]) -> Result<(), MappingError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut request = self.client.delete_message_batch().queue_url(&q.url);
        for (i, m) in messages.iter().enumerate() {
            let entry = DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .map_err(|e| sqs_error("DeleteMessageBatch", &q.url, e))?;
            request = request.entries(entry);
        }
        let out = request
            .send()
            .await
            .map_err(|e| sqs_error("DeleteMessageBatch", &q.url, e))?;
        if let Some(f) = out.failed().first() {
            // The message will come back; its handler is idempotent.
            warn!(queue = %q.name, code = %f.code(), message = ?f.message(),
                  "a handled message could not be deleted and will be delivered again");
        }
        Ok(())
    }

    async fn move_to_dead_letter(
        &self,
        q: &Queue,
        dl: &DeadLetter,
        m: &Message,
    ) -> Result<(), MappingError> {
        let mut send = self
            .client
            .send_message()
            .queue_url(&dl.url)
            .message_body(m.body().unwrap_or_default())
            .set_message_attributes(m.message_attributes().cloned());
        if q.fifo {
            send = send
                .message_group_id(system_attribute(
                    m,
                    MessageSystemAttributeName::MessageGroupId,
                ))
                .message_deduplication_id(id_of(m));
        }
        send.send()
            .await
            .map_err(|e| sqs_error("SendMessage", &dl.url, e))?;
        warn!(queue = %q.name, message_id = %id_of(m), receives = receive_count(m),
              dead_letter_queue = %dl.url, "moved a poison message to the dead-letter queue");
        self.delete(q, &[m]).await
    }

    /// The Lambda event for a batch, as the AWS mapping builds it.
    fn event(&self, q: &Queue, batch: &[&Message]) -> Result<SqsEvent, MappingError> {
        let records: Vec<Value> = batch
            .iter()
            .map(|m| {
                let attributes: HashMap<&str, &str> = m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
                    .unwrap_or_default();
                let message_attributes: HashMap<&str, Value> = m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str(), message_attribute(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": message_attributes,
                    "md5OfBody": m.md5_of_body(),
                    "md5OfMessageAttributes": m.md5_of_message_attributes(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": q.arn,
                    "awsRegion": q.region,
                })
            })
            .collect();
        serde_json::from_value(json!({ "Records": records })).map_err(|e| MappingError::Setup {
            queue: q.url.clone(),
            reason: format!("could not build the SQS event: {e}"),
        })
    }

    /// Messages on the queue bound as `name`, visible, in flight or delayed.
    pub async fn depth(&self, name: &str) -> Result<u64, MappingError> {
        let q = self
            .queues
            .iter()
            .find(|q| q.name == name)
            .ok_or_else(|| MappingError::Setup {
                queue: name.to_owned(),
                reason: "no such binding".into(),
            })?;
        depth(&self.client, &q.url).await
    }

    /// Polls every queue until stopped: with `until_idle`, once every queue is empty (nothing
    /// visible, in flight or delayed) and no batch is being handled; otherwise forever.
    /// `on_batch` sees every batch that received something.
    ///
    /// The summary has the messages that landed in dead-letter queues during the run and every
    /// dead-letter queue that holds messages at its end. A failing SQS call (an idle check, a
    /// dead-letter depth) is retried; the run fails with [`MappingError::Outage`] only once it
    /// has been failing for [`Options::outage_limit`].
    pub async fn run(
        &self,
        until_idle: bool,
        on_batch: &(dyn Fn(&BatchReport) + Sync),
    ) -> Result<RunSummary, MappingError> {
        let before = self.dead_letter_depths().await?;
        let stop = AtomicBool::new(false);
        let wait = if until_idle {
            self.options.wait.min(Duration::from_secs(1))
        } else {
            self.options.wait
        };
        let summary = std::sync::Mutex::new(RunSummary::default());
        let pollers = self.queues.iter().map(|q| {
            let (stop, summary) = (&stop, &summary);
            async move {
                while !stop.load(Ordering::SeqCst) {
                    match self.poll(q, wait).await {
                        Ok(Some(report)) => {
                            if let Ok(mut s) = summary.lock() {
                                s.batches += 1;
                                s.messages += report.messages;
                                s.succeeded += report.succeeded.len();
                                s.failed += report.failed.len();
                            }
                            on_batch(&report);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            // Like the AWS mapping, keep polling; what was not deleted
                            // comes back. (With `until_idle`, the idle check fails the run
                            // when SQS stays unreachable for `outage_limit`.)
                            warn!(queue = %q.name, error = %common::error::chain(&e),
                                  "polling failed; retrying in a second");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                Ok::<(), MappingError>(())
            }
        });
        let watcher = async {
            if !until_idle {
                return futures::future::pending::<Result<(), MappingError>>().await;
            }
            // Two quiet checks in a row: SQS counts are approximate. A failed check is not a
            // quiet one; it waits out the outage's backoff before the next.
            let mut outage = Outage::new(self.options.outage_limit);
            let mut quiet = 0;
            while quiet < 2 {
                tokio::time::sleep(self.options.idle_check).await;
                match self.idle().await {
                    Ok(idle) => {
                        outage.recovered();
                        quiet = if idle { quiet + 1 } else { 0 };
                    }
                    Err(e) => {
                        quiet = 0;
                        let backoff = outage.failed(e, "the idle check")?;
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
            stop.store(true, Ordering::SeqCst);
            Ok(())
        };
        futures::future::try_join(futures::future::try_join_all(pollers), watcher).await?;
        let after = self.dead_letter_depths().await?;
        let mut summary = summary.into_inner().unwrap_or_default();
        for ((queue, dlq, was), (_, _, now)) in before.into_iter().zip(after) {
            if now > was {
                summary.dead_lettered.push(DeadLettered {
                    queue: queue.clone(),
                    dead_letter_queue: dlq.clone(),
                    count: now - was,
                });
            }
            if now > 0 {
                summary.dead_letter_at_end.push(DeadLetterDepth {
                    queue,
                    dead_letter_queue: dlq,
                    count: now,
                    before: was,
                });
            }
        }
        Ok(summary)
    }

    async fn idle(&self) -> Result<bool, MappingError> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Ok(false);
        }
        for q in &self.queues {
            if depth(&self.client, &q.url).await? > 0 {
                return Ok(false);
            }
        }
        Ok(self.in_flight.load(Ordering::SeqCst) == 0)
    }

    /// (binding, dead-letter queue URL, depth) of each queue with a dead-letter queue, each
    /// depth retried through an outage.
    async fn dead_letter_depths(&self) -> Result<Vec<(String, String, u64)>, MappingError> {
        let mut out = Vec::new();
        for q in &self.queues {
            if let Some(dl) = &q.dead_letter {
                let n = retrying(
                    self.options.outage_limit,
                    "reading a dead-letter queue's depth",
                    || depth(&self.client, &dl.url),
                )
                .await?;
                out.push((q.name.clone(), dl.url.clone(), n));
            }
        }
        Ok(out)
    }
}

/// The first wait after a failed SQS call; each further failure doubles it.
const OUTAGE_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries during an outage.
const OUTAGE_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Consecutive failures of SQS calls, to ride out a short outage: each failure waits a growing
/// backoff before the next try, and a failure `limit` or more after the first of them gives
/// up. Only [`MappingError::Sqs`] is an outage; other errors give up at once.
#[derive(Debug)]
struct Outage {
    limit: Duration,
    backoff: Duration,
    backoff_max: Duration,
    /// When the current run of failures began.
    since: Option<Instant>,
    failures: u32,
}

impl Outage {
    fn new(limit: Duration) -> Self {
        Self::with_backoff(limit, OUTAGE_BACKOFF, OUTAGE_BACKOFF_MAX)
    }

    fn with_backoff(limit: Duration, backoff: Duration, backoff_max: Duration) -> Self {
        Self {
            limit,
            backoff,
            backoff_max,
            since: None,
            failures: 0,
        }
    }

    /// A call succeeded: the next failure starts a new outage.
    fn recovered(&mut self) {
        self.since = None;
        self.failures = 0;
    }

    /// A call made for `what` failed with `e`: how long to wait before trying again, or the
    /// error to give up with.
    fn failed(&mut self, e: MappingError, what: &'static str) -> Result<Duration, MappingError> {
        let MappingError::Sqs {
            operation,
            queue,
            source,
        } = e
        else {
            return Err(e);
        };
        let since = *self.since.get_or_insert_with(Instant::now);
        let failing_for = since.elapsed();
        if failing_for >= self.limit {
            return Err(MappingError::Outage {
                operation,
                queue,
                failing_for,
                source,
            });
        }
        let doublings = self.failures.min(16);
        self.failures += 1;
        let backoff = self
            .backoff
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
            // The last try comes when the limit is reached, not a backoff after it.
            .min(self.limit - failing_for);
        warn!(%queue, operation, during = what, error = %common::error::chain(&*source),
              failing_for_s = failing_for.as_secs(), retry_in_ms = backoff.as_millis(),
              "SQS call failed; retrying");
        Ok(backoff)
    }
}

/// `call` until it succeeds, retried through an outage ([`Outage`]) of at most `limit`.
async fn retrying<T, F, Fut>(
    limit: Duration,
    what: &'static str,
    call: F,
) -> Result<T, MappingError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, MappingError>>,
{
    retrying_with(Outage::new(limit), what, call).await
}

async fn retrying_with<T, F, Fut>(
    mut outage: Outage,
    what: &'static str,
    mut call: F,
) -> Result<T, MappingError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, MappingError>>,
{
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let backoff = outage.failed(e, what)?;
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// Visible, in-flight and delayed messages of a queue.
pub async fn depth(client: &aws_sdk_sqs::Client, url: &str) -> Result<u64, MappingError> {
    let attrs = queue_attributes(client, url, QueueAttributeName::All).await?;
    Ok([
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .filter_map(|a| attrs.get(a).and_then(|v| v.parse::<u64>().ok()))
    .sum())
}

async fn queue_attributes(
    client: &aws_sdk_sqs::Client,
    url: &str,
    name: QueueAttributeName,
) -> Result<HashMap<QueueAttributeName, String>, MappingError> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name)
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueAttributes", url, e))?;
    Ok(out.attributes().cloned().unwrap_or_default())
}

/// The dead-letter queue's ARN and `maxReceiveCount` of a `RedrivePolicy` (the count may be
/// a number or a string).
fn parse_redrive(policy: &str) -> Result<(String, u32), String> {
    let v: Value = serde_json::from_str(policy)
        .map_err(|e| format!("RedrivePolicy {policy:?} is not JSON: {e}"))?;
    let arn = v["deadLetterTargetArn"]
        .as_str()
        .ok_or_else(|| format!("RedrivePolicy {policy:?} has no deadLetterTargetArn"))?;
    let max = match &v["maxReceiveCount"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
    .ok_or_else(|| format!("RedrivePolicy {policy:?} has no valid maxReceiveCount"))?;
    Ok((arn.to_owned(), max))
}

async fn url_of_arn(client: &aws_sdk_sqs::Client, arn: &str) -> Result<String, MappingError> {
    let account = arn.split(':').nth(4).filter(|a| !a.is_empty());
    client
        .get_queue_url()
        .queue_name(name_of_arn(arn))
        .set_queue_owner_aws_account_id(account.map(str::to_owned))
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueUrl", arn, e))?
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| MappingError::Setup {
            queue: arn.to_owned(),
            reason: "GetQueueUrl returned no URL".into(),
        })
}

fn name_of_arn(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// `name-dlq`, or `name-dlq.fifo` for a FIFO queue (whose dead-letter queue must be FIFO).
pub fn dead_letter_name(queue_name: &str) -> String {
    match queue_name.strip_suffix(".fifo") {
        Some(base) => format!("{base}-dlq.fifo"),
        None => format!("{queue_name}-dlq"),
    }
}

fn id_of(m: &Message) -> String {
    m.message_id().unwrap_or_default().to_owned()
}

fn receive_count(m: &Message) -> u32 {
    system_attribute(m, MessageSystemAttributeName::ApproximateReceiveCount)
        .parse()
        .unwrap_or(1)
}

fn system_attribute(m: &Message, name: MessageSystemAttributeName) -> String {
    m.attributes()
        .and_then(|a| a.get(&name).cloned())
        .unwrap_or_default()
}

/// A message attribute as Lambda puts it in the event (string values; binary values are
/// base64 in Lambda's events and not used by any of our messages, so they are left out).
fn message_attribute(v: &MessageAttributeValue) -> Value {
    json!({
        "stringValue": v.string_value(),
        "stringListValues": v.string_list_values(),
        "binaryListValues": [],
        "dataType": v.data_type(),
    })
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn sqs_error<E>(operation: &'static str, queue: &str, e: E) -> MappingError
where
    E: std::error::Error + Send + Sync + 'static,
{
    MappingError::Sqs {
        operation,
        queue: queue.to_owned(),
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn redrive_policies_parse_with_numbers_or_strings() {
        let arn = "arn:aws:sqs:eu-central-1:123456789012:vox-transcribe-dlq";
        let policy = format!(r#"{{"deadLetterTargetArn": "{arn}", "maxReceiveCount": 3}}"#);
        assert_eq!(parse_redrive(&policy).unwrap(), (arn.to_owned(), 3));
        let policy = format!(r#"{{"deadLetterTargetArn": "{arn}", "maxReceiveCount": "5"}}"#);
        assert_eq!(parse_redrive(&policy).unwrap(), (arn.to_owned(), 5));
        assert!(parse_redrive("{}").is_err());
        assert_eq!(name_of_arn(arn), "vox-transcribe-dlq");
    }

    fn unreachable(queue: &str) -> MappingError {
        sqs_error(
            "GetQueueAttributes",
            queue,
            std::io::Error::other("connection refused"),
        )
    }

    #[test]
    fn the_outage_backoff_doubles_up_to_its_cap_and_restarts_after_a_success() {
        let mut outage = Outage::new(Duration::from_secs(3600));
        let waits: Vec<u64> = (0..6)
            .map(|_| outage.failed(unreachable("q"), "test").unwrap().as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        outage.recovered();
        let next = outage.failed(unreachable("q"), "test").unwrap();
        assert_eq!(next, Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_call_that_fails_a_few_times_is_retried_until_it_succeeds() {
        let calls = AtomicUsize::new(0);
        let outage = Outage::with_backoff(
            Duration::from_secs(10),
            Duration::from_millis(1),
            Duration::from_millis(4),
        );

        let got = retrying_with(outage, "test", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n < 3 { Err(unreachable("q")) } else { Ok(n) } }
        })
        .await
        .unwrap();

        assert_eq!(got, 3);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_call_failing_past_the_limit_gives_up_naming_queue_operation_and_duration() {
        let limit = Duration::from_millis(50);
        let outage =
            Outage::with_backoff(limit, Duration::from_millis(5), Duration::from_millis(5));

        let e = retrying_with(outage, "test", || async {
            Err::<(), _>(unreachable("http://sqs/vox-analyze"))
        })
        .await
        .unwrap_err();

        let MappingError::Outage {
            operation,
            queue,
            failing_for,
            ..
        } = &e
        else {
            panic!("not an outage: {e:?}");
        };
        assert_eq!(
            (*operation, queue.as_str()),
            ("GetQueueAttributes", "http://sqs/vox-analyze")
        );
        assert!(*failing_for >= limit, "{failing_for:?}");
        assert_eq!(
            common::error::chain(&e),
            "SQS GetQueueAttributes on http://sqs/vox-analyze has been failing for 0 s: connection refused"
        );
    }

    #[tokio::test]
    async fn a_setup_error_is_not_retried() {
        let calls = AtomicUsize::new(0);

        let e = retrying(Duration::from_secs(60), "test", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err::<(), _>(MappingError::Setup {
                    queue: "q".into(),
                    reason: "no such binding".into(),
                })
            }
        })
        .await
        .unwrap_err();

        assert!(matches!(e, MappingError::Setup { .. }), "{e:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn dead_letter_queues_of_fifo_queues_are_fifo() {
        assert_eq!(dead_letter_name("vox-index.fifo"), "vox-index-dlq.fifo");
        assert_eq!(dead_letter_name("vox-analyze"), "vox-analyze-dlq");
    }
}
