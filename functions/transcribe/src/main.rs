//! Lambda entry point: configuration, clients and models are built once per cold start.
#![recursion_limit = "256"]

use std::sync::Arc;

use common::db::{DbConfig, PgPool};
use common::queue::SqsQueue;
use common::speech::{EngineSettings, WhisperEngine};
use common::speech_api::OpenAiSpeech;
use common::storage::S3Store;
use common::transcribe::{Settings, SpeechEngine, Stage, worker_id};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init();
    let sdk = common::aws::load().await;
    let aws = common::aws::AwsSettings::from_env()?;
    // VOX_SPEECH_ENGINE=openai selects the hosted API; by default Whisper runs here.
    let engine: Arc<dyn SpeechEngine> = match OpenAiSpeech::from_env()? {
        Some(hosted) => Arc::new(hosted),
        None => Arc::new(WhisperEngine::load(&EngineSettings::from_env()?)?),
    };
    let stage = Stage {
        pool: PgPool::new(&DbConfig::from_env()?)?,
        s3: S3Store::new(&sdk, aws.s3_path_style),
        analyze: SqsQueue::new(&sdk, common::config::required("VOX_ANALYZE_QUEUE_URL")?),
        engine,
        settings: Settings::from_env()?,
        worker: worker_id(),
    };
    let sweeper = transcribe::Sweeper {
        transcribe: common::config::optional("VOX_TRANSCRIBE_QUEUE_URL")?
            .map(|url| SqsQueue::new(&sdk, url)),
        settings: common::sweep::SweepSettings::from_env()?,
    };
    let (stage, sweeper) = (&stage, &sweeper);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let deadline = transcribe::deadline_from_epoch_ms(event.context.deadline);
        let invocation = transcribe::Invocation::from_json(event.payload)?;
        let response = transcribe::handle(stage, sweeper, invocation, deadline).await?;
        Ok::<_, lambda_runtime::Error>(response)
    }))
    .await
}
