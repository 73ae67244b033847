//! The S3/SQS emulator (moto) for tests: a bucket and queues of their own per test, so tests
//! run in parallel without resetting each other's state.

use anyhow::{Context, Result};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Event, NotificationConfiguration,
    QueueConfiguration,
};
use aws_sdk_sqs::types::QueueAttributeName;
use common::queue::SqsQueue;
use common::storage::S3Store;

/// Endpoint of the emulator the tests use (`infra/local/moto.sh start` serves it).
pub fn moto_url() -> String {
    std::env::var("VOX_TEST_MOTO_URL").unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned())
}

/// A bucket whose ObjectCreated notifications go to a transcribe queue, plus an analyze
/// queue, all named uniquely for one test.
#[derive(Debug)]
pub struct LocalAws {
    pub s3: S3Store,
    pub bucket: String,
    pub transcribe: SqsQueue,
    pub analyze: SqsQueue,
    /// FIFO, as the deployed index queue (one writer at a time).
    pub index: SqsQueue,
    pub sdk: aws_config::SdkConfig,
}

impl LocalAws {
    pub async fn new() -> Result<Self> {
        let sdk = common::aws::local(&moto_url()).await;
        let s3 = S3Store::new(&sdk, true);
        let suffix = crate::unique_name("t").replace('_', "-");
        let bucket = format!("vox-{suffix}");
        let region = sdk
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_default();
        s3.client()
            .create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            )
            .send()
            .await
            .with_context(|| {
                format!("creating bucket {bucket} (is moto running? infra/local/moto.sh start)")
            })?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let mut urls = Vec::new();
        for name in ["transcribe", "analyze"] {
            let url = sqs
                .create_queue()
                .queue_name(format!("{name}-{suffix}"))
                .attributes(QueueAttributeName::VisibilityTimeout, "30")
                .send()
                .await?
                .queue_url()
                .context("queue without URL")?
                .to_owned();
            urls.push(url);
        }
        let index_url = sqs
            .create_queue()
            .queue_name(format!("index-{suffix}.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await?
            .queue_url()
            .context("queue without URL")?
            .to_owned();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&urls[0])
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .context("queue without ARN")?;
        s3.client()
            .put_bucket_notification_configuration()
            .bucket(&bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(
                        QueueConfiguration::builder()
                            .id("transcribe")
                            .queue_arn(arn)
                            .events(Event::S3ObjectCreated)
                            .build()?,
                    )
                    .build(),
            )
            .send()
            .await?;
        Ok(Self {
            transcribe: SqsQueue::new(&sdk, urls[0].clone()),
            analyze: SqsQueue::new(&sdk, urls[1].clone()),
            index: SqsQueue::new(&sdk, index_url),
            s3,
            bucket,
            sdk,
        })
    }

    /// Message bodies waiting on a queue (up to `max`), deleting what it returns.
    pub async fn drain(&self, queue: &SqsQueue, max: usize) -> Result<Vec<String>> {
        let mut bodies = Vec::new();
        while bodies.len() < max {
            let out = queue
                .client()
                .receive_message()
                .queue_url(queue.url())
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await?;
            let messages = out.messages();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                bodies.push(m.body().unwrap_or_default().to_owned());
                if let Some(handle) = m.receipt_handle() {
                    queue
                        .client()
                        .delete_message()
                        .queue_url(queue.url())
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
        }
        Ok(bodies)
    }
}
