//! Schema migrations from `migrations/`, embedded in the binary and applied by refinery.
//!
//! Never run at cold start: `vox migrate` (or a deployment step) applies them. Two processes
//! migrating at once are serialised by a session advisory lock, so the second finds the work
//! done and applies nothing.

use tokio_postgres::error::SqlState;

use super::DbConfig;
use crate::{Error, Result};

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Advisory lock key that serialises migration runs ("voxmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x0076_6f78_6d69_6772;

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this run, as `V<version>__<name>`.
    pub applied: Vec<String>,
    /// The schema version after the run.
    pub version: Option<i64>,
}

/// A fingerprint of the embedded migrations (names and checksums), e.g. to name a test
/// template database after the schema it holds.
pub fn fingerprint() -> u64 {
    embedded::migrations::runner().get_migrations().iter().fold(
        0xcbf2_9ce4_8422_2325u64,
        |acc, m| {
            let mut h = acc;
            for b in m.to_string().bytes().chain(m.checksum().to_le_bytes()) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            h
        },
    )
}

/// Applies every pending migration to the connected database.
pub async fn run(client: &mut tokio_postgres::Client) -> Result<MigrationReport> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let outcome = embedded::migrations::runner()
        .set_grouped(true)
        .run_async(client)
        .await;
    // Unlock even after a failure; a lost connection releases the lock by itself.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let report = outcome.map_err(|e| Error::Migration(Box::new(e)))?;
    unlocked?;
    Ok(MigrationReport {
        applied: report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect(),
        version: report
            .applied_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .or(current_version(client).await?),
    })
}

async fn current_version(client: &tokio_postgres::Client) -> Result<Option<i64>> {
    let row = client
        .query_opt(
            "SELECT max(version)::bigint FROM refinery_schema_history",
            &[],
        )
        .await?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Creates the configured database if it does not exist (connecting to the server's
/// `postgres` database to do so). Returns whether it was created. Safe to race.
pub async fn ensure_database(cfg: &DbConfig) -> Result<bool> {
    let name = cfg.dbname();
    let admin = cfg.with_dbname("postgres").connect().await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    let sql = format!("CREATE DATABASE {}", quote_ident(&name));
    match admin.batch_execute(&sql).await {
        Ok(()) => Ok(true),
        // Another process created it between our check and our CREATE.
        Err(e)
            if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates the database if missing, then applies pending migrations.
pub async fn ensure_migrated(cfg: &DbConfig) -> Result<MigrationReport> {
    ensure_database(cfg).await?;
    let mut client = cfg.connect().await?;
    run(&mut client).await
}

/// Quotes an SQL identifier (for statements that cannot take parameters).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
