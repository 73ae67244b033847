//! Lambda entry point: configuration, clients, the sentence encoder and the engine are built
//! once per cold start.
#![recursion_limit = "256"]

use std::sync::Arc;

use common::analysis::engines;
use common::analysis::stage::{Settings, Stage};
use common::db::{DbConfig, PgPool};
use common::embed::{Embedder, UseEmbedder};
use common::queue::SqsQueue;
use common::search::Searcher;
use common::search::answer::{AnswerSettings, Answerer};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init();
    let sdk = common::aws::load().await;
    let embedder: Arc<dyn Embedder> = Arc::new(UseEmbedder::from_env()?);
    // One chat client for the report passes and the answers.
    let model = common::llm::chat_model_from_env().await?;
    let stage = Stage {
        pool: PgPool::new(&DbConfig::from_env()?)?,
        engine: engines::for_model(model.clone(), Arc::clone(&embedder))?,
        embedder,
        index: common::config::optional("VOX_INDEX_QUEUE_URL")?.map(|url| SqsQueue::new(&sdk, url)),
        settings: Settings::from_env()?,
        worker: common::config::worker_id(),
    };
    let mut answerer = Answerer::new(
        Searcher::new(stage.pool.clone(), Arc::clone(&stage.embedder)),
        model,
    );
    answerer.settings = AnswerSettings::from_env()?;
    let (stage, answerer) = (&stage, &answerer);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let invocation = analyze::Invocation::from_json(event.payload)?;
        let response = analyze::handle(stage, Some(answerer), invocation).await?;
        Ok::<_, lambda_runtime::Error>(response)
    }))
    .await
}
