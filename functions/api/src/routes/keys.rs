//! API key management (admin only): create (the key is shown once), list, revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::db::api_key::{self, ApiKeyRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Caller, Permission, Role};
use crate::extract::{Id, JsonBody};
use crate::problem::{Problem, ProblemBody};
use crate::routes::required_text;

/// `POST /keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Who or what the key is for.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// `admin`, `analyst` or `uploader`.
    #[schema(pattern = "^(admin|analyst|uploader)$")]
    pub role: String,
}

/// A stored key (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: i64,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRow> for KeyView {
    fn from(k: ApiKeyRow) -> Self {
        Self {
            id: k.api_key_id,
            name: k.name,
            prefix: k.prefix,
            role: k.role,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key: `key` is shown this once and cannot be retrieved again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub stored: KeyView,
    pub key: String,
}

#[utoipa::path(
    post,
    path = "/keys",
    operation_id = "create_key",
    tag = "keys",
    request_body = NewKey,
    responses((status = 201, description = "The key, shown once", body = CreatedKey))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), Problem> {
    caller.require(Permission::ManageKeys)?;
    required_text("name", &req.name, 100)?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        Problem::invalid(
            "role",
            format!("{:?} is not admin, analyst or uploader", req.role),
        )
    })?;
    let conn = state.pool.get().await?;
    let (stored, key) = crate::keys::create(&conn, &req.name, role).await?;
    tracing::info!(api_key_id = stored.api_key_id, role = %stored.role, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            stored: stored.into(),
            key,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/keys",
    operation_id = "list_keys",
    tag = "keys",
    responses((status = 200, description = "Every key, newest first", body = Vec<KeyView>))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<KeyView>>, Problem> {
    caller.require(Permission::ManageKeys)?;
    let conn = state.pool.get().await?;
    Ok(Json(
        api_key::list(&conn)
            .await?
            .into_iter()
            .map(KeyView::from)
            .collect(),
    ))
}

#[utoipa::path(
    delete,
    path = "/keys/{id}",
    operation_id = "revoke_key",
    tag = "keys",
    params(("id" = i64, Path, description = "Key id", minimum = 1)),
    responses(
        (status = 200, description = "Revoked (again: unchanged)", body = KeyView),
        (status = 404, description = "No such key", body = ProblemBody,
         content_type = "application/problem+json"),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<KeyView>, Problem> {
    caller.require(Permission::ManageKeys)?;
    let conn = state.pool.get().await?;
    let Some(row) = api_key::revoke(&conn, id).await? else {
        return Err(Problem::not_found(format!("API key {id} does not exist")));
    };
    tracing::info!(api_key_id = id, "API key revoked");
    Ok(Json(row.into()))
}
