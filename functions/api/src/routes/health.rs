//! `GET /health`: whether the API can reach PostgreSQL. No authentication.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::problem::Problem;

/// The API and its database are up.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// `ok` when a query round trip to PostgreSQL succeeded.
    pub database: String,
}

/// How long the database may take to answer a health check.
const DB_CHECK: Duration = Duration::from_secs(3);

#[utoipa::path(
    get,
    path = "/health",
    tag = "state",
    security(()),
    responses(
        (status = 200, description = "The API and PostgreSQL are up", body = Health),
        (status = 503, description = "PostgreSQL is unreachable", body = crate::problem::ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn health(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    let check = async {
        let conn = state.pool.get().await?;
        common::db::ping(&conn).await
    };
    match tokio::time::timeout(DB_CHECK, check).await {
        Ok(Ok(())) => Ok(Json(Health {
            status: "ok".into(),
            database: "ok".into(),
        })),
        Ok(Err(e)) => Err(Problem::unavailable(&e)),
        Err(elapsed) => Err(Problem::unavailable(&elapsed)),
    }
}
