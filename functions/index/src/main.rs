//! Lambda entry point: configuration and clients are built once per cold start.
#![recursion_limit = "256"]

use common::db::{DbConfig, PgPool};
use common::index::publish::{Indexer, Settings};
use common::storage::S3Store;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    common::telemetry::init();
    let sdk = common::aws::load().await;
    let aws = common::aws::AwsSettings::from_env()?;
    let indexer = Indexer::new(
        PgPool::new(&DbConfig::from_env()?)?,
        S3Store::new(&sdk, aws.s3_path_style),
        Settings::from_env()?,
    );
    let indexer = &indexer;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let invocation = index_fn::Invocation::from_json(event.payload)?;
        let response = index_fn::handle(indexer, invocation).await?;
        Ok::<_, lambda_runtime::Error>(response)
    }))
    .await
}
