//! `vox serve [--port N]`: the API's router as a plain local HTTP server on 127.0.0.1, with
//! the same configuration as the Lambda (DATABASE_URL, VOX_RECORDINGS_BUCKET, the AWS SDK's
//! variables).

use std::net::Ipv4Addr;

pub async fn run(port: u16) -> anyhow::Result<()> {
    let state = api::AppState::from_env().await?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving the API");
    eprintln!("serving the API on http://{addr} (OpenAPI at /openapi.json)");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
