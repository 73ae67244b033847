//! API keys: stored as the SHA-256 of the key (never the key itself), with a visible prefix
//! to recognise a key in listings, a role, and when it was last used or revoked.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::GenericClient;
use crate::{Error, Result};

/// The roles a key can have (the `api_key.role` check constraint).
pub const ROLES: [&str; 3] = ["admin", "analyst", "uploader"];

/// A stored key as administrators see it (without its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyRow {
    pub api_key_id: i64,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The key a request presented, once found and not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub api_key_id: i64,
    pub name: String,
    pub role: String,
}

const SELECT_KEY: &str =
    "SELECT api_key_id, name, prefix, role, created_at, last_used_at, revoked_at FROM api_key";

fn key_row(r: &tokio_postgres::Row) -> ApiKeyRow {
    ApiKeyRow {
        api_key_id: r.get(0),
        name: r.get(1),
        prefix: r.get(2),
        role: r.get(3),
        created_at: r.get(4),
        last_used_at: r.get(5),
        revoked_at: r.get(6),
    }
}

/// Stores a new key by its hash; the caller shows the key itself once and forgets it.
pub async fn create(
    client: &impl GenericClient,
    name: &str,
    prefix: &str,
    key_sha256: &[u8; 32],
    role: &str,
) -> Result<ApiKeyRow> {
    super::reference::check_name("name", name)?;
    if !ROLES.contains(&role) {
        return Err(Error::InvalidInput {
            field: "role",
            reason: format!("{role:?} is not one of {}", ROLES.join(", ")),
        });
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO api_key (name, prefix, key_sha256, role) VALUES ($1, $2, $3, $4)
             RETURNING api_key_id, name, prefix, role, created_at, last_used_at, revoked_at",
        )
        .await?;
    let hash: &[u8] = key_sha256;
    Ok(key_row(
        &client
            .query_one(&stmt, &[&name.trim(), &prefix, &hash, &role])
            .await?,
    ))
}

/// Looks a presented key up by its hash. A revoked or unknown key is `None`. `last_used_at`
/// is written at most once a minute per key, so that reads stay reads.
pub async fn authenticate(
    client: &impl GenericClient,
    key_sha256: &[u8; 32],
) -> Result<Option<Authenticated>> {
    let stmt = client
        .prepare_cached(
            "WITH k AS (SELECT api_key_id, name, role, last_used_at FROM api_key
                        WHERE key_sha256 = $1 AND revoked_at IS NULL),
                  touched AS (UPDATE api_key SET last_used_at = now() FROM k
                              WHERE api_key.api_key_id = k.api_key_id
                                AND (k.last_used_at IS NULL
                                     OR k.last_used_at < now() - interval '1 minute'))
             SELECT api_key_id, name, role FROM k",
        )
        .await?;
    let hash: &[u8] = key_sha256;
    Ok(client
        .query_opt(&stmt, &[&hash])
        .await?
        .map(|r| Authenticated {
            api_key_id: r.get(0),
            name: r.get(1),
            role: r.get(2),
        }))
}

/// Every key, newest first (revoked ones too, so that administrators see what was revoked).
pub async fn list(client: &impl GenericClient) -> Result<Vec<ApiKeyRow>> {
    let sql = format!("{SELECT_KEY} ORDER BY api_key_id DESC");
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client
        .query(&stmt, &[])
        .await?
        .iter()
        .map(key_row)
        .collect())
}

/// Revokes a key (revoking it again keeps the first time). `None` when there is no such key.
pub async fn revoke(client: &impl GenericClient, api_key_id: i64) -> Result<Option<ApiKeyRow>> {
    let stmt = client
        .prepare_cached(
            "UPDATE api_key SET revoked_at = coalesce(revoked_at, now()) WHERE api_key_id = $1
             RETURNING api_key_id, name, prefix, role, created_at, last_used_at, revoked_at",
        )
        .await?;
    Ok(client
        .query_opt(&stmt, &[&api_key_id])
        .await?
        .as_ref()
        .map(key_row))
}
