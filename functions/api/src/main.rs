//! Lambda entry point: configuration, the PostgreSQL pool and the S3 client are built once
//! per cold start; lambda_http turns API Gateway events into requests for the router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    common::telemetry::init();
    let state = api::AppState::from_env().await?;
    lambda_http::run(api::router(state)).await
}
